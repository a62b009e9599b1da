//! The real function binary, started the way `vercel_runtime` serves it
//! locally: `VERCEL_DEV_PORT=<port> <bin>`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::http_client::send;
use crate::helpers::postgres::free_port;
use crate::helpers::{CRON_SECRET, TestDb, seed_users, user_count};

pub struct Function {
    child: Child,
    pub port: u16,
}

const PURGE_BIN: &str = env!("CARGO_BIN_EXE_cron-permanent-delete-users");

impl Function {
    pub async fn start(env: &[(&str, &str)]) -> Self {
        Self::start_bin(PURGE_BIN, env).await
    }

    pub async fn start_bin(bin: &str, env: &[(&str, &str)]) -> Self {
        Self::start_bin_on(bin, free_port(), env).await
    }

    /// `bin` on `port`.
    pub async fn start_bin_on(bin: &str, port: u16, env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(bin);
        command
            .env_clear()
            .env("VERCEL_DEV_PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command.spawn().expect("start the function binary");
        let function = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while send(port, "GET", "/_vercel/ping", &[], b"").await.is_err() {
            assert!(
                Instant::now() < deadline,
                "the function did not listen within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        function
    }
}

impl Function {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const PATH: &str = "/api/cron/permanent-delete-users";

#[tokio::test]
async fn the_binary_purges_with_the_secret_and_refuses_without_it() {
    let db = TestDb::new().await;
    seed_users(&db.pool, 4, Some("31 days")).await;
    let function =
        Function::start(&[("DATABASE_URL", &db.url()), ("CRON_SECRET", CRON_SECRET)]).await;

    let ping = send(function.port, "GET", "/_vercel/ping", &[], b"")
        .await
        .unwrap();
    assert_eq!(ping.status, 200);

    let refused = send(function.port, "GET", PATH, &[], b"").await.unwrap();
    assert_eq!(refused.status, 401);
    assert_eq!(refused.header("www-authenticate"), Some("Bearer"));
    assert_eq!(refused.json()["error"], "unauthorized");

    let auth = format!("Bearer {CRON_SECRET}");
    let headers = [
        ("authorization", auth.as_str()),
        ("user-agent", "vercel-cron/1.0"),
    ];
    let run = send(function.port, "GET", PATH, &headers, b"")
        .await
        .unwrap();
    assert_eq!(run.status, 200, "{}", run.body);
    assert_eq!(run.header("content-type"), Some("application/json"));
    assert_eq!(run.json()["deleted"], 4);
    assert_eq!(user_count(&db.pool).await, 0);

    let oversized = vec![b'x'; 64 * 1024];
    let too_big = send(function.port, "POST", PATH, &headers, &oversized)
        .await
        .unwrap();
    assert_eq!(too_big.status, 413);
    assert_eq!(too_big.json()["error"], "payload_too_large");
}

#[tokio::test]
async fn the_binary_with_a_short_secret_answers_500_and_keeps_serving() {
    let db = TestDb::new().await;
    seed_users(&db.pool, 2, Some("31 days")).await;
    let function = Function::start(&[
        ("DATABASE_URL", &db.url()),
        ("CRON_SECRET", "fifteen-chars!!"),
    ])
    .await;
    for _ in 0..3 {
        let response = send(
            function.port,
            "GET",
            PATH,
            &[("authorization", "Bearer fifteen-chars!!")],
            b"",
        )
        .await
        .unwrap();
        assert_eq!(response.status, 500);
        assert_eq!(response.json()["error"], "server_misconfigured");
    }
    assert_eq!(user_count(&db.pool).await, 2);
}
