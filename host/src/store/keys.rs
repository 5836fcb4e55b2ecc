//! `api_keys`: hashed keys with their role, plugin allow-list, expiry and use.

use super::{Error, Store, sqlite_or};
use rusqlite::{OptionalExtension, params};

/// A stored key: everything but the key itself, which is never stored.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// Row id.
    pub id: i64,
    /// SHA-256 of the key, hex.
    pub key_hash: String,
    /// Who or what the key is for.
    pub name: String,
    /// `reader`, `caller` or `admin`.
    pub role: String,
    /// Plugins the key may use, when limited: a JSON array.
    pub plugins: Option<String>,
    /// The key's first characters, to tell keys apart.
    pub prefix: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, when the key stops working.
    pub expires_at: Option<String>,
    /// RFC 3339, last accepted use (written in batches).
    pub last_used: Option<String>,
    /// Whether it has not been revoked.
    pub active: bool,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The digest stays out of debug output, like the key.
        f.debug_struct("StoredKey")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("role", &self.role)
            .field("prefix", &self.prefix)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

/// A key to add.
#[derive(Clone)]
pub struct NewKey<'a> {
    /// SHA-256 of the key, hex.
    pub key_hash: &'a str,
    /// Its name.
    pub name: &'a str,
    /// Its role.
    pub role: &'a str,
    /// Its plugin allow-list as a JSON array, if limited.
    pub plugins: Option<&'a str>,
    /// Its first characters.
    pub prefix: &'a str,
    /// RFC 3339 expiry, if any.
    pub expires_at: Option<&'a str>,
}

/// Adds `key`; returns its id.
fn insert(conn: &rusqlite::Connection, key: &NewKey<'_>) -> Result<i64, Error> {
    conn.execute(
        "INSERT INTO api_keys (key_hash, name, permissions, role, plugins, prefix, expires_at) \
         VALUES (?1, ?2, '', ?3, ?4, ?5, ?6)",
        params![
            key.key_hash,
            key.name,
            key.role,
            key.plugins,
            key.prefix,
            key.expires_at
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

const COLUMNS: &str =
    "id, key_hash, name, role, plugins, prefix, created_at, expires_at, last_used, is_active";

fn row_to_key(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredKey> {
    Ok(StoredKey {
        id: row.get(0)?,
        key_hash: row.get(1)?,
        name: row.get(2)?,
        role: row.get(3)?,
        plugins: row.get(4)?,
        prefix: row.get(5)?,
        created_at: row.get(6)?,
        expires_at: row.get(7)?,
        last_used: row.get(8)?,
        active: row.get(9)?,
    })
}

impl Store {
    /// Adds a key; returns its id.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`], e.g. for a hash already present.
    pub fn insert_key(&self, key: &NewKey<'_>) -> Result<i64, Error> {
        let conn = sqlite_or!(self, pg => pg.insert_key(key));
        insert(&conn, key)
    }

    /// Every key, active or not, oldest first.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`].
    pub fn keys(&self) -> Result<Vec<StoredKey>, Error> {
        let conn = sqlite_or!(self, pg => pg.keys());
        let mut select =
            conn.prepare_cached(&format!("SELECT {COLUMNS} FROM api_keys ORDER BY id"))?;
        let keys = select
            .query_map([], row_to_key)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(keys)
    }

    /// The key with id `id`.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`].
    pub fn key(&self, id: i64) -> Result<Option<StoredKey>, Error> {
        let conn = sqlite_or!(self, pg => pg.key(id));
        Ok(conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM api_keys WHERE id = ?1"),
                params![id],
                row_to_key,
            )
            .optional()?)
    }

    /// Adds `new` and sets key `old` to stop working at `old_until`, in one transaction.
    /// Returns the new key's id.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`]; nothing changed then.
    pub fn replace_key(&self, old: i64, new: &NewKey<'_>, old_until: &str) -> Result<i64, Error> {
        let mut conn = sqlite_or!(self, pg => pg.replace_key(old, new, old_until));
        let tx = conn.transaction()?;
        let id = insert(&tx, new)?;
        tx.execute(
            "UPDATE api_keys SET expires_at = ?2 \
             WHERE id = ?1 AND (expires_at IS NULL OR expires_at > ?2)",
            params![old, old_until],
        )?;
        tx.commit()?;
        Ok(id)
    }

    /// Revokes key `id`; returns whether it was active.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`].
    pub fn revoke_key(&self, id: i64) -> Result<bool, Error> {
        let conn = sqlite_or!(self, pg => pg.revoke_key(id));
        let changed = conn.execute(
            "UPDATE api_keys SET is_active = 0 WHERE id = ?1 AND is_active = 1",
            params![id],
        )?;
        Ok(changed == 1)
    }

    /// Records when keys were last used, in one transaction: `(id, RFC 3339)` pairs.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`]; the transaction then changed nothing.
    pub fn touch_keys(&self, uses: &[(i64, String)]) -> Result<(), Error> {
        let mut conn = sqlite_or!(self, pg => pg.touch_keys(uses));
        let tx = conn.transaction()?;
        {
            let mut update =
                tx.prepare_cached("UPDATE api_keys SET last_used = ?2 WHERE id = ?1")?;
            for (id, at) in uses {
                update.execute(params![id, at])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// A number that changes whenever another process (the CLI, another replica) changes
    /// the keys, so a server can reload what it caches without reading the table. SQLite:
    /// any commit by another connection; PostgreSQL: a sequence every key change moves.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`].
    pub fn data_version(&self) -> Result<i64, Error> {
        let conn = sqlite_or!(self, pg => pg.data_version());
        Ok(conn.query_row("PRAGMA data_version", [], |row| row.get(0))?)
    }
}
