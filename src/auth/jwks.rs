//! A provider's signing keys, from its JWKS URL, cached per function
//! instance.
//!
//! - The first token fetches the keys; they are fresh for [`FRESH`], then
//!   the next token refreshes them (a stale key is still used if the
//!   refresh fails, so a provider outage does not sign out known keys).
//! - A token naming a `kid` the cache lacks triggers one refetch (the
//!   provider rotated its keys), but at most one fetch per [`COOLDOWN`] per
//!   instance, however many unknown `kid`s arrive: random `kid`s cannot make
//!   us hammer the provider. Concurrent requests wait for one fetch.
//! - A fetch that fails (down, timeout, not 200, not a JWKS) makes a key we
//!   do not have `Unavailable` (503), never `Unknown` (401).

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::Deserialize;

use super::claims::base64url;
use crate::platform::http_client::{self, Timeouts};

const FRESH: Duration = Duration::from_secs(10 * 60);
const COOLDOWN: Duration = Duration::from_secs(10);
/// A real JWKS is a few kilobytes.
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// The token's request waits this long at most for the keys.
const TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(2),
    total: Duration::from_secs(4),
};

/// The signature algorithms this service verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Rs256,
    Es256,
    Hs256,
}

impl Alg {
    pub(super) fn parse(name: &str) -> Option<Self> {
        match name {
            "RS256" => Some(Self::Rs256),
            "ES256" => Some(Self::Es256),
            "HS256" => Some(Self::Hs256),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
            Self::Hs256 => "HS256",
        }
    }
}

/// `JWT_JWKS_URL`: `https://`, or `http://` to a loopback address (a local
/// provider in development).
#[derive(Debug, Clone)]
pub struct JwksUrl(url::Url);

impl JwksUrl {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let url = url::Url::parse(raw.trim()).map_err(|_| {
            "expected the provider's JWKS URL, https://…/.well-known/jwks.json".to_owned()
        })?;
        let loopback = match url.host() {
            Some(url::Host::Domain(host)) => host == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        match url.scheme() {
            "https" => Ok(Self(url)),
            "http" if loopback => Ok(Self(url)),
            _ => Err("expected an https:// URL (http:// only to localhost)".to_owned()),
        }
    }

    pub(super) fn as_url(&self) -> &url::Url {
        &self.0
    }
}

/// A public key from the set, with the one algorithm it verifies.
#[derive(Debug, Clone)]
pub(super) struct VerifyingKey {
    kid: String,
    alg: Alg,
    material: Material,
}

#[derive(Debug, Clone)]
enum Material {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// Uncompressed SEC1 point: `0x04 || x || y`.
    P256(Vec<u8>),
}

impl VerifyingKey {
    /// Whether `signature` over `input` is this key's, with `alg`, and `alg`
    /// is the key's own algorithm (an RSA key never verifies `ES256`, and no
    /// public key ever verifies an HMAC).
    pub fn verify(&self, alg: Alg, input: &[u8], signature: &[u8]) -> bool {
        if alg != self.alg {
            return false;
        }
        match (&self.material, alg) {
            (Material::Rsa { n, e }, Alg::Rs256) => RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, input, signature)
                .is_ok(),
            (Material::P256(point), Alg::Es256) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(input, signature)
                    .is_ok()
            }
            _ => false,
        }
    }
}

pub(super) enum Lookup {
    Found(VerifyingKey),
    /// The provider's current set has no such key.
    Unknown,
    /// The keys could not be fetched: the provider is down or misconfigured.
    Unavailable,
}

pub(super) struct KeySet {
    url: JwksUrl,
    /// Built on the first fetch, so a function that never sees a token
    /// starts as fast as one without this mode.
    client: OnceLock<reqwest::Client>,
    cache: Mutex<Cache>,
    /// Held for the whole of a fetch: one fetch at a time per instance.
    fetching: tokio::sync::Mutex<Attempts>,
}

#[derive(Default)]
struct Cache {
    keys: Vec<VerifyingKey>,
    fetched_at: Option<Instant>,
    last_fetch_failed: bool,
}

impl Cache {
    fn find(&self, kid: &str) -> Option<VerifyingKey> {
        self.keys.iter().find(|key| key.kid == kid).cloned()
    }

    fn is_fresh(&self) -> bool {
        self.fetched_at.is_some_and(|at| at.elapsed() < FRESH)
    }
}

#[derive(Default)]
struct Attempts {
    last: Option<Instant>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl KeySet {
    pub fn new(url: JwksUrl) -> Self {
        Self {
            url,
            client: OnceLock::new(),
            cache: Mutex::new(Cache::default()),
            fetching: tokio::sync::Mutex::new(Attempts::default()),
        }
    }

    /// The key `kid`, fetching the set when it is stale or lacks the key.
    pub async fn key(&self, kid: &str) -> Lookup {
        if let Some(key) = self.fresh(kid) {
            return Lookup::Found(key);
        }
        let mut attempts = self.fetching.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(key) = self.fresh(kid) {
            return Lookup::Found(key);
        }
        let cooling = attempts.last.is_some_and(|at| at.elapsed() < COOLDOWN);
        if !cooling {
            attempts.last = Some(Instant::now());
            let fetched = self.fetch().await;
            let mut cache = self.cache.lock().expect("cache lock");
            match fetched {
                Ok(keys) => {
                    tracing::info!(keys = keys.len(), "signing keys fetched from JWT_JWKS_URL");
                    *cache = Cache {
                        keys,
                        fetched_at: Some(Instant::now()),
                        last_fetch_failed: false,
                    };
                }
                Err(reason) => {
                    tracing::error!(%reason, "could not fetch the signing keys from JWT_JWKS_URL");
                    cache.last_fetch_failed = true;
                }
            }
        }
        drop(attempts);
        let cache = self.cache.lock().expect("cache lock");
        match cache.find(kid) {
            Some(key) => Lookup::Found(key),
            None if cache.last_fetch_failed || cache.fetched_at.is_none() => Lookup::Unavailable,
            None => Lookup::Unknown,
        }
    }

    fn fresh(&self, kid: &str) -> Option<VerifyingKey> {
        let cache = self.cache.lock().expect("cache lock");
        cache.is_fresh().then(|| cache.find(kid)).flatten()
    }

    async fn fetch(&self) -> Result<Vec<VerifyingKey>, String> {
        let client = self.client.get_or_init(|| http_client::client(TIMEOUTS));
        // Errors are described without the URL's query, which may hold a key.
        let response = client
            .get(self.url.as_url().clone())
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(describe)?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(format!("answered {}", response.status().as_u16()));
        }
        let body = http_client::body_up_to(response, MAX_JWKS_BYTES)
            .await
            .map_err(describe)?
            .ok_or_else(|| format!("answered more than {MAX_JWKS_BYTES} bytes"))?;
        parse_set(&body)
    }
}

fn describe(error: reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    format!("{kind}: {}", error.without_url())
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

/// The usable signature keys of a JWKS document; other keys (encryption
/// keys, algorithms we do not verify, keys without `kid`) are skipped.
fn parse_set(body: &[u8]) -> Result<Vec<VerifyingKey>, String> {
    let set: JwkSet = serde_json::from_slice(body)
        .map_err(|_| "answered something that is not a JWKS".to_owned())?;
    let total = set.keys.len();
    let keys: Vec<VerifyingKey> = set
        .keys
        .into_iter()
        .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
        .filter_map(parse_key)
        .collect();
    if keys.is_empty() {
        return Err(format!(
            "none of its {total} keys is an RS256 or ES256 signing key with a kid"
        ));
    }
    Ok(keys)
}

fn parse_key(jwk: Jwk) -> Option<VerifyingKey> {
    if jwk.use_.as_deref().is_some_and(|use_| use_ != "sig") {
        return None;
    }
    let kid = jwk.kid?;
    let (alg, material) = match jwk.kty.as_str() {
        "RSA" => {
            let n = base64url(jwk.n.as_deref()?)?;
            let e = base64url(jwk.e.as_deref()?)?;
            (Alg::Rs256, Material::Rsa { n, e })
        }
        "EC" if jwk.crv.as_deref() == Some("P-256") => {
            let (x, y) = (base64url(jwk.x.as_deref()?)?, base64url(jwk.y.as_deref()?)?);
            if x.len() != 32 || y.len() != 32 {
                return None;
            }
            (Alg::Es256, Material::P256([&[4][..], &x, &y].concat()))
        }
        _ => return None,
    };
    // A key that names its algorithm verifies only that one.
    if jwk.alg.is_some_and(|named| named != alg.name()) {
        return None;
    }
    Some(VerifyingKey { kid, alg, material })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_urls_must_be_https_except_on_loopback() {
        for ok in [
            "https://project.supabase.co/auth/v1/.well-known/jwks.json",
            "http://127.0.0.1:8080/jwks",
            "http://localhost/jwks",
            "http://[::1]:9/jwks",
        ] {
            assert!(JwksUrl::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["http://example.com/jwks", "ftp://x/y", "jwks.json", ""] {
            assert!(JwksUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_are_taken_only_for_signatures_with_a_kid_and_their_own_algorithm() {
        let set = br#"{"keys":[
            {"kty":"EC","crv":"P-256","kid":"ec","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty":"EC","crv":"P-384","kid":"p384","x":"AA","y":"AA"},
            {"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"},
            {"kty":"RSA","kid":"ps","alg":"PS256","n":"AQAB","e":"AQAB"},
            {"kty":"RSA","kid":"rs","alg":"RS256","n":"AQAB","e":"AQAB"},
            {"kty":"oct","kid":"hmac","k":"c2VjcmV0"},
            "not a key"
        ]}"#;
        let kids: Vec<String> = parse_set(set).unwrap().into_iter().map(|k| k.kid).collect();
        assert_eq!(kids, ["ec", "rs"]);
        assert!(parse_set(br#"{"keys":[]}"#).is_err());
        assert!(parse_set(b"<html>").is_err());
    }
}
