//! `SESSION_AUTH=jwt`: a provider's JWT in `Authorization: Bearer`
//! (Supabase, Clerk, Auth0), verified against the provider's JWKS
//! (`JWT_JWKS_URL`, RS256 or ES256) or a shared secret (`JWT_SECRET`, HS256,
//! Supabase's legacy secret).
//!
//! The checks, in order, all before anything is trusted:
//! - the algorithm is one the key source permits: HS256 only with a shared
//!   secret, RS256/ES256 only with a JWKS key of that type, never `none`;
//! - the signature;
//! - `exp` (required) and `nbf`, with [`claims::LEEWAY_SECONDS`];
//! - `iss` equals `JWT_ISSUER`; `aud` contains `JWT_AUDIENCE` when set;
//!   `azp` is one of `JWT_AUTHORIZED_PARTIES` when set (Clerk).

use std::fmt;
use std::sync::Arc;

use http::HeaderMap;
use ring::hmac;
use serde::Deserialize;

use super::Refusal;
use super::claims::{self, Claims, Subject};
use super::jwks::{Alg, JwksUrl, KeySet, Lookup};
use crate::platform::tokens::SessionToken;

/// `JWT_SECRET`: the HS256 secret shared with the provider.
#[derive(Clone)]
pub struct HmacSecret(Vec<u8>);

impl HmacSecret {
    pub fn parse(raw: &str) -> Result<Self, String> {
        // RFC 7518 §3.2: an HS256 key at least as long as the hash.
        if raw.len() < 32 {
            return Err("expected at least 32 characters".to_owned());
        }
        Ok(Self(raw.as_bytes().to_vec()))
    }
}

impl fmt::Debug for HmacSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HmacSecret(<redacted>)")
    }
}

/// Where the keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    Jwks(JwksUrl),
    Secret(HmacSecret),
}

/// The `jwt` mode's settings, from `JWT_*`.
#[derive(Debug, Clone)]
pub struct JwtSettings {
    pub keys: KeySource,
    pub issuer: String,
    pub audience: Option<String>,
    pub authorized_parties: Vec<String>,
}

/// Verifies tokens; holds the instance's cached keys.
#[derive(Debug)]
pub(super) struct Verifier {
    settings: JwtSettings,
    keys: Keys,
}

/// (ring's `hmac::Key` prints its algorithm only, never the key.)
#[derive(Debug)]
enum Keys {
    Jwks(KeySet),
    Secret(hmac::Key),
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    crit: Option<serde_json::Value>,
}

impl Verifier {
    pub fn new(settings: JwtSettings) -> Arc<Self> {
        let keys = match &settings.keys {
            KeySource::Jwks(url) => Keys::Jwks(KeySet::new(url.clone())),
            KeySource::Secret(secret) => Keys::Secret(hmac::Key::new(hmac::HMAC_SHA256, &secret.0)),
        };
        Arc::new(Self { settings, keys })
    }

    /// The user id of a valid token.
    pub(super) async fn subject(&self, token: &str) -> Result<Subject, Refusal> {
        use Refusal::Unauthenticated;
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Unauthenticated);
        };
        let header: Header = claims::base64url(header_b64)
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or(Unauthenticated)?;
        // `crit` names extensions we would have to understand (RFC 7515 §4.1.11).
        if header.crit.is_some() {
            return Err(Unauthenticated);
        }
        let alg = Alg::parse(&header.alg).ok_or(Unauthenticated)?;
        let signature = claims::base64url(signature_b64).ok_or(Unauthenticated)?;
        let input = &token.as_bytes()[..header_b64.len() + 1 + payload_b64.len()];
        let verified = match (&self.keys, alg) {
            (Keys::Secret(key), Alg::Hs256) => hmac::verify(key, input, &signature).is_ok(),
            (Keys::Jwks(set), Alg::Rs256 | Alg::Es256) => {
                let kid = header.kid.as_deref().ok_or(Unauthenticated)?;
                match set.key(kid).await {
                    Lookup::Found(key) => key.verify(alg, input, &signature),
                    Lookup::Unknown => false,
                    Lookup::Unavailable => return Err(Refusal::KeysUnavailable),
                }
            }
            // HS256 against a public key, or RS/ES256 against a shared secret.
            _ => false,
        };
        if !verified {
            return Err(Unauthenticated);
        }
        let claims = claims::base64url(payload_b64)
            .and_then(|json| Claims::parse(&json))
            .ok_or(Unauthenticated)?;
        self.accepts(&claims)
            .then(|| claims.live(claims::now()))
            .flatten()
            .ok_or(Unauthenticated)
    }

    fn accepts(&self, claims: &Claims) -> bool {
        let settings = &self.settings;
        let issuer = claims.iss.as_deref() == Some(settings.issuer.as_str());
        let audience = settings
            .audience
            .as_deref()
            .is_none_or(|wanted| claims.aud.as_ref().is_some_and(|aud| aud.contains(wanted)));
        let party = settings.authorized_parties.is_empty()
            || claims
                .azp
                .as_ref()
                .is_some_and(|azp| settings.authorized_parties.contains(azp));
        issuer && audience && party
    }
}

/// The `sub` of a valid provider token in the bearer header.
pub(super) async fn subject(headers: &HeaderMap, verifier: &Verifier) -> Result<Subject, Refusal> {
    let token = SessionToken::from_headers(headers).ok_or(Refusal::Unauthenticated)?;
    let token = std::str::from_utf8(token.as_bytes()).map_err(|_| Refusal::Unauthenticated)?;
    verifier.subject(token).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_shared_secret_is_refused_and_never_shown() {
        assert!(HmacSecret::parse("short").is_err());
        let secret =
            HmacSecret::parse("super-secret-jwt-token-with-at-least-32-characters-long").unwrap();
        assert!(!format!("{secret:?}").contains("super"));
    }
}
