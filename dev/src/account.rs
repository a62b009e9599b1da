//! `cargo dev account <email | user id> [show | restore | resend-link | hold
//! <reason> | release | erase-now]`: support's actions for an operator with
//! database access, through the very calls the admin route makes
//! ([`account_deletion::support`]), with mail and webhook settings read as
//! the functions read them. It needs no `ADMIN_SECRET`.

use account_deletion::support::{AccountView, Action, HoldReason, Support, Who};

/// What the operator asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Show,
    Act(Action),
}

pub const USAGE: &str = "usage: cargo dev account <email | user id> [show | restore | resend-link | hold <reason> | release | erase-now]";

/// The account (an address has an `@`) and the command.
pub fn parse(who: &str, rest: &[&str]) -> anyhow::Result<(Who, Command)> {
    let who = if who.contains('@') {
        Who::Email(who.to_owned())
    } else {
        Who::Id(who.to_owned())
    };
    let command = match rest {
        [] | ["show"] => Command::Show,
        ["restore"] => Command::Act(Action::Restore),
        ["resend-link"] => Command::Act(Action::ResendRecoveryLink),
        ["hold", reason] => Command::Act(Action::Hold(HoldReason::parse(reason).ok_or_else(
            || {
                anyhow::anyhow!(
                    "a hold's reason is a short code, [a-z0-9_-]{{1,40}}, such as legal_hold"
                )
            },
        )?)),
        ["release"] => Command::Act(Action::Release),
        ["erase-now"] => Command::Act(Action::EraseNow),
        _ => anyhow::bail!("{USAGE}"),
    };
    Ok((who, command))
}

/// Runs `command` and waits for what it sends (its email, its event); the
/// account as the admin route's `GET` shows it, or why not.
pub async fn run(support: &Support, who: &Who, command: &Command) -> anyhow::Result<AccountView> {
    match command {
        Command::Show => support
            .find(who)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no such account, and no record of one")),
        Command::Act(action) => match support.act(who, action).await? {
            Ok(acted) => {
                let sql = support.statements().await?;
                support.deliver(sql, acted.sends).await;
                Ok(acted.view)
            }
            Err(refused) => anyhow::bail!("{}: {}", refused.code(), refused.message()),
        },
    }
}
