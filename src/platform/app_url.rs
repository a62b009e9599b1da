//! `APP_URL`: the app's public base URL. Emailed links start with it, and
//! its origin is the one whose pages may send a cookie-signed request. A
//! leaf: the configuration builds it, sign-in and mail read it.

/// The public base URL links in emails start with, from `APP_URL`. Links
/// are never built from request headers, which a client controls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppUrl(String);

impl AppUrl {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let url = url::Url::parse(raw.trim())
            .map_err(|_| "expected an absolute URL such as https://app.example.com".to_owned())?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
            return Err("expected an http:// or https:// URL with a host".to_owned());
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err("must not have a query or fragment".to_owned());
        }
        Ok(Self(url.as_str().trim_end_matches('/').to_owned()))
    }

    /// `APP_URL` + `path` (which starts with `/`).
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }

    /// `scheme://host[:port]`, as browsers send it in `Origin`.
    pub fn origin(&self) -> String {
        url::Url::parse(&self.0)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default()
    }

    /// The host, for `Message-ID`s.
    pub fn host(&self) -> String {
        url::Url::parse(&self.0)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| "localhost".to_owned())
    }
}

/// `APP_SIGN_IN_URL`: where the recovery pages' "Sign in" link points, so
/// that a restored user is not left on a dead end. Default `APP_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInUrl(String);

impl SignInUrl {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let url = url::Url::parse(raw.trim()).map_err(|_| {
            "expected an absolute URL such as https://app.example.com/login".to_owned()
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
            return Err("expected an http:// or https:// URL with a host".to_owned());
        }
        Ok(Self(url.into()))
    }

    /// The app's own URL, when no sign-in page is named.
    #[must_use]
    pub fn app(app_url: &AppUrl) -> Self {
        Self(app_url.join("/"))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
