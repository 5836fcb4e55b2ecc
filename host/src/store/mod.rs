//! The database, SQLite (a file, the default) or PostgreSQL (shared by replicas): schema
//! migrations and every SQL statement Waygate runs, behind one blocking interface.
//! Owns: [`Store`], [`Error`]. Never: knows about plugins' code, HTTP or the runtime; no
//! SQL exists outside this module.
//! Limits: [`crate::config::PluginLimits::kv_quota_bytes`] is checked here, atomically with the write.

mod history;
mod keys;
mod plugins;
mod postgres;

pub use history::{CommandRecord, CommandRow, HistoryWriter, MAX_RECORDED_BYTES};
pub use keys::{NewKey, StoredKey};
pub use plugins::PluginState;
pub use postgres::ReloadNotice;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use rusqlite_migration::{M, Migrations};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

/// How long a statement waits for another process's lock (the CLI, say) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema, one migration per file in `migrations/`, applied in order at open.
const MIGRATIONS: &[M<'static>] = &[
    M::up(include_str!("../../../migrations/0001_initial.sql")),
    M::up(include_str!(
        "../../../migrations/0002_command_history_context.sql"
    )),
    M::up(include_str!("../../../migrations/0003_api_key_roles.sql")),
    M::up(include_str!("../../../migrations/0004_plugin_state.sql")),
];

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database file cannot be opened or migrated.
    #[error("cannot open database {path}: {reason}")]
    Open {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A key-value write would exceed the plugin's quota.
    #[error(
        "key-value quota of {quota_bytes} bytes exceeded: the write needs {needed_bytes} bytes"
    )]
    QuotaExceeded {
        /// The quota.
        quota_bytes: u64,
        /// What the store would hold after the write.
        needed_bytes: u64,
    },
    /// A statement failed.
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A PostgreSQL statement failed.
    #[error("database error: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// No PostgreSQL connection could be had in time.
    #[error("database unavailable: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// The database was migrated by a newer Waygate than this one.
    #[error(
        "the database schema is at version {applied}, newer than this Waygate knows ({known}): run the newer version, or restore the backup taken before the upgrade"
    )]
    SchemaTooNew {
        /// The schema version the database holds.
        applied: i32,
        /// The newest this build knows.
        known: i32,
    },
    /// The store is shutting down.
    #[error("the database connection is closed")]
    Closed,
    /// The database did not answer in time (the network, most likely).
    #[error("the database did not answer in time")]
    TimedOut,
}

/// The database. Every method blocks until the database answers: async code calls it on
/// the blocking pool.
pub struct Store {
    backend: Backend,
}

enum Backend {
    /// One connection behind a mutex: statements are short, and SQLite serialises writers
    /// anyway; WAL mode lets the CLI read while the server writes.
    Sqlite(Mutex<Connection>),
    /// A connection pool; see [`postgres`].
    Postgres(Box<postgres::PgStore>),
}

/// The SQLite connection of `$store`; with PostgreSQL, returns `$pg`'s answer instead
/// (`$pg` names the [`postgres::PgStore`] in it). Each method's body is then its SQLite
/// implementation, beside the one line that sends it to PostgreSQL.
macro_rules! sqlite_or {
    ($store:expr, $pg:ident => $postgres:expr) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite(conn) => $crate::store::lock(conn),
            $crate::store::Backend::Postgres($pg) => return $postgres,
        }
    };
}
use sqlite_or;

fn lock(conn: &Mutex<Connection>) -> std::sync::MutexGuard<'_, Connection> {
    // A panic while holding the lock cannot leave SQLite inconsistent (statements are
    // atomic), so a poisoned lock is still safe to use.
    conn.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    ///
    /// # Errors
    ///
    /// [`Error::Open`] when the file cannot be opened, is not a database, or the migration
    /// fails; the migration runs in a transaction, so a failed one changes nothing.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let open_error = |reason: String| Error::Open {
            path: path.display().to_string(),
            reason,
        };
        let mut conn = Connection::open(path).map_err(|e| open_error(e.to_string()))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| open_error(e.to_string()))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| open_error(e.to_string()))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| open_error(e.to_string()))?;
        Migrations::from_slice(MIGRATIONS)
            .to_latest(&mut conn)
            .map_err(|e| open_error(e.to_string()))?;
        Ok(Self {
            backend: Backend::Sqlite(Mutex::new(conn)),
        })
    }

    /// Connects to the PostgreSQL database at `url` (`postgres://user:password@host/db`)
    /// and brings its schema up to date; replicas on the same database share keys, plugin
    /// states, command history and the plugins' key-value stores.
    ///
    /// # Errors
    ///
    /// [`Error::Open`] when the URL is malformed, the server cannot be reached or the
    /// migration fails (and then changed nothing).
    pub fn connect(url: &str) -> Result<Self, Error> {
        Ok(Self {
            backend: Backend::Postgres(Box::new(postgres::PgStore::connect(url)?)),
        })
    }

    /// Tells the other replicas on the same database that this one reloaded `plugin` (all
    /// plugins when `None`). Nothing to tell with SQLite: it belongs to one server.
    ///
    /// # Errors
    ///
    /// [`Error::Postgres`] or [`Error::Pool`] when the notification cannot be sent.
    pub fn announce_reload(&self, plugin: Option<&str>) -> Result<(), Error> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(()),
            Backend::Postgres(pg) => pg.announce_reload(plugin),
        }
    }

    /// The reloads other replicas announce, as they come; `None` with SQLite.
    pub fn reload_notices(&self) -> Option<tokio::sync::mpsc::Receiver<ReloadNotice>> {
        match &self.backend {
            Backend::Sqlite(_) => None,
            Backend::Postgres(pg) => Some(pg.reload_notices()),
        }
    }

    /// Runs a trivial query, for health checks.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`] when the database does not answer.
    pub fn ping(&self) -> Result<(), Error> {
        let conn = sqlite_or!(self, pg => pg.ping());
        conn.query_row("SELECT 1", [], |_| Ok(()))?;
        Ok(())
    }

    /// The value of `key` in `plugin`'s namespace.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`] when the statement fails.
    pub fn kv_get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, Error> {
        let conn = sqlite_or!(self, pg => pg.kv_get(plugin, key));
        Ok(conn
            .query_row(
                "SELECT value FROM plugin_kv WHERE plugin = ?1 AND key = ?2",
                params![plugin, key],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// Stores `value` under `key` unless `plugin`'s keys and values would then take more
    /// than `quota_bytes`. The check and the write are one immediate transaction, so two
    /// writers (two calls, or the server and the CLI) cannot both pass the check.
    ///
    /// # Errors
    ///
    /// [`Error::QuotaExceeded`], or [`Error::Sql`] when a statement fails.
    pub fn kv_set(
        &self,
        plugin: &str,
        key: &str,
        value: &[u8],
        quota_bytes: u64,
    ) -> Result<(), Error> {
        let entry_bytes = (key.len() + value.len()) as u64;
        if entry_bytes > quota_bytes {
            // Hopeless whatever the store holds: refuse without taking the lock.
            return Err(Error::QuotaExceeded {
                quota_bytes,
                needed_bytes: entry_bytes,
            });
        }
        let mut conn = sqlite_or!(self, pg => pg.kv_set(plugin, key, value, quota_bytes));
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let replaced = entry_size(&tx, plugin, key)?;
        let usage = usage(&tx, plugin)?;
        let needed_bytes = usage - replaced + entry_bytes;
        if needed_bytes > quota_bytes {
            return Err(Error::QuotaExceeded {
                quota_bytes,
                needed_bytes,
            });
        }
        tx.execute(
            "INSERT INTO plugin_kv (plugin, key, value) VALUES (?1, ?2, ?3)
             ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value,
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            params![plugin, key, value],
        )?;
        set_usage(&tx, plugin, needed_bytes)?;
        tx.commit()?;
        Ok(())
    }

    /// Removes `key` from `plugin`'s namespace; returns whether it was there.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`] when a statement fails.
    pub fn kv_delete(&self, plugin: &str, key: &str) -> Result<bool, Error> {
        let mut conn = sqlite_or!(self, pg => pg.kv_delete(plugin, key));
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let removed_bytes = entry_size(&tx, plugin, key)?;
        let removed = tx.execute(
            "DELETE FROM plugin_kv WHERE plugin = ?1 AND key = ?2",
            params![plugin, key],
        )?;
        if removed > 0 {
            let usage = usage(&tx, plugin)?;
            set_usage(&tx, plugin, usage.saturating_sub(removed_bytes))?;
        }
        tx.commit()?;
        Ok(removed > 0)
    }

    /// Up to `limit` keys of `plugin` starting with `prefix`, in byte order. Keys compare
    /// bytewise (SQLite's BINARY collation), so the prefixed keys are one contiguous run of
    /// the primary key from `prefix` on: the scan stops at the first key past it.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`] when the statement fails.
    pub fn kv_list(&self, plugin: &str, prefix: &str, limit: u32) -> Result<Vec<String>, Error> {
        let conn = sqlite_or!(self, pg => pg.kv_list(plugin, prefix, limit));
        let mut statement = conn.prepare_cached(
            "SELECT key FROM plugin_kv WHERE plugin = ?1 AND key >= ?2 ORDER BY key",
        )?;
        let mut rows = statement.query(params![plugin, prefix])?;
        let mut keys = Vec::new();
        while keys.len() < limit as usize {
            let Some(row) = rows.next()? else { break };
            let key: String = row.get(0)?;
            if !key.starts_with(prefix) {
                break;
            }
            keys.push(key);
        }
        Ok(keys)
    }
}

/// Bytes the entry `key` takes now (key plus value), 0 when absent.
fn entry_size(tx: &rusqlite::Transaction<'_>, plugin: &str, key: &str) -> Result<u64, Error> {
    let size: Option<i64> = tx
        .query_row(
            "SELECT length(CAST(key AS BLOB)) + length(value) FROM plugin_kv
             WHERE plugin = ?1 AND key = ?2",
            params![plugin, key],
            |row| row.get(0),
        )
        .optional()?;
    Ok(size.map_or(0, i64::unsigned_abs))
}

fn usage(tx: &rusqlite::Transaction<'_>, plugin: &str) -> Result<u64, Error> {
    let bytes: Option<i64> = tx
        .query_row(
            "SELECT bytes FROM plugin_kv_usage WHERE plugin = ?1",
            params![plugin],
            |row| row.get(0),
        )
        .optional()?;
    Ok(bytes.map_or(0, i64::unsigned_abs))
}

fn set_usage(tx: &rusqlite::Transaction<'_>, plugin: &str, bytes: u64) -> Result<(), Error> {
    tx.execute(
        "INSERT INTO plugin_kv_usage (plugin, bytes) VALUES (?1, ?2)
         ON CONFLICT (plugin) DO UPDATE SET bytes = excluded.bytes",
        params![plugin, i64::try_from(bytes).unwrap_or(i64::MAX)],
    )?;
    Ok(())
}

/// A fresh store for a test, and where it lives, so the test can open a second
/// connection to it (as the CLI or another replica would).
#[cfg(test)]
pub(crate) struct TestStore {
    /// `sqlite` or `postgres`, for assertion messages.
    pub backend: &'static str,
    /// The store.
    pub store: std::sync::Arc<Store>,
    /// The SQLite file's directory, or the PostgreSQL database's URL.
    location: Result<tempfile::TempDir, String>,
}

#[cfg(test)]
impl TestStore {
    /// Another, independent connection to the same database.
    pub fn open_again(&self) -> Store {
        match &self.location {
            Ok(dir) => Store::open(&dir.path().join("waygate.db")).unwrap(),
            Err(url) => Store::connect(url).unwrap(),
        }
    }
}

/// A fresh store on each backend, for tests that must hold on both: an SQLite file and a
/// new database on the PostgreSQL server `cargo xtask test` starts.
#[cfg(test)]
pub(crate) fn each_backend() -> Vec<TestStore> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::open(&dir.path().join("waygate.db")).unwrap();
    let url = postgres::fresh_test_database();
    let postgres = Store::connect(&url).unwrap();
    vec![
        TestStore {
            backend: "sqlite",
            store: std::sync::Arc::new(sqlite),
            location: Ok(dir),
        },
        TestStore {
            backend: "postgres",
            store: std::sync::Arc::new(postgres),
            location: Err(url),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() {
        Migrations::from_slice(MIGRATIONS).validate().unwrap();
    }

    #[test]
    fn namespaces_keep_plugins_apart() {
        for TestStore { backend, store, .. } in each_backend() {
            store.kv_set("a", "k", b"one", 1024).unwrap();
            store.kv_set("b", "k", b"two", 1024).unwrap();
            assert_eq!(
                store.kv_get("a", "k").unwrap().as_deref(),
                Some(&b"one"[..]),
                "{backend}"
            );
            assert!(store.kv_delete("a", "k").unwrap(), "{backend}");
            assert!(!store.kv_delete("a", "k").unwrap(), "{backend}");
            assert_eq!(store.kv_get("a", "k").unwrap(), None, "{backend}");
            assert_eq!(
                store.kv_get("b", "k").unwrap().as_deref(),
                Some(&b"two"[..]),
                "{backend}"
            );
        }
    }

    #[test]
    fn quota_counts_keys_and_values_and_allows_replacing() {
        for TestStore { backend, store, .. } in each_backend() {
            store.kv_set("p", "key", b"12345", 10).unwrap();
            // Replacing a value is judged by the new size, not the old plus the new.
            store.kv_set("p", "key", b"1234567", 10).unwrap();
            match store.kv_set("p", "other", b"x", 10) {
                Err(Error::QuotaExceeded {
                    quota_bytes: 10,
                    needed_bytes: 16,
                }) => {}
                other => panic!("{backend}: expected quota error, got {other:?}"),
            }
            assert_eq!(store.kv_get("p", "other").unwrap(), None, "{backend}");
            // Deleting gives the bytes back.
            assert!(store.kv_delete("p", "key").unwrap());
            store.kv_set("p", "other", b"x", 10).unwrap();
            // An entry larger than the whole quota is refused outright.
            assert!(
                matches!(
                    store.kv_set("p", "huge", &[0; 20], 10),
                    Err(Error::QuotaExceeded {
                        needed_bytes: 24,
                        ..
                    })
                ),
                "{backend}"
            );
        }
    }

    #[test]
    fn concurrent_writers_cannot_both_pass_the_quota() {
        for TestStore { backend, store, .. } in each_backend() {
            // Eight writers of 6 bytes each against a quota of 24: exactly four fit.
            let writers: Vec<_> = (0..8)
                .map(|i| {
                    let store = store.clone();
                    std::thread::spawn(move || store.kv_set("p", &format!("k{i}"), b"1234", 24))
                })
                .collect();
            let stored = writers
                .into_iter()
                .map(|writer| writer.join().unwrap())
                .filter(Result::is_ok)
                .count();
            assert_eq!(stored, 4, "{backend}");
            assert_eq!(store.kv_list("p", "", 100).unwrap().len(), 4, "{backend}");
        }
    }

    #[test]
    fn a_prefix_is_literal_text_not_a_pattern() {
        for TestStore { backend, store, .. } in each_backend() {
            for key in ["a%b", "a_b", "axb", "a\\b", "ab"] {
                store.kv_set("p", key, b"", 1024).unwrap();
            }
            assert_eq!(store.kv_list("p", "a%", 10).unwrap(), ["a%b"], "{backend}");
            assert_eq!(store.kv_list("p", "a_", 10).unwrap(), ["a_b"], "{backend}");
            assert_eq!(
                store.kv_list("p", "a\\", 10).unwrap(),
                ["a\\b"],
                "{backend}"
            );
        }
    }

    #[test]
    fn listing_filters_by_prefix_in_byte_order() {
        for TestStore { backend, store, .. } in each_backend() {
            for key in [
                "note/2", "note/10", "other", "note/1", "note/B", "note/a", "note/é",
            ] {
                store.kv_set("p", key, b"", 1024).unwrap();
            }
            assert_eq!(
                store.kv_list("p", "note/", 10).unwrap(),
                ["note/1", "note/10", "note/2", "note/B", "note/a", "note/é"],
                "{backend}"
            );
            assert_eq!(
                store.kv_list("p", "note/", 2).unwrap(),
                ["note/1", "note/10"],
                "{backend}"
            );
            assert_eq!(
                store.kv_list("q", "", 10).unwrap(),
                Vec::<String>::new(),
                "{backend}"
            );
        }
    }

    #[test]
    fn the_data_version_moves_when_another_connection_adds_the_first_key() {
        for test_store in each_backend() {
            let before = test_store.store.data_version().unwrap();
            let other = test_store.open_again();
            other
                .insert_key(&NewKey {
                    key_hash: "digest",
                    name: "first",
                    role: "admin",
                    plugins: None,
                    prefix: "wg_first",
                    expires_at: None,
                })
                .unwrap();
            assert_ne!(
                test_store.store.data_version().unwrap(),
                before,
                "{}",
                test_store.backend
            );
        }
    }

    #[test]
    fn a_postgres_database_migrated_twice_keeps_its_data() {
        let url = postgres::fresh_test_database();
        Store::connect(&url)
            .unwrap()
            .kv_set("p", "k", b"v", 100)
            .unwrap();
        let store = Store::connect(&url).unwrap();
        assert_eq!(store.kv_get("p", "k").unwrap().as_deref(), Some(&b"v"[..]));
    }

    #[test]
    fn an_unreachable_postgres_server_is_a_clear_error_without_the_password() {
        // Port 1 on loopback: nothing listens, the connection is refused at once.
        let error = Store::connect("postgres://waygate:s3cret@127.0.0.1:1/waygate")
            .err()
            .expect("no server there")
            .to_string();
        assert!(
            error.starts_with("cannot open database postgres://…@127.0.0.1:1"),
            "{error}"
        );
        assert!(!error.contains("s3cret"), "{error}");
    }

    #[test]
    fn reopening_keeps_data_and_does_not_rerun_migrations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("waygate.db");
        Store::open(&path)
            .unwrap()
            .kv_set("p", "k", b"v", 100)
            .unwrap();
        let store = Store::open(&path).unwrap();
        assert_eq!(store.kv_get("p", "k").unwrap().as_deref(), Some(&b"v"[..]));
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("waygate.db");
        std::fs::write(
            &path,
            b"this is not sqlite, just some text long enough to matter",
        )
        .unwrap();
        assert!(matches!(Store::open(&path), Err(Error::Open { .. })));
    }
}
