//! The claims of a verified or decrypted token, and the rules for its
//! lifetime, shared by the token modes.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

/// How far apart our clock and the issuer's may be. Auth.js allows 15 s;
/// providers' own libraries allow a few seconds to a minute.
pub(super) const LEEWAY_SECONDS: f64 = 30.0;

/// The registered claims this service reads (RFC 7519 §4.1).
#[derive(Debug, Deserialize)]
pub(super) struct Claims {
    pub sub: Option<String>,
    pub exp: Option<f64>,
    pub nbf: Option<f64>,
    pub iss: Option<String>,
    pub aud: Option<Audience>,
    /// Clerk's authorized party: the origin of the page the token was made for.
    pub azp: Option<String>,
    /// When it was issued: a deletion cannot revoke a token, so only one
    /// issued after it may restore the account.
    pub iat: Option<f64>,
}

/// A live token's user, and when the token was issued (seconds since the
/// epoch), if it says.
#[derive(Debug, Clone, PartialEq)]
pub struct Subject {
    pub sub: String,
    pub issued_at: Option<f64>,
}

/// `aud` is a string or an array of strings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn contains(&self, wanted: &str) -> bool {
        match self {
            Self::One(aud) => aud == wanted,
            Self::Many(auds) => auds.iter().any(|aud| aud == wanted),
        }
    }
}

impl Claims {
    pub fn parse(json: &[u8]) -> Option<Self> {
        serde_json::from_slice(json).ok()
    }

    /// The subject, if the token is within its lifetime at `now` (seconds
    /// since the epoch): `exp` is required, `nbf` checked when present.
    pub fn live_subject(&self, now: f64) -> Option<&str> {
        let exp = self.exp?;
        if now > exp + LEEWAY_SECONDS {
            return None;
        }
        if self.nbf.is_some_and(|nbf| now + LEEWAY_SECONDS < nbf) {
            return None;
        }
        self.sub.as_deref().filter(|sub| !sub.is_empty())
    }

    /// [`Self::live_subject`], with when the token was issued.
    pub fn live(&self, now: f64) -> Option<Subject> {
        Some(Subject {
            sub: self.live_subject(now)?.to_owned(),
            issued_at: self.iat.filter(|iat| iat.is_finite()),
        })
    }
}

/// Seconds since the epoch.
pub(super) fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

/// One part of a compact JWS or JWE: unpadded base64url, nothing else.
pub(super) fn base64url(part: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(part).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: &str) -> Claims {
        Claims::parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn lifetime_is_checked_with_leeway_and_exp_is_required() {
        let now = 1_000_000.0;
        let live = |json: &str| claims(json).live_subject(now).map(str::to_owned);
        assert_eq!(live(r#"{"sub":"u","exp":1000001}"#).as_deref(), Some("u"));
        assert_eq!(live(r#"{"sub":"u","exp":999990}"#).as_deref(), Some("u"));
        assert_eq!(live(r#"{"sub":"u","exp":999960}"#), None);
        assert_eq!(live(r#"{"sub":"u"}"#), None);
        assert_eq!(
            live(r#"{"sub":"u","exp":2000000,"nbf":1000020}"#).as_deref(),
            Some("u")
        );
        assert_eq!(live(r#"{"sub":"u","exp":2000000,"nbf":1000100}"#), None);
        assert_eq!(live(r#"{"sub":"","exp":2000000}"#), None);
        assert_eq!(live(r#"{"exp":2000000}"#), None);
    }

    #[test]
    fn audience_is_a_string_or_a_list() {
        assert!(claims(r#"{"aud":"a"}"#).aud.unwrap().contains("a"));
        assert!(claims(r#"{"aud":["b","a"]}"#).aud.unwrap().contains("a"));
        assert!(!claims(r#"{"aud":["b"]}"#).aud.unwrap().contains("a"));
        assert!(Claims::parse(br#"{"aud":5}"#).is_none());
    }
}
