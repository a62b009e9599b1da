//! A response body sent while it is produced: a producer task hands chunks
//! to the body through a small bounded channel, so a slow client slows the
//! producer down instead of piling chunks up in memory.
//!
//! A body ends in one of two ways: the producer finishes (the sender is
//! dropped: the body is complete), or it tears the body, which cuts the
//! connection before the chunked encoding's last chunk, so no client can
//! mistake what it got for a whole body.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};
use tokio::sync::mpsc;

/// How long a client may stop reading before it counts as gone: the
/// producer holds a database connection (and a snapshot) while it waits,
/// and the database's own limits do not count time spent waiting for the
/// client.
const STALLED_CLIENT: std::time::Duration = std::time::Duration::from_secs(60);

/// Chunks in flight between producer and client. With chunks of about
/// 64 KiB, a body holds at most about half a megabyte in memory.
const CHUNKS_IN_FLIGHT: usize = 8;

/// Why a body ended before it was complete. Never shown to the client,
/// which only sees the connection cut.
#[derive(Debug, thiserror::Error)]
#[error("the response body was torn: its producer failed")]
pub struct Torn;

/// The client went away, or stopped reading; the producer stops.
#[derive(Debug, thiserror::Error)]
#[error("the client stopped reading the response")]
pub struct Gone;

/// A channel for a body: the producer's end and the body.
pub fn channel() -> (BodySender, Streamed) {
    let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
    (BodySender(tx), Streamed(rx))
}

/// The producer's end.
#[derive(Clone)]
pub struct BodySender(mpsc::Sender<Result<Bytes, Torn>>);

impl BodySender {
    /// Waits until the client has room for `chunk`, then hands it over; a
    /// client that takes no chunk for a minute is gone.
    pub async fn send(&self, chunk: Bytes) -> Result<(), Gone> {
        match tokio::time::timeout(STALLED_CLIENT, self.0.send(Ok(chunk))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) | Err(_) => Err(Gone),
        }
    }

    /// Ends the body as incomplete.
    pub async fn tear(self) {
        let _ = self.0.send(Err(Torn)).await;
    }
}

/// The body a client reads.
pub struct Streamed(mpsc::Receiver<Result<Bytes, Torn>>);

impl Body for Streamed {
    type Data = Bytes;
    type Error = Torn;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Torn>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|chunk| chunk.map(Frame::data)))
    }
}

/// What a route answers: a body read whole, or one streamed.
pub enum Reply {
    Whole(super::Response),
    Streamed(http::Response<Streamed>),
}

impl From<super::Response> for Reply {
    fn from(response: super::Response) -> Self {
        Self::Whole(response)
    }
}

impl Reply {
    pub fn status(&self) -> http::StatusCode {
        match self {
            Self::Whole(response) => response.status(),
            Self::Streamed(response) => response.status(),
        }
    }
}
