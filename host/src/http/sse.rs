//! Server-sent events: a response body fed by a channel, and the event framing.

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
    /// Sends one JSON-RPC message as a `message` event; `false` once the client is gone.
    pub async fn message(&self, message: &serde_json::Value) -> bool {
        let event = format!("event: message\ndata: {message}\n\n");
        self.events.send(Bytes::from(event)).await.is_ok()
    }

    /// Sends a comment line, which clients ignore; `false` once the client is gone.
    pub async fn keep_alive(&self) -> bool {
        self.events.send(Bytes::from_static(b":\n\n")).await.is_ok()
    }

    /// Resolves when the client has gone (the body was dropped).
    pub async fn closed(&self) {
        self.events.closed().await;
    }
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
