//! What Vercel needs of the repository's shape, checked on the real files.

use std::path::{Path, PathBuf};

use serde_json::Value;

pub(super) fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn bins() -> Vec<(String, String)> {
    let manifest: toml::Value = std::fs::read_to_string(root().join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    manifest["bin"]
        .as_array()
        .expect("[[bin]] entries")
        .iter()
        .map(|bin| {
            (
                bin["name"].as_str().unwrap().to_owned(),
                bin["path"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn api_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            api_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path.strip_prefix(root()).unwrap().to_owned());
        }
    }
}

/// Vercel's cron syntax: five fields of digits, `*`, `,`, `-` and `/` only.
fn schedule_is_valid(schedule: &str) -> bool {
    let fields: Vec<&str> = schedule.split(' ').collect();
    fields.len() == 5
        && fields
            .iter()
            .all(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_digit() || "*,-/".contains(c)))
}

#[test]
fn vercel_json_is_strict_json_and_every_cron_names_a_real_function() {
    let text = std::fs::read_to_string(root().join("vercel.json")).unwrap();
    // serde_json accepts no comments and no trailing commas, as Vercel.
    let config: Value = serde_json::from_str(&text).expect("vercel.json is strict JSON");
    let crons = config["crons"].as_array().expect("a crons array");
    assert!(!crons.is_empty());
    let bins = bins();
    for cron in crons {
        let entry = cron.as_object().unwrap();
        let mut keys: Vec<&str> = entry.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["path", "schedule"],
            "a cron entry has only path and schedule"
        );
        let path = entry["path"].as_str().unwrap();
        let schedule = entry["schedule"].as_str().unwrap();
        assert!(
            schedule_is_valid(schedule),
            "{schedule:?} is five numeric fields"
        );
        let route = path
            .strip_prefix("/api/")
            .expect("cron paths are under /api/");
        assert!(!route.contains('?'), "{path}: no query in a cron path");
        let file = format!("api/{route}.rs");
        assert!(root().join(&file).is_file(), "{path} has its file {file}");
        let name = route.replace('/', "-");
        assert!(
            bins.iter().any(|(n, p)| *n == name && *p == file),
            "{file} has a [[bin]] named {name} with exactly that path"
        );
        let max = config["functions"][&file]["maxDuration"].as_u64();
        assert!(
            max.is_some_and(|s| (1..=800).contains(&s)),
            "{file} has a maxDuration"
        );
    }
}

#[test]
fn every_api_file_is_a_bin_with_exactly_its_path_and_there_is_no_src_main_rs() {
    assert!(
        !root().join("src/main.rs").exists(),
        "src/main.rs makes Vercel ignore api/"
    );
    let mut files = Vec::new();
    api_files(&root().join("api"), &mut files);
    assert!(!files.is_empty());
    let bins = bins();
    for file in files {
        let file = file.to_str().unwrap().to_owned();
        let name = file
            .trim_start_matches("api/")
            .trim_end_matches(".rs")
            .replace('/', "-");
        assert!(
            bins.contains(&(name.clone(), file.clone())),
            "{file} needs [[bin]] name = {name:?}, path = {file:?}"
        );
    }
    let mut names: Vec<&str> = bins.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), bins.len(), "bin names are unique");
}

#[test]
fn the_schedule_check_itself_rejects_what_vercel_rejects() {
    assert!(schedule_is_valid("0 2 * * *"));
    assert!(schedule_is_valid("*/15 1-5 1,15 * 0"));
    for bad in [
        "0 2 * * MON",
        "0 0 2 * * *",
        "0 2 * *",
        "@daily",
        "0  2 * * *",
    ] {
        assert!(!schedule_is_valid(bad), "{bad}");
    }
}

#[test]
fn cargo_config_has_the_build_table_vercels_rust_runtime_reads() {
    // @vercel/rust reads `build.target` without checking that `[build]`
    // exists; without it every deployment build crashes. scripts/check-deploy
    // runs the real runtime; this is the quick check.
    let config: toml::Value = std::fs::read_to_string(root().join(".cargo/config.toml"))
        .unwrap()
        .parse()
        .unwrap();
    assert!(config.get("build").is_some_and(toml::Value::is_table));
}

#[test]
fn only_public_is_published_and_it_holds_no_source() {
    // Without a public/ folder, Vercel publishes every file of the
    // repository as a static asset.
    let public = root().join("public");
    assert!(public.is_dir());
    for entry in std::fs::read_dir(&public).unwrap() {
        let path = entry.unwrap().path();
        let extension = path.extension().map(std::ffi::OsStr::to_ascii_lowercase);
        assert!(
            !extension.is_some_and(|e| e == "rs" || e == "toml" || e == "sql"),
            "{} would be downloadable",
            path.display()
        );
    }
}

#[test]
fn the_library_prepares_no_named_statement_and_uses_no_session_state() {
    // Every statement goes through db::query* (unnamed statements) inside a
    // transaction opened by db::begin, so every function works through a
    // transaction pooler; the suite's pooler run would fail otherwise, and
    // this names the line at once.
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    rust_files(&root().join("dev/src"), &mut files);
    for file in files {
        let relative = file.strip_prefix(root()).unwrap().display().to_string();
        if relative.starts_with("src/platform/db/") || relative == "src/schema/migrate.rs" {
            continue; // the wrappers themselves; migrations need a session
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let lower = line.to_ascii_lowercase();
            for banned in [
                "sqlx::query",
                ".begin()",
                "pg_advisory_lock",
                "\"listen ",
                "temporary table",
                "temp table",
            ] {
                assert!(
                    !lower.contains(banned),
                    "{relative}:{}: {banned}: {line}",
                    n + 1
                );
            }
            // A statement that is a SET (an UPDATE's SET clause is fine).
            let session_set = lower.contains("\"set ") && !lower.contains("\"set local");
            assert!(!session_set, "{relative}:{}: session SET: {line}", n + 1);
        }
        let outside = statements_outside_a_transaction(&text);
        assert!(
            outside.is_empty(),
            "{relative}: statements outside a transaction, on {outside:?}"
        );
    }
}

/// The executors in `text` that a `db::query*` runs on outside a
/// transaction: a pool, or a connection just taken from one. sqlx parses an
/// unnamed statement in one exchange and runs it in the next, which a
/// transaction pooler may send to another server connection. (A
/// `Statement` takes its limits and arguments as well, so its calls have
/// more than one argument, and it goes in one simple-protocol message.)
fn statements_outside_a_transaction(text: &str) -> Vec<String> {
    single_executors(text)
        .into_iter()
        .filter(|(at, executor)| {
            let root = executor
                .trim_start_matches(['&', '*'])
                .trim_start_matches("mut")
                .trim_start_matches(['&', '*'])
                .trim_start_matches("self.")
                .trim_start_matches("ready.");
            // The names of the function the call is in.
            let function = &text[text[..*at].rfind("fn ").unwrap_or(0)..*at];
            executor.contains(".acquire()")
                || root.ends_with("pool")
                || pool_names(function).contains(root)
        })
        .map(|(_, executor)| executor)
        .collect()
}

/// Names bound to a pool (`name: &PgPool`) or to a connection taken from
/// one (`let mut name = ….acquire()`).
fn pool_names(text: &str) -> std::collections::HashSet<String> {
    let mut names = std::collections::HashSet::new();
    for (at, _) in text.match_indices("PgPool") {
        // `name: PgPool`, `name: &PgPool`, `name: &'a PgPool`
        let before = text[..at].trim_end();
        let before = before
            .strip_suffix("&'a")
            .or_else(|| before.strip_suffix('&'))
            .unwrap_or(before)
            .trim_end();
        if let Some(before) = before.strip_suffix(':') {
            names.insert(last_word(before));
        }
    }
    for (at, _) in text.match_indices("let ") {
        let statement = &text[at + 4..];
        let end = statement.find(';').unwrap_or(statement.len());
        if statement[..end].contains(".acquire()")
            && let Some((name, _)) = statement[..end].split_once('=')
        {
            names.insert(last_word(name));
        }
    }
    names.remove("");
    names
}

fn last_word(text: &str) -> String {
    text.trim_end()
        .rsplit(|c: char| !(c.is_alphanumeric() || c == '_'))
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The argument of every one-argument `.execute(…)`, `.fetch…(…)` call in
/// `text` (a trailing comma allowed), its whitespace collapsed, with where
/// the call is.
fn single_executors(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for call in [
        ".execute(",
        ".fetch(",
        ".fetch_one(",
        ".fetch_all(",
        ".fetch_optional(",
    ] {
        for (at, _) in text.match_indices(call) {
            let rest = &text[at + call.len()..];
            let (mut depth, mut end) = (1, None);
            for (i, c) in rest.char_indices() {
                depth += match c {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                if depth == 0 || (depth == 1 && c == ',') {
                    end = Some((i, c));
                    break;
                }
            }
            let Some((end, stop)) = end else { continue };
            let single = stop == ')' || rest[end + 1..].trim_start().starts_with(')');
            if single {
                found.push((at, rest[..end].split_whitespace().collect::<String>()));
            }
        }
    }
    found
}

#[test]
fn the_statement_check_itself_finds_what_runs_outside_a_transaction() {
    let outside = |code: &str| statements_outside_a_transaction(code);
    assert_eq!(outside("q.execute(pool).await"), ["pool"]);
    assert_eq!(outside("q.fetch_one(&self.pool).await"), ["&self.pool"]);
    assert_eq!(
        outside("fn f(replaced: &PgPool) { q.fetch_all(replaced).await }"),
        ["replaced"]
    );
    assert_eq!(
        outside("q.fetch_one(\n    &mut *pool.acquire().await?,\n)"),
        ["&mut*pool.acquire().await?"]
    );
    assert_eq!(
        outside("let mut conn = pool.acquire().await?;\nq.fetch_one(&mut *conn).await"),
        ["&mut*conn"]
    );
    // Inside a transaction, and a `Statement` (limits and arguments too).
    assert!(outside("q.fetch_one(&mut *tx).await").is_empty());
    // A connection of that name in another function is a caller's.
    assert!(
        outside(
            "fn a(pool: &PgPool) { let mut conn = pool.acquire().await?; }\n\
             fn b(conn: &mut PgConnection) { q.fetch_one(conn).await }"
        )
        .is_empty()
    );
    assert!(
        outside("S.execute(&mut *pool.acquire().await?, &Limits::CRON, &[id.into()])").is_empty()
    );
}

pub(super) fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}
