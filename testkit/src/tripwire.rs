//! A TCP proxy that watches what clients send for a piece of text (a
//! statement of the code under test) and trips on its n-th sighting, so a
//! test can crash a server at an exact stage of the work: before the
//! statement reaches it (the connection is dropped, the statement never
//! sent) or just after.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// When the tripping sighting acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// The statement is not sent: its connection is dropped instead.
    Before,
    /// The statement is sent, then the test is told.
    After,
}

pub struct Tripwire {
    pub port: u16,
    state: Arc<State>,
    task: JoinHandle<()>,
}

struct State {
    needle: Vec<u8>,
    nth: usize,
    when: When,
    seen: AtomicUsize,
    tripped: Notify,
}

impl Tripwire {
    /// A proxy to `127.0.0.1:target` that trips on the `nth` (from 1) time
    /// a client sends `needle`.
    pub async fn start(target: u16, needle: &str, nth: usize, when: When) -> Self {
        assert!(nth > 0 && !needle.is_empty());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State {
            needle: needle.as_bytes().to_vec(),
            nth,
            when,
            seen: AtomicUsize::new(0),
            tripped: Notify::new(),
        });
        let task = tokio::spawn(accept(listener, target, Arc::clone(&state)));
        Self { port, state, task }
    }

    /// Waits until it trips; fails the test after `limit`.
    pub async fn tripped(&self, limit: Duration) {
        let notified = self.state.tripped.notified();
        if self.state.seen.load(Ordering::SeqCst) >= self.state.nth {
            return;
        }
        tokio::time::timeout(limit, notified)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the tripwire saw {:?} {} time(s) in {limit:?}, not {}",
                    String::from_utf8_lossy(&self.state.needle),
                    self.state.seen.load(Ordering::SeqCst),
                    self.state.nth
                )
            });
    }
}

impl Drop for Tripwire {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept(listener: TcpListener, target: u16, state: Arc<State>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            return;
        };
        let state = Arc::clone(&state);
        connections.spawn(async move {
            // Nothing to forward to: the client sees its connection close.
            let Ok(outbound) = TcpStream::connect(("127.0.0.1", target)).await else {
                return;
            };
            relay(inbound, outbound, &state).await;
        });
    }
}

async fn relay(inbound: TcpStream, outbound: TcpStream, state: &State) {
    let (mut from_client, mut to_client) = inbound.into_split();
    let (mut from_server, mut to_server) = outbound.into_split();
    let answers = async {
        let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
    };
    let requests = async {
        // The end of the previous read, so a needle split across two reads
        // is seen too.
        let mut tail: Vec<u8> = Vec::new();
        let mut buffer = vec![0_u8; 64 * 1024];
        loop {
            let Ok(read) = from_client.read(&mut buffer).await else {
                return;
            };
            if read == 0 {
                return;
            }
            let chunk = &buffer[..read];
            let mut window = std::mem::take(&mut tail);
            window.extend_from_slice(chunk);
            let sightings = count(&window, &state.needle);
            let keep = window.len().min(state.needle.len() - 1);
            tail = window[window.len() - keep..].to_vec();
            let trips = sightings > 0 && {
                let before = state.seen.fetch_add(sightings, Ordering::SeqCst);
                before < state.nth && before + sightings >= state.nth
            };
            if trips && state.when == When::Before {
                state.tripped.notify_waiters();
                return;
            }
            if to_server.write_all(chunk).await.is_err() {
                return;
            }
            if trips {
                state.tripped.notify_waiters();
            }
        }
    };
    // Either side ending ends the connection, as a crash would.
    tokio::select! {
        () = answers => {},
        () = requests => {},
    }
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|window| *window == needle)
        .count()
}
