//! A real browser: Debian's Chromium driven by Playwright from `PyPI`
//! (`python/browser_fetch.py`), for what only a browser decides: whether a
//! page on one origin is handed the answer to a `credentials: "include"`
//! request to another, and which cookies it sends with it. `scripts/test`
//! installs both; without them a test fails naming what is missing.

use std::process::Stdio;

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// The Playwright version the script is tested with (pinned in scripts/test).
pub const PLAYWRIGHT: &str = "playwright==1.65.2";

/// Where Debian's `chromium` package puts the browser.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Runs `plan` (see the script's header) in a fresh browser; what the page
/// saw at each step.
pub async fn run(plan: &Value) -> Vec<Value> {
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "this test needs Chromium at {CHROMIUM}: run scripts/test (it installs Debian's \
         chromium package), or apt-get install chromium"
    );
    let mut child = Command::new(crate::python::interpreter(PLAYWRIGHT))
        .arg(crate::python::script("browser_fetch.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the browser script");
    let mut stdin = child.stdin.take().expect("piped");
    stdin
        .write_all(plan.to_string().as_bytes())
        .await
        .expect("hand the plan to the browser script");
    drop(stdin);
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        child.wait_with_output(),
    )
    .await
    .expect("the browser finishes within 120 s")
    .expect("run the browser script");
    assert!(
        output.status.success(),
        "the browser script failed (is {PLAYWRIGHT} installed in target/test-python?):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the browser script's results")
}
