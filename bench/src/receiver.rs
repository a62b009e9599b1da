//! A lean webhook receiver for the purge benchmark. It does what a receiver
//! must (checks the Standard Webhooks signature over `id.timestamp.body`
//! with its own HMAC, not the functions' signing code, and the timestamp's
//! age; parses the JSON; counts the purged ids) and answers 204 at once,
//! keeping connections open. The tests' receiver is the specification's
//! Python library; on a 2-core machine shared with the database, its JSON
//! handling cost the benchmark more than the functions' own sending, so the
//! figures here keep the receiver's cost small, as a receiver running
//! elsewhere would.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    verified: AtomicU64,
    ids: AtomicU64,
}

pub struct Receiver {
    port: u16,
    counts: Arc<Counts>,
}

impl Receiver {
    /// Listens on a free loopback port; `secret` is `whsec_<base64>`.
    pub async fn start(secret: &str) -> anyhow::Result<Self> {
        let key = STANDARD.decode(secret.trim_start_matches("whsec_"))?;
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let counts = Arc::new(Counts::default());
        let shared = Arc::clone(&counts);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (key, counts) = (key.clone(), Arc::clone(&shared));
                tokio::spawn(async move {
                    let _ = serve(stream, &key, &counts).await;
                });
            }
        });
        Ok(Self { port, counts })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks/account", self.port)
    }

    /// Requests, those verified, and the purged ids they named.
    pub fn counts(&self) -> (u64, u64, u64) {
        (
            self.counts.requests.load(Ordering::Relaxed),
            self.counts.verified.load(Ordering::Relaxed),
            self.counts.ids.load(Ordering::Relaxed),
        )
    }
}

/// One keep-alive connection: request after request until it closes.
async fn serve(stream: TcpStream, key: &ring::hmac::Key, counts: &Counts) -> anyhow::Result<()> {
    let mut stream = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        if stream.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let mut headers = HashMap::new();
        loop {
            line.clear();
            stream.read_line(&mut line).await?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
            }
        }
        let length: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        stream.read_exact(&mut body).await?;
        counts.requests.fetch_add(1, Ordering::Relaxed);
        let answer = match verified_ids(&headers, &body, key) {
            Some(ids) => {
                counts.verified.fetch_add(1, Ordering::Relaxed);
                counts.ids.fetch_add(ids, Ordering::Relaxed);
                "HTTP/1.1 204 No Content\r\n\r\n"
            }
            None => "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n",
        };
        stream.get_mut().write_all(answer.as_bytes()).await?;
    }
}

/// The ids of a verified `account.purged` event (0 for another type).
fn verified_ids(
    headers: &HashMap<String, String>,
    body: &[u8],
    key: &ring::hmac::Key,
) -> Option<u64> {
    let id = headers.get("webhook-id")?;
    let timestamp = headers.get("webhook-timestamp")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs() as i64;
    let age = now - timestamp.parse::<i64>().ok()?;
    if age.abs() > 300 {
        return None;
    }
    let mut signed = Vec::with_capacity(id.len() + timestamp.len() + body.len() + 2);
    signed.extend_from_slice(format!("{id}.{timestamp}.").as_bytes());
    signed.extend_from_slice(body);
    let valid = headers
        .get("webhook-signature")?
        .split(' ')
        .any(|signature| {
            signature
                .strip_prefix("v1,")
                .and_then(|b64| STANDARD.decode(b64).ok())
                .is_some_and(|tag| ring::hmac::verify(key, &signed, &tag).is_ok())
        });
    if !valid {
        return None;
    }
    let event: serde_json::Value = serde_json::from_slice(body).ok()?;
    Some(
        event["data"]["user_ids"]
            .as_array()
            .map_or(0, |ids| ids.len() as u64),
    )
}
