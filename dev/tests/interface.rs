//! The interface as a document (`openapi.yaml`) against the functions: the
//! document is valid `OpenAPI` 3.1 and names exactly the functions that
//! `vercel.json` and `Cargo.toml` declare; Schemathesis attacks every
//! operation under `cargo dev` with each credential; the TypeScript client
//! (`clients/typescript`) works against the functions and its generated
//! types are the document's.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::DevServer;
use testkit::http_client::send;
use testkit::postgres::TestDb;

const CRON_SECRET: &str = "interface-cron-secret-0123456789";
const ADMIN_SECRET: &str = "interface-admin-secret-0123456789abcdef";
const STATUS_SECRET: &str = "interface-status-secret-012345";

/// Schemathesis' checks: every one the issue names, all failing the run.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_schema_conformance,response_headers_conformance,negative_data_rejection";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn python() -> PathBuf {
    testkit::python::interpreter("openapi-spec-validator and schemathesis")
}

/// What `openapi_check.py` reads off the document (and its validation).
fn document() -> serde_json::Value {
    let output = Command::new(python())
        .arg(testkit::python::script("openapi_check.py"))
        .arg(root().join("openapi.yaml"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "openapi.yaml is not a valid OpenAPI 3.1 document:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Each function's path: `api/x/y.rs` is served at `/api/x/y`.
fn path_of(file: &str) -> String {
    format!("/{}", file.trim_end_matches(".rs"))
}

#[test]
fn the_document_is_valid_and_names_every_function_and_nothing_else() {
    let document = document();
    assert_eq!(document["openapi"], "3.1.0");
    let documented: BTreeSet<String> = document["paths"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let vercel: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("vercel.json")).unwrap())
            .unwrap();
    let in_vercel: BTreeSet<String> = vercel["functions"]
        .as_object()
        .unwrap()
        .keys()
        .map(|file| path_of(file))
        .collect();
    let cargo = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let in_cargo: BTreeSet<String> = cargo
        .lines()
        .filter_map(|line| line.trim().strip_prefix("path = \"api/"))
        .map(|rest| path_of(&format!("api/{}", rest.trim_end_matches('"'))))
        .collect();
    assert_eq!(documented, in_vercel, "openapi.yaml against vercel.json");
    assert_eq!(documented, in_cargo, "openapi.yaml against Cargo.toml");

    // Every error code of the contract, with the statuses it names.
    let codes: BTreeSet<&str> = document["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for code in [
        "unauthorized",
        "sign_in_again",
        "forbidden_origin",
        "invalid_or_expired_token",
        "not_deleted",
        "not_restorable",
        "no_address",
        "held",
        "blocked",
        "ambiguous",
        "invalid_request",
        "not_found",
        "rate_limited",
        "too_many_requests",
        "method_not_allowed",
        "payload_too_large",
        "server_misconfigured",
        "service_unavailable",
    ] {
        assert!(codes.contains(code), "openapi.yaml names no {code}");
    }
    let schemes: Vec<&str> = document["security_schemes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    for scheme in [
        "sessionBearer",
        "authjsSessionCookie",
        "cronSecret",
        "adminSecret",
        "statusSecret",
        "recoveryToken",
        "exportToken",
    ] {
        assert!(schemes.contains(&scheme), "no security scheme {scheme}");
    }
}

/// `cargo dev` on a test database with every secret set.
async fn functions() -> (TestDb, DevServer) {
    testkit::postgres::use_migrations(account_deletion::schema::migrate::apply_defaults);
    let db = TestDb::new().await;
    let server = DevServer::start(
        Some(&db.url()),
        Duration::from_secs(30),
        &[
            ("CRON_SECRET", CRON_SECRET),
            ("ADMIN_SECRET", ADMIN_SECRET),
            ("STATUS_SECRET", STATUS_SECRET),
        ],
    )
    .await;
    (db, server)
}

/// A new user signed in, as the app's sign-in would: its session token.
async fn session(server: &DevServer) -> String {
    let seeded = send(server.port, "POST", "/_dev/seed", &[], b"")
        .await
        .unwrap();
    assert_eq!(seeded.status, 201, "{}", seeded.body);
    seeded.json()["session_token"].as_str().unwrap().to_owned()
}

/// One Schemathesis run over the operations `filter` selects, signed in
/// as `session`; its summary, or the failures it found.
fn schemathesis(server: &DevServer, session: &str, filter: &[&str]) -> String {
    let config = server
        .dir
        .join(format!("schemathesis-{}.toml", filter.join("-").len()));
    std::fs::write(
        &config,
        format!(
            "[auth.openapi.sessionBearer]\nbearer = \"{session}\"\n\
             [auth.openapi.cronSecret]\nbearer = \"{CRON_SECRET}\"\n\
             [auth.openapi.adminSecret]\nbearer = \"{ADMIN_SECRET}\"\n\
             [auth.openapi.statusSecret]\nbearer = \"{STATUS_SECRET}\"\n"
        ),
    )
    .unwrap();
    let schemathesis = python().with_file_name("schemathesis");
    let output = Command::new(&schemathesis)
        // Its example database goes where the server's files go.
        .current_dir(&server.dir)
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(root().join("openapi.yaml"))
        .args(["--url", &format!("http://127.0.0.1:{}", server.port)])
        .args(["--checks", &CHECKS.replace(' ', "")])
        // Fixed, so a failure is one the next run reproduces.
        .args(["--seed", "1", "--max-examples", "25", "--workers", "1"])
        .args(filter)
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", schemathesis.display()));
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "Schemathesis found failures:\n{report}\n{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.logs()
    );
    report
}

#[tokio::test]
async fn schemathesis_finds_no_failure_in_any_operation_with_every_credential() {
    let (_db, server) = functions().await;
    // The delete signs its user out everywhere: it runs on a user of its
    // own, after the rest.
    let rest = schemathesis(
        &server,
        &session(&server).await,
        &["--exclude-name", "POST /api/account/delete"],
    );
    let delete = schemathesis(
        &server,
        &session(&server).await,
        &["--include-name", "POST /api/account/delete"],
    );
    for report in [&rest, &delete] {
        let summary: Vec<&str> = report
            .lines()
            .filter(|l| l.contains("Tested:") || l.contains("generated"))
            .collect();
        println!("{}", summary.join("\n"));
        assert!(report.contains("passed"), "{report}");
    }
}

fn npm(dir: &Path, args: &[&str], env: &[(&str, &str)]) {
    let output = Command::new("npm")
        .current_dir(dir)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|error| {
            panic!("this test needs Node.js and npm (scripts/test installs them): {error}")
        });
    assert!(
        output.status.success(),
        "npm {}:\n{}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn the_typescript_client_works_against_the_functions_and_its_types_are_current() {
    let client = root().join("clients/typescript");
    assert!(
        client.join("node_modules/.bin/openapi-typescript").exists(),
        "clients/typescript has no node_modules: run scripts/test (it runs `npm ci` there)"
    );
    npm(&client, &["run", "--silent", "check-generated"], &[]);
    npm(&client, &["run", "--silent", "typecheck"], &[]);
    let (_db, server) = functions().await;
    let url = format!("http://127.0.0.1:{}", server.port);
    npm(
        &client,
        &["test", "--silent"],
        &[("ACCOUNT_DELETION_URL", url.as_str())],
    );
}

/// Every answer of a journey through the functions, kept to be checked
/// against the document.
struct Recorder {
    port: u16,
    answers: Vec<serde_json::Value>,
}

impl Recorder {
    async fn call(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> testkit::http_client::HttpResponse {
        let answer = send(self.port, method, path, headers, body).await.unwrap();
        let json = answer
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json"))
            .then(|| serde_json::from_slice::<serde_json::Value>(&answer.bytes).unwrap());
        let headers: serde_json::Map<String, serde_json::Value> = answer
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), serde_json::Value::from(v.clone())))
            .collect();
        self.answers.push(serde_json::json!({
            "method": method,
            "path": path.split('?').next().unwrap(),
            "status": answer.status,
            "headers": headers,
            "body": json,
        }));
        answer
    }

    /// [`Self::call`], expecting `status`.
    async fn expect(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        status: u16,
    ) {
        let answer = self.call(method, path, headers, body).await;
        assert_eq!(answer.status, status, "{method} {path}: {}", answer.body);
    }
}

#[tokio::test]
async fn every_functions_real_answers_through_a_whole_journey_conform_to_the_document() {
    let (db, server) = functions().await;
    let mut calls = Recorder {
        port: server.port,
        answers: Vec::new(),
    };
    let session = session(&server).await;
    user_journey(&mut calls, &server, &format!("Bearer {session}")).await;
    let id: String = sqlx::query_scalar("select id::text from users limit 1")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    operator_journey(&mut calls, &id).await;
    check_against_the_document(&calls.answers);
}

const JSON: (&str, &str) = ("content-type", "application/json");
const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

/// The signed-in routes and their refusals; the export asked for, asked
/// again, its page, its archive and a bad link; the deletion, and the
/// restore by its link.
async fn user_journey(calls: &mut Recorder, server: &DevServer, bearer: &str) {
    let user = [("authorization", bearer)];
    calls
        .expect("GET", "/api/account/deletion", &user, b"", 200)
        .await;
    calls
        .expect("GET", "/api/account/deletion", &[], b"", 401)
        .await;
    calls
        .expect("OPTIONS", "/api/account/delete", &[], b"", 204)
        .await;
    calls
        .expect("POST", "/api/account/restore", &user, b"", 409)
        .await;
    calls
        .expect("POST", "/api/account/export", &user, b"", 202)
        .await;
    calls
        .expect("POST", "/api/account/export", &user, b"", 429)
        .await;
    let token = link_token(&server.wait_for_mail(1).await, "export?token=");
    let page = format!("/api/account/export?token={token}");
    calls.expect("GET", &page, &[], b"", 200).await;
    let body = format!("token={token}");
    calls
        .expect("POST", "/api/account/export", &[FORM], body.as_bytes(), 200)
        .await;
    let wrong = br#"{"token": "nope"}"#;
    calls
        .expect("POST", "/api/account/export", &[JSON], wrong, 410)
        .await;
    calls
        .expect("POST", "/api/account/delete", &user, b"", 202)
        .await;
    let token = link_token(&server.wait_for_mail(2).await, "recover?token=");
    let page = format!("/api/account/recover?token={token}");
    calls.expect("GET", &page, &[], b"", 200).await;
    let body = format!(r#"{{"token": "{token}"}}"#);
    calls
        .expect(
            "POST",
            "/api/account/recover",
            &[JSON],
            body.as_bytes(),
            200,
        )
        .await;
    calls
        .expect(
            "POST",
            "/api/account/recover",
            &[JSON],
            body.as_bytes(),
            400,
        )
        .await;
}

/// Support by id and by address (an action, a refusal, nobody), the crons
/// and the status.
async fn operator_journey(calls: &mut Recorder, id: &str) {
    let admin = format!("Bearer {ADMIN_SECRET}");
    let admin = [("authorization", admin.as_str()), JSON];
    let path = "/api/admin/accounts";
    calls
        .expect("GET", &format!("{path}?user_id={id}"), &admin, b"", 200)
        .await;
    calls
        .expect("GET", &format!("{path}?email=x"), &admin, b"", 400)
        .await;
    for (action, status) in [
        (r#""action": "hold", "reason": "legal_hold""#, 200),
        (r#""action": "erase_now""#, 409),
        (r#""action": "export""#, 200),
    ] {
        let body = format!(r#"{{"user_id": "{id}", {action}}}"#);
        calls
            .expect("POST", path, &admin, body.as_bytes(), status)
            .await;
    }
    let nobody = br#"{"email": "nobody@example.test", "action": "show"}"#;
    calls.expect("POST", path, &admin, nobody, 404).await;
    let cron = format!("Bearer {CRON_SECRET}");
    let cron = [("authorization", cron.as_str())];
    calls
        .expect("GET", "/api/cron/permanent-delete-users", &cron, b"", 200)
        .await;
    calls
        .expect(
            "GET",
            "/api/cron/permanent-delete-users?dry_run=1",
            &cron,
            b"",
            200,
        )
        .await;
    calls
        .expect("GET", "/api/cron/send-emails", &cron, b"", 200)
        .await;
    calls
        .expect("GET", "/api/cron/send-emails", &[], b"", 401)
        .await;
    let status = format!("Bearer {STATUS_SECRET}");
    let answer = calls
        .call(
            "GET",
            "/api/status",
            &[("authorization", status.as_str())],
            b"",
        )
        .await;
    assert!([200, 503].contains(&answer.status), "{}", answer.body);
}

/// The token of the first link to `path` among the mail.
fn link_token(mail: &[(String, Vec<String>)], path: &str) -> String {
    let link = mail
        .iter()
        .flat_map(|(_, links)| links)
        .find(|l| l.contains(path))
        .unwrap_or_else(|| panic!("no {path} link in {mail:?}"));
    link.split("token=").nth(1).unwrap().to_owned()
}

/// `openapi_responses.py` reads every answer against the document.
fn check_against_the_document(answers: &[serde_json::Value]) {
    use std::io::Write as _;
    let mut check = Command::new(python())
        .arg(testkit::python::script("openapi_responses.py"))
        .arg(root().join("openapi.yaml"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(answers).unwrap())
        .unwrap();
    let output = check.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "answers that do not conform to openapi.yaml:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{}", String::from_utf8_lossy(&output.stderr).trim());
}
