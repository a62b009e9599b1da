//! The bearer secrets that protect the routes an operator or a scheduler
//! calls: `CRON_SECRET` (the crons, and the status route), `STATUS_SECRET`
//! (the status route only) and `ADMIN_SECRET` (the admin route). One type
//! and one check for all of them.
//!
//! Only the SHA-256 digest of a secret is kept in memory, so neither `Debug`
//! nor a stray log line can reveal it. Presented credentials are hashed to the
//! same fixed length and compared in constant time, so neither the time taken
//! nor an early exit on length tells an attacker how much of a guess was right.

use std::fmt;

use http::HeaderMap;
use http::header::AUTHORIZATION;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Fewer characters than this make a guessable secret; the route refuses to
/// run with one.
pub const MIN_CHARS: usize = 16;

/// The admin secret opens every account's restore and erasure: longer.
pub const ADMIN_MIN_CHARS: usize = 32;

#[derive(Clone)]
pub struct BearerSecret {
    digest: [u8; 32],
}

impl BearerSecret {
    /// `CRON_SECRET` or `STATUS_SECRET`: at least [`MIN_CHARS`].
    pub fn parse(raw: &str) -> Result<Self, String> {
        Self::parse_at_least(raw, MIN_CHARS)
    }

    /// `ADMIN_SECRET`: at least [`ADMIN_MIN_CHARS`].
    pub fn parse_admin(raw: &str) -> Result<Self, String> {
        Self::parse_at_least(raw, ADMIN_MIN_CHARS)
    }

    fn parse_at_least(raw: &str, min_chars: usize) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("is empty".to_owned());
        }
        if raw.chars().count() < min_chars {
            return Err(format!("must be at least {min_chars} characters long"));
        }
        Ok(Self {
            digest: Sha256::digest(raw.as_bytes()).into(),
        })
    }

    /// Whether two variables hold the same secret (the admin secret must
    /// not open the crons, nor the cron secret the admin route).
    #[must_use]
    pub fn same_as(&self, other: &Self) -> bool {
        self.digest.ct_eq(&other.digest).into()
    }

    /// True only for exactly one `Authorization: Bearer <secret>` header.
    #[must_use]
    pub fn authorizes(&self, headers: &HeaderMap) -> bool {
        let mut values = headers.get_all(AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return false;
        };
        let Some(token) = bearer_token(value.as_bytes()) else {
            return false;
        };
        let presented: [u8; 32] = Sha256::digest(token).into();
        presented.ct_eq(&self.digest).into()
    }
}

impl fmt::Debug for BearerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerSecret(<redacted>)")
    }
}

/// The credentials of a `Bearer` authorization (scheme case-insensitive, as
/// RFC 9110 says), or `None` for any other scheme.
pub(crate) fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    const SCHEME: &[u8] = b"bearer ";
    if value.len() < SCHEME.len() || !value[..SCHEME.len()].eq_ignore_ascii_case(SCHEME) {
        return None;
    }
    Some(&value[SCHEME.len()..])
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    const SECRET: &str = "s3cret-s3cret-s3cret";

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn only_the_exact_bearer_secret_is_authorized() {
        let secret = BearerSecret::parse(SECRET).unwrap();
        assert!(secret.authorizes(&headers(&[&format!("Bearer {SECRET}")])));
        assert!(secret.authorizes(&headers(&[&format!("bearer {SECRET}")])));
        for bad in [
            "",
            "Bearer ",
            "Bearer undefined",
            "Bearer s3cret-s3cret-s3cre",
            "Bearer s3cret-s3cret-s3cret!",
            "Bearer  s3cret-s3cret-s3cret",
            "Basic s3cret-s3cret-s3cret",
            "s3cret-s3cret-s3cret",
            "Bearers3cret-s3cret-s3cret",
        ] {
            assert!(!secret.authorizes(&headers(&[bad])), "{bad:?} was accepted");
        }
        assert!(!secret.authorizes(&HeaderMap::new()));
    }

    #[test]
    fn two_authorization_headers_are_refused_even_if_one_is_right() {
        let secret = BearerSecret::parse(SECRET).unwrap();
        let both = headers(&[&format!("Bearer {SECRET}"), "Bearer other"]);
        assert!(!secret.authorizes(&both));
    }

    #[test]
    fn short_or_empty_secrets_are_rejected() {
        assert!(BearerSecret::parse("").is_err());
        assert!(BearerSecret::parse("fifteen-chars!!").is_err());
        assert!(BearerSecret::parse("sixteen-chars!!!").is_ok());
        assert!(BearerSecret::parse_admin(&"a".repeat(31)).is_err());
        assert!(BearerSecret::parse_admin(&"a".repeat(32)).is_ok());
    }

    #[test]
    fn the_same_secret_in_two_variables_is_recognised() {
        let a = BearerSecret::parse(SECRET).unwrap();
        assert!(a.same_as(&BearerSecret::parse(SECRET).unwrap()));
        assert!(!a.same_as(&BearerSecret::parse("another-secret-value").unwrap()));
    }

    #[test]
    fn debug_does_not_reveal_the_secret() {
        let secret = BearerSecret::parse(SECRET).unwrap();
        assert_eq!(format!("{secret:?}"), "BearerSecret(<redacted>)");
    }
}
