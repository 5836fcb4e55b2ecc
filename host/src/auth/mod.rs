//! Who may do what: API keys with roles and plugin allow-lists, the role every route and MCP
//! method needs (one table, [`route_access`] and [`mcp_method_role`]), and the in-memory key
//! ring a server checks requests against, kept in step with the database.
//! Owns: [`Role`], [`Principal`], [`KeyRing`], [`AuthError`], [`keys`]. Never: parses HTTP
//! (`http` hands it the credential) or logs a key; only digests are stored or compared.
//! Limits: keys created or revoked elsewhere (the CLI) take effect within [`REFRESH_INTERVAL`].

pub mod keys;
mod oauth;

pub use oauth::OAuth;

use crate::store::{NewKey, Store, StoredKey};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

/// How often the key ring looks for changes another process committed (the CLI): the
/// longest a created or revoked key takes to work or stop working.
pub const REFRESH_INTERVAL: Duration = Duration::from_millis(500);
/// How often accepted uses are written to `api_keys.last_used`: one transaction for all
/// keys used in the interval, never a write per request.
pub const LAST_USED_INTERVAL: Duration = Duration::from_secs(5);

/// What a key may do; each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// List plugins, tools, resources, prompts; status; diagnostics.
    Reader,
    /// Also call tools, read resources, get prompts.
    Caller,
    /// Also reload plugins, read the command history, manage keys.
    Admin,
}

impl Role {
    /// The role's name as stored and typed.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Caller => "caller",
            Role::Admin => "admin",
        }
    }

    /// Parses a role name.
    ///
    /// # Errors
    ///
    /// A message naming the roles.
    pub fn parse(text: &str) -> Result<Role, String> {
        match text {
            "reader" => Ok(Role::Reader),
            "caller" => Ok(Role::Caller),
            "admin" => Ok(Role::Admin),
            _ => Err(format!(
                "unknown role {text:?}: use reader, caller or admin"
            )),
        }
    }
}

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key's id, for an API key.
    pub key_id: Option<i64>,
    /// The token's subject, for an OAuth bearer token.
    pub subject: Option<String>,
    /// The key's name, for logs and the command history.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The plugins it may use, when limited.
    pub plugins: Option<Arc<[String]>>,
}

impl Principal {
    /// Everyone, when authentication is off.
    pub fn anonymous() -> Principal {
        Principal {
            key_id: None,
            subject: None,
            name: "anonymous".to_owned(),
            role: Role::Admin,
            plugins: None,
        }
    }

    /// Nobody in particular: a request to an open route, which checks no role.
    pub fn nobody() -> Principal {
        Principal {
            key_id: None,
            subject: None,
            name: "unauthenticated".to_owned(),
            role: Role::Reader,
            plugins: Some(Arc::from(Vec::new())),
        }
    }

    /// The name to record as the caller: the key's or the token subject's; none without
    /// authentication.
    pub fn caller_id(&self) -> Option<String> {
        (self.key_id.is_some() || self.subject.is_some()).then(|| self.name.clone())
    }

    /// Who this is, for binding sessions and counting rate limits: `key:<id>` or
    /// `sub:<subject>`; `None` without authentication.
    pub fn identity(&self) -> Option<String> {
        match (&self.key_id, &self.subject) {
            (Some(id), _) => Some(format!("key:{id}")),
            (None, Some(subject)) => Some(format!("sub:{subject}")),
            (None, None) => None,
        }
    }

    /// Whether it may use `plugin`.
    pub fn may_use(&self, plugin: &str) -> bool {
        self.plugins
            .as_ref()
            .is_none_or(|plugins| plugins.iter().any(|p| p == plugin))
    }
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credential came with the request.
    #[error("authentication required: send an API key as X-API-Key or Authorization: Bearer")]
    Missing,
    /// The credential is not a working key. Unknown, revoked and expired keys all get this
    /// one answer, so nobody can probe which keys once existed.
    #[error("invalid API key")]
    Invalid,
    /// A working key without the role the request needs.
    #[error("this key's role is {has}; {needed} is needed")]
    Forbidden {
        /// The key's role.
        has: &'static str,
        /// The role needed.
        needed: &'static str,
    },
}

/// What a route asks of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone.
    Open,
    /// `/metrics`: open or keyed, by config.
    Metrics,
    /// A key with at least this role.
    Role(Role),
}

/// The access each REST route needs, by route template and method. `/mcp` needs a key of
/// any role; each MCP method then needs [`mcp_method_role`].
pub fn route_access(template: &str, method: &str) -> Access {
    match (template, method) {
        (
            "/"
            | "/health"
            | "/ready"
            | "/openapi.json"
            | "/.well-known/oauth-protected-resource"
            | "/.well-known/oauth-protected-resource/mcp",
            _,
        ) => Access::Open,
        ("/metrics", _) => Access::Metrics,
        ("/mcp/execute", _) => Access::Role(Role::Caller),
        // The history holds every caller's arguments and results.
        ("/mcp/commands/history", _) => Access::Role(Role::Admin),
        (
            "/plugins/reload"
            | "/plugins/{name}/reload"
            | "/plugins/{name}/disable"
            | "/plugins/{name}/enable"
            | "/diagnostics/log-level",
            _,
        ) => Access::Role(Role::Admin),
        _ => Access::Role(Role::Reader),
    }
}

/// The role an MCP method needs.
pub fn mcp_method_role(method: &str) -> Role {
    match method {
        "tools/call" | "resources/read" | "prompts/get" => Role::Caller,
        _ => Role::Reader,
    }
}

/// Checks that `principal` has `needed`.
///
/// # Errors
///
/// [`AuthError::Forbidden`].
pub fn require(principal: &Principal, needed: Role) -> Result<(), AuthError> {
    if principal.role >= needed {
        Ok(())
    } else {
        Err(AuthError::Forbidden {
            has: principal.role.as_str(),
            needed: needed.as_str(),
        })
    }
}

/// A usable key, as held in memory.
#[derive(Clone)]
struct KeyEntry {
    principal: Principal,
    expires_at: Option<SystemTime>,
}

impl std::fmt::Debug for KeyEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEntry")
            .field("principal", &self.principal)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The active keys, by digest, refreshed from the database when another process changes
/// it, and the uses not yet written back.
pub struct KeyRing {
    store: Arc<Store>,
    keys: RwLock<Arc<HashMap<[u8; 32], KeyEntry>>>,
    seen_version: Mutex<Option<i64>>,
    uses: Mutex<HashMap<i64, SystemTime>>,
}

fn parse_time(text: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(text).ok()
}

fn entry(key: StoredKey) -> Option<([u8; 32], KeyEntry)> {
    let Some(digest) = crate::hex::decode(&key.key_hash) else {
        tracing::warn!(key_id = key.id, "api key with a malformed hash ignored");
        return None;
    };
    let role = match Role::parse(&key.role) {
        Ok(role) => role,
        Err(reason) => {
            tracing::warn!(
                key_id = key.id,
                reason,
                "api key with an unknown role ignored"
            );
            return None;
        }
    };
    // A field that does not parse makes the key unusable, never more powerful.
    let plugins = match key.plugins.as_deref() {
        None => None,
        Some(json) => match serde_json::from_str::<Vec<String>>(json) {
            Ok(plugins) => Some(Arc::from(plugins)),
            Err(_) => {
                tracing::warn!(
                    key_id = key.id,
                    "api key with an unreadable plugin list ignored"
                );
                return None;
            }
        },
    };
    let expires_at = match key.expires_at.as_deref() {
        None => None,
        Some(text) => match parse_time(text) {
            Some(at) => Some(at),
            None => {
                tracing::warn!(key_id = key.id, "api key with an unreadable expiry ignored");
                return None;
            }
        },
    };
    Some((
        digest,
        KeyEntry {
            principal: Principal {
                key_id: Some(key.id),
                subject: None,
                name: key.name,
                role,
                plugins,
            },
            expires_at,
        },
    ))
}

impl KeyRing {
    /// A ring over the keys in `store`, loaded now.
    ///
    /// # Errors
    ///
    /// [`crate::store::Error`] when the keys cannot be read.
    pub fn load(store: Arc<Store>) -> Result<KeyRing, crate::store::Error> {
        let ring = KeyRing {
            store,
            keys: RwLock::new(Arc::new(HashMap::new())),
            seen_version: Mutex::new(None),
            uses: Mutex::new(HashMap::new()),
        };
        ring.refresh()?;
        Ok(ring)
    }

    /// Reloads the keys if another connection committed since the last look.
    ///
    /// # Errors
    ///
    /// [`crate::store::Error`]; the keys in memory then stay as they were.
    pub fn refresh(&self) -> Result<(), crate::store::Error> {
        let version = self.store.data_version()?;
        if *self
            .seen_version
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            == Some(version)
        {
            return Ok(());
        }
        self.reload()?;
        *self
            .seen_version
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(version);
        Ok(())
    }

    /// Reloads the keys now. Changes made through this process's own connection do not
    /// move the data version [`KeyRing::refresh`] watches, so whoever makes them here
    /// reloads.
    ///
    /// # Errors
    ///
    /// [`crate::store::Error`]; the keys in memory then stay as they were.
    pub fn reload(&self) -> Result<(), crate::store::Error> {
        let loaded: HashMap<[u8; 32], KeyEntry> = self
            .store
            .keys()?
            .into_iter()
            .filter(|k| k.active)
            .filter_map(entry)
            .collect();
        *self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(loaded);
        Ok(())
    }

    /// The principal of a presented key.
    ///
    /// # Errors
    ///
    /// [`AuthError::Invalid`] for an unknown, revoked or expired key.
    pub fn authenticate(&self, key: &str) -> Result<Principal, AuthError> {
        let digest = keys::digest(key);
        let keys = self
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        // The map is looked up by digest, so timing can tell at most something about
        // SHA-256 digests, never about the keys they come from.
        let entry = keys.get(&digest).ok_or(AuthError::Invalid)?;
        let now = SystemTime::now();
        if entry.expires_at.is_some_and(|at| at <= now) {
            return Err(AuthError::Invalid);
        }
        if let Some(id) = entry.principal.key_id {
            self.uses
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(id, now);
        }
        Ok(entry.principal.clone())
    }

    /// Writes the uses seen since the last flush to `last_used`, in one transaction.
    ///
    /// # Errors
    ///
    /// [`crate::store::Error`]; those uses are then dropped (the next ones come soon).
    pub fn flush_uses(&self) -> Result<(), crate::store::Error> {
        let uses: Vec<(i64, String)> = std::mem::take(
            &mut *self
                .uses
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
        .into_iter()
        .map(|(id, at)| (id, humantime::format_rfc3339_millis(at).to_string()))
        .collect();
        if uses.is_empty() {
            return Ok(());
        }
        self.store.touch_keys(&uses)
    }

    /// Keeps the ring in step with the database and writes uses back, on the blocking pool,
    /// until the returned handle is aborted or dropped with the runtime.
    pub fn start(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let ring = self.clone();
        tokio::spawn(async move {
            let mut refresh = tokio::time::interval(REFRESH_INTERVAL);
            let mut flush = tokio::time::interval(LAST_USED_INTERVAL);
            loop {
                tokio::select! {
                    _ = refresh.tick() => {
                        let ring = ring.clone();
                        let refreshed = tokio::task::spawn_blocking(move || ring.refresh()).await;
                        if let Ok(Err(error)) = refreshed {
                            tracing::error!(%error, "cannot reload API keys");
                        }
                    }
                    _ = flush.tick() => {
                        let ring = ring.clone();
                        let flushed = tokio::task::spawn_blocking(move || ring.flush_uses()).await;
                        if let Ok(Err(error)) = flushed {
                            tracing::warn!(%error, "cannot record API key use");
                        }
                    }
                }
            }
        })
    }
}

/// A key made for someone: the key itself, shown once, and its row id.
pub struct CreatedKey {
    /// The row id.
    pub id: i64,
    /// The key. Shown once; only its digest is stored.
    pub key: String,
}

impl std::fmt::Debug for CreatedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedKey")
            .field("id", &self.id)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// What a new key may do and for how long.
#[derive(Debug, Clone)]
pub struct KeySpec<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its role.
    pub role: Role,
    /// The plugins it may use, if limited.
    pub plugins: Option<&'a [String]>,
    /// When it stops working, if ever.
    pub expires_at: Option<SystemTime>,
}

/// Creates a key (a new random one, or `given`) and stores its digest.
///
/// # Errors
///
/// A message: a malformed `given` key, or a database failure.
pub fn create_key(
    store: &Store,
    spec: &KeySpec<'_>,
    given: Option<&str>,
) -> Result<CreatedKey, String> {
    let (key, new) = new_key(spec, given)?;
    let id = store
        .insert_key(&new.as_new_key())
        .map_err(|e| e.to_string())?;
    Ok(CreatedKey { id, key })
}

/// Replaces key `old` with a new key of `spec`, and lets `old` work until `old_until`: both
/// in one transaction, so a failure leaves the old key as it was and no unseen key behind.
///
/// # Errors
///
/// A message: a bad spec, or a database failure.
pub fn rotate_key(
    store: &Store,
    old: i64,
    spec: &KeySpec<'_>,
    old_until: SystemTime,
) -> Result<CreatedKey, String> {
    let (key, new) = new_key(spec, None)?;
    let until = humantime::format_rfc3339_millis(old_until).to_string();
    let id = store
        .replace_key(old, &new.as_new_key(), &until)
        .map_err(|e| e.to_string())?;
    Ok(CreatedKey { id, key })
}

/// The stored fields of a key about to be made.
struct KeyFields {
    key_hash: String,
    prefix: String,
    plugins: Option<String>,
    expires_at: Option<String>,
    name: String,
    role: Role,
}

impl KeyFields {
    fn as_new_key(&self) -> NewKey<'_> {
        NewKey {
            key_hash: &self.key_hash,
            name: &self.name,
            role: self.role.as_str(),
            plugins: self.plugins.as_deref(),
            prefix: &self.prefix,
            expires_at: self.expires_at.as_deref(),
        }
    }
}

fn new_key(spec: &KeySpec<'_>, given: Option<&str>) -> Result<(String, KeyFields), String> {
    // Names are how the CLI finds keys beside their numeric ids; an all-digit name would be
    // read as an id and could point at another key.
    if spec.name.trim().is_empty() || spec.name.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "a key's name must not be empty or all digits (those are ids): {:?}",
            spec.name
        ));
    }
    let key = match given {
        Some(key) => {
            keys::check_format(key).map_err(|e| e.to_string())?;
            key.to_owned()
        }
        None => keys::generate().map_err(|e| e.to_string())?,
    };
    let fields = KeyFields {
        key_hash: keys::digest_hex(&key),
        prefix: keys::shown_part(&key).to_owned(),
        plugins: spec
            .plugins
            .map(|p| serde_json::to_string(p).unwrap_or_else(|_| "[]".to_owned())),
        expires_at: spec
            .expires_at
            .map(|at| humantime::format_rfc3339_millis(at).to_string()),
        name: spec.name.to_owned(),
        role: spec.role,
    };
    Ok((key, fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_order_and_route_table() {
        assert!(Role::Admin > Role::Caller && Role::Caller > Role::Reader);
        assert_eq!(route_access("/health", "GET"), Access::Open);
        assert_eq!(
            route_access("/mcp/execute", "POST"),
            Access::Role(Role::Caller)
        );
        assert_eq!(route_access("/plugins", "GET"), Access::Role(Role::Reader));
        assert_eq!(
            route_access("/diagnostics/log-level", "PUT"),
            Access::Role(Role::Admin)
        );
        assert_eq!(mcp_method_role("tools/call"), Role::Caller);
        assert_eq!(mcp_method_role("tools/list"), Role::Reader);
        let reader = Principal {
            role: Role::Reader,
            ..Principal::anonymous()
        };
        assert!(require(&reader, Role::Caller).is_err());
        assert!(require(&reader, Role::Reader).is_ok());
    }

    #[test]
    fn keys_authenticate_expire_and_revoke() {
        for test_store in crate::store::each_backend() {
            keys_authenticate_expire_and_revoke_in(&test_store);
        }
    }

    fn keys_authenticate_expire_and_revoke_in(test_store: &crate::store::TestStore) {
        let store = test_store.store.clone();
        let plugins = vec!["echo".to_owned()];
        let spec = KeySpec {
            name: "ci",
            role: Role::Caller,
            plugins: Some(&plugins),
            expires_at: None,
        };
        let created = create_key(&store, &spec, None).unwrap();
        let ring = KeyRing::load(store.clone()).unwrap();
        let principal = ring.authenticate(&created.key).unwrap();
        assert_eq!(
            (principal.name.as_str(), principal.role),
            ("ci", Role::Caller)
        );
        assert!(principal.may_use("echo") && !principal.may_use("notes"));
        assert_eq!(ring.authenticate("wg_nope"), Err(AuthError::Invalid));

        let expired = KeySpec {
            expires_at: Some(SystemTime::now() - Duration::from_secs(1)),
            ..spec.clone()
        };
        let old = create_key(&store, &expired, None).unwrap();
        // Another connection (the CLI, another replica) revokes the first key.
        let cli = test_store.open_again();
        assert!(cli.revoke_key(created.id).unwrap());
        ring.refresh().unwrap();
        assert_eq!(ring.authenticate(&created.key), Err(AuthError::Invalid));
        assert_eq!(ring.authenticate(&old.key), Err(AuthError::Invalid));

        let admin = create_key(
            &cli,
            &KeySpec {
                name: "root",
                role: Role::Admin,
                plugins: None,
                expires_at: None,
            },
            None,
        )
        .unwrap();
        ring.refresh().unwrap();
        ring.authenticate(&admin.key).unwrap();
        ring.flush_uses().unwrap();
        let stored = store.key(admin.id).unwrap().unwrap();
        assert!(stored.last_used.is_some());
        assert_eq!(stored.prefix, keys::shown_part(&admin.key));
        assert_ne!(stored.key_hash, admin.key, "only the digest is stored");
    }
}
