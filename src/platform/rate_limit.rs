//! Failed recovery attempts per client, counted in the database because
//! function instances share nothing.
//!
//! Only failures are counted, and only further failures are refused: a
//! valid token restores whatever its client's count (the route tries the
//! token first), so a neighbour behind the same address (a NAT, a corporate
//! proxy) cannot lock the owner out of their own account. Recovery tokens
//! are 256 bits; the limit only caps the load a guesser can make.
//!
//! A client is the address Vercel puts in `x-real-ip` / `x-forwarded-for`:
//! an IPv4 address, or an IPv6 address's /64 (one subscriber's prefix, which
//! its holder can cycle through at will). It is stored only as an HMAC under
//! a key of this deployment's (`account_deletion.server_keys`), so a copy of
//! the table does not give the addresses back (a bare hash of an IPv4
//! address is one lookup in a table of all four billion).

use std::net::{IpAddr, Ipv6Addr};
use std::sync::LazyLock;

use http::HeaderMap;
use ring::hmac;
use sqlx::{PgConnection, PgPool};
use tokio::sync::OnceCell;

use crate::platform::db::{self, Limits, Statement};

/// At most this many failures per client per window; the next ones get 429.
pub const MAX_FAILURES: i32 = 20;
pub const WINDOW_SECONDS: i32 = 15 * 60;

/// Who is asking, as far as the edge tells us: `203.0.113.7`,
/// `2001:db8:1:2::/64`, or the header as sent when it is not an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddress(String);

impl ClientAddress {
    pub fn of(headers: &HeaderMap) -> Self {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let raw = header("x-real-ip")
            .or_else(|| {
                header("x-forwarded-for")
                    .and_then(|v| v.split(',').next())
                    .map(str::trim)
            })
            .unwrap_or("unknown");
        Self(match raw.parse::<IpAddr>() {
            Ok(IpAddr::V4(v4)) => v4.to_string(),
            Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => format!("{}/64", prefix_64(v6)),
            },
            Err(_) => raw.to_owned(),
        })
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn prefix_64(address: Ipv6Addr) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(address) & !u128::from(u64::MAX))
}

/// The failure counter of one route instance: the deployment's key, read
/// from the database on the first failure and kept.
#[derive(Debug, Default)]
pub struct Limiter {
    key: OnceCell<hmac::Key>,
}

impl Limiter {
    /// Counts one failure of `client` (starting a new window when its last
    /// one has passed, and forgetting every other client's window that has
    /// passed, so the table holds only the last window's clients). Returns
    /// the seconds until the window ends when the client is now over the
    /// limit: this failure is refused with 429.
    pub async fn record_failure(
        &self,
        pool: &PgPool,
        client: &ClientAddress,
    ) -> Result<Option<u64>, sqlx::Error> {
        let key = self
            .key
            .get_or_try_init(|| async {
                let (key,): (Vec<u8>,) = KEY
                    .fetch_optional(&mut *pool.acquire().await?, &Limits::ACCOUNT, &[])
                    .await?
                    .ok_or(sqlx::Error::RowNotFound)?;
                Ok::<_, sqlx::Error>(hmac::Key::new(hmac::HMAC_SHA256, &key))
            })
            .await?;
        let client_hash = hmac::sign(key, client.as_str().as_bytes());
        let over: Option<(f64,)> = RECORD_FAILURE
            .fetch_optional(
                &mut *pool.acquire().await?,
                &Limits::ACCOUNT,
                &[
                    client_hash.as_ref().into(),
                    f64::from(WINDOW_SECONDS).into(),
                    MAX_FAILURES.into(),
                ],
            )
            .await?;
        Ok(over.map(|(seconds,)| seconds.ceil().max(1.0) as u64))
    }
}

static KEY: LazyLock<Statement> = LazyLock::new(|| {
    Statement::new("select key from account_deletion.server_keys where name = 'rate_limit'")
});

/// `$1` the client's HMAC, `$2` the window in seconds, `$3` the limit;
/// a row (the seconds left in the window) only when the client is over it.
static RECORD_FAILURE: LazyLock<Statement> = LazyLock::new(|| {
    Statement::new(
        "with pruned as (
             delete from account_deletion.recovery_failures
             where window_started_at <= now() - make_interval(secs => $2) and client_hash <> $1
         ), counted as (
             insert into account_deletion.recovery_failures as f (client_hash, window_started_at, failures)
             values ($1, now(), 1)
             on conflict (client_hash) do update set
                 failures = case when f.window_started_at <= now() - make_interval(secs => $2)
                                 then 1 else f.failures + 1 end,
                 window_started_at = case when f.window_started_at <= now() - make_interval(secs => $2)
                                          then now() else f.window_started_at end
             returning failures, window_started_at
         )
         select extract(epoch from window_started_at + make_interval(secs => $2) - now())::float8
         from counted where failures > $3",
    )
});

/// Forgets windows that have passed; the email sweep calls it, inside its
/// own transaction (failures prune as they are written, too).
pub async fn prune(conn: &mut PgConnection) -> Result<u64, sqlx::Error> {
    Ok(db::query(
        "delete from account_deletion.recovery_failures where window_started_at <= now() - make_interval(secs => $1)",
    )
    .bind(f64::from(WINDOW_SECONDS))
    .execute(conn)
    .await?
    .rows_affected())
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn address(name: &'static str, value: &str) -> String {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(value).unwrap());
        ClientAddress::of(&headers).0
    }

    #[test]
    fn ipv6_clients_are_their_64_and_ipv4_their_address() {
        assert_eq!(address("x-real-ip", "203.0.113.7"), "203.0.113.7");
        assert_eq!(
            address("x-forwarded-for", "2001:db8:1:2:aaaa::1, 10.0.0.1"),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            address("x-real-ip", "2001:db8:1:2:ffff:ffff:ffff:ffff"),
            address("x-real-ip", "2001:db8:1:2::9")
        );
        assert_ne!(
            address("x-real-ip", "2001:db8:1:3::1"),
            address("x-real-ip", "2001:db8:1:2::1")
        );
        assert_eq!(address("x-real-ip", "::ffff:192.0.2.1"), "192.0.2.1");
        assert_eq!(address("x-real-ip", "not an address"), "not an address");
        assert_eq!(ClientAddress::of(&HeaderMap::new()).0, "unknown");
    }
}
