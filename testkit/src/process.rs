//! Running the test servers' processes: as the `postgres` user when the
//! tests run as root, and cleaned up after the test process is gone. Shared
//! by [`crate::postgres`] and [`crate::pgbouncer`].

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Who runs the test servers: the `postgres` system user when the tests run
/// as root (PostgreSQL and PgBouncer both refuse root), else the caller.
pub fn cluster_owner() -> Option<(u32, u32)> {
    static OWNER: OnceLock<Option<(u32, u32)>> = OnceLock::new();
    *OWNER.get_or_init(|| running_as_root().then(postgres_user_ids))
}

pub fn as_owner(mut command: Command, owner: Option<(u32, u32)>) -> Command {
    use std::os::unix::process::CommandExt;
    if let Some((uid, gid)) = owner {
        command.uid(uid).gid(gid);
    }
    command
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

fn postgres_user_ids() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&"postgres"))
                .then(|| (fields[2].parse().unwrap(), fields[3].parse().unwrap()))
        })
        .expect("running as root needs a `postgres` system user (created by Debian's postgresql package)")
}

/// Stops a server (PostgreSQL, PgBouncer) and deletes its directory once this
/// process is gone.
pub fn spawn_watchdog(postgres_pid: u32, dir: &Path) {
    use std::os::unix::process::CommandExt;
    // It outlives this process by design.
    #[allow(clippy::zombie_processes)]
    Command::new("sh")
        .arg("-c")
        .arg(
            r#"while kill -0 "$1" 2>/dev/null; do sleep 0.5; done
               kill -INT "$2" 2>/dev/null
               while kill -0 "$2" 2>/dev/null; do sleep 0.1; done
               rm -rf "$3""#,
        )
        .arg("watchdog")
        .arg(std::process::id().to_string())
        .arg(postgres_pid.to_string())
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: a Ctrl-C aimed at the tests must not stop the
        // cleanup.
        .process_group(0)
        .spawn()
        .expect("start the cleanup watchdog");
}

/// Process `pid`'s resident memory now and at its peak (`VmRSS`,
/// `VmHWM`), in bytes; `None` when it has gone or Linux does not say.
pub fn memory_of(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        let kb = status.lines().find_map(|line| line.strip_prefix(name))?;
        kb.trim().trim_end_matches(" kB").trim().parse::<u64>().ok()
    };
    Some((field("VmRSS:")? * 1024, field("VmHWM:")? * 1024))
}
