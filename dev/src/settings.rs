//! The environment `cargo dev` runs the functions with: the process
//! environment, then `.env`, then local defaults for what a laptop lacks.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where generated local state lives (git-ignored).
pub const DATA_DIR: &str = ".dev-data";
/// Where mail goes by default (git-ignored).
pub const MAIL_DIR: &str = ".mail";

pub struct DevSettings {
    pub root: PathBuf,
    pub port: u16,
    defaults: HashMap<&'static str, String>,
    /// Set when the cron secret was generated rather than configured.
    pub generated_cron_secret: bool,
}

impl DevSettings {
    /// Reads `.env` (without overriding the process environment) and fills in
    /// the defaults. `CRON_SECRET`, when unset, is generated once and kept in
    /// `.dev-data/cron-secret` so `cargo dev cron` can use it.
    pub fn load() -> anyhow::Result<Self> {
        let root = project_root()?;
        let _ = dotenvy::from_path(root.join(".env"));
        let port = match std::env::var("PORT") {
            Ok(raw) => raw.parse().map_err(|_| {
                anyhow::anyhow!("PORT is invalid: expected a port number, got {raw:?}")
            })?,
            Err(_) => 3000,
        };
        let mut defaults = HashMap::new();
        let mut generated_cron_secret = false;
        if std::env::var("CRON_SECRET").is_err() {
            defaults.insert("CRON_SECRET", stored_or_new_secret(&root, "cron-secret")?);
            generated_cron_secret = true;
        }
        // The admin route's own secret (at least 32 characters, not the
        // cron secret's), so that it works locally too.
        if std::env::var("ADMIN_SECRET").is_err() {
            defaults.insert("ADMIN_SECRET", stored_or_new_secret(&root, "admin-secret")?);
        }
        defaults.insert("APP_URL", format!("http://127.0.0.1:{port}"));
        defaults.insert(
            "MAIL_URL",
            format!("file://{}", root.join(MAIL_DIR).display()),
        );
        defaults.insert(
            "MAIL_FROM",
            "Account Deletion Dev <no-reply@localhost>".to_owned(),
        );
        Ok(Self {
            root,
            port,
            defaults,
            generated_cron_secret,
        })
    }

    /// Sets a variable's value for the functions, unless the environment has
    /// one (the embedded database's URL, known only once it runs).
    pub fn set_default(&mut self, name: &'static str, value: String) {
        self.defaults.insert(name, value);
    }

    /// A variable as the functions see it.
    pub fn get(&self, name: &str) -> Option<String> {
        std::env::var(name)
            .ok()
            .or_else(|| self.defaults.get(name).cloned())
    }

    pub fn cron_secret(&self) -> String {
        self.get("CRON_SECRET").unwrap_or_default()
    }

    /// The mail folder, when mail goes to files.
    pub fn mail_dir(&self) -> Option<PathBuf> {
        self.get("MAIL_URL")?
            .strip_prefix("file://")
            .map(PathBuf::from)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.join(DATA_DIR)
    }
}

/// The nearest directory upwards holding `vercel.json`.
pub fn project_root() -> anyhow::Result<PathBuf> {
    let start = std::env::current_dir()?;
    start
        .ancestors()
        .find(|dir| dir.join("vercel.json").is_file())
        .map(Path::to_path_buf)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no vercel.json in {} or above; run cargo dev inside the project",
                start.display()
            )
        })
}

fn stored_or_new_secret(root: &Path, name: &str) -> anyhow::Result<String> {
    let file = root.join(DATA_DIR).join(name);
    if let Ok(secret) = std::fs::read_to_string(&file) {
        let secret = secret.trim().to_owned();
        if secret.len() >= 48 || (name == "cron-secret" && secret.len() >= 16) {
            return Ok(secret);
        }
    }
    let secret = random_hex(24);
    std::fs::create_dir_all(file.parent().expect("has a parent"))?;
    std::fs::write(&file, &secret)?;
    Ok(secret)
}

/// `bytes` random bytes from the OS, as hex.
pub fn random_hex(bytes: usize) -> String {
    use std::fmt::Write as _;
    let mut buffer = vec![0u8; bytes];
    getrandom::getrandom(&mut buffer).expect("the OS random source is available");
    buffer.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}
