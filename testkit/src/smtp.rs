//! A real SMTP server for the tests, speaking the protocol over TCP on
//! loopback: greeting, EHLO with AUTH, MAIL/RCPT/DATA with dot-unstuffing,
//! QUIT. It keeps every message it accepts, and can be taken down and
//! brought back on the same port. It can also refuse recipients the way a
//! real server does (quoting the address), and offer STARTTLS: it then
//! records whether the client asked for it and began a TLS handshake (which
//! it cannot finish: it has no certificate a client would trust), and
//! whatever the client sent in the clear.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

#[derive(Debug, Clone)]
pub struct ReceivedMail {
    pub auth: Option<(String, String)>,
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

impl ReceivedMail {
    pub fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.data
            .lines()
            .take_while(|l| !l.is_empty())
            .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
            .map(|l| l[prefix.len()..].trim().to_owned())
    }

    /// The message with quoted-printable soft breaks and escapes undone.
    pub fn decoded(&self) -> String {
        let joined = self.data.replace("=\r\n", "");
        let bytes = joined.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'='
                && i + 2 < bytes.len()
                && let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16)
            {
                out.push(b);
                i += 3;
                continue;
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Every recovery link in the message.
    pub fn links(&self) -> Vec<String> {
        self.links_to("/api/account/recover?token=")
    }

    /// Every download link (of the export) in the message.
    pub fn export_links(&self) -> Vec<String> {
        self.links_to("/api/account/export?token=")
    }

    fn links_to(&self, path: &str) -> Vec<String> {
        let text = self.decoded();
        let mut links: Vec<String> = text
            .split(|c: char| c.is_whitespace() || c == '"' || c == '<' || c == '>')
            .filter(|w| w.starts_with("http") && w.contains(path))
            .map(|w| w.replace("&amp;", "&"))
            .collect();
        links.dedup();
        links
    }

    pub fn token(&self) -> String {
        let link = self.links().into_iter().next().expect("a recovery link");
        link.split("token=").nth(1).unwrap().to_owned()
    }

    pub fn export_token(&self) -> String {
        let link = self
            .export_links()
            .into_iter()
            .next()
            .expect("a download link");
        link.split("token=").nth(1).unwrap().to_owned()
    }
}

#[derive(Default)]
struct Inbox {
    mail: Mutex<Vec<ReceivedMail>>,
    arrived: Notify,
    /// Sessions still to be cut in the middle of DATA.
    drops_in_data: AtomicU32,
    /// Refuse every `RCPT TO` with a 550 that quotes the address.
    refuse_recipients: AtomicBool,
    /// Offer STARTTLS in the EHLO answer.
    offer_starttls: AtomicBool,
    /// What clients did: every command line they sent in the clear, and
    /// the sessions that asked for STARTTLS and then sent a TLS `ClientHello`.
    commands: Mutex<Vec<String>>,
    tls_handshakes: AtomicU32,
}

pub struct SmtpSink {
    pub port: u16,
    inbox: Arc<Inbox>,
    task: Option<JoinHandle<()>>,
}

impl SmtpSink {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let inbox = Arc::new(Inbox::default());
        let task = Some(tokio::spawn(serve(listener, inbox.clone())));
        Self { port, inbox, task }
    }

    /// `smtp://` URL with credentials the sink accepts, in the clear
    /// (`?tls=none`: the sink has no certificate).
    pub fn url(&self) -> String {
        format!(
            "smtp://mailer%40app.test:s3cret%21@127.0.0.1:{}?tls=none",
            self.port
        )
    }

    /// Answers every `RCPT TO` with `550 <address>: Recipient address
    /// rejected`, as Postfix does.
    pub fn refuse_recipients(&self) {
        self.inbox.refuse_recipients.store(true, Ordering::SeqCst);
    }

    /// Offers STARTTLS from now on.
    pub fn offer_starttls(&self) {
        self.inbox.offer_starttls.store(true, Ordering::SeqCst);
    }

    /// Every command line clients sent in the clear, in order.
    pub fn commands(&self) -> Vec<String> {
        self.inbox.commands.lock().unwrap().clone()
    }

    /// Sessions that asked for STARTTLS and then began a TLS handshake.
    pub fn tls_handshakes(&self) -> u32 {
        self.inbox.tls_handshakes.load(Ordering::SeqCst)
    }

    pub fn take_down(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    pub async fn bring_back(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.task = Some(tokio::spawn(serve(listener, self.inbox.clone())));
    }

    /// The next `sessions` that send a message lose their connection in the
    /// middle of DATA, after the headers and before the final dot: the
    /// message is not accepted.
    pub fn drop_connection_during_data(&self, sessions: u32) {
        self.inbox.drops_in_data.store(sessions, Ordering::SeqCst);
    }

    pub fn received(&self) -> Vec<ReceivedMail> {
        self.inbox.mail.lock().unwrap().clone()
    }

    /// Waits until at least `count` messages have arrived, up to `within`.
    pub async fn wait_for(&self, count: usize, within: Duration) -> Vec<ReceivedMail> {
        let deadline = Instant::now() + within;
        loop {
            let notified = self.inbox.arrived.notified();
            let mail = self.received();
            if mail.len() >= count {
                return mail;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "expected {count} messages within {within:?}, got {}",
                mail.len()
            );
            let _ = tokio::time::timeout(left, notified).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.take_down();
    }
}

async fn serve(listener: TcpListener, inbox: Arc<Inbox>) {
    let mut sessions = tokio::task::JoinSet::new();
    while let Ok((stream, _)) = listener.accept().await {
        sessions.spawn(session(stream, inbox.clone()));
    }
}

/// The user and password of `AUTH PLAIN <base64>`.
fn plain_credentials(command: &str) -> Option<(String, String)> {
    let encoded = command.split_whitespace().nth(2).unwrap_or("");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap_or_default();
    let parts: Vec<String> = decoded
        .split(|b| *b == 0)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    (parts.len() == 3).then(|| (parts[1].clone(), parts[2].clone()))
}

/// Whether the client's next bytes begin a TLS handshake: a record of type
/// 0x16 (handshake), major version 3.
async fn tls_hello(lines: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> bool {
    let mut hello = [0u8; 2];
    lines.read_exact(&mut hello).await.is_ok() && hello == [0x16, 0x03]
}

async fn session(stream: TcpStream, inbox: Arc<Inbox>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let reply = async |write: &mut tokio::net::tcp::OwnedWriteHalf, text: &str| {
        write.write_all(text.as_bytes()).await.is_ok()
    };
    if !reply(&mut write, "220 sink.test ESMTP test sink\r\n").await {
        return;
    }
    let mut auth = None;
    let mut from = String::new();
    let mut to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let command = line.trim_end().to_owned();
        inbox.commands.lock().unwrap().push(command.clone());
        let upper = command.to_ascii_uppercase();
        let starttls = inbox.offer_starttls.load(Ordering::SeqCst);
        let answer = if upper.starts_with("EHLO") {
            let offer = if starttls { "250-STARTTLS\r\n" } else { "" };
            format!(
                "250-sink.test\r\n{offer}250-AUTH PLAIN LOGIN\r\n250-8BITMIME\r\n250 SIZE 10485760\r\n"
            )
        } else if upper == "STARTTLS" && starttls {
            if reply(&mut write, "220 2.0.0 ready to start TLS\r\n").await
                && tls_hello(&mut lines).await
            {
                inbox.tls_handshakes.fetch_add(1, Ordering::SeqCst);
            }
            return;
        } else if upper.starts_with("HELO") {
            "250 sink.test\r\n".to_owned()
        } else if upper.starts_with("AUTH PLAIN") {
            auth = plain_credentials(&command);
            if auth.is_some() {
                "235 2.7.0 accepted\r\n".to_owned()
            } else {
                "535 5.7.8 bad credentials\r\n".to_owned()
            }
        } else if upper.starts_with("MAIL FROM:") {
            from = command[10..].trim().to_owned();
            to.clear();
            "250 2.1.0 ok\r\n".to_owned()
        } else if upper.starts_with("RCPT TO:") {
            let address = command[8..].trim().to_owned();
            if inbox.refuse_recipients.load(Ordering::SeqCst) {
                format!("550 5.1.1 {address}: Recipient address rejected: User unknown\r\n")
            } else {
                to.push(address);
                "250 2.1.5 ok\r\n".to_owned()
            }
        } else if upper == "DATA" {
            if !reply(&mut write, "354 end with <CRLF>.<CRLF>\r\n").await {
                return;
            }
            let mut data = String::new();
            let drop_midway = inbox
                .drops_in_data
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            loop {
                line.clear();
                if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                if drop_midway && line == "\r\n" {
                    // End of the headers: hang up with the body unsent.
                    return;
                }
                if line == ".\r\n" {
                    break;
                }
                let unstuffed = line.strip_prefix('.').unwrap_or(&line);
                data.push_str(unstuffed);
            }
            inbox.mail.lock().unwrap().push(ReceivedMail {
                auth: auth.clone(),
                from: from.clone(),
                to: to.clone(),
                data,
            });
            inbox.arrived.notify_waiters();
            "250 2.0.0 queued\r\n".to_owned()
        } else if upper == "RSET" || upper == "NOOP" {
            "250 2.0.0 ok\r\n".to_owned()
        } else if upper == "QUIT" {
            let _ = reply(&mut write, "221 2.0.0 bye\r\n").await;
            return;
        } else {
            "502 5.5.2 not implemented\r\n".to_owned()
        };
        if !reply(&mut write, &answer).await {
            return;
        }
    }
}
