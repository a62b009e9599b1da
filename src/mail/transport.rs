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
    /// `smtp://` (STARTTLS when the server offers it) or `smtps://`
    /// (implicit TLS), with optional `user:pass@`.
    Smtp {
        host: String,
        port: u16,
        implicit_tls: bool,
        credentials: Option<(String, String)>,
    },
    /// `file:///abs/dir`: one `.eml` file per message.
    File(PathBuf),
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
                Ok(Self::Smtp {
                    host,
                    port,
                    implicit_tls,
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
                implicit_tls,
                credentials,
            } => f
                .debug_struct("Smtp")
                .field("host", host)
                .field("port", port)
                .field("implicit_tls", implicit_tls)
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
    /// A short class for the outbox row; never the server's own text, which
    /// may quote addresses.
    pub fn class(&self) -> &'static str {
        match self {
            Self::Build(_) => "build",
            Self::Smtp(error) if error.is_permanent() => "smtp_permanent",
            Self::Smtp(error) if error.is_transient() => "smtp_transient",
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
                implicit_tls,
                credentials,
            } => {
                let tls_parameters = TlsParameters::new(host.clone())
                    .map_err(|_| "cannot set up TLS for this host".to_owned())?;
                let tls = if *implicit_tls {
                    Tls::Wrapper(tls_parameters)
                } else {
                    Tls::Opportunistic(tls_parameters)
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
                implicit_tls: false,
                credentials: Some(("me@x.test".into(), "p@ss".into())),
            }
        );
        assert_eq!(
            MailUrl::parse("smtps://mail.test").unwrap(),
            MailUrl::Smtp {
                host: "mail.test".into(),
                port: 465,
                implicit_tls: true,
                credentials: None,
            }
        );
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
