//! The PostgreSQL backend, for replicas sharing one database: `tokio-postgres` with a
//! `deadpool` pool, on a runtime of its own so the store keeps one blocking interface.
//! Owns: [`PgStore`], the PostgreSQL migrations. Limits: [`POOL_SIZE`] connections,
//! [`STATEMENT_TIMEOUT`] per statement, [`CONNECT_TIMEOUT`] per connection and wait.

use super::Error;
use super::history::{CommandRecord, CommandRow, StoredRecord};
use super::keys::{NewKey, StoredKey};
use super::plugins::PluginState;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;
use tokio_postgres::{NoTls, Row};

/// Connections one process keeps to the database.
const POOL_SIZE: usize = 16;
/// Longest wait for a new connection, or for a free one from the pool.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a statement runs before the server cancels it: a stuck database fails calls
/// instead of holding them (and their blocking threads) forever.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle time before TCP keepalive probes start on a database connection.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
/// Taken (per transaction) while migrating, so replicas starting together migrate once.
const MIGRATION_LOCK: i64 = 0x5761_7967_6174_6501; // "Waygate" + 1

/// The PostgreSQL schema, one migration per file in `migrations/postgres/`, applied in order.
const MIGRATIONS: &[&str] = &[include_str!(
    "../../../migrations/postgres/0001_initial.sql"
)];

/// Same columns, same order, as the SQLite backend's key rows.
const KEY_COLUMNS: &str =
    "id, key_hash, name, role, plugins, prefix, created_at, expires_at, last_used, is_active";

/// The channel replicas announce reloads on.
const RELOAD_CHANNEL: &str = "waygate_reload";
/// First and longest pause before the reload listener connects again after losing its
/// connection; the pause doubles between failed attempts.
const FIRST_RECONNECT_DELAY: Duration = Duration::from_millis(250);
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(30);

/// A pool of connections to one PostgreSQL database, and the runtime its I/O runs on.
pub struct PgStore {
    pool: Pool,
    /// For the reload listener's own connection, outside the pool.
    config: tokio_postgres::Config,
    /// This process among the replicas: its own announcements come back and are ignored.
    origin: String,
    /// `Some` until dropped: dropping a runtime from async code must not block, so `Drop`
    /// hands it to `shutdown_background`.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// `url` with its user information and query (either may hold the password) left out: for
/// messages.
fn redacted(url: &str) -> String {
    let url = url.split('?').next().unwrap_or_default();
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://…@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`, libpq's URL form)
    /// and brings the schema up to date.
    ///
    /// # Errors
    ///
    /// [`Error::Open`] when the URL is malformed, the server cannot be reached or the
    /// migration fails; the migration runs in one transaction, so a failed one changes
    /// nothing.
    pub fn connect(url: &str) -> Result<Self, Error> {
        let open_error = |reason: String| Error::Open {
            path: redacted(url),
            reason,
        };
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| open_error(e.to_string()))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        // Idle connections (the LISTEN one above all) behind NAT or a load balancer are
        // dropped silently after minutes; probes find that out, and keep them open.
        config.keepalives_idle(KEEPALIVE_IDLE);
        let options = config.get_options().unwrap_or_default().to_owned();
        config.options(format!(
            "{options} -c statement_timeout={}",
            STATEMENT_TIMEOUT.as_millis()
        ));
        config.application_name("waygate");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("waygate-postgres")
            .enable_all()
            .build()
            .map_err(|e| open_error(e.to_string()))?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| open_error(e.to_string()))?;
        let store = Self {
            pool,
            config,
            origin: format!(
                "{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |since| since.as_nanos())
            ),
            runtime: Some(runtime),
        };
        store
            .run(|pool| async move { migrate(&pool).await })
            .map_err(|e| open_error(e.to_string()))?;
        Ok(store)
    }

    /// Runs `work` on the store's runtime and waits for its answer. Callable from any
    /// thread, inside an async runtime or not: like SQLite's statements, it blocks the
    /// caller, so async code calls the store on the blocking pool.
    fn run<T, F>(&self, work: impl FnOnce(Pool) -> F) -> Result<T, Error>
    where
        F: Future<Output = Result<T, Error>> + Send + 'static,
        T: Send + 'static,
    {
        let runtime = self.runtime.as_ref().ok_or(Error::Closed)?;
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        let work = work(self.pool.clone());
        runtime.spawn(async move {
            // The server's statement timeout cannot end a wait on a network that dropped
            // the connection silently; this one can.
            let answer = tokio::time::timeout(CONNECT_TIMEOUT + STATEMENT_TIMEOUT, work)
                .await
                .unwrap_or(Err(Error::TimedOut));
            let _ = sender.send(answer);
        });
        receiver.recv().unwrap_or(Err(Error::Closed))
    }

    pub fn ping(&self) -> Result<(), Error> {
        self.run(|pool| async move {
            pool.get().await?.execute("SELECT 1", &[]).await?;
            Ok(())
        })
    }

    pub fn kv_get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, Error> {
        let (plugin, key) = (plugin.to_owned(), key.to_owned());
        self.run(|pool| async move {
            let row = pool
                .get()
                .await?
                .query_opt(
                    "SELECT value FROM plugin_kv WHERE plugin = $1 AND key = $2",
                    &[&plugin, &key],
                )
                .await?;
            Ok(row.map(|row| row.get(0)))
        })
    }

    /// The quota check and the write are one transaction holding the plugin's usage row,
    /// so two writers (two replicas, say) cannot both pass the check.
    pub fn kv_set(
        &self,
        plugin: &str,
        key: &str,
        value: &[u8],
        quota_bytes: u64,
    ) -> Result<(), Error> {
        let entry_bytes = (key.len() + value.len()) as u64;
        let (plugin, key, value) = (plugin.to_owned(), key.to_owned(), value.to_owned());
        self.run(move |pool| async move {
            let mut client = pool.get().await?;
            let tx = client.transaction().await?;
            let usage = lock_usage(&tx, &plugin).await?;
            let replaced = entry_size(&tx, &plugin, &key).await?;
            let needed_bytes = usage - replaced + entry_bytes;
            if needed_bytes > quota_bytes {
                return Err(Error::QuotaExceeded {
                    quota_bytes,
                    needed_bytes,
                });
            }
            tx.execute(
                "INSERT INTO plugin_kv (plugin, key, value) VALUES ($1, $2, $3)
                 ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value,
                     updated_at = to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
                &[&plugin, &key, &value],
            )
            .await?;
            set_usage(&tx, &plugin, needed_bytes).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    pub fn kv_delete(&self, plugin: &str, key: &str) -> Result<bool, Error> {
        let (plugin, key) = (plugin.to_owned(), key.to_owned());
        self.run(move |pool| async move {
            let mut client = pool.get().await?;
            let tx = client.transaction().await?;
            let usage = lock_usage(&tx, &plugin).await?;
            let removed_bytes = entry_size(&tx, &plugin, &key).await?;
            let removed = tx
                .execute(
                    "DELETE FROM plugin_kv WHERE plugin = $1 AND key = $2",
                    &[&plugin, &key],
                )
                .await?;
            if removed > 0 {
                set_usage(&tx, &plugin, usage.saturating_sub(removed_bytes)).await?;
            }
            tx.commit().await?;
            Ok(removed > 0)
        })
    }

    pub fn kv_list(&self, plugin: &str, prefix: &str, limit: u32) -> Result<Vec<String>, Error> {
        // A LIKE prefix on a "C"-collated key is a range scan of the primary key that stops
        // at the first key past the prefix.
        let pattern = format!(
            "{}%",
            prefix
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let plugin = plugin.to_owned();
        self.run(move |pool| async move {
            let rows = pool
                .get()
                .await?
                .query(
                    "SELECT key FROM plugin_kv WHERE plugin = $1 AND key LIKE $2
                     ORDER BY key LIMIT $3",
                    &[&plugin, &pattern, &i64::from(limit)],
                )
                .await?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
    }

    pub fn insert_commands(&self, records: &[CommandRecord], keep_rows: u64) -> Result<(), Error> {
        let records = records.to_vec();
        self.run(move |pool| async move {
            let mut client = pool.get().await?;
            let tx = client.transaction().await?;
            let insert = tx
                .prepare(
                    "INSERT INTO command_history
                     (command, plugin, params, result, status, duration_ms, client_id, request_id, source, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .await?;
            for r in &records {
                let duration_ms = i64::try_from(r.duration_ms).unwrap_or(i64::MAX);
                tx.execute(
                    &insert,
                    &[
                        &r.command,
                        &r.plugin,
                        &r.params,
                        &r.result,
                        &r.status,
                        &duration_ms,
                        &r.client_id,
                        &r.request_id,
                        &r.source,
                        &r.created_at,
                    ],
                )
                .await?;
            }
            let keep = i64::try_from(keep_rows).unwrap_or(i64::MAX);
            tx.execute(
                "DELETE FROM command_history WHERE id <= (SELECT MAX(id) FROM command_history) - $1",
                &[&keep],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    pub fn command_history(
        &self,
        offset: u64,
        limit: u64,
    ) -> Result<(Vec<CommandRow>, u64), Error> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        self.run(move |pool| async move {
            let client = pool.get().await?;
            let total: i64 = client
                .query_one("SELECT COUNT(*) FROM command_history", &[])
                .await?
                .get(0);
            let rows = client
                .query(
                    "SELECT id, command, plugin, params, result, status, duration_ms, client_id,
                            request_id, source, created_at
                     FROM command_history ORDER BY id DESC LIMIT $1 OFFSET $2",
                    &[&limit, &offset],
                )
                .await?;
            let rows = rows
                .iter()
                .map(|row| CommandRow {
                    id: row.get(0),
                    record: StoredRecord {
                        command: row.get(1),
                        plugin: row.get(2),
                        params: row.get(3),
                        result: row.get(4),
                        status: row.get(5),
                        duration_ms: row.get(6),
                        client_id: row.get(7),
                        request_id: row.get(8),
                        source: row.get(9),
                        created_at: row.get(10),
                    },
                })
                .collect();
            Ok((rows, u64::try_from(total).unwrap_or(0)))
        })
    }

    pub fn insert_key(&self, key: &NewKey<'_>) -> Result<i64, Error> {
        let key = OwnedKey::from(key);
        self.run(move |pool| async move {
            let mut client = pool.get().await?;
            let tx = client.transaction().await?;
            let id = insert_key(&tx, &key).await?;
            tx.commit().await?;
            Ok(id)
        })
    }

    pub fn keys(&self) -> Result<Vec<StoredKey>, Error> {
        self.run(|pool| async move {
            let rows = pool
                .get()
                .await?
                .query(
                    &format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY id"),
                    &[],
                )
                .await?;
            Ok(rows.iter().map(row_to_key).collect())
        })
    }

    pub fn key(&self, id: i64) -> Result<Option<StoredKey>, Error> {
        self.run(move |pool| async move {
            let row = pool
                .get()
                .await?
                .query_opt(
                    &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1"),
                    &[&id],
                )
                .await?;
            Ok(row.as_ref().map(row_to_key))
        })
    }

    pub fn replace_key(&self, old: i64, new: &NewKey<'_>, old_until: &str) -> Result<i64, Error> {
        let (new, old_until) = (OwnedKey::from(new), old_until.to_owned());
        self.run(move |pool| async move {
            let mut client = pool.get().await?;
            let tx = client.transaction().await?;
            let id = insert_key(&tx, &new).await?;
            tx.execute(
                "UPDATE api_keys SET expires_at = $2
                 WHERE id = $1 AND (expires_at IS NULL OR expires_at > $2)",
                &[&old, &old_until],
            )
            .await?;
            tx.commit().await?;
            Ok(id)
        })
    }

    pub fn revoke_key(&self, id: i64) -> Result<bool, Error> {
        self.run(move |pool| async move {
            let mut client = pool.get().await?;
            let tx = client.transaction().await?;
            let changed = tx
                .execute(
                    "UPDATE api_keys SET is_active = FALSE WHERE id = $1 AND is_active",
                    &[&id],
                )
                .await?;
            bump_key_version(&tx).await?;
            tx.commit().await?;
            Ok(changed == 1)
        })
    }

    pub fn touch_keys(&self, uses: &[(i64, String)]) -> Result<(), Error> {
        let mut uses = uses.to_vec();
        // One order for every replica: two updating the same rows in opposite orders would
        // deadlock.
        uses.sort_unstable();
        self.run(move |pool| async move {
            let mut client = pool.get().await?;
            let tx = client.transaction().await?;
            let update = tx
                .prepare("UPDATE api_keys SET last_used = $2 WHERE id = $1")
                .await?;
            for (id, at) in &uses {
                tx.execute(&update, &[id, at]).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Moves whenever a key is added, rotated or revoked, by any process on the database.
    pub fn data_version(&self) -> Result<i64, Error> {
        self.run(|pool| async move {
            let row = pool
                .get()
                .await?
                .query_one("SELECT version FROM api_keys_version", &[])
                .await?;
            Ok(row.get(0))
        })
    }

    pub fn disabled_plugins(&self) -> Result<HashSet<String>, Error> {
        self.run(|pool| async move {
            let rows = pool
                .get()
                .await?
                .query("SELECT name FROM plugins WHERE disabled", &[])
                .await?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
    }

    pub fn set_plugin_disabled(&self, name: &str, disabled: bool) -> Result<(), Error> {
        let name = name.to_owned();
        self.run(move |pool| async move {
            pool.get()
                .await?
                .execute(
                    "INSERT INTO plugins (name, version, module_path, disabled) VALUES ($1, '', '', $2)
                     ON CONFLICT (name) DO UPDATE SET disabled = excluded.disabled,
                         updated_at = to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
                    &[&name, &disabled],
                )
                .await?;
            Ok(())
        })
    }

    pub fn record_plugin_states(&self, states: &[PluginState]) -> Result<(), Error> {
        let mut states = states.to_vec();
        // One order for every replica, as in `touch_keys`.
        states.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        self.run(move |pool| async move {
            let mut client = pool.get().await?;
            let tx = client.transaction().await?;
            let upsert = tx
                .prepare(
                    "INSERT INTO plugins (name, version, module_path, config, status, content_hash, error)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (name) DO UPDATE SET version = excluded.version,
                         module_path = excluded.module_path, config = excluded.config,
                         status = excluded.status, content_hash = excluded.content_hash,
                         error = excluded.error,
                         updated_at = to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
                )
                .await?;
            for state in &states {
                tx.execute(
                    &upsert,
                    &[
                        &state.name,
                        &state.version.as_deref().unwrap_or(""),
                        &state.module_path,
                        &state.config,
                        &state.status,
                        &state.content_hash,
                        &state.error,
                    ],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }
}

impl PgStore {
    /// Tells every other process on the database that this one reloaded `plugin` (all
    /// plugins when `None`), with `NOTIFY`.
    pub fn announce_reload(&self, plugin: Option<&str>) -> Result<(), Error> {
        let payload = serde_json::json!({ "origin": self.origin, "plugin": plugin }).to_string();
        self.run(move |pool| async move {
            pool.get()
                .await?
                .execute("SELECT pg_notify($1, $2)", &[&RELOAD_CHANNEL, &payload])
                .await?;
            Ok(())
        })
    }

    /// Reloads other processes announce, from a connection of its own that `LISTEN`s. After
    /// a lost connection it connects again (backing off up to [`MAX_RECONNECT_DELAY`]) and
    /// asks for a reload of everything, since announcements made meanwhile are lost.
    pub fn reload_notices(&self) -> tokio::sync::mpsc::Receiver<ReloadNotice> {
        let (sender, receiver) = tokio::sync::mpsc::channel(16);
        let (config, origin) = (self.config.clone(), self.origin.clone());
        if let Some(runtime) = &self.runtime {
            runtime.spawn(async move {
                let mut delay = FIRST_RECONNECT_DELAY;
                let mut reconnecting = false;
                loop {
                    match listen(&config, &origin, &sender, reconnecting).await {
                        Ok(()) => return, // The receiver is gone.
                        Err(Lost { listened, error }) => {
                            if listened {
                                delay = FIRST_RECONNECT_DELAY;
                            }
                            tracing::warn!(
                                %error,
                                retry_ms = delay.as_millis(),
                                "lost the database connection that hears other replicas' reloads"
                            );
                        }
                    }
                    reconnecting = true;
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_RECONNECT_DELAY);
                }
            });
        }
        receiver
    }
}

/// A reload another process made: of one plugin, or of all when `plugin` is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadNotice {
    /// The plugin reloaded, or `None` for all.
    pub plugin: Option<String>,
}

/// Why [`listen`] stopped hearing: whether it got as far as `LISTEN`, and the error.
struct Lost {
    listened: bool,
    error: Error,
}

/// Listens on [`RELOAD_CHANNEL`] until the connection fails (`Err`) or nobody takes the
/// notices any more (`Ok`). After a reconnect, once listening again, it first asks for a
/// reload of everything: announcements made while it was away are lost.
async fn listen(
    config: &tokio_postgres::Config,
    origin: &str,
    sender: &tokio::sync::mpsc::Sender<ReloadNotice>,
    reconnecting: bool,
) -> Result<(), Lost> {
    let lost = |listened: bool, error: Error| Lost { listened, error };
    let (client, mut connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| lost(false, Error::Postgres(e)))?;
    let (messages, mut incoming) = tokio::sync::mpsc::unbounded_channel();
    // The connection delivers notifications only while it is polled; this task polls it,
    // and ends (closing `incoming`) when it fails.
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(message)) => {
                    if messages.send(Ok(message)).is_err() {
                        return;
                    }
                }
                Some(Err(error)) => {
                    let _ = messages.send(Err(error));
                    return;
                }
                None => return,
            }
        }
    });
    if let Err(error) = client
        .batch_execute(&format!("LISTEN {RELOAD_CHANNEL}"))
        .await
    {
        driver.abort();
        return Err(lost(false, Error::Postgres(error)));
    }
    if reconnecting && sender.send(ReloadNotice { plugin: None }).await.is_err() {
        driver.abort();
        return Ok(());
    }
    let result = loop {
        let message = match incoming.recv().await {
            Some(Ok(message)) => message,
            Some(Err(error)) => break Err(lost(true, Error::Postgres(error))),
            None => break Err(lost(true, Error::Closed)),
        };
        let tokio_postgres::AsyncMessage::Notification(notification) = message else {
            continue;
        };
        let Ok(payload) = serde_json::from_str::<serde_json::Value>(notification.payload()) else {
            continue;
        };
        if payload["origin"] == origin {
            continue;
        }
        let notice = ReloadNotice {
            plugin: payload["plugin"].as_str().map(str::to_owned),
        };
        if sender.send(notice).await.is_err() {
            break Ok(());
        }
    };
    driver.abort();
    result
}

/// Applies the migrations `waygate_schema` does not list yet, in one transaction under an
/// advisory lock: a second replica starting at the same moment waits, then finds nothing
/// to do.
async fn migrate(pool: &Pool) -> Result<(), Error> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // Waiting for another replica's migration, or a long one, is not a stuck statement.
    tx.batch_execute("SET LOCAL statement_timeout = 0").await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS waygate_schema (
             version INTEGER PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )
    .await?;
    let applied: i32 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM waygate_schema", &[])
        .await?
        .get(0);
    let known = i32::try_from(MIGRATIONS.len()).unwrap_or(i32::MAX);
    if applied > known {
        return Err(Error::SchemaTooNew { applied, known });
    }
    for (version, sql) in (1..)
        .zip(MIGRATIONS)
        .skip(usize::try_from(applied).unwrap_or(0))
    {
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO waygate_schema (version) VALUES ($1)",
            &[&version],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A [`NewKey`] the future can own.
struct OwnedKey {
    key_hash: String,
    name: String,
    role: String,
    plugins: Option<String>,
    prefix: String,
    expires_at: Option<String>,
}

impl From<&NewKey<'_>> for OwnedKey {
    fn from(key: &NewKey<'_>) -> Self {
        Self {
            key_hash: key.key_hash.to_owned(),
            name: key.name.to_owned(),
            role: key.role.to_owned(),
            plugins: key.plugins.map(str::to_owned),
            prefix: key.prefix.to_owned(),
            expires_at: key.expires_at.map(str::to_owned),
        }
    }
}

async fn insert_key(tx: &deadpool_postgres::Transaction<'_>, key: &OwnedKey) -> Result<i64, Error> {
    let row = tx
        .query_one(
            "INSERT INTO api_keys (key_hash, name, permissions, role, plugins, prefix, expires_at)
             VALUES ($1, $2, '', $3, $4, $5, $6) RETURNING id",
            &[
                &key.key_hash,
                &key.name,
                &key.role,
                &key.plugins,
                &key.prefix,
                &key.expires_at,
            ],
        )
        .await?;
    bump_key_version(tx).await?;
    Ok(row.get(0))
}

/// Moves the key version, in the transaction that changes a key: a replica that reads the
/// new version then also reads the change.
async fn bump_key_version(tx: &deadpool_postgres::Transaction<'_>) -> Result<(), Error> {
    tx.execute("UPDATE api_keys_version SET version = version + 1", &[])
        .await?;
    Ok(())
}

fn row_to_key(row: &Row) -> StoredKey {
    StoredKey {
        id: row.get(0),
        key_hash: row.get(1),
        name: row.get(2),
        role: row.get(3),
        plugins: row.get(4),
        prefix: row.get(5),
        created_at: row.get(6),
        expires_at: row.get(7),
        last_used: row.get(8),
        active: row.get(9),
    }
}

/// The plugin's usage in bytes, its row created if missing and locked to the transaction.
async fn lock_usage(tx: &deadpool_postgres::Transaction<'_>, plugin: &str) -> Result<u64, Error> {
    tx.execute(
        "INSERT INTO plugin_kv_usage (plugin, bytes) VALUES ($1, 0) ON CONFLICT (plugin) DO NOTHING",
        &[&plugin],
    )
    .await?;
    let bytes: i64 = tx
        .query_one(
            "SELECT bytes FROM plugin_kv_usage WHERE plugin = $1 FOR UPDATE",
            &[&plugin],
        )
        .await?
        .get(0);
    Ok(bytes.unsigned_abs())
}

/// Bytes the entry `key` takes now (key plus value), 0 when absent.
async fn entry_size(
    tx: &deadpool_postgres::Transaction<'_>,
    plugin: &str,
    key: &str,
) -> Result<u64, Error> {
    let row = tx
        .query_opt(
            "SELECT octet_length(key)::BIGINT + octet_length(value)::BIGINT FROM plugin_kv
             WHERE plugin = $1 AND key = $2",
            &[&plugin, &key],
        )
        .await?;
    Ok(row.map_or(0, |row| row.get::<_, i64>(0).unsigned_abs()))
}

async fn set_usage(
    tx: &deadpool_postgres::Transaction<'_>,
    plugin: &str,
    bytes: u64,
) -> Result<(), Error> {
    tx.execute(
        "UPDATE plugin_kv_usage SET bytes = $2 WHERE plugin = $1",
        &[&plugin, &i64::try_from(bytes).unwrap_or(i64::MAX)],
    )
    .await?;
    Ok(())
}

/// A new, empty database on the PostgreSQL server `cargo xtask test` starts (its URL in
/// `WAYGATE_TEST_POSTGRES_URL`); returns its URL.
#[cfg(test)]
pub fn fresh_test_database() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let server = std::env::var("WAYGATE_TEST_POSTGRES_URL").expect(
        "WAYGATE_TEST_POSTGRES_URL is not set: run the tests with `cargo xtask test`, which starts a PostgreSQL server",
    );
    let name = format!(
        "waygate_unit_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    // A thread of its own: async tests call this from inside their runtime.
    let create = format!("CREATE DATABASE {name}");
    let admin = server.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&admin, NoTls).await.unwrap();
            tokio::spawn(connection);
            client.batch_execute(&create).await.unwrap();
        });
    })
    .join()
    .unwrap();
    let base = server
        .rsplit_once('/')
        .map_or(server.as_str(), |(base, _)| base);
    format!("{base}/{name}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_in_messages_hide_the_password() {
        assert_eq!(
            super::redacted("postgres://waygate:s3cret@db:5432/waygate"),
            "postgres://…@db:5432/waygate"
        );
        assert_eq!(
            super::redacted("postgres://db/waygate"),
            "postgres://db/waygate"
        );
        assert_eq!(
            super::redacted("postgres://db/waygate?user=w&password=s3cret"),
            "postgres://db/waygate"
        );
    }
}
