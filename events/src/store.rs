//! The schemas a running reader knows, and what it does when it meets one it
//! does not: the policy for "a newer writer is already deployed".
//!
//! # Policy
//!
//! An unknown writer fingerprint is a deployment-order problem, never a bad
//! record: the producer was upgraded before this reader learnt the new
//! schema. So:
//!
//! 1. A reader knows the schemas compiled into it ([`SchemaRegistry::embedded`])
//!    plus every `*.avsc` file under the directory named by
//!    [`SCHEMA_DIR_ENV`] (`SAGA_SCHEMA_DIR`), if set.
//! 2. Meeting an unknown fingerprint, it reads that directory again — at most
//!    once per [`DEFAULT_RELOAD_INTERVAL`] (rate-limited, so a stream of
//!    unknown records does not become a stream of directory scans) — and
//!    decodes the record if the writer schema is there now, resolving it to
//!    the reader's own version (Avro schema resolution: a v1 reader reads v2
//!    data once it holds the v2 *writer* schema; the v1 Rust type is not
//!    touched).
//! 3. Still unknown, decoding fails with [`CodecError::UnknownSchema`], for
//!    which [`CodecError::is_unknown_schema`] is true. The consumer runtime
//!    maps that to a deferred retry (the partition waits with a long backoff,
//!    is counted and logged) — it never dead-letters it. Shipping the file to
//!    `SAGA_SCHEMA_DIR` (or deploying the reader's new build) unblocks it
//!    without a restart.
//!
//! Files that fail to load, or that give a published name and version a
//! different canonical form than the reader already has, are skipped and
//! named in the error's detail; the schemas known before stay.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use crate::Message;
use crate::codec::{CodecError, SchemaInfo, SchemaRegistry, collect_avsc};

/// Environment variable naming a directory of extra `.avsc` files.
pub const SCHEMA_DIR_ENV: &str = "SAGA_SCHEMA_DIR";
/// Least time between two reloads of the schema directory.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(10);

/// A growing set of schemas: a base registry plus the files of a directory,
/// reloaded (rate-limited) when a payload names an unknown fingerprint.
#[derive(Debug)]
pub struct SchemaStore {
    current: RwLock<Arc<SchemaRegistry>>,
    dir: Option<PathBuf>,
    reload_interval: Duration,
    state: Mutex<ReloadState>,
    reloads: AtomicU64,
    unknown: AtomicU64,
}

#[derive(Debug, Default)]
struct ReloadState {
    last: Option<Instant>,
    /// Files the last reload skipped, with why.
    skipped: Vec<String>,
}

impl SchemaStore {
    /// The process-wide store: the compiled-in schemas plus `SAGA_SCHEMA_DIR`
    /// (read at first use). [`crate::decode`] goes through it.
    pub fn global() -> &'static SchemaStore {
        static GLOBAL: OnceLock<SchemaStore> = OnceLock::new();
        GLOBAL.get_or_init(|| {
            let dir = std::env::var_os(SCHEMA_DIR_ENV).filter(|d| !d.is_empty()).map(PathBuf::from);
            let store = SchemaStore::new(SchemaRegistry::embedded().clone(), dir);
            store.reload();
            store
        })
    }

    /// A store over `base` and, if given, the `.avsc` files under `dir`. The
    /// directory is read on the first [`Self::reload`] (or the first unknown
    /// fingerprint), not here.
    pub fn new(base: SchemaRegistry, dir: Option<PathBuf>) -> Self {
        SchemaStore {
            current: RwLock::new(Arc::new(base)),
            dir,
            reload_interval: DEFAULT_RELOAD_INTERVAL,
            state: Mutex::new(ReloadState::default()),
            reloads: AtomicU64::new(0),
            unknown: AtomicU64::new(0),
        }
    }

    /// Sets the least time between two reloads triggered by unknown
    /// fingerprints (zero: reload every time).
    pub fn with_reload_interval(mut self, interval: Duration) -> Self {
        self.reload_interval = interval;
        self
    }

    /// The schemas known now.
    pub fn registry(&self) -> Arc<SchemaRegistry> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The directory this store reloads from.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// How many times the directory was read.
    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    /// How many decodes ended in [`CodecError::UnknownSchema`].
    pub fn unknown_schema_errors(&self) -> u64 {
        self.unknown.load(Ordering::Relaxed)
    }

    /// Reads the directory now (whatever the rate limit) and adds the schemas
    /// it has that the store lacks; returns how many were added.
    pub fn reload(&self) -> usize {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        self.reload_locked(&mut state)
    }

    fn reload_locked(&self, state: &mut ReloadState) -> usize {
        state.last = Some(Instant::now());
        state.skipped.clear();
        let Some(dir) = &self.dir else { return 0 };
        self.reloads.fetch_add(1, Ordering::Relaxed);
        let mut files = Vec::new();
        if let Err(e) = collect_avsc(dir, &mut files) {
            state.skipped.push(e.to_string());
            return 0;
        }
        files.sort();
        let mut next = (*self.registry()).clone();
        let mut added = 0;
        for file in files {
            let name = file.display().to_string();
            let loaded = std::fs::read_to_string(&file)
                .map_err(|e| CodecError::LoadSchema { file: name.clone(), reason: e.to_string() })
                .and_then(|text| SchemaRegistry::from_sources([(name.as_str(), text.as_str())]))
                .and_then(|one| next.merge(&one));
            match loaded {
                Ok(n) => added += n,
                Err(e) => state.skipped.push(e.to_string()),
            }
        }
        if added > 0 {
            *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
        }
        added
    }

    /// Reloads if the last reload is at least the interval ago; true if that
    /// brought new schemas.
    fn reload_if_due(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let due = state.last.is_none_or(|t| t.elapsed() >= self.reload_interval);
        due && self.reload_locked(&mut state) > 0
    }

    /// Runs `f` over the known schemas; on an unknown fingerprint, reloads
    /// (if due) and runs it once more.
    fn with_schemas<T>(&self, f: impl Fn(&SchemaRegistry) -> Result<T, CodecError>) -> Result<T, CodecError> {
        match f(&self.registry()) {
            Err(e) if e.is_unknown_schema() => {
                let retried = if self.reload_if_due() { f(&self.registry()) } else { Err(e) };
                retried.map_err(|e| self.explain(e))
            }
            other => other,
        }
    }

    /// Adds where the store looked to an unknown-schema error, and counts it.
    fn explain(&self, e: CodecError) -> CodecError {
        let CodecError::UnknownSchema { fingerprint, .. } = e else { return e };
        self.unknown.fetch_add(1, Ordering::Relaxed);
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let known = self.registry().len();
        let mut detail = match &self.dir {
            None => format!("none of the {known} schemas this reader knows; {SCHEMA_DIR_ENV} is not set"),
            Some(dir) => format!(
                "none of the {known} schemas this reader knows, {SCHEMA_DIR_ENV}={} included \
                 (read {} s ago, at most every {} s)",
                dir.display(),
                state.last.map_or(0, |t| t.elapsed().as_secs()),
                self.reload_interval.as_secs()
            ),
        };
        if !state.skipped.is_empty() {
            detail.push_str(&format!("; skipped: {}", state.skipped.join("; ")));
        }
        CodecError::UnknownSchema { fingerprint, detail }
    }

    /// Decodes a payload into `M` (see [`SchemaRegistry::decode`]), reloading
    /// the directory once if the writer schema is unknown.
    pub fn decode<M: Message>(&self, payload: &[u8]) -> Result<M, CodecError> {
        self.with_schemas(|r| r.decode::<M>(payload))
    }

    /// Decodes any payload into JSON (see [`SchemaRegistry::decode_json`]),
    /// reloading the directory once if the writer schema is unknown.
    pub fn decode_json(&self, payload: &[u8]) -> Result<(SchemaInfo, serde_json::Value), CodecError> {
        self.with_schemas(|r| r.decode_json(payload))
    }
}
