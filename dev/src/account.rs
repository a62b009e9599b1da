//! `cargo dev account <email | user id> [show | restore | resend-link | hold
//! <reason> | release | erase-now]`: support's actions for an operator with
//! database access, through the very calls the admin route makes
//! ([`account_deletion::support`]), with mail and webhook settings read as
//! the functions read them. It needs no `ADMIN_SECRET`. The account is
//! resolved as the route resolves it ([`account_deletion::resolve`]): an id
//! normalized, an address exact first, then folded, never one of several.

use account_deletion::resolve::Who;
use account_deletion::support::{AccountView, Action, HoldReason, Refused, Support};

pub const USAGE: &str = "usage: cargo dev account <email | user id> [show | restore | resend-link | hold <reason> | release | erase-now]";

/// The account (an address has an `@`) and the command.
pub fn parse(who: &str, rest: &[&str]) -> anyhow::Result<(Who, Action)> {
    let who = if who.contains('@') {
        Who::Email(who.to_owned())
    } else {
        Who::Id(who.to_owned())
    };
    let command = match rest {
        [] | ["show"] => Action::Show,
        ["restore"] => Action::Restore,
        ["resend-link"] => Action::ResendRecoveryLink,
        ["hold", reason] => Action::Hold(HoldReason::parse(reason).ok_or_else(|| {
            anyhow::anyhow!(
                "a hold's reason is a short code, [a-z0-9_-]{{1,40}}, such as legal_hold"
            )
        })?),
        ["release"] => Action::Release,
        ["erase-now"] => Action::EraseNow,
        _ => anyhow::bail!("{USAGE}"),
    };
    Ok((who, command))
}

/// Runs `action` and waits for what it sends (its email, its event); the
/// account as the admin route's `GET` shows it, or why not.
pub async fn run(support: &Support, who: &Who, action: &Action) -> anyhow::Result<AccountView> {
    match support.act(who, action).await?.outcome {
        Ok(acted) => {
            let sql = support.statements().await?;
            support.deliver(sql, acted.sends).await;
            Ok(acted.view)
        }
        Err(refused) => {
            // Several accounts for one address: their ids, to pick one by.
            let ids = match &refused {
                Refused::Ambiguous(ids) => format!(" ({})", ids.join(", ")),
                _ => String::new(),
            };
            anyhow::bail!("{}: {}{ids}", refused.code(), refused.message())
        }
    }
}
