//! The app's webhook (`WEBHOOK_URL`, `WEBHOOK_SECRET`) and the Standard
//! Webhooks signature: `v1,` and the base64 HMAC-SHA256, under the secret's
//! key, of `<webhook-id>.<webhook-timestamp>.<body>`. During a rotation the
//! request carries one signature per secret, space-separated, so the
//! receiver may verify with either.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};

/// The spec recommends keys of 24 to 64 bytes; shorter than this is refused.
const SHORTEST_KEY: usize = 16;
const LONGEST_KEY: usize = 64;

/// Where events are sent, and the secrets that sign them.
#[derive(Clone)]
pub struct Webhook {
    pub url: WebhookUrl,
    pub secrets: WebhookSecrets,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url)
            .field("secrets", &self.secrets.keys.len())
            .finish()
    }
}

/// `WEBHOOK_URL`: an `http` or `https` URL. It may carry a token in its
/// query, so only its host ever reaches a log.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl(url::Url);

impl WebhookUrl {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let url = url::Url::parse(raw.trim()).map_err(|_| {
            "expected an absolute URL, like https://app.example.com/hooks".to_owned()
        })?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(format!(
                "expected an https:// URL, got a {}: URL",
                url.scheme()
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("expected a URL with a host".to_owned());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(
                "credentials in the URL are not sent; put a token in the query or \
                        rely on the signature"
                    .to_owned(),
            );
        }
        Ok(Self(url))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The host alone, for logs.
    #[must_use]
    pub fn host(&self) -> &str {
        self.0.host_str().unwrap_or_default()
    }
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookUrl({})", self.host())
    }
}

/// `WEBHOOK_SECRET`: one or more `whsec_<base64>` secrets, space-separated.
#[derive(Clone)]
pub struct WebhookSecrets {
    keys: Vec<ring::hmac::Key>,
}

impl WebhookSecrets {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut keys = Vec::new();
        for (i, secret) in raw.split_whitespace().enumerate() {
            let nth = i + 1;
            let encoded = secret.strip_prefix("whsec_").ok_or_else(|| {
                format!("secret {nth} does not start with whsec_ (expected whsec_<base64>)")
            })?;
            let key = STANDARD_NO_PAD
                .decode(encoded.trim_end_matches('='))
                .map_err(|_| format!("secret {nth} is not base64 after whsec_"))?;
            if !(SHORTEST_KEY..=LONGEST_KEY).contains(&key.len()) {
                return Err(format!(
                    "secret {nth} is {} bytes after decoding; expected {SHORTEST_KEY} to {LONGEST_KEY} \
                     (24 or more recommended)",
                    key.len()
                ));
            }
            keys.push(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key));
        }
        if keys.is_empty() {
            return Err("expected whsec_<base64>, got an empty value".to_owned());
        }
        Ok(Self { keys })
    }

    /// The `webhook-signature` header: one `v1,<base64>` per secret.
    #[must_use]
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut header = String::new();
        for key in &self.keys {
            let mut context = ring::hmac::Context::with_key(key);
            context.update(id.as_bytes());
            context.update(b".");
            context.update(timestamp.to_string().as_bytes());
            context.update(b".");
            context.update(body);
            if !header.is_empty() {
                header.push(' ');
            }
            header.push_str("v1,");
            header.push_str(&STANDARD.encode(context.sign().as_ref()));
        }
        header
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference
    /// libraries (their test suites sign this message with this secret).
    #[test]
    fn signs_like_the_reference_implementation() {
        let secrets = WebhookSecrets::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = secrets.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_rotation_signs_with_every_secret() {
        let secrets = WebhookSecrets::parse(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw  whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )
        .unwrap();
        let signature = secrets.sign("msg_1", 1, b"{}");
        let parts: Vec<&str> = signature.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|part| part.starts_with("v1,")));
        assert_ne!(parts[0], parts[1]);
    }

    #[test]
    fn bad_secrets_say_what_is_wrong_without_quoting_them() {
        for (raw, expected) in [
            ("", "empty"),
            (
                "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "does not start with whsec_",
            ),
            ("whsec_not*base64!", "not base64"),
            ("whsec_c2hvcnQ=", "5 bytes"),
            ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw whsec_", "secret 2"),
        ] {
            let error = WebhookSecrets::parse(raw).err().unwrap();
            assert!(error.contains(expected), "{raw:?}: {error}");
            assert!(!error.contains("MfKQ9r8"), "{error}");
        }
    }

    #[test]
    fn urls_are_http_or_https_with_a_host_and_log_only_the_host() {
        let url = WebhookUrl::parse("https://hooks.example.com/in?token=abc").unwrap();
        assert_eq!(format!("{url:?}"), "WebhookUrl(hooks.example.com)");
        assert!(WebhookUrl::parse("http://127.0.0.1:9000/").is_ok());
        for bad in [
            "ftp://example.com/",
            "hooks.example.com",
            "https://user:pw@example.com/",
        ] {
            assert!(WebhookUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
