//! `cargo dev` — run the whole system locally.
//!
//! ```text
//! cargo dev                 serve every function on 127.0.0.1:$PORT (3000), crons firing
//! cargo dev cron <path>     fire one cron now against the running server, print its answer
//! cargo dev migrate [--add-deleted-at] [--add-email-index]
//!                           apply migrations/ to DIRECT_URL (else DATABASE_URL) and say what was
//!                           applied; with the flag, also add the deleted-at column and its index to
//!                           an existing users table that lacks them
//! cargo dev seed [email]    a session for a new demo user, or for `email` (server must be running)
//! cargo dev backdate <email> [days]   make a deleted account look deleted `days` (31) ago
//! cargo dev account <email | user id> [show | restore | resend-link | hold <reason> | release | erase-now | export [--out <file>]]
//!                           support's actions, against DATABASE_URL (or the running server's
//!                           embedded database)
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use account_deletion_dev::settings::DevSettings;
use account_deletion_dev::{account, client, crons, database, functions, mailbox};
use std::str::FromStr;

use account_deletion::platform::db;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

const USAGE: &str = "usage: cargo dev [serve | cron <path> | migrate [--add-deleted-at] [--add-email-index] | forget --from <url> | seed [email] | backdate <email> [days] | account <email | user id> [action]]";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        [] | ["serve"] => serve().await,
        ["cron", path] => cron(path).await,
        ["migrate", flags @ ..]
            if flags
                .iter()
                .all(|flag| ["--add-deleted-at", "--add-email-index"].contains(flag)) =>
        {
            migrate(
                flags.contains(&"--add-deleted-at"),
                flags.contains(&"--add-email-index"),
            )
            .await
        }
        ["forget", "--from", url] => forget(url).await,
        ["seed"] => seed(None).await,
        ["seed", email] => seed(Some(email)).await,
        ["backdate", email] => backdate(email, "31").await,
        ["backdate", email, days] => backdate(email, days).await,
        ["account", who, rest @ ..] => account(who, rest).await,
        ["help" | "--help" | "-h"] => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(anyhow::anyhow!("{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> anyhow::Result<()> {
    account_deletion::platform::telemetry::init();
    let mut settings = DevSettings::load()?;
    let jobs = crons::load(&settings.root.join("vercel.json"))?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", settings.port))
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on 127.0.0.1:{} ({e}); set PORT",
                settings.port
            )
        })?;

    let database = database::Database::open(&settings).await?;
    settings.set_default("DATABASE_URL", database.url().to_owned());
    let pool = PgPoolOptions::new()
        .max_connections(database.max_connections())
        .connect_with(db::connect_options(PgConnectOptions::from_str(
            database.url(),
        )?))
        .await?;
    let newly = if database.is_embedded() {
        // One connection: the pool's own, a session.
        let mut conn = pool.acquire().await?;
        account_deletion::schema::migrate::apply(&mut conn, &migrate_options(&settings, false)?)
            .await?
            .applied
            .len()
    } else {
        // A real server may sit behind a pooler: migrate as `cargo dev
        // migrate` does, over DIRECT_URL when it is set.
        let (variable, url) = match settings.get("DIRECT_URL").filter(|u| !u.is_empty()) {
            Some(url) => ("DIRECT_URL", url),
            None => ("DATABASE_URL", database.url().to_owned()),
        };
        account_deletion::schema::migrate::migrate(
            &url,
            variable,
            &migrate_options(&settings, false)?,
        )
        .await?
        .applied
        .len()
    };

    let port = settings.port;
    let secret = settings.cron_secret();
    banner(&settings, &database, &jobs, newly);

    if let Some(dir) = settings.mail_dir() {
        tokio::spawn(mailbox::watch(dir));
    }
    let scheduler_secret = secret.clone();
    tokio::spawn(async move {
        crons::run(&crons::SystemClock, &jobs, None, |job, at| {
            let secret = scheduler_secret.clone();
            async move {
                // Each run on its own task, as Vercel runs overlapping crons.
                tokio::spawn(async move {
                    println!(
                        "cron {} ({}) firing for {at}",
                        job.path,
                        job.schedule.expression()
                    );
                    match client::fire_cron(port, &job.path, &secret).await {
                        Ok(answer) => println!(
                            "cron {} → {} {}",
                            job.path,
                            answer.status.as_u16(),
                            answer.body
                        ),
                        Err(error) => println!("cron {} failed: {error:#}", job.path),
                    }
                });
            }
        })
        .await;
    });

    let served = functions::serve(listener, functions::Functions::new(&settings, pool.clone()));
    tokio::select! {
        result = served => result?,
        _ = tokio::signal::ctrl_c() => println!("\nstopping"),
    }
    pool.close().await;
    database.close();
    Ok(())
}

fn banner(
    settings: &DevSettings,
    database: &database::Database,
    jobs: &[crons::CronJob],
    migrated: usize,
) {
    let base = format!("http://127.0.0.1:{}", settings.port);
    let secret = settings.cron_secret();
    println!("account-deletion dev server: {base}");
    println!(
        "  database   {} ({migrated} migrations applied now)",
        database.describe()
    );
    match settings.mail_dir() {
        Some(dir) => println!(
            "  mail       {} (one .eml per message; links printed here)",
            dir.display()
        ),
        None => println!(
            "  mail       {}",
            settings
                .get("MAIL_URL")
                .map(|u| u.split('@').next_back().unwrap_or("").to_owned())
                .unwrap_or_default()
        ),
    }
    if settings.generated_cron_secret {
        println!("  CRON_SECRET {secret} (generated; kept in .dev-data/cron-secret)");
    } else {
        println!("  CRON_SECRET from the environment");
    }
    for job in jobs {
        println!(
            "  cron       {:<34} \"{}\" (UTC), next {}",
            job.path,
            job.schedule.expression(),
            job.schedule.next_after(chrono::Utc::now())
        );
    }
    let paths: Vec<&str> = functions::PATHS.iter().map(|(path, _)| *path).collect();
    println!("  functions  {}", paths.join("  "));
    if std::env::var("ADMIN_SECRET").is_err() {
        println!(
            "  ADMIN_SECRET {} (generated; kept in .dev-data/admin-secret)",
            settings.get("ADMIN_SECRET").unwrap_or_default()
        );
    }
    println!();
    println!("try:");
    println!(
        "  cargo dev seed                                   # a demo user and its session token"
    );
    println!("  curl -X POST -H 'Authorization: Bearer <session token>' {base}/api/account/delete");
    println!(
        "  curl -H 'Authorization: Bearer {secret}' '{base}/api/cron/permanent-delete-users?dry_run=true'"
    );
    println!("  cargo dev cron /api/cron/permanent-delete-users");
    println!();
}

async fn cron(path: &str) -> anyhow::Result<()> {
    let settings = DevSettings::load()?;
    if !path.starts_with("/api/") {
        anyhow::bail!("{path:?} is not a function path such as /api/cron/permanent-delete-users");
    }
    let answer = client::fire_cron(settings.port, path, &settings.cron_secret()).await?;
    println!("{}", answer.body);
    if answer.status.is_success() {
        Ok(())
    } else {
        Err(anyhow::anyhow!("{path} answered {}", answer.status))
    }
}

async fn migrate(add_deleted_at: bool, add_email_index: bool) -> anyhow::Result<()> {
    let settings = DevSettings::load()?;
    let mut options = migrate_options(&settings, add_deleted_at)?;
    options.add_email_index = add_email_index;
    // Migrations need a real session (see `account_deletion::schema::migrate`):
    // DIRECT_URL when the app's DATABASE_URL goes through a pooler.
    let (variable, url) = ["DIRECT_URL", "DATABASE_URL"]
        .into_iter()
        .find_map(|name| settings.get(name).filter(|u| !u.is_empty()).map(|u| (name, u)))
        .ok_or_else(|| {
            anyhow::anyhow!("neither DIRECT_URL nor DATABASE_URL is set: `cargo dev migrate` migrates the database they name (the embedded one is migrated by `cargo dev` itself)")
        })?;
    let migrated = account_deletion::schema::migrate::migrate(&url, variable, &options).await?;
    for (version, description) in &migrated.applied {
        println!("applied {version} {description}");
    }
    for note in &migrated.notes {
        println!("{note}");
    }
    println!(
        "{} migration(s) applied to {variable}, {} already present",
        migrated.applied.len(),
        migrated.already_present
    );
    Ok(())
}

/// Re-erasure after a restore: the tombstones of the database at `from` (the
/// one the restore replaced) against `DATABASE_URL` (the restored one).
async fn forget(from: &str) -> anyhow::Result<()> {
    account_deletion::platform::telemetry::init();
    let settings = DevSettings::load()?;
    let lookup = |name: &str| settings.get(name);
    let config = account_deletion::config::CronConfig::from_lookup(&lookup)
        .map_err(|errors| anyhow::anyhow!("{errors}"))?;
    // The parser's own message may quote the URL, password included.
    let from = PgConnectOptions::from_str(from)
        .map_err(|_| anyhow::anyhow!("--from is not a PostgreSQL connection URL"))?;
    let pool = PgPoolOptions::new().max_connections(config.purge.workers.get() + 1);
    let replaced = pool.clone().connect_with(db::connect_options(from)).await?;
    let restored = pool
        .connect_with(db::connect_options(config.database.clone()))
        .await?;
    let webhook = config.webhook.clone().map(std::sync::Arc::new);
    // Re-erased accounts get their events again; the farewell email they
    // were sent the first time is not repeated.
    let tables = account_deletion::schema::sql::AppTables::new(config.users.clone(), None)
        .recording(account_deletion::schema::sql::Records {
            events: webhook.is_some(),
            erased_email: false,
        })
        // Accounts anonymized before the restore are anonymized again.
        .anonymizing(true);
    let done = account_deletion::lifecycle::forget::forget(
        &replaced,
        &restored,
        &tables,
        config.retention,
        config.purge,
        webhook.as_ref(),
    )
    .await?;
    println!(
        "{} tombstone(s) read; {} of those accounts were back and are erased again ({} account(s) purged in all, {} anonymized again, {} blocked)",
        done.tombstones, done.present, done.purged, done.anonymized, done.blocked
    );
    if let Some(events) = done.events {
        println!(
            "events: {} sent, {} to retry, {} gave up, {} still due",
            events.sent, events.retrying, events.gave_up, events.remaining_due
        );
    }
    Ok(())
}

async fn seed(email: Option<&str>) -> anyhow::Result<()> {
    let settings = DevSettings::load()?;
    let path = match email {
        Some(email) => format!("/_dev/seed?email={}", encode(email)),
        None => "/_dev/seed".to_owned(),
    };
    let answer = client::call(settings.port, http::Method::POST, &path, &[]).await?;
    if answer.status != http::StatusCode::CREATED {
        anyhow::bail!("seed answered {}: {}", answer.status, answer.body);
    }
    let created: serde_json::Value = serde_json::from_str(&answer.body)?;
    let token = created["session_token"].as_str().unwrap_or_default();
    println!("user     {}", created["email"].as_str().unwrap_or_default());
    println!("session  {token}");
    println!();
    println!("delete the account:");
    println!(
        "  curl -i -X POST -H 'Authorization: Bearer {token}' http://127.0.0.1:{}/api/account/delete",
        settings.port
    );
    Ok(())
}

async fn backdate(email: &str, days: &str) -> anyhow::Result<()> {
    let settings = DevSettings::load()?;
    let path = format!(
        "/_dev/backdate?email={}&days={}",
        encode(email),
        encode(days)
    );
    let answer = client::call(settings.port, http::Method::POST, &path, &[]).await?;
    if answer.status != http::StatusCode::OK {
        anyhow::bail!("backdate answered {}: {}", answer.status, answer.body);
    }
    let done: serde_json::Value = serde_json::from_str(&answer.body)?;
    if done["backdated"] == 0 {
        anyhow::bail!("no deleted account with email {email}");
    }
    println!("{email}: deleted_at is now {days} days ago");
    Ok(())
}

/// Support's actions: straight against `DATABASE_URL` when it is set,
/// otherwise through the running dev server (the embedded database is its
/// own); the same library calls either way.
async fn account(who: &str, rest: &[&str]) -> anyhow::Result<()> {
    let (parsed_who, command) = account::parse(who, rest)?;
    let settings = DevSettings::load()?;
    let support = if settings.get("DATABASE_URL").is_some() {
        let config =
            account_deletion::config::SupportConfig::from_lookup(&|name| settings.get(name))
                .map_err(|errors| anyhow::anyhow!("{errors}"))?;
        let pool = PgPoolOptions::new()
            .max_connections(3)
            .connect_with(db::connect_options(config.database.clone()))
            .await?;
        Some(account_deletion::lifecycle::support::Support::new(
            config,
            Some(pool),
        ))
    } else {
        None
    };
    match (command, support) {
        (account::Command::Act(action), Some(support)) => {
            let view = account::run(&support, &parsed_who, &action).await?;
            println!("{}", serde_json::to_string_pretty(&view)?);
        }
        (account::Command::Export { out }, Some(support)) => {
            let (path, manifest) =
                account::write_archive(&support, who, out.as_deref().map(Path::new)).await?;
            print!(
                "{}",
                account::describe(&path, &serde_json::to_value(&manifest)?)
            );
        }
        // In the body: an address never goes in a URL.
        (account::Command::Act(_), None) => {
            let view = dev_server(
                &settings,
                "/_dev/account",
                json!({ "who": who, "words": rest }),
            )
            .await?;
            println!("{}", serde_json::to_string_pretty(&view)?);
        }
        (account::Command::Export { out }, None) => {
            // The dev server writes the file: give it a path that means
            // the same there as here.
            let out = out
                .map(|out| std::env::current_dir().map(|dir| dir.join(out)))
                .transpose()?;
            let answer =
                dev_server(&settings, "/_dev/export", json!({ "who": who, "out": out })).await?;
            let path = PathBuf::from(answer["path"].as_str().unwrap_or_default());
            print!("{}", account::describe(&path, &answer["manifest"]));
        }
    }
    Ok(())
}

/// A `/_dev/…` call on the running dev server: its JSON answer, or its
/// error.
async fn dev_server(
    settings: &DevSettings,
    path: &str,
    asked: serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let answer = client::call_with_body(
        settings.port,
        http::Method::POST,
        path,
        &[("content-type", "application/json")],
        asked.to_string().as_bytes(),
    )
    .await?;
    let body: serde_json::Value = serde_json::from_str(&answer.body).map_err(|_| {
        anyhow::anyhow!("the dev server answered {}: {}", answer.status, answer.body)
    })?;
    if answer.status != http::StatusCode::OK {
        anyhow::bail!("{}", body["error"].as_str().unwrap_or(&answer.body));
    }
    Ok(body)
}

/// The users table the functions will use, from the same settings.
fn migrate_options(
    settings: &DevSettings,
    add_deleted_at: bool,
) -> anyhow::Result<account_deletion::schema::migrate::Options> {
    let users = account_deletion::config::users_table(&|name| settings.get(name))?;
    Ok(account_deletion::schema::migrate::Options {
        users,
        add_deleted_at,
        add_email_index: false,
    })
}

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
