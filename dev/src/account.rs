//! `cargo dev account <email | user id> [show | restore | resend-link | hold
//! <reason> | release | erase-now | export [--out <file>]]`: support's actions for an operator with
//! database access, through the very calls the admin route makes
//! ([`account_deletion::lifecycle::support`]), with mail and webhook settings read as
//! the functions read them. It needs no `ADMIN_SECRET`. The account is
//! resolved as the route resolves it ([`account_deletion::lifecycle::support::resolve`]): an id
//! normalized, an address exact first, then folded, never one of several.

use account_deletion::lifecycle::support::resolve::Who;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use account_deletion::lifecycle::export::Manifest;
use account_deletion::lifecycle::support::{AccountView, Action, HoldReason, Refused, Support};
use account_deletion::platform::web;

pub const USAGE: &str = "usage: cargo dev account <email | user id> [show | restore | resend-link | hold <reason> | release | erase-now | export [--out <file>]]";

/// What an operator asked for: one of support's actions, or the archive
/// written to a file.
pub enum Command {
    Act(Action),
    Export { out: Option<String> },
}

/// The account (an address has an `@`) and the command.
pub fn parse(who: &str, rest: &[&str]) -> anyhow::Result<(Who, Command)> {
    let command = match rest {
        ["export"] => Command::Export { out: None },
        ["export", "--out", file] => Command::Export {
            out: Some((*file).to_owned()),
        },
        _ => Command::Act(parse_action(rest)?),
    };
    Ok((parse_who(who), command))
}

/// An address has an `@`; anything else is an id.
pub fn parse_who(who: &str) -> Who {
    if who.contains('@') {
        Who::Email(who.to_owned())
    } else {
        Who::Id(who.to_owned())
    }
}

fn parse_action(rest: &[&str]) -> anyhow::Result<Action> {
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
    Ok(command)
}

/// Writes the archive of the account `who` names (an address or an id) to
/// `out`, or to the name the archive gives itself in the current
/// directory; returns where, and its manifest. A file cut short by an
/// error is removed.
pub async fn write_archive(
    support: &Support,
    who: &str,
    out: Option<&Path>,
) -> anyhow::Result<(PathBuf, Manifest)> {
    let snapshot = match support.open_archive(&parse_who(who)).await? {
        Ok(snapshot) => snapshot,
        Err(refused) => anyhow::bail!("{}: {}", refused.code(), refused.message()),
    };
    let path = out.map_or_else(|| PathBuf::from(snapshot.file_name()), Path::to_path_buf);
    // Never over an existing file: a wrong `--out` must not destroy one.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|error| anyhow::anyhow!("cannot create {}: {error}", path.display()))?;
    let (sink, body) = web::channel();
    let streaming = tokio::spawn(snapshot.stream(sink));
    let written = copy_to_file(body, tokio::fs::File::from_std(file)).await;
    let archived = streaming.await?;
    match (written, archived) {
        (Ok(()), Ok(manifest)) => {
            support.record_exported(&manifest.user_id).await?;
            Ok((path, manifest))
        }
        (written, archived) => {
            // The file is ours (made above): an incomplete one goes.
            let _ = std::fs::remove_file(&path);
            written?;
            archived?;
            unreachable!("one of the two failed")
        }
    }
}

async fn copy_to_file(mut body: web::Streamed, mut file: tokio::fs::File) -> anyhow::Result<()> {
    use http_body_util::BodyExt;
    use tokio::io::AsyncWriteExt;
    while let Some(frame) = body.frame().await {
        if let Ok(chunk) = frame?.into_data() {
            file.write_all(&chunk).await?;
        }
    }
    file.flush().await?;
    Ok(())
}

/// What `export` prints: where the archive is, and each file's rows (from
/// the manifest, as JSON: it may come from the dev server).
pub fn describe(path: &Path, manifest: &serde_json::Value) -> String {
    let mut text = format!("{}\n", path.display());
    for table in manifest["tables"].as_array().into_iter().flatten() {
        let _ = writeln!(
            text,
            "  {:>10} rows  {}",
            table["rows"].as_u64().unwrap_or_default(),
            table["file"].as_str().unwrap_or_default()
        );
    }
    text
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
