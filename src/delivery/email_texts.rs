//! What each email of the outbox says, as plain text and as simple HTML (no images, readable
//! with either part alone). Every dynamic value in the HTML is escaped.

use chrono::{DateTime, Utc};

use crate::platform::html::escape;
use crate::schema::sql::DOWNLOADS_PER_LINK;

pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

fn date(at: DateTime<Utc>) -> String {
    at.format("%-d %B %Y at %H:%M UTC").to_string()
}

fn html_body(paragraphs: &[String]) -> String {
    let mut body = String::from(
        "<!doctype html><html><body style=\"font-family:sans-serif;line-height:1.5;color:#1a1a1a;max-width:36rem\">",
    );
    for p in paragraphs {
        body.push_str(p);
    }
    body.push_str("</body></html>");
    body
}

fn link_paragraph(link: &str, label: &str) -> String {
    let link = escape(link);
    format!(
        "<p><a href=\"{link}\" style=\"font-weight:bold\">{label}</a></p>\
         <p style=\"font-size:0.9em;color:#555\">Or paste this address into your browser:<br>{link}</p>"
    )
}

/// What the deletion's emails say about the user's copy of their data.
const DOWNLOAD_TEXT: &str = "You can download a copy of your data: sign in and choose \
     \"Download your data\", and we email you a link. This works";

/// Sent when the user deletes their account.
pub fn recovery(link: &str, purge_after: DateTime<Utc>) -> Rendered {
    let when = date(purge_after);
    let text = format!(
        "Your account has been deleted.\n\n\
         You were signed out everywhere. Your account and its data will be erased for good on {when}.\n\n\
         Changed your mind? Restore your account before then:\n{link}\n\n\
         The link works once. Restoring does not sign you in; sign in again afterwards.\n\n\
         {DOWNLOAD_TEXT} until {when}.\n\n\
         If you did not delete your account, restore it with the link above, then sign in \
         and change your password.\n"
    );
    let html = html_body(&[
        "<h1 style=\"font-size:1.3em\">Your account has been deleted</h1>".to_owned(),
        format!(
            "<p>You were signed out everywhere. Your account and its data will be erased for good on <strong>{}</strong>.</p>",
            escape(&when)
        ),
        "<p>Changed your mind? Restore your account before then:</p>".to_owned(),
        link_paragraph(link, "Restore my account"),
        "<p>The link works once. Restoring does not sign you in; sign in again afterwards.</p>".to_owned(),
        format!("<p>{} until {}.</p>", escape(DOWNLOAD_TEXT), escape(&when)),
        "<p>If you did not delete your account, restore it with the link above, then sign in and change your password.</p>".to_owned(),
    ]);
    Rendered {
        subject: "Your account has been deleted".to_owned(),
        text,
        html,
    }
}

/// Sent a few days before the purge, with a fresh link.
pub fn reminder(link: &str, purge_after: DateTime<Utc>) -> Rendered {
    let when = date(purge_after);
    let text = format!(
        "Your deleted account will be erased for good on {when}.\n\n\
         After that it cannot be restored. To keep it, restore it now:\n{link}\n\n\
         This link replaces the one we sent when you deleted your account; that one no longer works.\n\n\
         {DOWNLOAD_TEXT} until {when}.\n\n\
         If you meant to delete your account, there is nothing to do.\n"
    );
    let html = html_body(&[
        format!(
            "<h1 style=\"font-size:1.3em\">Your account will be erased on {}</h1>",
            escape(&when)
        ),
        "<p>After that it cannot be restored. To keep it, restore it now:</p>".to_owned(),
        link_paragraph(link, "Restore my account"),
        "<p>This link replaces the one we sent when you deleted your account; that one no longer works.</p>".to_owned(),
        format!("<p>{} until {}.</p>", escape(DOWNLOAD_TEXT), escape(&when)),
        "<p>If you meant to delete your account, there is nothing to do.</p>".to_owned(),
    ]);
    Rendered {
        subject: format!(
            "Your account will be erased on {}",
            purge_after.format("%-d %B %Y")
        ),
        text,
        html,
    }
}

/// Sent when the user (or support for them) asks for a copy of their data.
pub fn export(link: &str, expires_at: DateTime<Utc>) -> Rendered {
    let until = date(expires_at);
    let text = format!(
        "Your data is ready to download.\n\n\
         Download a copy of your account's data (a ZIP file of JSON files) here:\n{link}\n\n\
         The link works until {until}, for up to {DOWNLOADS_PER_LINK} downloads. Do not forward this email: \
         whoever has the link can download your data.\n\n\
         If you did not ask for this, you can ignore this email; nobody can use the link \
         without access to your mailbox.\n"
    );
    let html = html_body(&[
        "<h1 style=\"font-size:1.3em\">Your data is ready to download</h1>".to_owned(),
        "<p>Download a copy of your account's data (a ZIP file of JSON files):</p>".to_owned(),
        link_paragraph(link, "Download your data"),
        format!(
            "<p>The link works until <strong>{}</strong>, for up to {DOWNLOADS_PER_LINK} downloads. Do not forward this email: whoever has the link can download your data.</p>",
            escape(&until)
        ),
        "<p>If you did not ask for this, you can ignore this email; nobody can use the link without access to your mailbox.</p>".to_owned(),
    ]);
    Rendered {
        subject: "Your data is ready to download".to_owned(),
        text,
        html,
    }
}

/// Sent after a recovery.
pub fn restored() -> Rendered {
    let text = "Your account has been restored.\n\n\
                It will not be erased. Sign in again to use it; you were signed out when it was deleted.\n\n\
                If you did not restore it yourself, sign in and change your password.\n"
        .to_owned();
    let html = html_body(&[
        "<h1 style=\"font-size:1.3em\">Your account has been restored</h1>".to_owned(),
        "<p>It will not be erased. Sign in again to use it; you were signed out when it was deleted.</p>".to_owned(),
        "<p>If you did not restore it yourself, sign in and change your password.</p>".to_owned(),
    ]);
    Rendered {
        subject: "Your account has been restored".to_owned(),
        text,
        html,
    }
}

/// Sent after the purge, when the app turned it on (`SEND_ERASED_EMAIL`).
pub fn erased() -> Rendered {
    let text = "Your account has been erased.\n\n\
                As you asked, your account and the data it held are now deleted for good; \
                this cannot be undone.\n\n\
                This is the last email we send you: your address was kept only to send it, \
                and it is deleted now.\n"
        .to_owned();
    let html = html_body(&[
        "<h1 style=\"font-size:1.3em\">Your account has been erased</h1>".to_owned(),
        "<p>As you asked, your account and the data it held are now deleted for good; this cannot be undone.</p>".to_owned(),
        "<p>This is the last email we send you: your address was kept only to send it, and it is deleted now.</p>".to_owned(),
    ]);
    Rendered {
        subject: "Your account has been erased".to_owned(),
        text,
        html,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_escaped_in_html_and_verbatim_in_text() {
        let link = "https://app.test/api/account/recover?token=a&b=<x>";
        let email = recovery(link, Utc::now());
        assert!(email.text.contains(link));
        assert!(email.html.contains("token=a&amp;b=&lt;x&gt;"));
        assert!(!email.html.contains("<x>"));
    }

    #[test]
    fn the_deletion_and_the_reminder_say_the_data_can_be_downloaded_until_the_purge() {
        let purge = chrono::DateTime::parse_from_rfc3339("2027-01-05T02:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        for email in [
            recovery("https://app.test/r", purge),
            reminder("https://app.test/r", purge),
        ] {
            for part in [&email.text, &email.html] {
                assert!(part.contains("download a copy of your data"), "{part}");
                assert!(part.contains("until 5 January 2027 at 02:00 UTC"), "{part}");
                assert!(part.contains("sign in"), "{part}");
            }
        }
        let export = export("https://app.test/api/account/export?token=t", purge);
        assert!(
            export
                .text
                .contains("https://app.test/api/account/export?token=t")
        );
        assert!(export.text.contains("3 downloads"));
    }
}
