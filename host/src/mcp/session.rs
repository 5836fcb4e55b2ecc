//! Sessions of the session-based protocol era: ids from the system's secure random source,
//! idle expiry, a cap on how many are open, and the cancellation of a session's calls.

use super::jsonrpc::Id;
use ring::rand::{SecureRandom, SystemRandom};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

/// Why a session could not be found or made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// No session has that id, or it expired or ended.
    #[error("unknown or expired session")]
    Unknown,
    /// [`crate::config::Limits::mcp_sessions`] are open.
    #[error("too many open sessions ({0}, limits.mcp_sessions)")]
    Full(usize),
}

/// One session.
pub struct Session {
    /// Its id, sent as `Mcp-Session-Id`.
    pub id: String,
    /// The protocol version agreed at `initialize`.
    pub version: &'static str,
    last_seen: Mutex<Instant>,
    /// Requests running now, by JSON-RPC id: sending on (or dropping) the sender cancels.
    in_flight: Mutex<HashMap<Id, oneshot::Sender<()>>>,
    /// Turns true when the session ends; streams of the session watch it.
    ended: watch::Sender<bool>,
}

/// A request registered for cancellation; unregisters itself when dropped.
pub struct InFlight {
    session: Arc<Session>,
    id: Id,
    /// Resolves when the client cancels the request or the session ends.
    pub cancelled: oneshot::Receiver<()>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        lock(&self.session.in_flight).remove(&self.id);
    }
}

impl Session {
    /// Registers request `id` so `notifications/cancelled` can stop it.
    pub fn start_request(self: &Arc<Self>, id: &Id) -> InFlight {
        let (cancel, cancelled) = oneshot::channel();
        lock(&self.in_flight).insert(id.clone(), cancel);
        InFlight {
            session: self.clone(),
            id: id.clone(),
            cancelled,
        }
    }

    /// Cancels request `id` if it is still running; unknown ids are ignored, as the spec asks.
    pub fn cancel(&self, id: &Id) -> bool {
        lock(&self.in_flight)
            .remove(id)
            .is_some_and(|cancel| cancel.send(()).is_ok())
    }

    /// A receiver that turns true when the session ends.
    pub fn ended(&self) -> watch::Receiver<bool> {
        self.ended.subscribe()
    }

    fn end(&self) {
        // Dropping the senders cancels every request still running.
        lock(&self.in_flight).clear();
        self.ended.send_replace(true);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here is a map insert or remove, which cannot leave it half-done.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The open sessions.
pub struct Sessions {
    open: Mutex<HashMap<String, Arc<Session>>>,
    max: usize,
    idle: Duration,
    random: SystemRandom,
}

impl Sessions {
    /// At most `max` sessions, each ending after `idle` without a request.
    pub fn new(max: usize, idle: Duration) -> Self {
        Self {
            open: Mutex::new(HashMap::new()),
            max,
            idle,
            random: SystemRandom::new(),
        }
    }

    /// Opens a session speaking `version`.
    ///
    /// # Errors
    ///
    /// [`SessionError::Full`] when the cap is reached even after dropping expired sessions.
    pub fn create(&self, version: &'static str) -> Result<Arc<Session>, SessionError> {
        let mut bytes = [0u8; 16];
        self.random
            .fill(&mut bytes)
            .map_err(|_| SessionError::Full(0))?;
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut open = lock(&self.open);
        if open.len() >= self.max {
            let now = Instant::now();
            open.retain(|_, session| {
                let alive = now.duration_since(*lock(&session.last_seen)) < self.idle;
                if !alive {
                    session.end();
                }
                alive
            });
            if open.len() >= self.max {
                return Err(SessionError::Full(self.max));
            }
        }
        let session = Arc::new(Session {
            id: id.clone(),
            version,
            last_seen: Mutex::new(Instant::now()),
            in_flight: Mutex::new(HashMap::new()),
            ended: watch::channel(false).0,
        });
        open.insert(id, session.clone());
        Ok(session)
    }

    /// The live session `id`, marked as used now.
    ///
    /// # Errors
    ///
    /// [`SessionError::Unknown`] for an id never issued, ended, or idle too long (which
    /// ends it).
    pub fn get(&self, id: &str) -> Result<Arc<Session>, SessionError> {
        let mut open = lock(&self.open);
        let session = open.get(id).cloned().ok_or(SessionError::Unknown)?;
        let mut last_seen = lock(&session.last_seen);
        let now = Instant::now();
        if now.duration_since(*last_seen) >= self.idle {
            drop(last_seen);
            open.remove(id);
            session.end();
            return Err(SessionError::Unknown);
        }
        *last_seen = now;
        drop(last_seen);
        Ok(session)
    }

    /// Ends session `id`: its running requests are cancelled and its streams close.
    ///
    /// # Errors
    ///
    /// [`SessionError::Unknown`] when no such session is open.
    pub fn end(&self, id: &str) -> Result<(), SessionError> {
        let session = lock(&self.open).remove(id).ok_or(SessionError::Unknown)?;
        session.end();
        Ok(())
    }

    /// Ends every session, at shutdown.
    pub fn end_all(&self) {
        for (_, session) in lock(&self.open).drain() {
            session.end();
        }
    }

    /// Sessions open now (expired ones not yet swept included).
    pub fn len(&self) -> usize {
        lock(&self.open).len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_end_and_are_capped() {
        let sessions = Sessions::new(2, Duration::from_millis(50));
        let a = sessions.create("2025-11-25").unwrap();
        assert_eq!(a.id.len(), 32);
        let b = sessions.create("2025-11-25").unwrap();
        assert_ne!(a.id, b.id);
        assert_eq!(
            sessions.create("2025-11-25").err(),
            Some(SessionError::Full(2))
        );
        sessions.end(&b.id).unwrap();
        assert!(*b.ended().borrow());
        assert_eq!(sessions.get(&b.id).err(), Some(SessionError::Unknown));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(
            sessions.get(&a.id).err(),
            Some(SessionError::Unknown),
            "idle too long"
        );
        sessions.create("2025-11-25").unwrap();
    }

    #[test]
    fn cancel_reaches_the_running_request_only() {
        let sessions = Sessions::new(4, Duration::from_secs(60));
        let session = sessions.create("2025-11-25").unwrap();
        let mut first = session.start_request(&Id::Num(1));
        let _second = session.start_request(&Id::Num(2));
        assert!(!session.cancel(&Id::Num(3)), "unknown ids are ignored");
        assert!(session.cancel(&Id::Num(1)));
        assert!(first.cancelled.try_recv().is_ok());
        drop(first);
        assert!(!session.cancel(&Id::Num(1)), "a finished request is gone");
    }
}
