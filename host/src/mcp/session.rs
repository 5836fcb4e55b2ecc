//! Sessions of the session-based protocol era: ids from the system's secure random source,
//! idle expiry, a cap on how many are open, and the cancellation of a session's calls.
//! Owns: [`Sessions`], [`Session`], [`InFlight`]. Never: speaks HTTP.
//! Limits: [`crate::config::Limits::mcp_sessions`], [`crate::config::Limits::mcp_session_idle_ms`];
//! one notification stream per session.

use super::jsonrpc::Id;
use ring::rand::{SecureRandom, SystemRandom};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

/// How often expired sessions are swept out, at the latest.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Why a session could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// [`crate::config::Limits::mcp_sessions`] are open.
    #[error("too many open sessions ({0}, limits.mcp_sessions)")]
    Full(usize),
    /// The system's random source failed.
    #[error("cannot draw a session id from the system's random source")]
    Random,
}

/// One session.
pub struct Session {
    /// Its id, sent as `Mcp-Session-Id`.
    pub id: String,
    /// The protocol version agreed at `initialize`.
    pub version: &'static str,
    /// Who opened it ([`crate::auth::Principal::identity`]); only they may use it.
    pub owner: Option<String>,
    last_seen: Mutex<Instant>,
    /// Requests running now, by JSON-RPC id: sending on (or dropping) the sender cancels.
    in_flight: Mutex<HashMap<Id, oneshot::Sender<()>>>,
    /// Turns true when the session ends; streams of the session watch it.
    ended: watch::Sender<bool>,
    /// Whether the session's notification stream (`GET /mcp`) is open.
    streaming: AtomicBool,
}

/// The session's open notification stream; closes it when dropped.
pub struct StreamSlot(Arc<Session>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.streaming.store(false, Ordering::Release);
        self.0.touch();
    }
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
    /// Registers request `id` so `notifications/cancelled` can stop it; `None` when a
    /// request with that id is still running (ids must not be reused while in flight).
    pub fn start_request(self: &Arc<Self>, id: &Id) -> Option<InFlight> {
        let (cancel, cancelled) = oneshot::channel();
        let mut in_flight = lock(&self.in_flight);
        if in_flight.contains_key(id) {
            return None;
        }
        in_flight.insert(id.clone(), cancel);
        Some(InFlight {
            session: self.clone(),
            id: id.clone(),
            cancelled,
        })
    }

    /// Opens the session's one notification stream; `None` when it is already open.
    pub fn open_stream(self: &Arc<Self>) -> Option<StreamSlot> {
        self.streaming
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| StreamSlot(self.clone()))
    }

    /// Marks the session as in use now.
    pub fn touch(&self) {
        *lock(&self.last_seen) = Instant::now();
    }

    /// Whether the session is in use: seen within `idle`, running a request, or holding
    /// its notification stream open.
    fn alive(&self, now: Instant, idle: Duration) -> bool {
        now.duration_since(*lock(&self.last_seen)) < idle
            || !lock(&self.in_flight).is_empty()
            || self.streaming.load(Ordering::Acquire)
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
    last_sweep: Mutex<Instant>,
}

impl Sessions {
    /// At most `max` sessions, each ending after `idle` without a request.
    pub fn new(max: usize, idle: Duration) -> Self {
        Self {
            open: Mutex::new(HashMap::new()),
            max,
            idle,
            random: SystemRandom::new(),
            last_sweep: Mutex::new(Instant::now()),
        }
    }

    /// Ends the sessions no longer in use.
    fn sweep(&self, open: &mut HashMap<String, Arc<Session>>) {
        let now = Instant::now();
        *lock(&self.last_sweep) = now;
        open.retain(|_, session| {
            let alive = session.alive(now, self.idle);
            if !alive {
                session.end();
            }
            alive
        });
    }

    /// Opens a session speaking `version`, owned by `owner`.
    ///
    /// # Errors
    ///
    /// [`SessionError::Full`] when the cap is reached even after dropping expired sessions.
    pub fn create(
        &self,
        version: &'static str,
        owner: Option<String>,
    ) -> Result<Arc<Session>, SessionError> {
        let mut bytes = [0u8; 16];
        self.random
            .fill(&mut bytes)
            .map_err(|_| SessionError::Random)?;
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut open = lock(&self.open);
        let sweep_due = lock(&self.last_sweep).elapsed() >= SWEEP_INTERVAL;
        if open.len() >= self.max || sweep_due {
            self.sweep(&mut open);
        }
        if open.len() >= self.max {
            return Err(SessionError::Full(self.max));
        }
        let session = Arc::new(Session {
            id: id.clone(),
            version,
            owner,
            last_seen: Mutex::new(Instant::now()),
            in_flight: Mutex::new(HashMap::new()),
            ended: watch::channel(false).0,
            streaming: AtomicBool::new(false),
        });
        open.insert(id, session.clone());
        Ok(session)
    }

    /// The live session `id`, marked as used now; `None` for an id never issued, ended, or
    /// idle too long (which ends it).
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        let mut open = lock(&self.open);
        let session = open.get(id)?.clone();
        if !session.alive(Instant::now(), self.idle) {
            open.remove(id);
            session.end();
            return None;
        }
        session.touch();
        Some(session)
    }

    /// Ends session `id`: its running requests are cancelled and its streams close.
    /// Returns whether such a session was open.
    pub fn end(&self, id: &str) -> bool {
        let Some(session) = lock(&self.open).remove(id) else {
            return false;
        };
        session.end();
        true
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
        let a = sessions.create("2025-11-25", None).unwrap();
        assert_eq!(a.id.len(), 32);
        let b = sessions.create("2025-11-25", None).unwrap();
        assert_ne!(a.id, b.id);
        assert_eq!(
            sessions.create("2025-11-25", None).err(),
            Some(SessionError::Full(2))
        );
        assert!(sessions.end(&b.id));
        assert!(*b.ended().borrow());
        assert!(sessions.get(&b.id).is_none());
        std::thread::sleep(Duration::from_millis(60));
        assert!(sessions.get(&a.id).is_none(), "idle too long");
        sessions.create("2025-11-25", None).unwrap();
    }

    #[test]
    fn a_session_in_use_does_not_expire() {
        let sessions = Sessions::new(4, Duration::from_millis(30));
        let streaming = sessions.create("2025-11-25", None).unwrap();
        let stream = streaming.open_stream().expect("first stream");
        assert!(streaming.open_stream().is_none(), "one stream per session");
        let calling = sessions.create("2025-11-25", None).unwrap();
        let request = calling.start_request(&Id::Num(1)).unwrap();
        assert!(
            calling.start_request(&Id::Num(1)).is_none(),
            "an id in flight is not reused"
        );
        std::thread::sleep(Duration::from_millis(40));
        assert!(sessions.get(&streaming.id).is_some(), "its stream is open");
        assert!(sessions.get(&calling.id).is_some(), "a request is running");
        drop((stream, request));
        std::thread::sleep(Duration::from_millis(40));
        assert!(sessions.get(&streaming.id).is_none());
        assert!(sessions.get(&calling.id).is_none());
    }

    #[test]
    fn cancel_reaches_the_running_request_only() {
        let sessions = Sessions::new(4, Duration::from_secs(60));
        let session = sessions.create("2025-11-25", None).unwrap();
        let mut first = session.start_request(&Id::Num(1)).unwrap();
        let _second = session.start_request(&Id::Num(2)).unwrap();
        assert!(!session.cancel(&Id::Num(3)), "unknown ids are ignored");
        assert!(session.cancel(&Id::Num(1)));
        assert!(first.cancelled.try_recv().is_ok());
        drop(first);
        assert!(!session.cancel(&Id::Num(1)), "a finished request is gone");
    }
}
