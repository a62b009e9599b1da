//! Where a request carries its credentials: the `Authorization: Bearer`
//! header or a session cookie, and the origin rule for cookies.

use http::HeaderMap;
use http::header::{COOKIE, ORIGIN};

use crate::config::AppUrl;
use crate::cors::AllowedOrigins;
use crate::tokens::SessionToken;

/// Auth.js's session cookie, in the order it is looked for: v5 over HTTPS,
/// v5 over HTTP, then NextAuth v4's two.
pub(super) const AUTHJS_SESSION_COOKIES: [&str; 4] = [
    "__Secure-authjs.session-token",
    "authjs.session-token",
    "__Secure-next-auth.session-token",
    "next-auth.session-token",
];

/// A session token and where it came from.
pub(super) enum Credential {
    Bearer(SessionToken),
    Cookie(SessionToken),
}

/// The bearer token if there is one, else the first of `cookies` present.
pub(super) fn bearer_or_cookie(headers: &HeaderMap, cookies: &[&str]) -> Option<Credential> {
    if let Some(token) = SessionToken::from_headers(headers) {
        return Some(Credential::Bearer(token));
    }
    cookies
        .iter()
        .find_map(|name| cookie(headers, name))
        .map(Credential::Cookie)
}

/// The value of cookie `name`, from any `Cookie` header.
fn cookie(headers: &HeaderMap, name: &str) -> Option<SessionToken> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .and_then(|(_, value)| {
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            SessionToken::parse(value.as_bytes())
        })
}

/// The origins whose pages may send a request signed in by cookie: the
/// app's own (`APP_URL`'s) and those of `CORS_ALLOWED_ORIGINS`.
#[derive(Debug, Clone)]
pub struct TrustedOrigins(Vec<String>);

impl TrustedOrigins {
    #[must_use]
    pub fn new(app_url: &AppUrl, cors: &AllowedOrigins) -> Self {
        let mut origins = vec![app_url.origin()];
        origins.extend(cors.iter().map(str::to_owned));
        Self(origins)
    }

    /// Whether the request names one of them in `Origin`. A request without
    /// `Origin` is refused: browsers send it with every cross-origin request
    /// and every `POST`, so only a non-browser client omits it, and such a
    /// client can send a bearer header instead.
    pub(super) fn allow(&self, headers: &HeaderMap) -> bool {
        let mut values = headers.get_all(ORIGIN).iter();
        match (values.next(), values.next()) {
            (Some(origin), None) => origin
                .to_str()
                .is_ok_and(|origin| self.0.iter().any(|trusted| trusted == origin)),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn token(credential: Option<Credential>) -> (&'static str, Vec<u8>) {
        match credential {
            Some(Credential::Bearer(t)) => ("bearer", t.as_bytes().to_vec()),
            Some(Credential::Cookie(t)) => ("cookie", t.as_bytes().to_vec()),
            None => ("none", Vec::new()),
        }
    }

    #[test]
    fn each_authjs_cookie_name_is_read_and_the_bearer_header_wins() {
        for name in AUTHJS_SESSION_COOKIES {
            let cookie = format!("theme=dark; {name}=tok-{name}; other=1");
            let found = token(bearer_or_cookie(
                &headers(&[("cookie", &cookie)]),
                &AUTHJS_SESSION_COOKIES,
            ));
            assert_eq!(found, ("cookie", format!("tok-{name}").into_bytes()));
        }
        let both = headers(&[
            ("cookie", "authjs.session-token=from-cookie"),
            ("authorization", "Bearer from-header"),
        ]);
        assert_eq!(
            token(bearer_or_cookie(&both, &AUTHJS_SESSION_COOKIES)),
            ("bearer", b"from-header".to_vec())
        );
        let lookalike = headers(&[("cookie", "xauthjs.session-token=a; authjs.session-tokens=b")]);
        assert_eq!(
            token(bearer_or_cookie(&lookalike, &AUTHJS_SESSION_COOKIES)).0,
            "none"
        );
    }

    #[test]
    fn only_a_single_trusted_origin_is_allowed() {
        let trusted = TrustedOrigins::new(
            &AppUrl::parse("https://app.test/base").unwrap(),
            &AllowedOrigins::parse("https://admin.test").unwrap(),
        );
        assert!(trusted.allow(&headers(&[("origin", "https://app.test")])));
        assert!(trusted.allow(&headers(&[("origin", "https://admin.test")])));
        for refused in [
            vec![],
            vec![("origin", "null")],
            vec![("origin", "https://evil.test")],
            vec![("origin", "https://app.test.evil.test")],
            vec![("origin", "http://app.test")],
            vec![
                ("origin", "https://app.test"),
                ("origin", "https://evil.test"),
            ],
        ] {
            assert!(!trusted.allow(&headers(&refused)), "{refused:?}");
        }
    }
}
