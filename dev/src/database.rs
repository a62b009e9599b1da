//! The database the dev server uses: `DATABASE_URL` when set, otherwise an
//! embedded PostgreSQL (pglite-oxide) persisted under `.dev-data/pglite`.

use crate::settings::DevSettings;

pub enum Database {
    External {
        url: String,
    },
    #[cfg(feature = "embedded")]
    Embedded {
        server: Box<pglite_oxide::PgliteServer>,
        url: String,
    },
}

impl Database {
    pub async fn open(settings: &DevSettings) -> anyhow::Result<Self> {
        if let Some(url) = settings.get("DATABASE_URL").filter(|u| !u.is_empty()) {
            return Ok(Self::External { url });
        }
        Self::embedded(settings).await
    }

    #[cfg(feature = "embedded")]
    async fn embedded(settings: &DevSettings) -> anyhow::Result<Self> {
        let dir = settings.data_dir().join("pglite");
        let server = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)?;
            pglite_oxide::PgliteServer::builder().path(dir).start()
        })
        .await??;
        let url = server.database_url();
        Ok(Self::Embedded {
            server: Box::new(server),
            url,
        })
    }

    #[cfg(not(feature = "embedded"))]
    async fn embedded(_settings: &DevSettings) -> anyhow::Result<Self> {
        anyhow::bail!(
            "DATABASE_URL is not set, and this build has no embedded database (feature `embedded`)"
        )
    }

    pub fn url(&self) -> &str {
        match self {
            Self::External { url } => url,
            #[cfg(feature = "embedded")]
            Self::Embedded { url, .. } => url,
        }
    }

    pub fn is_embedded(&self) -> bool {
        !matches!(self, Self::External { .. })
    }

    /// The embedded server takes one connection at a time.
    pub fn max_connections(&self) -> u32 {
        match self {
            Self::External { .. } => 10,
            #[cfg(feature = "embedded")]
            Self::Embedded { .. } => 1,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Self::External { url } => format!("DATABASE_URL ({})", redact(url)),
            #[cfg(feature = "embedded")]
            Self::Embedded { server, .. } => {
                format!("embedded PostgreSQL in {}", server.root().display())
            }
        }
    }

    /// Stops the embedded server cleanly (its data stays for the next start).
    pub fn close(self) {
        #[cfg(feature = "embedded")]
        if let Self::Embedded { server, .. } = self {
            let _ = server.shutdown();
        }
    }
}

/// The URL without its password, for the banner.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}
