//! A real webhook receiver: `python/webhook_receiver.py`, which verifies
//! every request with the `standardwebhooks` package from `PyPI` (the
//! specification's reference library, not our code). `scripts/test`
//! installs it into `target/test-python`; without it a test fails naming
//! what is missing.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The package version the receiver is tested with (pinned in scripts/test).
pub const STANDARDWEBHOOKS: &str = "standardwebhooks==1.1.0";

/// A webhook secret in the specification's form (24 bytes).
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

pub struct WebhookReceiver {
    child: Option<Child>,
    port: u16,
    secret: String,
    requests: Arc<Mutex<Vec<Value>>>,
}

impl WebhookReceiver {
    /// A receiver on a free port, verifying with `secret`.
    pub async fn start(secret: &str) -> Self {
        Self::start_on(0, secret).await
    }

    /// A receiver on `port` (0: any free one).
    pub async fn start_on(port: u16, secret: &str) -> Self {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/webhook_receiver.py");
        let mut child = Command::new(crate::python::interpreter(STANDARDWEBHOOKS))
            .arg(script)
            .arg(port.to_string())
            .env("WEBHOOK_SECRET", secret)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start the webhook receiver");
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the webhook receiver starts within 20 s")
            .expect("read the receiver's output")
            .unwrap_or_else(|| {
                panic!("the webhook receiver exited at start (is {STANDARDWEBHOOKS} installed?)")
            });
        let listening: Value = serde_json::from_str(&first).expect("the receiver's first line");
        let port = listening["listening"].as_u64().expect("its port") as u16;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&requests);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(record) = serde_json::from_str::<Value>(&line) {
                    sink.lock().unwrap().push(record);
                }
            }
        });
        Self {
            child: Some(child),
            port,
            secret: secret.to_owned(),
            requests,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks/account", self.port)
    }

    /// Every request so far, in arrival order: `webhook_id`, `verified`,
    /// `event` (the parsed body, once verified), `status` (what it answered).
    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().unwrap().clone()
    }

    /// Verified events it acknowledged (answered 2xx), first delivery of
    /// each `webhook-id` only.
    pub fn accepted(&self) -> Vec<Value> {
        let mut seen = std::collections::HashSet::new();
        self.requests()
            .into_iter()
            .filter(|r| r["verified"] == true && r["status"] == 200)
            .filter(|r| seen.insert(r["webhook_id"].as_str().unwrap_or_default().to_owned()))
            .collect()
    }

    /// Waits until `done` holds for the requests so far.
    pub async fn wait_until(
        &self,
        what: &str,
        patience: Duration,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let requests = self.requests();
            if done(&requests) {
                return requests;
            }
            assert!(
                started.elapsed() < patience,
                "the receiver did not see {what} within {patience:?}; it saw {requests:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// How it answers from now on: `ok`, `fail` (500), or `slow` (waits
    /// `seconds`, then 200).
    pub async fn set_mode(&self, mode: &str, seconds: u64) {
        let body = serde_json::json!({ "mode": mode, "seconds": seconds }).to_string();
        let answer = crate::http_client::send(self.port, "POST", "/_control", &[], body.as_bytes())
            .await
            .expect("reach the receiver");
        assert_eq!(answer.status, 204);
    }

    /// Stops it: connections are refused until [`come_back`](Self::come_back).
    pub async fn go_down(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("stop the receiver");
        }
    }

    /// Starts it again on the same port, keeping what it saw.
    pub async fn come_back(&mut self) {
        let back = Self::start_on(self.port, &self.secret).await;
        let before = self.requests();
        back.requests.lock().unwrap().splice(0..0, before);
        *self = back;
    }
}
