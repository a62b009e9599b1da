//! Where a request carries its credentials: the `Authorization: Bearer`
//! header or a session cookie, and the origin rule for cookies.

use http::HeaderMap;
use http::header::{COOKIE, ORIGIN};

use super::Refusal;
use crate::platform::app_url::AppUrl;
use crate::platform::cors::AllowedOrigins;
use crate::platform::tokens::SessionToken;

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
/// A cookie that comes more than once, or both whole and in chunks, or in
/// chunks that do not fit together, is refused (401), never decided by
/// which copy comes first: a sibling subdomain can set a cookie for the
/// parent domain, which the browser sends next to the app's own, and the
/// first would decide whose account is deleted.
pub(super) fn bearer_or_cookie(
    headers: &HeaderMap,
    cookies: &[&'static str],
) -> Result<Option<Credential>, Refusal> {
    if let Some(token) = SessionToken::from_headers(headers) {
        return Ok(Some(Credential::Bearer(token)));
    }
    for &name in cookies {
        match cookie(headers, name) {
            Cookie::Absent => {}
            Cookie::One(token) => return Ok(Some(Credential::Cookie { name, token })),
            Cookie::Ambiguous => return Err(Refusal::Unauthenticated),
        }
    }
    Ok(None)
}

/// What the `Cookie` headers hold under one name.
enum Cookie {
    Absent,
    One(SessionToken),
    /// Twice, whole and in chunks, chunks that do not fit, or not a token.
    Ambiguous,
}

/// The value of cookie `name`, from any `Cookie` header. A value too long
/// for one cookie comes, as Auth.js writes it, in chunks `name.0`,
/// `name.1`, … that are joined in order.
fn cookie(headers: &HeaderMap, name: &str) -> Cookie {
    let pairs: Vec<(&str, &str)> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .map(|(key, value)| (key, unquoted(value)))
        .collect();
    let whole: Vec<&str> = pairs
        .iter()
        .filter(|(key, _)| *key == name)
        .map(|&(_, value)| value)
        .collect();
    let mut chunks: Vec<(Option<usize>, &str)> = pairs
        .iter()
        .filter_map(|&(key, value)| {
            let index = key.strip_prefix(name)?.strip_prefix('.')?;
            // Digits only: `usize::from_str` would take a leading `+`.
            let index = (!index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()))
                .then(|| index.parse().ok())
                .flatten();
            Some((index, value))
        })
        .collect();
    let token =
        |value: &str| SessionToken::parse(value.as_bytes()).map_or(Cookie::Ambiguous, Cookie::One);
    match (whole.as_slice(), chunks.is_empty()) {
        ([], true) => Cookie::Absent,
        ([value], true) => token(value),
        ([_, ..], _) => Cookie::Ambiguous,
        ([], false) => {
            chunks.sort_unstable_by_key(|&(index, _)| index);
            // Chunks 0..n, each once, or it is not one cookie.
            if chunks
                .iter()
                .enumerate()
                .any(|(i, &(index, _))| index != Some(i))
            {
                return Cookie::Ambiguous;
            }
            let joined: String = chunks.into_iter().map(|(_, value)| value).collect();
            token(&joined)
        }
    }
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

    /// Whether a cookie may sign this request in, by its `Origin`. A change
    /// needs one of the trusted origins: browsers send `Origin` with every
    /// cross-origin request and every `POST`, so only a non-browser client
    /// omits it, and such a client can send a bearer header instead. A read
    /// may also come without `Origin` (browsers omit it on a same-origin
    /// `GET`, as the app's own banner sends it); a foreign page can make the
    /// browser send the cookie with a `GET` but can never read its answer,
    /// and a read changes nothing.
    pub(super) fn allows(&self, headers: &HeaderMap, purpose: Purpose) -> bool {
        let mut values = headers.get_all(ORIGIN).iter();
        match (values.next(), values.next(), purpose) {
            (Some(origin), None, _) => origin
                .to_str()
                .is_ok_and(|origin| self.0.iter().any(|trusted| trusted == origin)),
            (None, None, Purpose::Read) => true,
            _ => false,
        }
    }
}

/// What a signed-in request is for: the cookie's origin rule depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// It changes the account (delete, restore).
    Change,
    /// It only reads (the deletion state).
    Read,
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

    fn token(credential: Result<Option<Credential>, Refusal>) -> (&'static str, Vec<u8>) {
        match credential {
            Ok(Some(Credential::Bearer(t))) => ("bearer", t.as_bytes().to_vec()),
            Ok(Some(Credential::Cookie { token, .. })) => ("cookie", token.as_bytes().to_vec()),
            Ok(None) => ("none", Vec::new()),
            Err(_) => ("refused", Vec::new()),
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
        for not_one_cookie in [
            "authjs.session-token.0=x; authjs.session-token=whole",
            "authjs.session-token.1=def",
            "authjs.session-token.0=abc; authjs.session-token.2=g",
            "authjs.session-token.0=abc; authjs.session-token.0=abc",
            "authjs.session-token.+0=abc",
            "authjs.session-token.=abc",
        ] {
            assert_eq!(read(not_one_cookie).0, "refused", "{not_one_cookie}");
        }
    }

    #[test]
    fn a_cookie_name_sent_twice_is_refused_whoever_comes_first() {
        let names = AUTHJS_SESSION_COOKIES;
        for cookies in [
            vec!["authjs.session-token=mine; authjs.session-token=planted"],
            vec!["authjs.session-token=mine", "authjs.session-token=planted"],
            vec!["authjs.session-token=planted; theme=x; authjs.session-token=mine"],
            // The first name found decides; a second copy of it still refuses.
            vec![
                "__Secure-authjs.session-token=a; __Secure-authjs.session-token=b; authjs.session-token=c",
            ],
        ] {
            let pairs: Vec<(&str, &str)> = cookies.iter().map(|c| ("cookie", *c)).collect();
            assert_eq!(
                token(bearer_or_cookie(&headers(&pairs), &names)).0,
                "refused",
                "{cookies:?}"
            );
        }
        // A value that is no token is refused, not passed over for the next name.
        assert_eq!(
            token(bearer_or_cookie(
                &headers(&[("cookie", "authjs.session-token=; next-auth.session-token=b")]),
                &names
            ))
            .0,
            "refused"
        );
    }

    #[test]
    fn only_a_single_trusted_origin_is_allowed() {
        let trusted = TrustedOrigins::new(
            &AppUrl::parse("https://app.test/base").unwrap(),
            &AllowedOrigins::parse("https://admin.test").unwrap(),
        );
        let allow = |headers: &HeaderMap| trusted.allows(headers, Purpose::Change);
        assert!(allow(&headers(&[("origin", "https://app.test")])));
        assert!(allow(&headers(&[("origin", "https://admin.test")])));
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
            assert!(!allow(&headers(&refused)), "{refused:?}");
        }
        // A read may come without `Origin` (a same-origin GET), never from
        // an untrusted one.
        let read = |headers: &HeaderMap| trusted.allows(headers, Purpose::Read);
        assert!(read(&HeaderMap::new()));
        assert!(read(&headers(&[("origin", "https://app.test")])));
        assert!(!read(&headers(&[("origin", "https://evil.test")])));
    }
}
