//! A proxy in front of the test server that gives every session through it
//! another `TimeZone`.
//!
//! sqlx always asks for `TimeZone=UTC` in its startup packet, which beats
//! any server, database or role setting; a function's session would never
//! see another zone, and a test could not show that nothing depends on it.
//! This proxy rewrites that one startup parameter. It answers a TLS request
//! with "no" itself, so the startup packet always passes in the clear.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const SSL_REQUEST: i32 = 80_877_103;
const GSS_ENC_REQUEST: i32 = 80_877_104;

pub struct TimeZoneProxy {
    pub port: u16,
    task: JoinHandle<()>,
}

impl TimeZoneProxy {
    pub async fn start(target: u16, zone: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((inbound, _)) = listener.accept().await {
                connections.spawn(async move {
                    let _ = forward(inbound, target, zone).await;
                });
            }
        });
        Self { port, task }
    }
}

impl Drop for TimeZoneProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(mut inbound: TcpStream, target: u16, zone: &str) -> std::io::Result<()> {
    let mut outbound = TcpStream::connect(("127.0.0.1", target)).await?;
    loop {
        let length = inbound.read_i32().await?;
        let mut body = vec![0; usize::try_from(length - 4).unwrap_or(0)];
        inbound.read_exact(&mut body).await?;
        let code = i32::from_be_bytes(body[..4].try_into().unwrap_or_default());
        if code == SSL_REQUEST || code == GSS_ENC_REQUEST {
            inbound.write_all(b"N").await?;
            continue;
        }
        let startup = with_time_zone(&body, zone);
        outbound
            .write_i32(i32::try_from(startup.len() + 4).unwrap())
            .await?;
        outbound.write_all(&startup).await?;
        break;
    }
    tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await?;
    Ok(())
}

/// The startup packet's body (protocol version, then `name\0value\0` pairs,
/// then `\0`) with `TimeZone` set to `zone`.
fn with_time_zone(body: &[u8], zone: &str) -> Vec<u8> {
    let mut out = body[..4].to_vec();
    let mut fields = body[4..].split(|b| *b == 0);
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        if name.is_empty() {
            break;
        }
        let value = if name.eq_ignore_ascii_case(b"TimeZone") {
            zone.as_bytes()
        } else {
            value
        };
        for field in [name, value] {
            out.extend_from_slice(field);
            out.push(0);
        }
    }
    out.push(0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_time_zone_parameter_changes() {
        let body =
            b"\x00\x03\x00\x00user\x00postgres\x00TimeZone\x00UTC\x00database\x00app\x00\x00";
        let out = with_time_zone(body, "Pacific/Kiritimati");
        assert_eq!(
            out,
            b"\x00\x03\x00\x00user\x00postgres\x00TimeZone\x00Pacific/Kiritimati\x00database\x00app\x00\x00"
        );
    }
}
