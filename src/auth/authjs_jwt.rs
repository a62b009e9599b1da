//! `SESSION_AUTH=authjs-jwt`: Auth.js JWT sessions, the default when the
//! app has no database adapter. The session cookie is a JWE (`alg: dir`)
//! that Auth.js encrypts with a key it derives from `AUTH_SECRET`:
//!
//! - v5 (`authjs.session-token`, `__Secure-authjs.session-token`): HKDF-SHA256
//!   of the secret, salt the cookie's name, info `Auth.js Generated Encryption
//!   Key (<name>)`; 64 bytes for `A256CBC-HS512` (what it writes), 32 for
//!   `A256GCM` (which its decoder also accepts);
//! - `NextAuth` v4 (`next-auth.session-token`, `__Secure-next-auth.session-token`):
//!   HKDF-SHA256 with an empty salt and info `NextAuth.js Generated Encryption
//!   Key`, 32 bytes, `A256GCM`.
//!
//! Each secret of `AUTH_SECRET` is tried in turn (rotation). The token's
//! `sub` is the user id; `exp` is required.

use std::fmt;

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockDecryptMut, KeyIvInit};
use http::HeaderMap;
use ring::{aead, hkdf, hmac};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::Refusal;
use super::claims::{self, Claims, Subject};
use super::credentials::{
    AUTHJS_SESSION_COOKIES, Credential, Purpose, TrustedOrigins, bearer_or_cookie,
};

/// `AUTH_SECRET`: one secret, or several comma-separated during a rotation
/// (the first is the one Auth.js encrypts with; all decrypt).
#[derive(Clone)]
pub struct AuthSecrets(Vec<Vec<u8>>);

impl AuthSecrets {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let secrets: Vec<Vec<u8>> = raw
            .split(',')
            .map(|secret| secret.trim().as_bytes().to_vec())
            .collect();
        // Never quote the value: it is the key to every session.
        if secrets.iter().any(Vec::is_empty) {
            return Err(
                "expected one secret, or several separated by commas, none empty".to_owned(),
            );
        }
        Ok(Self(secrets))
    }
}

impl fmt::Debug for AuthSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthSecrets(<{} redacted>)", self.0.len())
    }
}

/// The `sub` of a live Auth.js session token.
pub(super) fn subject(
    headers: &HeaderMap,
    trusted: &TrustedOrigins,
    purpose: Purpose,
    secrets: &AuthSecrets,
) -> Result<Subject, Refusal> {
    let (token, cookie) = match bearer_or_cookie(headers, &AUTHJS_SESSION_COOKIES)? {
        Some(Credential::Bearer(token)) => (token, None),
        Some(Credential::Cookie { .. }) if !trusted.allows(headers, purpose) => {
            return Err(Refusal::ForbiddenOrigin);
        }
        Some(Credential::Cookie { name, token }) => (token, Some(name)),
        None => return Err(Refusal::Unauthenticated),
    };
    let token = std::str::from_utf8(token.as_bytes()).map_err(|_| Refusal::Unauthenticated)?;
    let claims = decrypt(token, secrets, cookie).ok_or(Refusal::Unauthenticated)?;
    claims.live(claims::now()).ok_or(Refusal::Unauthenticated)
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    enc: String,
    /// Compression: Auth.js never compresses, and a decompressor is an
    /// attack surface we do not need.
    zip: Option<String>,
    crit: Option<serde_json::Value>,
}

#[derive(Clone, Copy)]
enum Enc {
    A256CbcHs512,
    A256Gcm,
}

/// A key Auth.js could have encrypted with: (salt, info, length).
struct Derivation<'a> {
    salt: &'a str,
    info: String,
    enc: Enc,
}

/// The claims of an Auth.js session token from cookie `cookie` (or a bearer
/// header, `None`), if one of the secrets decrypts it.
fn decrypt(token: &str, secrets: &AuthSecrets, cookie: Option<&str>) -> Option<Claims> {
    let mut parts = token.split('.');
    let (Some(header_b64), Some(key), Some(iv), Some(ciphertext), Some(tag), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let header: Header = serde_json::from_slice(&claims::base64url(header_b64)?).ok()?;
    let enc = match (header.alg.as_str(), header.enc.as_str()) {
        ("dir", "A256CBC-HS512") => Enc::A256CbcHs512,
        ("dir", "A256GCM") => Enc::A256Gcm,
        _ => return None,
    };
    if !key.is_empty() || header.zip.is_some() || header.crit.is_some() {
        return None;
    }
    let (iv, ciphertext, tag) = (
        claims::base64url(iv)?,
        claims::base64url(ciphertext)?,
        claims::base64url(tag)?,
    );
    for derivation in derivations(cookie, enc) {
        for secret in &secrets.0 {
            let key = derive(secret, &derivation);
            let plaintext = match derivation.enc {
                Enc::A256CbcHs512 => open_cbc_hs512(&key, header_b64, &iv, &ciphertext, &tag),
                Enc::A256Gcm => open_gcm(&key, header_b64, &iv, &ciphertext, &tag),
            };
            if let Some(plaintext) = plaintext {
                return Claims::parse(&plaintext);
            }
        }
    }
    None
}

/// The keys to try for a token from `cookie`: v5's, salted with the cookie's
/// name, and for `NextAuth` v4's cookie names v4's too. A bearer token does
/// not say which cookie it was, so both v5 names are tried.
fn derivations(cookie: Option<&str>, enc: Enc) -> Vec<Derivation<'_>> {
    let v5 = |salt| Derivation {
        salt,
        info: format!("Auth.js Generated Encryption Key ({salt})"),
        enc,
    };
    let v4 = || Derivation {
        salt: "",
        info: "NextAuth.js Generated Encryption Key".to_owned(),
        enc,
    };
    let gcm = matches!(enc, Enc::A256Gcm);
    match cookie {
        Some(name) if name.contains("next-auth.") && gcm => vec![v4(), v5(name)],
        Some(name) => vec![v5(name)],
        None => {
            let mut all = vec![v5(AUTHJS_SESSION_COOKIES[0]), v5(AUTHJS_SESSION_COOKIES[1])];
            if gcm {
                all.push(v4());
            }
            all
        }
    }
}

struct Length(usize);

impl hkdf::KeyType for Length {
    fn len(&self) -> usize {
        self.0
    }
}

fn derive(secret: &[u8], derivation: &Derivation<'_>) -> Vec<u8> {
    let length = match derivation.enc {
        Enc::A256CbcHs512 => 64,
        Enc::A256Gcm => 32,
    };
    let mut key = vec![0; length];
    hkdf::Salt::new(hkdf::HKDF_SHA256, derivation.salt.as_bytes())
        .extract(secret)
        .expand(&[derivation.info.as_bytes()], Length(length))
        .and_then(|okm| okm.fill(&mut key))
        .expect("64 bytes are within HKDF-SHA256's limit");
    key
}

/// RFC 7518 §5.2: the first half of the key authenticates, the second
/// decrypts; the tag is the first 32 bytes of HMAC-SHA-512 over the
/// protected header, the IV, the ciphertext and the header's length in bits.
fn open_cbc_hs512(
    key: &[u8],
    header_b64: &str,
    iv: &[u8],
    ciphertext: &[u8],
    tag: &[u8],
) -> Option<Vec<u8>> {
    let (mac_key, enc_key) = key.split_at(32);
    if iv.len() != 16 || tag.len() != 32 {
        return None;
    }
    let aad = header_b64.as_bytes();
    let mut mac = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA512, mac_key));
    mac.update(aad);
    mac.update(iv);
    mac.update(ciphertext);
    mac.update(&((aad.len() as u64) * 8).to_be_bytes());
    let expected = mac.sign();
    if !bool::from(expected.as_ref()[..32].ct_eq(tag)) {
        return None;
    }
    let mut buffer = ciphertext.to_vec();
    let plaintext = cbc::Decryptor::<aes::Aes256>::new_from_slices(enc_key, iv)
        .ok()?
        .decrypt_padded_mut::<Pkcs7>(&mut buffer)
        .ok()?;
    Some(plaintext.to_vec())
}

fn open_gcm(
    key: &[u8],
    header_b64: &str,
    iv: &[u8],
    ciphertext: &[u8],
    tag: &[u8],
) -> Option<Vec<u8>> {
    let key = aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_256_GCM, key).ok()?);
    let nonce = aead::Nonce::try_assume_unique_for_key(iv).ok()?;
    let mut buffer = [ciphertext, tag].concat();
    let plaintext = key
        .open_in_place(nonce, aead::Aad::from(header_b64.as_bytes()), &mut buffer)
        .ok()?;
    Some(plaintext.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_never_quoted_in_errors_or_debug() {
        let secrets = AuthSecrets::parse("hunter2hunter2, s2").unwrap();
        assert_eq!(secrets.0.len(), 2);
        assert!(!format!("{secrets:?}").contains("hunter2"));
        let error = AuthSecrets::parse("hunter2,,x").unwrap_err();
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn malformed_tokens_are_refused_without_panicking() {
        let secrets = AuthSecrets::parse("s").unwrap();
        for token in [
            "",
            ".",
            "....",
            "a.b.c.d.e",
            "a.b.c.d.e.f",
            "eyJhbGciOiJub25lIn0.e30.",
        ] {
            assert!(decrypt(token, &secrets, Some("authjs.session-token")).is_none());
        }
    }
}
