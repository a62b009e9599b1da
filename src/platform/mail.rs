//! Outgoing email's transport: where it goes (`MAIL_URL`: SMTP, or files
//! for local runs), who it is from (`MAIL_FROM`), and one message sent.
//! What each email says is the outbox's ([`crate::delivery`]).
//!
//! It imports nothing of the library.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Where email goes, from `MAIL_URL`.
#[derive(Clone, PartialEq, Eq)]
pub enum MailUrl {
    /// `smtp://` or `smtps://`, with optional `user:pass@`; see [`SmtpTls`]
    /// for when the connection is encrypted.
    Smtp {
        host: String,
        port: u16,
        tls: SmtpTls,
        credentials: Option<(String, String)>,
    },
    /// `file:///abs/dir`: one `.eml` file per message.
    File(PathBuf),
}

/// How an SMTP connection is encrypted. A password and the message go over
/// a connection in the clear only when `MAIL_URL` says so (`?tls=none`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// `smtps://`: TLS from the first byte.
    Implicit,
    /// `smtp://` with credentials (or `?tls=required`): STARTTLS, and a
    /// server that does not offer it gets neither the password nor the
    /// message.
    Required,
    /// `smtp://` without credentials: STARTTLS when the server offers it.
    Opportunistic,
    /// `smtp://…?tls=none`: never encrypted, for a local mail catcher.
    None,
}

impl MailUrl {
    /// Parses `MAIL_URL`. Errors never quote the URL: it may hold a password.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let url = url::Url::parse(raw).map_err(|_| {
            "expected smtp://user:pass@host:port, smtps://… or file:///absolute/dir".to_owned()
        })?;
        match url.scheme() {
            "smtp" | "smtps" => {
                let implicit_tls = url.scheme() == "smtps";
                let host = url
                    .host_str()
                    .filter(|h| !h.is_empty())
                    .ok_or("has no host")?
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned();
                let port = url.port().unwrap_or(if implicit_tls { 465 } else { 25 });
                let decode = |s: &str| {
                    percent_encoding_decode(s).ok_or("has credentials that are not valid UTF-8")
                };
                let credentials = if url.username().is_empty() {
                    None
                } else {
                    Some((
                        decode(url.username())?,
                        decode(url.password().unwrap_or(""))?,
                    ))
                };
                let tls = Self::tls(&url, implicit_tls, credentials.is_some())?;
                Ok(Self::Smtp {
                    host,
                    port,
                    tls,
                    credentials,
                })
            }
            "file" => {
                let path = url
                    .to_file_path()
                    .map_err(|()| "file:// needs an absolute directory path".to_owned())?;
                Ok(Self::File(path))
            }
            other => Err(format!(
                "unsupported scheme {other:?}; use smtp://, smtps:// or file://"
            )),
        }
    }
}

impl MailUrl {
    /// The encryption `url` asks for: its `tls` parameter (`none` or
    /// `required`), else what the scheme and credentials call for.
    fn tls(url: &url::Url, implicit: bool, credentials: bool) -> Result<SmtpTls, String> {
        let mut asked = None;
        for (key, value) in url.query_pairs() {
            match (key.as_ref(), value.as_ref()) {
                ("tls", "none") => asked = Some(SmtpTls::None),
                ("tls", "required" | "starttls") => asked = Some(SmtpTls::Required),
                ("tls", other) => {
                    return Err(format!(
                        "tls={other:?} is not a choice: use tls=none (no encryption, for a \
                         local mail catcher) or tls=required"
                    ));
                }
                (other, _) => return Err(format!("has an unknown parameter {other:?}")),
            }
        }
        match (implicit, asked) {
            (true, None) => Ok(SmtpTls::Implicit),
            (true, Some(_)) => Err("smtps:// is always encrypted; drop its tls parameter".into()),
            (false, Some(tls)) => Ok(tls),
            (false, None) if credentials => Ok(SmtpTls::Required),
            (false, None) => Ok(SmtpTls::Opportunistic),
        }
    }
}

fn percent_encoding_decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

impl fmt::Debug for MailUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Smtp {
                host,
                port,
                tls,
                credentials,
            } => f
                .debug_struct("Smtp")
                .field("host", host)
                .field("port", port)
                .field("tls", tls)
                .field("credentials", &credentials.as_ref().map(|_| "<redacted>"))
                .finish(),
            Self::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("could not build the email: {0}")]
    Build(#[from] lettre::error::Error),
    #[error("SMTP delivery failed: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    #[error("writing the .eml file failed: {0}")]
    File(String),
}

impl SendError {
    /// A short class for the outbox row and the log; never the server's own
    /// text, which may quote addresses.
    pub fn class(&self) -> &'static str {
        match self {
            Self::Build(_) => "build",
            Self::Smtp(error) if error.is_permanent() => "smtp_permanent",
            Self::Smtp(error) if error.is_transient() => "smtp_transient",
            Self::Smtp(error) if error.is_tls() => "smtp_tls",
            Self::Smtp(error) if error.is_timeout() => "smtp_timeout",
            // lettre's own words (not the server's) for a STARTTLS the
            // configuration requires and the server does not offer.
            Self::Smtp(error) if error.is_client() && error.to_string().contains("STARTTLS") => {
                "smtp_starttls_unavailable"
            }
            Self::Smtp(_) => "smtp_connection",
            Self::File(_) => "file",
        }
    }
}

/// Sends messages over the configured transport.
#[derive(Clone)]
pub struct Mailer {
    transport: Transport,
    pub from: Mailbox,
}

#[derive(Clone)]
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    File(PathBuf),
}

/// A mail server that does not answer within this is treated as down; the
/// email is retried later.
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

impl Mailer {
    pub fn new(url: &MailUrl, from: Mailbox) -> Result<Self, String> {
        let transport = match url {
            MailUrl::Smtp {
                host,
                port,
                tls,
                credentials,
            } => {
                let parameters = || {
                    TlsParameters::new(host.clone())
                        .map_err(|_| "cannot set up TLS for this host".to_owned())
                };
                let tls = match tls {
                    SmtpTls::Implicit => Tls::Wrapper(parameters()?),
                    SmtpTls::Required => Tls::Required(parameters()?),
                    SmtpTls::Opportunistic => Tls::Opportunistic(parameters()?),
                    SmtpTls::None => Tls::None,
                };
                let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
                    .port(*port)
                    .tls(tls)
                    .timeout(Some(SMTP_TIMEOUT));
                if let Some((user, pass)) = credentials {
                    builder = builder.credentials(Credentials::new(user.clone(), pass.clone()));
                }
                Transport::Smtp(builder.build())
            }
            MailUrl::File(dir) => Transport::File(dir.clone()),
        };
        Ok(Self { transport, from })
    }

    pub async fn send(&self, message: Message) -> Result<(), SendError> {
        match &self.transport {
            Transport::Smtp(smtp) => {
                smtp.send(message).await?;
            }
            Transport::File(dir) => {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| SendError::File(e.kind().to_string()))?;
                AsyncFileTransport::<Tokio1Executor>::new(dir)
                    .send(message)
                    .await
                    .map_err(|e| SendError::File(e.to_string()))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_parse_with_credentials_and_default_ports() {
        assert_eq!(
            MailUrl::parse("smtp://me%40x.test:p%40ss@mail.test:2525").unwrap(),
            MailUrl::Smtp {
                host: "mail.test".into(),
                port: 2525,
                tls: SmtpTls::Required,
                credentials: Some(("me@x.test".into(), "p@ss".into())),
            }
        );
        assert_eq!(
            MailUrl::parse("smtps://mail.test").unwrap(),
            MailUrl::Smtp {
                host: "mail.test".into(),
                port: 465,
                tls: SmtpTls::Implicit,
                credentials: None,
            }
        );
        let tls = |raw: &str| match MailUrl::parse(raw) {
            Ok(MailUrl::Smtp { tls, .. }) => Ok(tls),
            Ok(MailUrl::File(_)) => unreachable!(),
            Err(error) => Err(error),
        };
        assert_eq!(tls("smtp://mail.test"), Ok(SmtpTls::Opportunistic));
        assert_eq!(tls("smtp://u:p@mail.test"), Ok(SmtpTls::Required));
        assert_eq!(tls("smtp://u:p@mail.test?tls=none"), Ok(SmtpTls::None));
        assert_eq!(tls("smtp://mail.test?tls=required"), Ok(SmtpTls::Required));
        for refused in [
            "smtps://mail.test?tls=none",
            "smtp://mail.test?tls=maybe",
            "smtp://mail.test?auth=plain",
        ] {
            assert!(tls(refused).is_err(), "{refused}");
        }
        assert_eq!(
            MailUrl::parse("file:///tmp/mail").unwrap(),
            MailUrl::File("/tmp/mail".into())
        );
    }

    #[test]
    fn bad_mail_urls_are_refused_without_echoing_the_password() {
        for bad in [
            "http://x",
            "smtp://",
            "file://relative/dir",
            "nonsense",
            "smtp://u:secretpw@",
        ] {
            let error = MailUrl::parse(bad).unwrap_err();
            assert!(!error.contains("secretpw"), "{error}");
        }
        let debug = format!("{:?}", MailUrl::parse("smtp://u:secretpw@h:1").unwrap());
        assert!(!debug.contains("secretpw"), "{debug}");
    }
}
