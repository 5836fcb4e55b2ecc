//! `command_history`: records batched off the request path by [`HistoryWriter`], pruned to a
//! row limit, and read back in pages.
//! Owns: [`HistoryWriter`], [`CommandRecord`]. Never: makes a request wait for the database.
//! Limits: [`crate::config::Limits::command_history_rows`]; a queue of [`QUEUE_CAPACITY`].

use super::{Error, Store, sqlite_or};
use rusqlite::params;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Records a writer takes into one transaction at most.
const MAX_BATCH: usize = 512;
/// How long a record may wait for its batch: the most a `kill -9` can lose.
const FLUSH_INTERVAL: Duration = Duration::from_millis(200);
/// Records waiting at once (at most about 8 KiB each); past it new records are dropped and
/// counted, never waited for.
const QUEUE_CAPACITY: usize = 4_096;
/// Bytes a caller keeps of a command's params and result.
pub const MAX_RECORDED_BYTES: usize = 4_096;

/// One executed command, as `/mcp/execute` or MCP `tools/call` saw it.
#[derive(Debug, Clone, Serialize)]
pub struct CommandRecord {
    /// The qualified tool name.
    pub command: String,
    /// The plugin that served it, when one did.
    pub plugin: Option<String>,
    /// The arguments as JSON, cut to [`MAX_RECORDED_BYTES`].
    pub params: String,
    /// The result or error as JSON, cut to [`MAX_RECORDED_BYTES`].
    pub result: Option<String>,
    /// `success`, `failed`, `timeout`, or `cancelled` when the client went away first.
    pub status: &'static str,
    /// How long the call took.
    pub duration_ms: u64,
    /// The authenticated caller, when there is one.
    pub client_id: Option<String>,
    /// The request's id (`X-Request-Id`).
    pub request_id: String,
    /// `rest` or `mcp`.
    pub source: &'static str,
    /// When it finished, RFC 3339.
    pub created_at: String,
}

/// A stored row, with its id.
#[derive(Debug, Clone, Serialize)]
pub struct CommandRow {
    /// Row id, increasing.
    pub id: i64,
    /// The record.
    #[serde(flatten)]
    pub record: StoredRecord,
}

/// A record as read back (strings where the writer had static ones).
#[derive(Debug, Clone, Serialize)]
pub struct StoredRecord {
    /// See [`CommandRecord::command`].
    pub command: String,
    /// See [`CommandRecord::plugin`].
    pub plugin: Option<String>,
    /// See [`CommandRecord::params`].
    pub params: Option<String>,
    /// See [`CommandRecord::result`].
    pub result: Option<String>,
    /// See [`CommandRecord::status`].
    pub status: String,
    /// See [`CommandRecord::duration_ms`].
    pub duration_ms: Option<i64>,
    /// See [`CommandRecord::client_id`].
    pub client_id: Option<String>,
    /// See [`CommandRecord::request_id`].
    pub request_id: Option<String>,
    /// See [`CommandRecord::source`].
    pub source: Option<String>,
    /// See [`CommandRecord::created_at`].
    pub created_at: String,
}

impl Store {
    /// Inserts `records` in one transaction, then deletes all but the newest `keep_rows`.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`]; the transaction then changed nothing.
    pub fn insert_commands(&self, records: &[CommandRecord], keep_rows: u64) -> Result<(), Error> {
        let mut conn = sqlite_or!(self, pg => pg.insert_commands(records, keep_rows));
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO command_history \
                 (command, plugin, params, result, status, duration_ms, client_id, request_id, source, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?;
            for r in records {
                insert.execute(params![
                    r.command,
                    r.plugin,
                    r.params,
                    r.result,
                    r.status,
                    i64::try_from(r.duration_ms).unwrap_or(i64::MAX),
                    r.client_id,
                    r.request_id,
                    r.source,
                    r.created_at,
                ])?;
            }
            // Ids only grow, so the newest rows are the highest ids: one indexed range delete.
            tx.execute(
                "DELETE FROM command_history WHERE id <= (SELECT MAX(id) FROM command_history) - ?1",
                params![i64::try_from(keep_rows).unwrap_or(i64::MAX)],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// One page of history, newest first, and the number of rows in all.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`] when a statement fails.
    pub fn command_history(
        &self,
        offset: u64,
        limit: u64,
    ) -> Result<(Vec<CommandRow>, u64), Error> {
        let conn = sqlite_or!(self, pg => pg.command_history(offset, limit));
        let total: i64 =
            conn.query_row("SELECT COUNT(*) FROM command_history", [], |r| r.get(0))?;
        let mut select = conn.prepare_cached(
            "SELECT id, command, plugin, params, result, status, duration_ms, client_id, request_id, source, created_at \
             FROM command_history ORDER BY id DESC LIMIT ?1 OFFSET ?2",
        )?;
        let rows = select
            .query_map(
                params![
                    i64::try_from(limit).unwrap_or(i64::MAX),
                    i64::try_from(offset).unwrap_or(i64::MAX)
                ],
                |row| {
                    Ok(CommandRow {
                        id: row.get(0)?,
                        record: StoredRecord {
                            command: row.get(1)?,
                            plugin: row.get(2)?,
                            params: row.get(3)?,
                            result: row.get(4)?,
                            status: row.get(5)?,
                            duration_ms: row.get(6)?,
                            client_id: row.get(7)?,
                            request_id: row.get(8)?,
                            source: row.get(9)?,
                            created_at: row.get(10)?,
                        },
                    })
                },
            )?
            .collect::<Result<Vec<_>, _>>()?;
        Ok((rows, u64::try_from(total).unwrap_or(0)))
    }
}

/// Queues command records and writes them in batches on the blocking pool, so recording a
/// command costs a channel send on the request path and never a database round trip.
pub struct HistoryWriter {
    sender: mpsc::Sender<CommandRecord>,
    status: Arc<WriterStatus>,
    /// Taken by [`HistoryWriter::close`]: the signal to drain and stop, and the task to wait for.
    closing: std::sync::Mutex<Option<(oneshot::Sender<()>, tokio::task::JoinHandle<()>)>>,
}

#[derive(Default)]
struct WriterStatus {
    dropped: AtomicU64,
    written: AtomicU64,
    failing: AtomicBool,
}

impl HistoryWriter {
    /// Starts the writer task; rows beyond `keep_rows` are pruned after each batch.
    pub fn start(store: Arc<Store>, keep_rows: u64) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let (close, close_signal) = oneshot::channel();
        let status = Arc::new(WriterStatus::default());
        let task = tokio::spawn(write_batches(
            store,
            keep_rows,
            receiver,
            close_signal,
            status.clone(),
        ));
        Self {
            sender,
            status,
            closing: std::sync::Mutex::new(Some((close, task))),
        }
    }

    /// Queues one record; when the queue is full the record is dropped and counted.
    pub fn record(&self, record: CommandRecord) {
        if self.sender.try_send(record).is_err() {
            self.status.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records dropped because the queue was full, a batch failed, or the writer had stopped.
    pub fn dropped(&self) -> u64 {
        self.status.dropped.load(Ordering::Relaxed)
    }

    /// Records written so far.
    pub fn written(&self) -> u64 {
        self.status.written.load(Ordering::Relaxed)
    }

    /// Whether the last batch failed to write.
    pub fn failing(&self) -> bool {
        self.status.failing.load(Ordering::Relaxed)
    }

    /// Writes what is queued and stops the writer; later records are dropped and counted.
    pub async fn close(&self) {
        let closing = self
            .closing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some((close, task)) = closing {
            let _ = close.send(());
            let _ = task.await;
        }
    }
}

async fn write_batches(
    store: Arc<Store>,
    keep_rows: u64,
    mut receiver: mpsc::Receiver<CommandRecord>,
    mut close: oneshot::Receiver<()>,
    status: Arc<WriterStatus>,
) {
    let mut closing = false;
    while !closing {
        let first = tokio::select! {
            record = receiver.recv() => record,
            _ = &mut close => None,
        };
        let mut batch: Vec<CommandRecord> = first.into_iter().collect();
        closing = batch.is_empty();
        // Collect what arrives within one interval, up to a batch. `close` is not polled
        // again once it has fired: the loop ends with it.
        let deadline = tokio::time::Instant::now() + FLUSH_INTERVAL;
        while !closing && batch.len() < MAX_BATCH {
            tokio::select! {
                record = receiver.recv() => match record {
                    Some(record) => batch.push(record),
                    None => closing = true,
                },
                () = tokio::time::sleep_until(deadline) => break,
                _ = &mut close => closing = true,
            }
        }
        if closing {
            receiver.close();
            while let Ok(record) = receiver.try_recv() {
                batch.push(record);
            }
        }
        if batch.is_empty() {
            continue;
        }
        let count = batch.len() as u64;
        let store = store.clone();
        let written = tokio::task::spawn_blocking(move || {
            let _span =
                tracing::info_span!("store.write", table = "command_history", rows = batch.len())
                    .entered();
            store.insert_commands(&batch, keep_rows)
        })
        .await;
        match written {
            Ok(Ok(())) => {
                status.written.fetch_add(count, Ordering::Relaxed);
                status.failing.store(false, Ordering::Relaxed);
            }
            Ok(Err(error)) => {
                status.dropped.fetch_add(count, Ordering::Relaxed);
                status.failing.store(true, Ordering::Relaxed);
                tracing::error!(%error, records = count, "command history batch not written");
            }
            Err(error) => {
                status.dropped.fetch_add(count, Ordering::Relaxed);
                tracing::error!(%error, "command history writer task failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u64) -> CommandRecord {
        CommandRecord {
            command: format!("echo__echo{n}"),
            plugin: Some("echo".into()),
            params: "{}".into(),
            result: None,
            status: "success",
            duration_ms: n,
            client_id: None,
            request_id: format!("req_{n}"),
            source: "rest",
            created_at: "2026-01-01T00:00:00.000Z".into(),
        }
    }

    #[tokio::test]
    async fn batches_are_written_pruned_and_read_newest_first() {
        for crate::store::TestStore { backend, store, .. } in crate::store::each_backend() {
            batches_are_written_pruned_and_read_newest_first_in(backend, store).await;
        }
    }

    async fn batches_are_written_pruned_and_read_newest_first_in(backend: &str, store: Arc<Store>) {
        let writer = HistoryWriter::start(store.clone(), 5);
        for n in 0..8 {
            writer.record(record(n));
        }
        writer.close().await;
        assert_eq!(writer.written(), 8);
        let (rows, total) = store.command_history(0, 3).unwrap();
        assert_eq!(total, 5, "{backend}: pruned to keep_rows");
        let commands: Vec<_> = rows.iter().map(|r| r.record.command.as_str()).collect();
        assert_eq!(
            commands,
            ["echo__echo7", "echo__echo6", "echo__echo5"],
            "{backend}"
        );
        assert_eq!(rows[0].record.duration_ms, Some(7), "{backend}");
        assert_eq!(
            rows[0].record.request_id.as_deref(),
            Some("req_7"),
            "{backend}"
        );
        let (rows, _) = store.command_history(3, 10).unwrap();
        assert_eq!(rows.len(), 2, "{backend}");
        writer.record(record(9));
        assert_eq!(writer.dropped(), 1, "a closed writer counts what it drops");
    }
}
