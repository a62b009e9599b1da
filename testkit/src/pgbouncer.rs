//! A real PgBouncer in `pool_mode = transaction` in front of the test
//! server: Debian's stock build, configured as a user would leave it (no
//! `ignore_startup_parameters`, no prepared-statement support), with a pool
//! of three server connections per database.
//!
//! The one the suite runs through when `TEST_VIA_POOLER=1`
//! ([`crate::postgres::shared_pooler`], started by the server's side) hands
//! each transaction the server connection idle longest
//! ([`Reuse::LongestIdle`]), so a client is moved between server connections
//! as often as the pool allows, and any exchange of ours outside a
//! transaction (an unnamed statement parsed on one server connection and
//! run on another) fails in the suite rather than now and then in
//! production. A test that stops or restarts a pooler starts one of its own
//! with [`PgBouncer::start`].

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::process::{as_owner, cluster_owner, spawn_watchdog};

/// Server connections per database: what a small Supabase or Neon plan gives.
pub const POOL_SIZE: u32 = 3;

pub struct PgBouncer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

/// Which idle server connection the pooler hands the next transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// The one freed last: PgBouncer's default, which keeps a quiet client
    /// on the same server connection most of the time.
    LastFreed,
    /// The one idle longest (`server_round_robin = 1`): once the pool has
    /// more than one server connection, a client's consecutive transactions
    /// land on different ones. (No `min_pool_size`: the suite's databases
    /// are never dropped, and keeping three connections open for each would
    /// exhaust the server's.)
    LongestIdle,
}

impl PgBouncer {
    /// Keeps the pooler running for the rest of the test process (the
    /// watchdog stops it when the process ends); its port.
    pub fn for_the_whole_run(mut self) -> u16 {
        let child = self.child.take().expect("a pooler this handle started");
        spawn_watchdog(child.id(), &self.dir);
        std::mem::forget(child);
        self.port
    }

    /// Starts a pooler of its own in front of the server on `server_port`,
    /// with [`POOL_SIZE`] server connections per database, stock settings.
    pub fn start(server_port: u16) -> Self {
        Self::start_with(server_port, POOL_SIZE, Reuse::LastFreed)
    }

    /// [`start`](Self::start) with `pool_size` server connections per
    /// database (the benchmarks match the function's own pool, so that they
    /// measure the pooler and not a smaller pool).
    pub fn start_with_pool(server_port: u16, pool_size: u32) -> Self {
        Self::start_with(server_port, pool_size, Reuse::LastFreed)
    }

    /// A pooler with `pool_size` server connections per database, reusing
    /// them as `reuse` says.
    pub fn start_with(server_port: u16, pool_size: u32, reuse: Reuse) -> Self {
        let nonce = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "account-deletion-pgbouncer-{}-{nonce}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let port = crate::free_port();
        std::fs::write(dir.join("userlist.txt"), "\"postgres\" \"\"\n").unwrap();
        std::fs::write(
            dir.join("pgbouncer.ini"),
            format!(
                "[databases]\n\
                 * = host=127.0.0.1 port={server_port}\n\
                 [pgbouncer]\n\
                 listen_addr = 127.0.0.1\n\
                 listen_port = {port}\n\
                 unix_socket_dir =\n\
                 auth_type = trust\n\
                 auth_file = {dir}/userlist.txt\n\
                 pool_mode = transaction\n\
                 {reuse}\
                 default_pool_size = {pool_size}\n\
                 max_client_conn = 2000\n\
                 query_wait_timeout = 60\n\
                 logfile = {dir}/pgbouncer.log\n\
                 pidfile = {dir}/pgbouncer.pid\n",
                dir = dir.display(),
                reuse = match reuse {
                    Reuse::LastFreed => "",
                    Reuse::LongestIdle => "server_round_robin = 1\n",
                },
            ),
        )
        .unwrap();
        if let Some((uid, gid)) = cluster_owner() {
            for entry in ["", "userlist.txt", "pgbouncer.ini"] {
                std::os::unix::fs::chown(dir.join(entry), Some(uid), Some(gid)).unwrap();
            }
        }
        let mut pooler = Self {
            child: None,
            port,
            dir,
        };
        pooler.run();
        pooler
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops it at once, dropping every client and server connection, as a
    /// crash or a redeploy of the pooler would.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    /// What it logged, for a failing test's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }

    fn run(&mut self) {
        let _ = std::fs::remove_file(self.dir.join("pgbouncer.pid"));
        let child = as_owner(Command::new(binary()), cluster_owner())
            .arg(self.dir.join("pgbouncer.ini"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pgbouncer");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "pgbouncer did not listen within 10 s; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn binary() -> PathBuf {
    if let Ok(path) = std::env::var("PGBOUNCER") {
        return PathBuf::from(path);
    }
    let mut candidates = vec![
        PathBuf::from("/usr/sbin/pgbouncer"),
        PathBuf::from("/usr/bin/pgbouncer"),
    ];
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|dir| dir.join("pgbouncer")));
    }
    candidates
        .into_iter()
        .find(|path| Path::new(path).exists())
        .unwrap_or_else(|| {
            panic!(
                "pgbouncer is not installed: the pooler tests need it. `scripts/test` installs it \
                 (Debian: apt-get install pgbouncer); or set PGBOUNCER to its path"
            )
        })
}
