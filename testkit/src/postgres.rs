//! One PostgreSQL server for the whole test run, and a fresh migrated
//! database per test.
//!
//! With `DATABASE_URL` set, that server is used. Otherwise a throwaway cluster
//! is created from the local server binaries in a temporary directory, on a
//! random port, with durability off (tests do not need it). A watchdog process
//! stops the server and removes the directory when the test process exits,
//! however it exits.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::future::Future;
use std::pin::Pin;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection, PgPool};

use crate::pgbouncer::{POOL_SIZE, PgBouncer, Reuse};
use crate::process::{as_owner, cluster_owner, spawn_watchdog};

const TEMPLATE: &str = "adtest_template";

/// True when the suite runs its functions through the shared pooler.
pub fn suite_via_pooler() -> bool {
    std::env::var("TEST_VIA_POOLER").is_ok_and(|v| v == "1")
}

/// The port of the pooler shared by the whole test run, in front of the test
/// server; started on first use, stopped when the test process exits. Here,
/// not in `pgbouncer`: the pooler knows no server, the server its pooler.
pub fn shared_pooler() -> u16 {
    static SHARED: OnceLock<u16> = OnceLock::new();
    *SHARED.get_or_init(|| {
        PgBouncer::start_with(TestDb::server_port(), POOL_SIZE, Reuse::LongestIdle)
            .for_the_whole_run()
    })
}

pub struct Server {
    /// `postgres://user@host:port` without a database.
    base: PgConnectOptions,
    /// Prefix of every database this run creates, unique per run so runs
    /// sharing a `DATABASE_URL` server do not collide.
    prefix: String,
    /// Whether this run owns the server (and so need not drop databases).
    throwaway: bool,
}

static SERVER: OnceLock<Server> = OnceLock::new();
/// How the template database is migrated: given a session of its own.
pub type Migrate = for<'c> fn(&'c mut PgConnection) -> Pin<Box<dyn Future<Output = ()> + 'c>>;

static MIGRATOR: OnceLock<Migrate> = OnceLock::new();

static SETTINGS: OnceLock<Vec<(String, String)>> = OnceLock::new();

/// Server settings (`-c name=value`) that override the test defaults
/// (durability off) for a throwaway server; benchmarks use it to measure with
/// production durability. Call before the server starts.
pub fn use_server_settings(settings: &[(&str, &str)]) {
    let _ = SETTINGS.set(
        settings
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    );
}

/// Sets how every test database is migrated; call before the first
/// [`TestDb::new`] (later calls are ignored).
pub fn use_migrations(migrate: Migrate) {
    let _ = MIGRATOR.set(migrate);
}
/// `CREATE DATABASE ... TEMPLATE` refuses to run while another copy of the
/// same template is being made; clones go one at a time.
static CLONE_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub fn server() -> &'static Server {
    SERVER.get_or_init(|| {
        // The setup is async but this may be called from inside a test's
        // runtime, which cannot block on another; give it a thread of its own.
        std::thread::spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(Server::start())
        })
        .join()
        .expect("test database server setup panicked")
    })
}

impl Server {
    async fn start() -> Self {
        let nonce = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let prefix = format!("adtest_{}_{}", std::process::id(), nonce % 1_000_000_000);
        let (base, throwaway) = match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => (
                PgConnectOptions::from_str(&url)
                    .expect("DATABASE_URL is not a valid PostgreSQL URL"),
                false,
            ),
            _ => (start_throwaway_cluster().await, true),
        };
        let server = Self {
            base,
            prefix,
            throwaway,
        };
        server.create_template().await;
        server
    }

    /// Creates a database, empty or as a copy of `template`.
    pub async fn create_database(&self, name: &str, template: Option<&str>) {
        let mut admin = self.admin().await;
        let sql = match template {
            Some(template) => format!(r#"create database "{name}" template "{template}""#),
            None => format!(r#"create database "{name}""#),
        };
        admin.execute(sql.as_str()).await.expect("create database");
    }

    /// Runs one statement on the server's maintenance database.
    pub async fn execute_admin(&self, sql: &str) {
        let mut admin = self.admin().await;
        admin.execute(sql).await.expect("admin statement");
    }

    pub async fn drop_database(&self, name: &str) {
        let mut admin = self.admin().await;
        admin
            .execute(format!(r#"drop database if exists "{name}" with (force)"#).as_str())
            .await
            .expect("drop database");
    }

    /// The empty, migrated database every test database is cloned from.
    pub fn template_name(&self) -> String {
        format!("{}_{TEMPLATE}", self.prefix)
    }

    pub fn options(&self, database: &str) -> PgConnectOptions {
        self.base.clone().database(database)
    }

    /// Connection URL for a database on this server, as a function reads it
    /// from `DATABASE_URL`.
    pub fn url(&self, database: &str) -> String {
        url_for(&self.base, database, None)
    }

    async fn admin(&self) -> PgConnection {
        let admin_db = self.base.get_database().unwrap_or("postgres").to_owned();
        PgConnection::connect_with(&self.options(&admin_db))
            .await
            .expect("connect to the test server")
    }

    async fn create_template(&self) {
        let mut admin = self.admin().await;
        let name = self.template_name();
        admin
            .execute(format!(r#"create database "{name}""#).as_str())
            .await
            .expect("create the template database");
        let mut conn = PgConnection::connect_with(&self.options(&name))
            .await
            .unwrap();
        let migrate = MIGRATOR
            .get()
            .expect("testkit::postgres::use_migrations was not called");
        migrate(&mut conn).await;
        conn.close().await.unwrap();
    }
}

/// A fresh, migrated database for one test. Dropped at the end of the test
/// when the server is shared; a throwaway server simply goes away.
pub struct TestDb {
    pub name: String,
    pub pool: PgPool,
}

impl TestDb {
    /// A copy of the migrated template.
    pub async fn new() -> Self {
        let server = server();
        Self::create(Some(&server.template_name())).await
    }

    /// An empty database, not migrated: for a test that builds an app's
    /// schema the way its framework does, then migrates it itself.
    pub async fn empty() -> Self {
        Self::create(None).await
    }

    async fn create(template: Option<&str>) -> Self {
        let server = server();
        let name = format!(
            "{}_{}",
            server.prefix,
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        match template {
            Some(template) => {
                let _one_at_a_time = CLONE_LOCK.lock().await;
                server.create_database(&name, Some(template)).await;
            }
            None => server.create_database(&name, None).await,
        }
        let pool = PgPoolOptions::new()
            .max_connections(30)
            .connect_with(server.options(&name))
            .await
            .expect("connect to the test database");
        Self { name, pool }
    }

    /// The URL a function under test reads from `DATABASE_URL`: through the
    /// shared PgBouncer when the suite runs with `TEST_VIA_POOLER=1`,
    /// otherwise straight to the server.
    pub fn url(&self) -> String {
        if suite_via_pooler() {
            self.url_via(shared_pooler())
        } else {
            self.url_direct()
        }
    }

    /// The URL straight to the server, whatever the suite's mode (what
    /// `DIRECT_URL` names in production).
    pub fn url_direct(&self) -> String {
        server().url(&self.name)
    }

    /// The URL with another host and port, e.g. a proxy in front of the server.
    pub fn url_via(&self, port: u16) -> String {
        url_for(&server().base, &self.name, Some(("127.0.0.1", port)))
    }

    pub fn server_port() -> u16 {
        server().base.get_port()
    }

    /// A connection of its own, outside the pool.
    pub async fn connect(&self) -> PgConnection {
        PgConnection::connect_with(&server().options(&self.name))
            .await
            .unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let server = server();
        if server.throwaway {
            return;
        }
        let name = self.name.clone();
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let mut admin = server.admin().await;
                    let _ = admin
                        .execute(
                            format!(r#"drop database if exists "{name}" with (force)"#).as_str(),
                        )
                        .await;
                });
        })
        .join()
        .ok();
    }
}

static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn url_for(base: &PgConnectOptions, database: &str, host_port: Option<(&str, u16)>) -> String {
    let (host, port) = host_port.unwrap_or((base.get_host(), base.get_port()));
    let user = base.get_username();
    format!("postgres://{user}@{host}:{port}/{database}")
}

async fn start_throwaway_cluster() -> PgConnectOptions {
    let bin = server_binaries();
    let nonce = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "account-deletion-pg-{}-{nonce}",
        std::process::id()
    ));
    let data = dir.join("data");
    std::fs::create_dir_all(&dir).unwrap();
    // PostgreSQL refuses to run as root; as root, the cluster belongs to the
    // `postgres` system user.
    let owner = cluster_owner();
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
    }

    let initdb = as_owner(Command::new(bin.join("initdb")), owner)
        .args([
            "--auth=trust",
            "--username=postgres",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
            "-D",
        ])
        .arg(&data)
        .output()
        .expect("run initdb");
    assert!(
        initdb.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&initdb.stderr)
    );

    let port = crate::free_port();
    let log = std::fs::File::create(dir.join("postgres.log")).unwrap();
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(dir.join("postgres.log"), Some(uid), Some(gid)).unwrap();
    }
    // Not waited on: the watchdog stops it when this process is gone.
    #[allow(clippy::zombie_processes)]
    let postgres = as_owner(Command::new(bin.join("postgres")), owner)
        .arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string()])
        .args(["-c", "listen_addresses=127.0.0.1"])
        .arg("-c")
        .arg(format!("unix_socket_directories={}", dir.display()))
        .args([
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ])
        .args(["-c", "max_connections=400", "-c", "shared_buffers=128MB"])
        .args(
            SETTINGS
                .get()
                .into_iter()
                .flatten()
                .flat_map(|(k, v)| ["-c".to_owned(), format!("{k}={v}")]),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start postgres");
    spawn_watchdog(postgres.id(), &dir);

    let options = PgConnectOptions::new()
        .host("127.0.0.1")
        .port(port)
        .username("postgres")
        .database("postgres");
    wait_until_ready(&options, &dir).await;
    options
}

/// A client program of the test server's PostgreSQL (`pg_dump`,
/// `pg_restore`), or the one on `PATH` when the server is not ours.
pub fn client_program(name: &str) -> PathBuf {
    let ours = std::panic::catch_unwind(server_binaries)
        .ok()
        .map(|bin| bin.join(name))
        .filter(|path| path.exists());
    ours.unwrap_or_else(|| PathBuf::from(name))
}

fn server_binaries() -> PathBuf {
    if let Ok(dir) = std::env::var("PG_BIN_DIR") {
        return PathBuf::from(dir);
    }
    // Debian installs each major version under /usr/lib/postgresql/<major>.
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").exists().then_some((major, bin))
        })
        .collect();
    candidates.sort();
    if let Some((_, bin)) = candidates.pop() {
        return bin;
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let bin = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if bin.join("postgres").exists() {
            return bin;
        }
    }
    panic!(
        "no PostgreSQL server binaries found: install them (Debian: apt-get install postgresql), \
         set PG_BIN_DIR to their directory, or set DATABASE_URL to a server the tests may use"
    );
}

async fn wait_until_ready(options: &PgConnectOptions, dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while PgConnection::connect_with(options).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "postgres did not start within 30 s; its log:\n{}",
            std::fs::read_to_string(dir.join("postgres.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
