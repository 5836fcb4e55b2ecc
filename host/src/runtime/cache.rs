//! The on-disk cache of compiled components, so a restart does not recompile.
//! Owns: [`ComponentCache`]. Never: trusts a file it did not verify; wasmtime's
//! deserialize runs native code from the bytes, so each entry carries a SHA-256 of its
//! payload and the directory must belong to the host alone.

use ring::digest::{SHA256, digest};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Length of the payload digest that prefixes every cache entry.
const DIGEST_LEN: usize = 32;

/// Where a component came from, for the caller's statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from a verified cache entry.
    Hit,
    /// Compiled; the entry was absent.
    Miss,
    /// Compiled; the entry was corrupt or stale and has been replaced.
    Rebuilt,
}

/// A directory of `<content hash>-<engine fingerprint>.cwasm` files.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: Option<PathBuf>,
    engine_fingerprint: String,
}

impl ComponentCache {
    /// A cache in `dir` (created if missing), or no cache when `dir` is `None`.
    ///
    /// # Errors
    ///
    /// When the directory cannot be created.
    pub fn new(engine: &Engine, dir: Option<PathBuf>) -> std::io::Result<Self> {
        if let Some(dir) = &dir {
            create_private_dir(dir)?;
        }
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(Self {
            dir,
            engine_fingerprint: format!("{:016x}", hasher.finish()),
        })
    }

    /// The path of the entry for a component whose bytes hash to `content_hash`.
    pub fn entry_path(&self, content_hash: &str) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|dir| dir.join(format!("{content_hash}-{}.cwasm", self.engine_fingerprint)))
    }

    /// Checks that the directory is still there and writable by writing and removing a
    /// probe file; `Ok(None)` when caching is off.
    ///
    /// # Errors
    ///
    /// What failed, for the health check.
    /// Blocking: call it off the async runtime.
    pub fn check(&self) -> Result<Option<&Path>, String> {
        let Some(dir) = &self.dir else {
            return Ok(None);
        };
        // Unique per check, so two health checks at once never remove each other's probe.
        static PROBES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let probe = dir.join(format!(".probe-{}-{n}", std::process::id()));
        std::fs::write(&probe, b"ok")
            .and_then(|()| std::fs::remove_file(&probe))
            .map_err(|e| format!("{} is not writable: {e}", dir.display()))?;
        Ok(Some(dir))
    }

    /// Loads the component from the cache, or compiles `wasm` and stores the result.
    ///
    /// # Errors
    ///
    /// When `wasm` does not compile. Cache IO failures only cost a recompile.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
        content_hash: &str,
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let Some(path) = self.entry_path(content_hash) else {
            return Ok((Component::new(engine, wasm)?, CacheOutcome::Miss));
        };
        let outcome = match std::fs::read(&path) {
            Ok(bytes) => match verified_payload(&bytes) {
                // SAFETY: the payload was written by `store` below from `Component::serialize`
                // of this engine's configuration (the file name carries its fingerprint, and
                // wasmtime checks its own header again), and its SHA-256 matches, so these
                // are the bytes the host itself produced.
                Some(payload) => match unsafe { Component::deserialize(engine, payload) } {
                    Ok(component) => return Ok((component, CacheOutcome::Hit)),
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "stale compiled-component cache entry; recompiling");
                        CacheOutcome::Rebuilt
                    }
                },
                None => {
                    tracing::warn!(path = %path.display(), "corrupt compiled-component cache entry; recompiling");
                    CacheOutcome::Rebuilt
                }
            },
            Err(_) => CacheOutcome::Miss,
        };
        let component = Component::new(engine, wasm)?;
        if let Err(e) = store(&path, &component) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write compiled-component cache entry");
        }
        Ok((component, outcome))
    }
}

/// SHA-256 of `bytes` as lowercase hex: the content hash of a component.
pub fn content_hash(bytes: &[u8]) -> String {
    crate::hex::encode(digest(&SHA256, bytes).as_ref())
}

fn verified_payload(bytes: &[u8]) -> Option<&[u8]> {
    if bytes.len() < DIGEST_LEN {
        return None;
    }
    let (expected, payload) = bytes.split_at(DIGEST_LEN);
    (digest(&SHA256, payload).as_ref() == expected).then_some(payload)
}

/// Creates the cache directory readable and writable by this user alone, and refuses one
/// that others can write: whoever writes here chooses native code the host will run.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let metadata = std::fs::metadata(dir)?;
        // `/proc/self` belongs to the process's effective user (Linux); elsewhere only the
        // mode is checked.
        let foreign_owner =
            std::fs::metadata("/proc/self").is_ok_and(|me| me.uid() != metadata.uid());
        if metadata.permissions().mode() & 0o022 != 0 || foreign_owner {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "{} must be owned by this user and not writable by group or others (chmod 700)",
                    dir.display()
                ),
            ));
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

/// Writes the entry atomically (a temporary file unique to this write, synced, then renamed)
/// so a crash or a concurrent load of the same component leaves the old entry, the new one,
/// or none, never a torn one.
fn store(path: &Path, component: &Component) -> wasmtime::Result<()> {
    let payload = component.serialize()?;
    let mut bytes = Vec::with_capacity(DIGEST_LEN + payload.len());
    bytes.extend_from_slice(digest(&SHA256, &payload).as_ref());
    bytes.extend_from_slice(&payload);
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let unique = WRITES.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp.{}.{unique}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(wasmtime::Error::new(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_cache_directory_others_can_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let engine = Engine::default();
        ComponentCache::new(&engine, Some(cache.clone())).unwrap();
        assert_eq!(
            std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777,
            0o700
        );
        std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
        let error = ComponentCache::new(&engine, Some(cache)).unwrap_err();
        assert!(error.to_string().contains("chmod 700"), "{error}");
    }

    #[test]
    fn payload_with_a_wrong_digest_is_refused() {
        let payload = b"compiled bytes";
        let mut entry = digest(&SHA256, payload).as_ref().to_vec();
        entry.extend_from_slice(payload);
        assert_eq!(verified_payload(&entry), Some(&payload[..]));
        let last = entry.len() - 1;
        entry[last] ^= 1;
        assert_eq!(verified_payload(&entry), None);
        assert_eq!(verified_payload(b"short"), None);
    }
}
