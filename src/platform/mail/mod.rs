//! Outgoing email: where it goes (`MAIL_URL`), who it is from (`MAIL_FROM`),
//! and what each email says.
//!
//! It imports only `platform::html` (the escaping).

mod templates;
mod transport;

pub use templates::{Rendered, erased, export, recovery, reminder, restored};
pub use transport::{MailUrl, Mailer, SendError, SmtpTls};
