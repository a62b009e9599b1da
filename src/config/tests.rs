use std::collections::HashMap;
use std::time::Duration;

use super::*;
use crate::auth::{JwtSettings, KeySource, SessionAuth};

fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

const GOOD: &[(&str, &str)] = &[
    ("DATABASE_URL", "postgres://app:pw@localhost:5432/app"),
    ("CRON_SECRET", "0123456789abcdef"),
];

#[test]
fn a_minimal_environment_gets_the_defaults() {
    let config = CronConfig::from_lookup(&lookup(GOOD)).unwrap();
    assert_eq!(config.retention, RetentionDays::DEFAULT);
    assert_eq!(config.purge, PurgeSettings::default());
}

#[test]
fn every_keep_has_a_default_a_range_and_names_itself_when_out_of_it() {
    let keep = CronConfig::from_lookup(&lookup(GOOD)).unwrap().purge.keep;
    assert_eq!(keep, Keep::default());
    for (name, low, high) in [
        ("KEEP_DELIVERED_DAYS", "0", "3651"),
        // Below the status route's window of given-up deliveries.
        ("KEEP_FAILED_DAYS", "6", "3651"),
        ("KEEP_TOMBSTONES_DAYS", "29", "3651"),
        ("KEEP_PURGE_RUNS_DAYS", "6", "3651"),
        ("KEEP_EXPIRED_SESSIONS_DAYS", "-1", "3651"),
    ] {
        for bad in [low, high, "soon", ""] {
            let mut vars = GOOD.to_vec();
            vars.push((name, bad));
            let errors = CronConfig::from_lookup(&lookup(&vars)).unwrap_err();
            assert_eq!(errors.0.len(), 1, "{name}={bad:?}");
            assert_eq!(errors.0[0].variable(), name);
        }
        let mut vars = GOOD.to_vec();
        vars.push((name, "3650"));
        assert!(CronConfig::from_lookup(&lookup(&vars)).is_ok(), "{name}");
    }
    let mut vars = GOOD.to_vec();
    vars.push(("KEEP_FAILED_DAYS", "90"));
    assert_eq!(
        CronConfig::from_lookup(&lookup(&vars))
            .unwrap()
            .purge
            .keep
            .failed_days,
        90
    );
}

#[test]
fn retention_days_accepts_its_range_and_names_itself_otherwise() {
    for (raw, ok) in [
        ("1", true),
        ("3650", true),
        ("0", false),
        ("3651", false),
        ("-1", false),
        ("30.5", false),
        ("", false),
        ("thirty", false),
    ] {
        let mut vars = GOOD.to_vec();
        vars.push(("RETENTION_DAYS", raw));
        let result = CronConfig::from_lookup(&lookup(&vars));
        match (ok, result) {
            (true, Ok(config)) => assert_eq!(config.retention.days().to_string(), raw),
            (false, Err(errors)) => {
                assert_eq!(errors.0.len(), 1);
                assert_eq!(errors.0[0].variable(), "RETENTION_DAYS");
            }
            (ok, result) => panic!("{raw:?}: expected ok={ok}, got {result:?}"),
        }
    }
}

#[test]
fn mail_settings_parse_a_named_sender_and_every_transport() {
    for from in [
        "no-reply@localhost",
        "Account Deletion Dev <no-reply@localhost>",
        "\"App, Inc.\" <a@b.test>",
    ] {
        for url in [
            "smtp://u:p@mail.test:587",
            "smtps://mail.test",
            "file:///tmp/mail",
        ] {
            let mut vars = GOOD.to_vec();
            vars.extend([
                ("MAIL_FROM", from),
                ("MAIL_URL", url),
                ("APP_URL", "https://app.test/"),
            ]);
            let config = AccountConfig::from_lookup(&lookup(&vars));
            assert!(config.is_ok(), "{from} {url}: {:?}", config.err());
        }
    }
}

#[test]
fn every_bad_variable_is_reported_by_name_at_once() {
    let errors = CronConfig::from_lookup(&lookup(&[
        ("DATABASE_URL", "mysql://nope"),
        ("CRON_SECRET", "short"),
        ("PURGE_BATCH_SIZE", "0"),
        ("PURGE_BATCH_TARGET_MS", "fast"),
    ]))
    .unwrap_err();
    let names: Vec<_> = errors.0.iter().map(ConfigError::variable).collect();
    assert_eq!(
        names,
        [
            "DATABASE_URL",
            "CRON_SECRET",
            "PURGE_BATCH_SIZE",
            "PURGE_BATCH_TARGET_MS"
        ]
    );
}

#[test]
fn a_batch_target_of_zero_means_fixed_size_batches() {
    let purge = |target: &str| {
        let mut vars = GOOD.to_vec();
        vars.push(("PURGE_BATCH_TARGET_MS", target));
        CronConfig::from_lookup(&lookup(&vars)).map(|c| c.purge.batch_target)
    };
    assert_eq!(purge("0").unwrap(), None);
    assert_eq!(purge("35").unwrap(), Some(Duration::from_millis(35)));
    assert!(purge("10001").is_err());
    assert_eq!(
        PurgeSettings::default().batch_target,
        Some(Duration::from_millis(20))
    );
}

fn account_with(extra: &[(&str, &str)]) -> Result<AccountConfig, ConfigErrors> {
    let mut vars = GOOD.to_vec();
    vars.extend([
        ("MAIL_FROM", "no-reply@app.test"),
        ("MAIL_URL", "file:///tmp/mail"),
        ("APP_URL", "https://app.test"),
    ]);
    vars.extend_from_slice(extra);
    AccountConfig::from_lookup(&lookup(&vars))
}

fn variables(result: Result<AccountConfig, ConfigErrors>) -> Vec<&'static str> {
    result
        .unwrap_err()
        .0
        .iter()
        .map(ConfigError::variable)
        .collect()
}

#[test]
fn each_token_mode_names_the_variable_it_lacks() {
    assert_eq!(
        variables(account_with(&[("SESSION_AUTH", "authjs-jwt")])),
        ["AUTH_SECRET"]
    );
    assert_eq!(
        variables(account_with(&[("SESSION_AUTH", "jwt")])),
        ["JWT_ISSUER", "JWT_AUDIENCE", "JWT_JWKS_URL"]
    );
    // The audience is required; `none` waives it explicitly.
    let jwt = [
        ("SESSION_AUTH", "jwt"),
        ("JWT_ISSUER", "https://issuer.test/"),
        ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
    ];
    assert_eq!(variables(account_with(&jwt)), ["JWT_AUDIENCE"]);
    let waived = account_with(&[jwt.as_slice(), &[("JWT_AUDIENCE", "none")]].concat()).unwrap();
    assert!(matches!(
        waived.session_auth,
        SessionAuth::Jwt(JwtSettings { audience: None, .. })
    ));
    assert_eq!(
        variables(account_with(
            &[jwt.as_slice(), &[("JWT_AUDIENCE", " ")]].concat()
        )),
        ["JWT_AUDIENCE"]
    );
    assert_eq!(
        variables(account_with(&[
            ("SESSION_AUTH", "jwt"),
            ("JWT_ISSUER", "https://issuer.test/"),
            ("JWT_AUDIENCE", "authenticated"),
            ("JWT_JWKS_URL", "https://issuer.test/jwks"),
            ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
        ])),
        ["JWT_SECRET"]
    );
    assert_eq!(
        variables(account_with(&[
            ("SESSION_AUTH", "jwt"),
            ("JWT_ISSUER", "https://issuer.test/"),
            ("JWT_AUDIENCE", "authenticated"),
            ("JWT_JWKS_URL", "http://issuer.test/jwks"),
        ])),
        ["JWT_JWKS_URL"]
    );
    assert_eq!(
        variables(account_with(&[("SESSION_AUTH", "cookies")])),
        ["SESSION_AUTH"]
    );
    let config = account_with(&[
        ("SESSION_AUTH", "jwt"),
        ("JWT_ISSUER", "https://issuer.test/"),
        ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
        ("JWT_AUDIENCE", "authenticated"),
    ])
    .unwrap();
    assert!(matches!(
        config.session_auth,
        SessionAuth::Jwt(JwtSettings { keys: KeySource::Secret(_), ref audience, .. })
            if audience.as_deref() == Some("authenticated")
    ));
    assert!(config.session_auth.session_table().is_none());
}

#[test]
fn the_admin_secret_is_long_and_not_the_cron_secret() {
    let admin = |secret: &str| {
        let mut vars = GOOD.to_vec();
        vars.extend([
            ("MAIL_FROM", "no-reply@app.test"),
            ("MAIL_URL", "file:///tmp/mail"),
            ("APP_URL", "https://app.test"),
            ("ADMIN_SECRET", secret),
        ]);
        AdminConfig::from_lookup(&lookup(&vars))
    };
    assert!(admin("0123456789abcdef0123456789abcdef").is_ok());
    for (bad, why) in [
        ("0123456789abcdef", "at least 32"),
        ("", "empty"),
        ("0123456789abcdef", "32"),
    ] {
        let errors = admin(bad).unwrap_err();
        assert_eq!(errors.0[0].variable(), "ADMIN_SECRET");
        assert!(errors.to_string().contains(why), "{errors}");
    }
    let mut same = GOOD.to_vec();
    let long = "0123456789abcdef0123456789abcdef-cron";
    same.retain(|(name, _)| *name != "CRON_SECRET");
    same.extend([
        ("CRON_SECRET", long),
        ("ADMIN_SECRET", long),
        ("MAIL_FROM", "no-reply@app.test"),
        ("MAIL_URL", "file:///tmp/mail"),
        ("APP_URL", "https://app.test"),
    ]);
    let errors = AdminConfig::from_lookup(&lookup(&same))
        .unwrap_err()
        .to_string();
    assert!(
        errors.contains("ADMIN_SECRET") && errors.contains("CRON_SECRET"),
        "{errors}"
    );
    assert!(!errors.contains(long), "{errors}");
    let mut monitors = GOOD.to_vec();
    monitors.extend([
        ("STATUS_SECRET", long),
        ("ADMIN_SECRET", long),
        ("MAIL_FROM", "no-reply@app.test"),
        ("MAIL_URL", "file:///tmp/mail"),
        ("APP_URL", "https://app.test"),
    ]);
    let errors = AdminConfig::from_lookup(&lookup(&monitors))
        .unwrap_err()
        .to_string();
    assert!(
        errors.contains("ADMIN_SECRET") && errors.contains("STATUS_SECRET"),
        "{errors}"
    );
    assert!(!errors.contains(long), "{errors}");
    let mut unset = GOOD.to_vec();
    unset.extend([
        ("MAIL_FROM", "no-reply@app.test"),
        ("MAIL_URL", "file:///tmp/mail"),
        ("APP_URL", "https://app.test"),
    ]);
    assert_eq!(
        AdminConfig::from_lookup(&lookup(&unset)).unwrap_err().0[0],
        ConfigError::Missing {
            name: "ADMIN_SECRET"
        }
    );
}

#[test]
fn errors_never_quote_the_secret_or_the_database_password() {
    let errors = CronConfig::from_lookup(&lookup(&[
        ("DATABASE_URL", "postgres://app:hunter2@[::1:5432/app"),
        ("CRON_SECRET", "tooshortsecret"),
    ]))
    .unwrap_err()
    .to_string();
    assert!(!errors.contains("hunter2"), "{errors}");
    assert!(!errors.contains("tooshortsecret"), "{errors}");
    assert!(errors.contains("DATABASE_URL") && errors.contains("CRON_SECRET"));
}
