//! `plugins`: each package's state after the last load, and whether the operator disabled
//! it, so both survive a restart.

use super::{Error, Store, sqlite_or};
use rusqlite::params;
use std::collections::HashSet;

/// A package's state after a load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginState {
    /// The plugin's name.
    pub name: String,
    /// `active`, `failed` or `disabled`.
    pub status: &'static str,
    /// The version serving, if any.
    pub version: Option<String>,
    /// The component's path.
    pub module_path: String,
    /// SHA-256 of the component serving, if any.
    pub content_hash: Option<String>,
    /// The plugin's config as JSON.
    pub config: Option<String>,
    /// Why it did not load, for a failed one.
    pub error: Option<String>,
}

impl Store {
    /// The plugins the operator disabled.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`].
    pub fn disabled_plugins(&self) -> Result<HashSet<String>, Error> {
        let conn = sqlite_or!(self, pg => pg.disabled_plugins());
        let mut select = conn.prepare_cached("SELECT name FROM plugins WHERE disabled = 1")?;
        let names = select
            .query_map([], |row| row.get(0))?
            .collect::<Result<HashSet<String>, _>>()?;
        Ok(names)
    }

    /// Marks plugin `name` disabled or enabled, for the next load.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`].
    pub fn set_plugin_disabled(&self, name: &str, disabled: bool) -> Result<(), Error> {
        let conn = sqlite_or!(self, pg => pg.set_plugin_disabled(name, disabled));
        conn.execute(
            "INSERT INTO plugins (name, version, module_path, disabled) VALUES (?1, '', '', ?2)
             ON CONFLICT (name) DO UPDATE SET disabled = excluded.disabled,
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            params![name, disabled],
        )?;
        Ok(())
    }

    /// Records every package's state after a load, in one transaction.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`]; nothing changed then.
    pub fn record_plugin_states(&self, states: &[PluginState]) -> Result<(), Error> {
        let mut conn = sqlite_or!(self, pg => pg.record_plugin_states(states));
        let tx = conn.transaction()?;
        {
            let mut upsert = tx.prepare_cached(
                "INSERT INTO plugins (name, version, module_path, config, status, content_hash, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (name) DO UPDATE SET version = excluded.version,
                     module_path = excluded.module_path, config = excluded.config,
                     status = excluded.status, content_hash = excluded.content_hash,
                     error = excluded.error,
                     updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            )?;
            for state in states {
                upsert.execute(params![
                    state.name,
                    state.version.as_deref().unwrap_or(""),
                    state.module_path,
                    state.config,
                    state.status,
                    state.content_hash,
                    state.error,
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_disabled_wish_outlasts_recorded_states() {
        for crate::store::TestStore { backend, store, .. } in crate::store::each_backend() {
            disabled_wish_outlasts_recorded_states(backend, &store);
        }
    }

    fn disabled_wish_outlasts_recorded_states(backend: &str, store: &Store) {
        let state = PluginState {
            name: "echo".into(),
            status: "active",
            version: Some("1".into()),
            module_path: "/p/echo.wasm".into(),
            content_hash: None,
            config: None,
            error: None,
        };
        store
            .record_plugin_states(std::slice::from_ref(&state))
            .unwrap();
        store.set_plugin_disabled("echo", true).unwrap();
        store.record_plugin_states(&[state]).unwrap();
        assert_eq!(
            store.disabled_plugins().unwrap(),
            HashSet::from(["echo".to_owned()]),
            "{backend}"
        );
        store.set_plugin_disabled("echo", false).unwrap();
        assert!(store.disabled_plugins().unwrap().is_empty(), "{backend}");
    }
}
