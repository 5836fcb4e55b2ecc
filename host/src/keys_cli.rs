//! `waygate keys`: create, list, revoke and rotate API keys in the database a server uses.
//! A running server sees each change within `auth::REFRESH_INTERVAL`, without a restart.
//! Never prints a key's hash, and prints a key itself only once, when it is made.

use anyhow::{Context, bail};
use clap::Subcommand;
use std::time::{Duration, SystemTime};
use waygate::auth::{self, KeySpec, Role};
use waygate::store::{Store, StoredKey};

/// What to do with keys.
#[derive(Subcommand)]
pub enum KeysCommand {
    /// Make a key and print it once.
    Create {
        /// Who or what the key is for.
        #[arg(long)]
        name: String,
        /// reader, caller or admin.
        #[arg(long)]
        role: String,
        /// Lifetime, such as 90d or 12h; never expires without it.
        #[arg(long)]
        expires_in: Option<humantime::Duration>,
        /// Plugins the key may use, comma-separated; all without it.
        #[arg(long, value_delimiter = ',')]
        plugins: Option<Vec<String>>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List keys (never the keys themselves or their hashes).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id, or every active key of a name.
    Revoke {
        /// Id or name.
        key: String,
    },
    /// Replace a key with a new one; the old one keeps working for the grace period.
    Rotate {
        /// Id, or name (the newest active key of that name).
        key: String,
        /// How long the old key keeps working.
        #[arg(long, default_value = "1h")]
        grace: humantime::Duration,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

fn parse_time(text: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(text).ok()
}

fn status(key: &StoredKey) -> &'static str {
    // An expiry that does not parse counts as passed: the server refuses such a key too.
    let expired = key
        .expires_at
        .as_deref()
        .is_some_and(|at| parse_time(at).is_none_or(|at| at <= SystemTime::now()));
    match (key.active, expired) {
        (false, _) => "revoked",
        (true, true) => "expired",
        (true, false) => "active",
    }
}

/// The active keys `selector` names: an id, or every active key of a name, newest first.
fn select(store: &Store, selector: &str) -> anyhow::Result<Vec<StoredKey>> {
    let keys = store.keys()?;
    let chosen: Vec<StoredKey> = match selector.parse::<i64>() {
        Ok(id) => keys.into_iter().filter(|k| k.id == id).collect(),
        Err(_) => keys
            .into_iter()
            .rev()
            .filter(|k| k.name == selector && k.active)
            .collect(),
    };
    if chosen.is_empty() {
        bail!(
            "no key {selector:?}: give an id or the name of an active key (see `waygate keys list`)"
        );
    }
    Ok(chosen)
}

fn print_created(created: &auth::CreatedKey, name: &str, role: Role, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::json!({ "id": created.id, "name": name, "role": role.as_str(), "key": created.key })
        );
    } else {
        println!("key {} ({name}, {}):", created.id, role.as_str());
        println!("{}", created.key);
        println!("Store it now: it is not shown again, and only its hash is kept.");
    }
}

/// Runs one `keys` command against `store`.
///
/// # Errors
///
/// Bad arguments or a database failure, with a message for the operator.
pub fn run(store: &Store, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create {
            name,
            role,
            expires_in,
            plugins,
            json,
        } => {
            let role = Role::parse(&role).map_err(anyhow::Error::msg)?;
            // Names tell callers apart (plugins see them as the caller id) and select keys
            // here; two working keys share one only through a rotation's grace period.
            if store
                .keys()?
                .iter()
                .any(|k| k.name == name && status(k) == "active")
            {
                bail!("a working key is already named {name:?}: rotate it, or choose another name");
            }
            let spec = KeySpec {
                name: &name,
                role,
                plugins: plugins.as_deref(),
                expires_at: expires_in.map(|d| SystemTime::now() + Duration::from(d)),
            };
            let created = auth::create_key(store, &spec, None).map_err(anyhow::Error::msg)?;
            print_created(&created, &name, role, json);
        }
        KeysCommand::List { json } => {
            let keys = store.keys()?;
            let rows: Vec<serde_json::Value> = keys
                .iter()
                .map(|k| {
                    serde_json::json!({
                        "id": k.id,
                        "name": k.name,
                        "role": k.role,
                        "key_prefix": k.prefix,
                        "plugins": k.plugins.as_deref().and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok()),
                        "created_at": k.created_at,
                        "expires_at": k.expires_at,
                        "last_used": k.last_used,
                        "status": status(k),
                    })
                })
                .collect();
            if json {
                println!("{}", serde_json::Value::Array(rows));
            } else {
                println!(
                    "{:>4}  {:<20} {:<7} {:<10} {:<8} {:<24} {:<24} plugins",
                    "id", "name", "role", "key", "status", "expires", "last used"
                );
                for k in &keys {
                    println!(
                        "{:>4}  {:<20} {:<7} {:<10} {:<8} {:<24} {:<24} {}",
                        k.id,
                        k.name,
                        k.role,
                        format!("{}…", k.prefix),
                        status(k),
                        k.expires_at.as_deref().unwrap_or("never"),
                        k.last_used.as_deref().unwrap_or("never"),
                        k.plugins.as_deref().unwrap_or("all"),
                    );
                }
            }
        }
        KeysCommand::Revoke { key } => {
            for k in select(store, &key)? {
                if store.revoke_key(k.id)? {
                    println!("revoked key {} ({})", k.id, k.name);
                } else {
                    println!("key {} ({}) was already revoked", k.id, k.name);
                }
            }
        }
        KeysCommand::Rotate { key, grace, json } => {
            let old = select(store, &key)?
                .into_iter()
                .find(|k| status(k) == "active")
                .context("that key is revoked or expired; create a new one instead")?;
            let role = Role::parse(&old.role).map_err(anyhow::Error::msg)?;
            let plugins: Option<Vec<String>> = old
                .plugins
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .context("the old key's plugin list is unreadable")?;
            // The new key gets the old one's lifetime from now, not its end: rotating a key
            // that expires tomorrow must not hand out one that expires tomorrow too.
            let lifetime = match (&old.expires_at, parse_time(&old.created_at)) {
                (Some(expires), Some(created)) => {
                    let expires =
                        parse_time(expires).context("the old key's expiry is unreadable")?;
                    Some(expires.duration_since(created).unwrap_or_default())
                }
                (Some(_), None) => bail!("the old key's creation time is unreadable"),
                (None, _) => None,
            };
            let spec = KeySpec {
                name: &old.name,
                role,
                plugins: plugins.as_deref(),
                expires_at: lifetime.map(|d| SystemTime::now() + d),
            };
            let until = SystemTime::now() + Duration::from(grace);
            let created =
                auth::rotate_key(store, old.id, &spec, until).map_err(anyhow::Error::msg)?;
            if !json {
                println!("key {} keeps working until {}", old.id, rfc3339(until));
            }
            print_created(&created, &old.name, role, json);
        }
    }
    Ok(())
}
