//! The export's statements on the app's users table: the account a request
//! is for, and the links' checks (each joins the account, so a link dies
//! with its account, and with its anonymization).
//!
//! What an archive reads of the app's other tables is not here: it is
//! rendered for each download from the catalog read in the download's own
//! snapshot ([`crate::lifecycle::export::tables`]), so that a column added since the
//! process started is excluded by the same rules.

use super::Names;

/// How many downloads one link serves.
pub const DOWNLOADS_PER_LINK: i32 = 3;

#[derive(Debug)]
pub struct ExportStatements {
    /// User `$1`'s id and address (null when it has none), shared-locked,
    /// unless it is anonymized.
    pub account: String,
    /// Counts a download of link `$1` (a token's hash) if it is live and
    /// its account is here and not anonymized; returns the user's id.
    pub redeem: String,
    /// Link `$1`'s expiry and downloads left, if it would serve one now.
    pub link: String,
    /// Gives link email `$1`'s link the token hash `$2` (a retried
    /// email's fresh token), if it is still the account's current,
    /// unexpired link and its account is here; returns its expiry.
    pub relink: String,
}

impl ExportStatements {
    pub(super) fn render(t: &Names) -> Self {
        let users = &t.users;
        let not_anonymized = t.not_anonymized("u");
        let live = format!(
            "e.expires_at > now() and e.downloads < {DOWNLOADS_PER_LINK}
           and {is_user} and {not_anonymized}",
            is_user = t.is_user("u", "e.user_id"),
        );
        Self {
            account: format!(
                "select {id}, {address} from {users} u
                 where {is_user} and {not_anonymized}
                 for share of u",
                id = t.id_text("u"),
                address = t.address_of("u"),
                is_user = t.is_user("u", "$1"),
            ),
            redeem: format!(
                "update account_deletion.exports e set downloads = e.downloads + 1
                 from {users} u
                 where e.token_hash = $1 and {live}
                 returning e.user_id"
            ),
            link: format!(
                "select e.expires_at, {DOWNLOADS_PER_LINK} - e.downloads
                 from account_deletion.exports e, {users} u
                 where e.token_hash = $1 and {live}"
            ),
            relink: format!(
                "update account_deletion.exports e set token_hash = $2
                 from {users} u
                 where e.outbox_id = $1 and {live}
                 returning e.expires_at"
            ),
        }
    }
}
