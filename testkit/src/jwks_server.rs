//! A provider's JWKS endpoint on loopback, for the token sign-in tests: it
//! serves a document the test sets, counts the fetches, and can go down
//! (connections refused), hang (accept and never answer) or come back.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What the server does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Serve,
    /// Read the request, then never answer.
    Hang,
}

struct State {
    document: Mutex<String>,
    behaviour: Mutex<Behaviour>,
    fetches: AtomicUsize,
}

pub struct JwksServer {
    pub port: u16,
    state: Arc<State>,
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl JwksServer {
    pub async fn start(document: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State {
            document: Mutex::new(document.to_owned()),
            behaviour: Mutex::new(Behaviour::Serve),
            fetches: AtomicUsize::new(0),
        });
        let accept = tokio::spawn(serve(listener, state.clone()));
        Self {
            port,
            state,
            accept: Mutex::new(Some(accept)),
        }
    }

    pub fn url(&self) -> String {
        format!(
            "http://127.0.0.1:{}/auth/v1/.well-known/jwks.json",
            self.port
        )
    }

    /// Requests received so far.
    pub fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }

    pub fn set_document(&self, document: &str) {
        document.clone_into(&mut self.state.document.lock().unwrap());
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *self.state.behaviour.lock().unwrap() = behaviour;
    }

    /// Closes the listening socket: connections are refused.
    pub fn go_down(&self) {
        if let Some(accept) = self.accept.lock().unwrap().take() {
            accept.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn come_back(&self) {
        self.go_down();
        let listener = loop {
            // The aborted task drops its listener on its next poll.
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(listener) => break listener,
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        };
        *self.accept.lock().unwrap() = Some(tokio::spawn(serve(listener, self.state.clone())));
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.go_down();
    }
}

async fn serve(listener: TcpListener, state: Arc<State>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(answer(stream, state.clone()));
    }
}

async fn answer(mut stream: TcpStream, state: Arc<State>) {
    let mut request = Vec::new();
    let mut buffer = [0; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buffer[..n]),
        }
    }
    state.fetches.fetch_add(1, Ordering::SeqCst);
    let behaviour = *state.behaviour.lock().unwrap();
    if behaviour == Behaviour::Hang {
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        return;
    }
    let body = state.document.lock().unwrap().clone();
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}
