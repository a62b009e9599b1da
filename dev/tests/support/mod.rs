//! The dev server as the dev tests drive it: `cargo dev` in a project
//! folder of its own, on a test database or its embedded one.
// Each test crate uses its own part of the harness.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use account_deletion_dev::mailbox;
use testkit::http_client::send;

const DEV: &str = env!("CARGO_BIN_EXE_dev");

/// A project folder of its own (just `vercel.json`), so `.mail/` and
/// `.dev-data/` of the test never touch the real ones.
fn project_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let dir = std::env::temp_dir().join(format!(
        "account-deletion-dev-{}-{}",
        std::process::id(),
        testkit::free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(root.join("vercel.json"), dir.join("vercel.json")).unwrap();
    dir
}

pub struct DevServer {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
    /// What `cargo dev` commands see as `DATABASE_URL`, as an operator
    /// with database access would have it.
    database_url: Option<String>,
}

impl DevServer {
    /// `cargo dev` on `database_url` (or its embedded database), with
    /// `env` set too.
    pub async fn start(
        database_url: Option<&str>,
        ready_within: Duration,
        env: &[(&str, &str)],
    ) -> Self {
        let dir = project_dir();
        let port = testkit::free_port();
        let mut command = Command::new(DEV);
        command
            .current_dir(&dir)
            .env_remove("DATABASE_URL")
            .env_remove("CRON_SECRET")
            .env_remove("MAIL_URL")
            .env_remove("APP_URL")
            .env("PORT", port.to_string())
            .stdout(std::fs::File::create(dir.join("stdout.log")).unwrap())
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap());
        if let Some(url) = database_url {
            command.env("DATABASE_URL", url);
        }
        command.envs(env.iter().copied());
        let child = command.spawn().unwrap();
        let server = Self {
            child,
            port,
            dir,
            database_url: database_url.map(str::to_owned),
        };
        let deadline = Instant::now() + ready_within;
        while send(port, "GET", "/_vercel/ping", &[], b"").await.is_err() {
            assert!(
                Instant::now() < deadline,
                "dev server not up within {ready_within:?}:\n{}",
                server.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    pub fn logs(&self) -> String {
        format!(
            "{}\n{}",
            std::fs::read_to_string(self.dir.join("stdout.log")).unwrap_or_default(),
            std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
        )
    }

    /// `cargo dev <args>` against this server.
    pub fn command(&self, args: &[&str]) -> Output {
        let mut command = Command::new(DEV);
        command
            .current_dir(&self.dir)
            .env_remove("CRON_SECRET")
            .env_remove("DATABASE_URL")
            .env("PORT", self.port.to_string())
            .args(args)
            .stdin(Stdio::null());
        if let Some(url) = &self.database_url {
            command.env("DATABASE_URL", url);
        }
        command.output().unwrap()
    }

    pub async fn wait_for_mail(&self, count: usize) -> Vec<(String, Vec<String>)> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.join(".mail"))
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .collect();
            if files.len() >= count {
                files.sort_by_key(|f| std::fs::metadata(f).unwrap().modified().unwrap());
                return files
                    .iter()
                    .map(|f| mailbox::summarize(&std::fs::read_to_string(f).unwrap()))
                    .collect();
            }
            assert!(
                Instant::now() < deadline,
                "expected {count} messages in .mail/"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
