//! Server-sent events: a response body fed by a bounded channel, and the event framing.
//! Owns: [`SseBody`], [`SseSender`]. Never: decides what is sent; a stream whose client
//! stops reading is ended by its producer (`offer` fails), never buffered without bound.
//! Limits: [`BUFFER`] events per stream, a comment every [`KEEP_ALIVE`].

use hyper::body::{Bytes, Frame};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// Events buffered for a slow client before the producer waits.
const BUFFER: usize = 64;
/// How often an idle stream sends a comment, so proxies and clients keep it open.
pub const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(15);

/// A streaming response body; it ends when every [`SseSender`] is dropped.
pub struct SseBody {
    events: mpsc::Receiver<Bytes>,
}

/// The producing end of an [`SseBody`].
#[derive(Clone)]
pub struct SseSender {
    events: mpsc::Sender<Bytes>,
}

/// A new stream.
pub fn channel() -> (SseSender, SseBody) {
    let (events, receiver) = mpsc::channel(BUFFER);
    (SseSender { events }, SseBody { events: receiver })
}

impl SseSender {
    /// Sends one JSON-RPC message as a `message` event, waiting while the client is behind;
    /// `false` once the client is gone.
    pub async fn message(&self, message: &serde_json::Value) -> bool {
        self.events.send(event(message)).await.is_ok()
    }

    /// Queues one JSON-RPC message without waiting; `false` when the client is gone or
    /// [`BUFFER`] events behind, which ends a long-lived stream rather than letting a
    /// client that stopped reading hold it.
    pub fn offer(&self, message: &serde_json::Value) -> bool {
        self.events.try_send(event(message)).is_ok()
    }

    /// Queues a comment line, which clients ignore, without waiting; `false` as for
    /// [`SseSender::offer`].
    pub fn offer_keep_alive(&self) -> bool {
        self.events.try_send(Bytes::from_static(b":\n\n")).is_ok()
    }

    /// Resolves when the client has gone (the body was dropped).
    pub async fn closed(&self) {
        self.events.closed().await;
    }
}

fn event(message: &serde_json::Value) -> Bytes {
    Bytes::from(format!("event: message\ndata: {message}\n\n"))
}

impl hyper::body::Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.events
            .poll_recv(cx)
            .map(|event| event.map(|bytes| Ok(Frame::data(bytes))))
    }
}
