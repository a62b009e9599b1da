//! Where a request carries its credentials: the `Authorization: Bearer`
//! header or a session cookie, and the origin rule for cookies.

use http::HeaderMap;
use http::header::{COOKIE, ORIGIN};

use crate::app_url::AppUrl;
use crate::cors::AllowedOrigins;
use crate::tokens::SessionToken;

/// Auth.js's session cookie, in the order it is looked for: v5 over HTTPS,
/// v5 over HTTP, then `NextAuth` v4's two.
pub(super) const AUTHJS_SESSION_COOKIES: [&str; 4] = [
    "__Secure-authjs.session-token",
    "authjs.session-token",
    "__Secure-next-auth.session-token",
    "next-auth.session-token",
];

/// A session token and where it came from.
pub(super) enum Credential {
    Bearer(SessionToken),
    /// From the cookie `name` (Auth.js's JWT key is derived from the name).
    Cookie {
        name: &'static str,
        token: SessionToken,
    },
}

/// The bearer token if there is one, else the first of `cookies` present.
pub(super) fn bearer_or_cookie(
    headers: &HeaderMap,
    cookies: &[&'static str],
) -> Option<Credential> {
    if let Some(token) = SessionToken::from_headers(headers) {
        return Some(Credential::Bearer(token));
    }
    cookies
        .iter()
        .find_map(|&name| cookie(headers, name).map(|token| Credential::Cookie { name, token }))
}

/// The value of cookie `name`, from any `Cookie` header. A value too long
/// for one cookie comes, as Auth.js writes it, in chunks `name.0`,
/// `name.1`, … that are joined in order.
fn cookie(headers: &HeaderMap, name: &str) -> Option<SessionToken> {
    let pairs = || {
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .map(|(key, value)| (key, unquoted(value)))
    };
    if let Some((_, value)) = pairs().find(|(key, _)| *key == name) {
        return SessionToken::parse(value.as_bytes());
    }
    let mut chunks: Vec<(usize, &str)> = pairs()
        .filter_map(|(key, value)| {
            let index = key.strip_prefix(name)?.strip_prefix('.')?;
            // Digits only: `usize::from_str` would take a leading `+`.
            (!index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()))
                .then(|| index.parse().ok().map(|i| (i, value)))
                .flatten()
        })
        .collect();
    chunks.sort_unstable_by_key(|&(index, _)| index);
    // Chunks 0..n with none missing or repeated, or it is not a cookie.
    if chunks.is_empty() || chunks.iter().enumerate().any(|(i, &(index, _))| i != index) {
        return None;
    }
    let joined: String = chunks.into_iter().map(|(_, value)| value).collect();
    SessionToken::parse(joined.as_bytes())
}

fn unquoted(value: &str) -> &str {
    let value = value.trim();
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
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
            Some(Credential::Cookie { token, .. }) => ("cookie", token.as_bytes().to_vec()),
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
    fn a_cookie_in_chunks_is_joined_in_order_and_only_when_complete() {
        let names = ["authjs.session-token"];
        let read = |cookie: &str| token(bearer_or_cookie(&headers(&[("cookie", cookie)]), &names));
        assert_eq!(
            read(
                "authjs.session-token.1=def; a=b; authjs.session-token.0=abc; authjs.session-token.2=g"
            ),
            ("cookie", b"abcdefg".to_vec())
        );
        // The whole cookie wins over stray chunks.
        assert_eq!(
            read("authjs.session-token.0=x; authjs.session-token=whole"),
            ("cookie", b"whole".to_vec())
        );
        for incomplete in [
            "authjs.session-token.1=def",
            "authjs.session-token.0=abc; authjs.session-token.2=g",
            "authjs.session-token.0=abc; authjs.session-token.0=abc",
            "authjs.session-token.+0=abc",
            "authjs.session-token.=abc",
        ] {
            assert_eq!(read(incomplete).0, "none", "{incomplete}");
        }
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
