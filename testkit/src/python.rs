//! The Python the harness's helper scripts run on (`python/`): the one
//! `scripts/test` makes in `target/test-python` with the pinned packages
//! from `PyPI`, or `TEST_PYTHON`. Without it a test fails naming what is
//! missing.

use std::path::PathBuf;

/// The interpreter, for a script that needs `packages` (named in the
/// message when it is missing).
pub fn interpreter(packages: &str) -> PathBuf {
    if let Some(python) = std::env::var_os("TEST_PYTHON") {
        return python.into();
    }
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-python/bin/python");
    assert!(
        python.exists(),
        "this test needs Python with {packages}: run scripts/test (it creates \
         target/test-python), or set TEST_PYTHON to a python that has it"
    );
    python
}

/// A helper script of `python/`.
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(name)
}
