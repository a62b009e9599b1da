//! The delete route in each sign-in mode: the function's first answer after
//! a cold start, and latency under load, for `sessions`, `authjs-database`,
//! `authjs-jwt`, and `jwt` with a JWKS (ES256) and with a shared secret
//! (HS256).
//!
//! ```text
//! cargo build --release --bins && cargo build --release -p account-deletion-bench
//! apt-get install wrk
//! target/release/sign-in --starts 10 --seconds 5
//! ```
//!
//! Each mode runs on a fresh database: our default schema for `sessions`
//! and `jwt` (uuid ids), Prisma's schema (`tests/fixtures/prisma`) for the
//! Auth.js modes. Every request deletes a user of its own with a token of
//! its own, made before the run: sessions rows for the table modes; for the
//! token modes, tokens this benchmark signs (ES256, HS256) or encrypts the
//! way Auth.js does (A256CBC-HS512; the tests check the decoder against
//! tokens made by @auth/core itself). The JWKS is served on loopback, so the
//! first answer in `jwt` mode includes one key fetch without network
//! latency. The load is `wrk -t2 -c16`, as in the functions benchmark.

use std::fmt::Write as _;
use std::time::Duration;

use account_deletion::schema::UsersTable;
use account_deletion::schema::migrate::{self, Options};
use account_deletion_bench::{arg, median_f64, release_binary, start, wrk};
use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockEncryptMut, KeyIvInit};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{self, EcdsaKeyPair, KeyPair};
use ring::{hkdf, hmac};
use sqlx::{Connection, PgConnection, PgPool};
use testkit::http_client::send;
use testkit::jwks_server::JwksServer;

const PRISMA_SQL: &str = include_str!("../../../tests/fixtures/prisma/migration.sql");
const APP_URL: &str = "https://app.example.test";
const AUTH_SECRET: &str = "bench-auth-secret-0123456789abcdef0123456789";
const HS_SECRET: &str = "bench-hs256-secret-0123456789abcdef012345";
const ISSUER: &str = "https://issuer.bench.test/";
const AUDIENCE: &str = "authenticated";
const COOKIE: &str = "authjs.session-token";
const THREADS: usize = 2;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Sessions,
    AuthjsDatabase,
    /// The same, with the index on `"Session"."userId"` the README asks for.
    AuthjsDatabaseIndexed,
    AuthjsJwt,
    JwtJwks,
    JwtSecret,
}

impl Mode {
    const ALL: [Self; 6] = [
        Self::Sessions,
        Self::AuthjsDatabase,
        Self::AuthjsDatabaseIndexed,
        Self::AuthjsJwt,
        Self::JwtJwks,
        Self::JwtSecret,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Sessions => "`sessions` (bearer, our table)",
            Self::AuthjsDatabase => {
                "`authjs-database` (cookie, `\"Session\"` as Auth.js documents it)"
            }
            Self::AuthjsDatabaseIndexed => {
                "`authjs-database`, with `@@index([userId])` on `Session`"
            }
            Self::AuthjsJwt => "`authjs-jwt` (cookie, A256CBC-HS512)",
            Self::JwtJwks => "`jwt` with `JWT_JWKS_URL` (bearer, ES256)",
            Self::JwtSecret => "`jwt` with `JWT_SECRET` (bearer, HS256)",
        }
    }

    fn prisma(self) -> bool {
        matches!(
            self,
            Self::AuthjsDatabase | Self::AuthjsDatabaseIndexed | Self::AuthjsJwt
        )
    }

    fn cookie(self) -> bool {
        self.prisma()
    }
}

/// How tokens are made for a mode.
struct Minter {
    rng: SystemRandom,
    es256: EcdsaKeyPair,
    hs256: hmac::Key,
    jwe_key: Vec<u8>,
}

impl Minter {
    fn new() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap();
        let es256 = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8.as_ref(),
            &rng,
        )
        .unwrap();
        let mut jwe_key = vec![0; 64];
        let info = format!("Auth.js Generated Encryption Key ({COOKIE})");
        hkdf::Salt::new(hkdf::HKDF_SHA256, COOKIE.as_bytes())
            .extract(AUTH_SECRET.as_bytes())
            .expand(&[info.as_bytes()], Len(64))
            .unwrap()
            .fill(&mut jwe_key)
            .unwrap();
        Self {
            rng,
            es256,
            hs256: hmac::Key::new(hmac::HMAC_SHA256, HS_SECRET.as_bytes()),
            jwe_key,
        }
    }

    fn jwks(&self) -> String {
        let point = self.es256.public_key().as_ref();
        serde_json::json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": "bench", "alg": "ES256", "use": "sig",
            "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65]),
        }]})
        .to_string()
    }

    fn claims(sub: &str) -> String {
        let exp = 4_102_444_800_u64; // 2100-01-01
        serde_json::json!({"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "exp": exp, "iat": 1_700_000_000})
            .to_string()
    }

    /// The credential of user `sub` (or the session token `session`).
    fn token(&self, mode: Mode, sub: &str, session: &str) -> String {
        match mode {
            Mode::Sessions | Mode::AuthjsDatabase | Mode::AuthjsDatabaseIndexed => {
                session.to_owned()
            }
            Mode::JwtJwks => {
                let input = format!(
                    "{}.{}",
                    B64.encode(r#"{"alg":"ES256","kid":"bench","typ":"JWT"}"#),
                    B64.encode(Self::claims(sub))
                );
                let signature = self.es256.sign(&self.rng, input.as_bytes()).unwrap();
                format!("{input}.{}", B64.encode(signature.as_ref()))
            }
            Mode::JwtSecret => {
                let input = format!(
                    "{}.{}",
                    B64.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
                    B64.encode(Self::claims(sub))
                );
                let tag = hmac::sign(&self.hs256, input.as_bytes());
                format!("{input}.{}", B64.encode(tag.as_ref()))
            }
            Mode::AuthjsJwt => self.jwe(sub),
        }
    }

    /// An Auth.js session cookie: `dir` + A256CBC-HS512 (RFC 7518 §5.2).
    fn jwe(&self, sub: &str) -> String {
        let header = B64.encode(r#"{"alg":"dir","enc":"A256CBC-HS512"}"#);
        let mut iv = [0u8; 16];
        self.rng.fill(&mut iv).unwrap();
        let (mac_key, enc_key) = self.jwe_key.split_at(32);
        let plaintext = serde_json::json!({"sub": sub, "exp": 4_102_444_800_u64}).to_string();
        let ciphertext = cbc::Encryptor::<aes::Aes256>::new_from_slices(enc_key, &iv)
            .unwrap()
            .encrypt_padded_vec_mut::<Pkcs7>(plaintext.as_bytes());
        let mut mac = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA512, mac_key));
        mac.update(header.as_bytes());
        mac.update(&iv);
        mac.update(&ciphertext);
        mac.update(&((header.len() as u64) * 8).to_be_bytes());
        let tag = mac.sign();
        format!(
            "{header}..{}.{}.{}",
            B64.encode(iv),
            B64.encode(&ciphertext),
            B64.encode(&tag.as_ref()[..32])
        )
    }
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let starts: usize = arg("--starts", 10);
    let seconds: u64 = arg("--seconds", 5);
    let per_thread: usize = arg("--tokens-per-thread", 20_000);
    let server = account_deletion_bench::server();
    let minter = Minter::new();
    let jwks = JwksServer::start(&minter.jwks()).await;
    let size = std::fs::metadata(release_binary("account-delete"))?.len();
    println!(
        "\naccount-delete: {:.1} MB stripped\n",
        size as f64 / 1_000_000.0
    );
    println!("| mode | first answer ms (median of {starts}) | requests/s | p50 ms | p99 ms |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for mode in Mode::ALL {
        let database = "bench_sign_in";
        server.drop_database(database).await;
        if mode.prisma() {
            server.create_database(database, None).await;
            let mut conn = PgConnection::connect(&server.url(database)).await?;
            sqlx::raw_sql(PRISMA_SQL).execute(&mut conn).await?;
            let options = Options {
                users: UsersTable::prisma(),
                add_deleted_at: false,
                add_email_index: false,
            };
            migrate::apply(&mut conn, &options).await?;
        } else {
            server
                .create_database(database, Some(&server.template_name()))
                .await;
        }
        let url = server.url(database);
        let pool = PgPool::connect(&url).await?;
        let users = seed(&pool, mode, per_thread * THREADS + starts).await?;
        pool.close().await;
        let mut credentials = users
            .iter()
            .map(|(sub, session)| minter.token(mode, sub, session));
        let probes: Vec<String> = credentials.by_ref().take(starts).collect();
        let dir = std::env::temp_dir().join(format!("bench-sign-in-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        for thread in 0..THREADS {
            let lines: String =
                credentials
                    .by_ref()
                    .take(per_thread)
                    .fold(String::new(), |mut s, t| {
                        let _ = writeln!(s, "{t}");
                        s
                    });
            std::fs::write(dir.join(format!("{thread}.txt")), lines)?;
        }
        let env = environment(mode, &url, &jwks.url(), &dir);

        let mut first = Vec::new();
        for probe in &probes {
            let (running, started) = start("account-delete", &env);
            let headers = headers(mode, probe);
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let answer = loop {
                match send(running.port, "POST", "/api/account/delete", &headers, b"").await {
                    Ok(answer) => break answer,
                    Err(_) => tokio::time::sleep(Duration::from_micros(200)).await,
                }
            };
            first.push(started.elapsed().as_secs_f64() * 1000.0);
            anyhow::ensure!(
                answer.status == 202,
                "{mode:?}: {} {}",
                answer.status,
                answer.body
            );
        }
        let (rps, p50, p99) = load(mode, &env, &dir, seconds).await?;
        println!(
            "| {} | {:.1} | {rps:.0} | {p50:.2} | {p99:.2} |",
            mode.label(),
            median_f64(&first)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

/// `count` users, each with its id and (for the table modes) a live
/// session token.
async fn seed(pool: &PgPool, mode: Mode, count: usize) -> anyhow::Result<Vec<(String, String)>> {
    let count = count as i64;
    let rows: Vec<(String, String)> = if mode.prisma() {
        sqlx::query_as(
            r#"insert into "User" (id, email) select 'cbench' || g, 'load' || g || '@bench.test'
               from generate_series(1, $1) g returning id, 'session-' || id"#,
        )
        .bind(count)
        .fetch_all(pool)
        .await?
    } else {
        sqlx::query_as(
            "insert into users (email) select 'load' || g || '@bench.test'
             from generate_series(1, $1) g returning id::text, 'session-' || id",
        )
        .bind(count)
        .fetch_all(pool)
        .await?
    };
    match mode {
        Mode::Sessions => {
            sqlx::query(
                "insert into sessions (user_id, token_hash, expires_at)
                 select id, sha256(convert_to('session-' || id, 'UTF8')), now() + interval '1 day' from users",
            )
            .execute(pool)
            .await?;
        }
        Mode::AuthjsDatabase | Mode::AuthjsDatabaseIndexed => {
            if mode == Mode::AuthjsDatabaseIndexed {
                sqlx::query(r#"create index "Session_userId_idx" on "Session" ("userId")"#)
                    .execute(pool)
                    .await?;
            }
            sqlx::query(
                r#"insert into "Session" ("sessionToken", "userId", expires, "updatedAt")
                   select 'session-' || id, id, (now() at time zone 'UTC') + interval '1 day',
                          now() at time zone 'UTC' from "User""#,
            )
            .execute(pool)
            .await?;
        }
        Mode::AuthjsJwt | Mode::JwtJwks | Mode::JwtSecret => {}
    }
    sqlx::raw_sql("vacuum analyze").execute(pool).await?;
    Ok(rows)
}

fn environment(
    mode: Mode,
    url: &str,
    jwks_url: &str,
    dir: &std::path::Path,
) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("DATABASE_URL", url.to_owned()),
        ("APP_URL", APP_URL.to_owned()),
        ("MAIL_URL", format!("file://{}", dir.join("mail").display())),
        ("MAIL_FROM", "Bench <no-reply@example.test>".to_owned()),
    ];
    let settings: &[(&str, &str)] = match mode {
        Mode::Sessions => &[],
        Mode::AuthjsDatabase | Mode::AuthjsDatabaseIndexed => &[
            ("SCHEMA_PRESET", "prisma"),
            ("SESSION_AUTH", "authjs-database"),
        ],
        Mode::AuthjsJwt => &[
            ("SCHEMA_PRESET", "prisma"),
            ("SESSION_AUTH", "authjs-jwt"),
            ("AUTH_SECRET", AUTH_SECRET),
        ],
        Mode::JwtJwks => &[
            ("SESSION_AUTH", "jwt"),
            ("JWT_ISSUER", ISSUER),
            ("JWT_AUDIENCE", AUDIENCE),
        ],
        Mode::JwtSecret => &[
            ("SESSION_AUTH", "jwt"),
            ("JWT_SECRET", HS_SECRET),
            ("JWT_ISSUER", ISSUER),
            ("JWT_AUDIENCE", AUDIENCE),
        ],
    };
    env.extend(settings.iter().map(|(k, v)| (*k, (*v).to_owned())));
    if mode == Mode::JwtJwks {
        env.push(("JWT_JWKS_URL", jwks_url.to_owned()));
    }
    env
}

fn headers(mode: Mode, token: &str) -> Vec<(&'static str, String)> {
    if mode.cookie() {
        vec![
            ("cookie", format!("{COOKIE}={token}")),
            ("origin", APP_URL.to_owned()),
        ]
    } else {
        vec![("authorization", format!("Bearer {token}"))]
    }
}

async fn load(
    mode: Mode,
    env: &[(&str, String)],
    dir: &std::path::Path,
    seconds: u64,
) -> anyhow::Result<(f64, f64, f64)> {
    let (running, _) = start("account-delete", env);
    while send(running.port, "GET", "/_vercel/ping", &[], b"")
        .await
        .is_err()
    {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let headers = if mode.cookie() {
        format!(r#"{{ ["Cookie"] = "{COOKIE}=" .. t, ["Origin"] = "{APP_URL}" }}"#)
    } else {
        r#"{ ["Authorization"] = "Bearer " .. t }"#.to_owned()
    };
    let script = dir.join("load.lua");
    std::fs::write(
        &script,
        format!(
            r#"
local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end
function init(args)
  tokens = {{}}
  for line in io.lines("{dir}/" .. id .. ".txt") do tokens[#tokens + 1] = line end
end
local i = 0
request = function()
  i = i + 1
  local t = tokens[i] or "exhausted"
  return wrk.format("POST", "/api/account/delete", {headers}, "")
end
"#,
            dir = dir.display()
        ),
    )?;
    let port = running.port;
    let script = script.to_str().unwrap().to_owned();
    tokio::task::spawn_blocking(move || wrk(port, "/api/account/delete", seconds, &["-s", &script]))
        .await?
}
