//! Bearer tokens users hold: session tokens (issued by the app's sign-in) and
//! recovery tokens (issued here, emailed). Only SHA-256 hashes of either are
//! ever stored or compared in the database.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;
use http::header::AUTHORIZATION;
use sha2::{Digest, Sha256};

/// Longer than any token a sane app issues (an Auth.js JWT cookie split in
/// chunks across several cookies is a few kilobytes); refused before hashing
/// or decrypting so nobody makes us work on megabytes.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// A session token: from `Authorization: Bearer <token>`, or a session
/// cookie.
pub struct SessionToken(Vec<u8>);

impl SessionToken {
    /// `None` unless there is exactly one `Authorization` header holding a
    /// non-empty bearer token of visible ASCII.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let mut values = headers.get_all(AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return None;
        };
        Self::parse(crate::platform::bearer_secret::bearer_token(
            value.as_bytes(),
        )?)
    }

    /// A token as sent (a bearer header's credentials, a cookie's value):
    /// `None` unless it is non-empty visible ASCII of sane length.
    pub fn parse(token: &[u8]) -> Option<Self> {
        let plausible = !token.is_empty()
            && token.len() <= MAX_TOKEN_BYTES
            && token.iter().all(u8::is_ascii_graphic);
        plausible.then(|| Self(token.to_vec()))
    }

    /// The token itself, for a store that keeps it in plain text (Auth.js).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// What `sessions.token_hash` holds: SHA-256 of the token's bytes.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(&self.0).into()
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(<redacted>)")
    }
}

/// A single-use recovery token: 256 bits from the OS random source, as
/// unpadded base64url (43 characters, safe in a URL as is).
pub struct RecoveryToken(String);

const RECOVERY_TOKEN_BYTES: usize = 32;
const RECOVERY_TOKEN_CHARS: usize = 43;

impl RecoveryToken {
    /// A fresh token. Panics only if the OS has no random source at all, in
    /// which case no token could be safe.
    pub fn generate() -> Self {
        let mut bytes = [0u8; RECOVERY_TOKEN_BYTES];
        getrandom::getrandom(&mut bytes).expect("the OS random source is available");
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A token as a user sent it back; `None` if it cannot be one of ours (the
    /// caller answers exactly as for an unknown token).
    pub fn parse(raw: &str) -> Option<Self> {
        let well_formed = raw.len() == RECOVERY_TOKEN_CHARS
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        well_formed.then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What `recovery_tokens.token_hash` holds.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }
}

impl fmt::Debug for RecoveryToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn generated_recovery_tokens_parse_back_and_differ() {
        let a = RecoveryToken::generate();
        let b = RecoveryToken::generate();
        assert_eq!(a.as_str().len(), RECOVERY_TOKEN_CHARS);
        assert_ne!(a.as_str(), b.as_str());
        assert_eq!(RecoveryToken::parse(a.as_str()).unwrap().hash(), a.hash());
    }

    #[test]
    fn malformed_recovery_tokens_are_refused() {
        for bad in [
            "",
            "short",
            "' or 1=1 --",
            &"a".repeat(44),
            &format!("{}=", "a".repeat(42)),
        ] {
            assert!(RecoveryToken::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_session_token_needs_one_bearer_header() {
        let mut headers = HeaderMap::new();
        assert!(SessionToken::from_headers(&headers).is_none());
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert!(SessionToken::from_headers(&headers).is_none());
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert!(SessionToken::from_headers(&headers).is_none());
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        let token = SessionToken::from_headers(&headers).unwrap();
        assert_eq!(token.hash(), <[u8; 32]>::from(Sha256::digest(b"abc")));
        assert_eq!(format!("{token:?}"), "SessionToken(<redacted>)");
    }
}
