//! The persistent key-value engine: [fjall](https://docs.rs/fjall) (a pure-Rust LSM tree),
//! chosen over redb by measurement (BENCHMARKS.md, "State store engines"): it restores faster,
//! and unlike a copy-on-write B-tree its commit cost does not grow with the number of distinct
//! pages a commit interval touches.
//!
//! **One engine per state directory.** Every store under a state directory (all tasks of all
//! applications a process runs there) is a keyspace of one fjall database ([`Engine`], in
//! `<state dir>/.engine`): one journal, one block cache, one background worker pool, one
//! write-buffer budget, instead of a database (with threads, caches and memtables) per store
//! and task. A store keeps its directory, `<state dir>/<application>/<task>/<store>`, holding
//! only a marker: removing the directory (an application reset) makes the next open start the
//! keyspace from empty. A keyspace is open at most once at a time in the process, as a
//! database directory was (fjall locked it), so a task's stores are handed over only when
//! closed.
//!
//! **Cache.** The runtime reads and writes a key for nearly every record, faster than any engine
//! answers point operations (a get in fjall's memtable costs ~2 µs). So the store keeps the
//! writes since the last flush in a map (*dirty*, written to fjall as one batch on flush, or
//! earlier when it grows past its share of the memory budget (see [`set_memory_budget`]) or a
//! scan needs the engine to be complete) and recently used values in a bounded read cache.
//! The runtime's record cache in front of it (`store::cache`) already folds a key's writes
//! within a commit into one; this map then gathers the commits between two flushes.
//!
//! **Durability.** Writes become durable only on [`flush`](KeyValueBytesStore::flush): one batch
//! into fjall's journal and one `fdatasync` per commit interval, so a crash loses at most the
//! writes since the last flush; the changelog has them.
//!
//! **Checkpoint.** The changelog offset up to which the contents are valid is kept inside the
//! same database (a `checkpoints` keyspace, by store), not in a side file. [`write_checkpoint`] first makes every
//! earlier write durable, then writes the offset and makes it durable: a recovered checkpoint
//! therefore always implies the data it vouches for, with no window where a file and the data
//! disagree. Writes *after* a checkpoint may also survive a crash; replaying the changelog from
//! the checkpoint overwrites them with the logged values.
//!
//! [`write_checkpoint`]: PersistentKeyValueStore::write_checkpoint

use std::collections::{HashMap, HashSet};
use std::mem;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use parking_lot::Mutex;

use super::{KeyValueBytesStore, KeyValues};
use crate::error::{Result, StreamsError};

/// The engine's directory inside a state directory.
const ENGINE_DIR: &str = ".engine";

/// The file in a store's directory that says its keyspace belongs to it.
const STORE_MARKER: &str = "keyspace";

/// fjall's background threads (flushes and compactions) per engine: one falls behind a
/// process's write load, and the engine is shared by every store of it.
const ENGINE_WORKERS: usize = 2;

/// `fdatasync` is enough for fjall's append-only journal on Linux (it also syncs the file
/// size) and is the cheapest mode that survives a power loss.
const DURABLE: PersistMode = PersistMode::SyncData;

/// The memory the persistent stores of a process cache in by default (`--memory` of
/// `rill run`).
pub const DEFAULT_MEMORY_BUDGET: u64 = 256 * 1024 * 1024;

/// How the stores of this process share memory and background threads: one fjall block cache
/// for all of them (fjall gives each database its own 32 MiB otherwise, which with a store per
/// task and service came to gigabytes), a read cache per store, and one fjall worker thread
/// per store (fjall's default is one per core).
struct Sharing {
    /// The budget this was made for.
    budget: u64,
    /// A configuration whose block cache every store's database shares.
    template: fjall::Config,
    /// Read cache of each store.
    record_cache_bytes: usize,
    /// Unflushed writes of a store beyond this size are written to fjall (not made durable):
    /// commits do not flush stores (their changelogs are what a commit makes durable), so
    /// without a bound these maps would hold every write since the last checkpoint.
    dirty_spill_bytes: usize,
    /// The unflushed writes of all stores of the process together: past this, a store that
    /// holds at least its share spills on its next write, so the total stays within about
    /// twice this whatever the number of stores (24 in `rill run`, each allowed
    /// `dirty_spill_bytes`, held 400 MiB at 300,000 orders).
    dirty_total_bytes: usize,
}

/// Unflushed-write bytes of every open store of the process.
static DIRTY_TOTAL: AtomicUsize = AtomicUsize::new(0);

/// Open persistent stores of the process, for each one's share of `dirty_total_bytes`.
static OPEN_STORES: AtomicUsize = AtomicUsize::new(0);

static SHARING: std::sync::OnceLock<Sharing> = std::sync::OnceLock::new();

fn sharing() -> &'static Sharing {
    SHARING.get_or_init(|| Sharing::for_budget(DEFAULT_MEMORY_BUDGET))
}

impl Sharing {
    /// The stores' parts add up to the default budget: a sixteenth for fjall's shared block
    /// cache, a sixteenth for the stores' read caches (spread over 16 stores: a process runs
    /// about that many), a quarter for all stores' unflushed writes (up to a sixteenth each;
    /// the rule of `dirty_total_bytes` lets them reach about twice that) and fjall's memtables
    /// (64 MiB: its journals' smallest bound, which bounds them too). The runtime comes on
    /// top, its record caches included (a sixty-fourth per application instance, see
    /// [`default_cache_max_bytes`]). The unflushed writes get the most because they are what
    /// pays: they merge a key's updates before fjall sees them, and an eighth instead of a
    /// quarter raised the order system's p99 at 5,000 orders/s from about 9 to 11-17 ms and its
    /// CPU by 7%. The caches had a quarter each: with a sixteenth the order system ran at
    /// 20,579 and 20,643 orders/s over 1,000,000 orders in 484-486 MiB of peak RSS, against
    /// 18,295 and 18,238 in 596-612 MiB (BENCHMARKS.md): its reads find recent writes, which
    /// the unflushed writes and memtables hold.
    fn for_budget(budget: u64) -> Self {
        let block_cache = (budget / 16).max(1024 * 1024);
        Sharing {
            budget,
            // The path is not used: only the cache is taken from this configuration.
            template: Database::builder(Path::new("."))
                .cache_size(block_cache)
                .into_config(),
            record_cache_bytes: usize::try_from(budget / 16 / 16).unwrap_or(usize::MAX),
            dirty_spill_bytes: usize::try_from(budget / 16).unwrap_or(usize::MAX),
            dirty_total_bytes: usize::try_from(budget / 4).unwrap_or(usize::MAX),
        }
    }
}

/// Sets the memory the persistent stores of this process use (block cache, read caches and
/// unflushed writes; fjall's memtables take up to 64 MiB whatever the budget). Must be called
/// before the first store opens; answers whether it took effect.
///
/// ```
/// // At the start of `main`, from a `--memory` flag:
/// assert!(rill_streams::set_memory_budget(512 * 1024 * 1024));
/// // Fixed from then on.
/// assert!(!rill_streams::set_memory_budget(64 * 1024 * 1024));
/// ```
pub fn set_memory_budget(bytes: u64) -> bool {
    SHARING.set(Sharing::for_budget(bytes)).is_ok()
}

/// The record-cache bound an application instance gets by default from the process's memory
/// budget (see [`set_memory_budget`]): a sixty-fourth of it, 4 MiB of the default 256 MiB,
/// for the writes its tasks hold until they commit (`StreamsConfig::cache_max_bytes`). A
/// process running several applications holds up to that much for each; at 100,000 records a
/// second and a 100 ms commit interval a few hundred bytes per cached write need about 2 MiB.
///
/// Reading it does not fix the budget: [`set_memory_budget`] may still be called after.
pub fn default_cache_max_bytes() -> usize {
    let budget = SHARING
        .get()
        .map_or(DEFAULT_MEMORY_BUDGET, |sharing| sharing.budget);
    usize::try_from(budget / 64).unwrap_or(usize::MAX)
}

/// The read cache each store gets from the process's memory budget (see
/// [`set_memory_budget`]).
pub fn default_record_cache_bytes() -> usize {
    sharing().record_cache_bytes
}

/// fjall's memtable keeps every version of a key, so with its default 64 MiB a counter store
/// piles up millions of versions and each insert walks a deep skiplist; 4 MiB measured ~1.7x
/// faster count-by-key updates (BENCHMARKS.md) at the price of more, smaller table flushes.
const MEMTABLE_BYTES: u64 = 4 * 1024 * 1024;

/// The journals' bound of an engine (fjall's smallest).
const MAX_JOURNALING_BYTES: u64 = 64 * 1024 * 1024;

/// Most unflushed writes a range scan merges with fjall's entries; a store holding more spills
/// them into fjall first (see `range`).
const MERGE_DIRTY_MAX: usize = 256;

/// Bookkeeping cost of a cached entry beyond its bytes (map slot, two `Bytes` headers).
const ENTRY_OVERHEAD: usize = 80;

fn entry_size(key: &Bytes, value: &Option<Bytes>) -> usize {
    key.len() + value.as_ref().map_or(0, Bytes::len) + ENTRY_OVERHEAD
}

/// The cache's maps. SipHash took ~4% of the order pipeline's CPU; foldhash is several times
/// faster and still randomly seeded, so keys from outside cannot be chosen to collide.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Writes not yet in fjall plus a read cache, behind one lock.
///
/// The read cache is two generations of maps: hits in `cold` move to `hot`; when `hot` reaches
/// half the capacity it becomes `cold` and the old `cold` is dropped. That approximates LRU
/// with O(1) work per operation and no per-entry links.
#[derive(Default)]
struct Cache {
    /// Newest value per key written since the last spill (`None`: deleted).
    dirty: FastMap<Bytes, Option<Bytes>>,
    dirty_bytes: usize,
    /// Values known to equal fjall's (`None`: known absent).
    hot: FastMap<Bytes, Option<Bytes>>,
    cold: FastMap<Bytes, Option<Bytes>>,
    hot_bytes: usize,
    capacity: usize,
}

impl Cache {
    fn lookup(&mut self, key: &[u8]) -> Option<Option<Bytes>> {
        if let Some(value) = self.dirty.get(key) {
            return Some(value.clone());
        }
        if let Some(value) = self.hot.get(key) {
            return Some(value.clone());
        }
        let (key, value) = self.cold.remove_entry(key)?;
        self.remember(key, value.clone());
        Some(value)
    }

    /// Caches a clean value.
    fn remember(&mut self, key: Bytes, value: Option<Bytes>) {
        if self.capacity == 0 {
            return;
        }
        let size = entry_size(&key, &value);
        if let Some(old) = self.hot.insert(key.clone(), value) {
            self.hot_bytes -= entry_size(&key, &old);
        }
        self.hot_bytes += size;
        if self.hot_bytes >= self.capacity / 2 {
            self.cold = mem::take(&mut self.hot);
            self.hot_bytes = 0;
        }
    }

    fn forget(&mut self, key: &[u8]) {
        if let Some((key, old)) = self.hot.remove_entry(key) {
            self.hot_bytes -= entry_size(&key, &old);
        }
        self.cold.remove(key);
    }

    fn write(&mut self, key: Bytes, value: Option<Bytes>) {
        let size = entry_size(&key, &value);
        if let Some(old) = self.dirty.insert(key.clone(), value) {
            self.dirty_bytes -= entry_size(&key, &old);
        }
        self.dirty_bytes += size;
    }
}

/// The file fjall writes, and syncs, last when it creates a database (fjall 3.1's
/// `create_new`): a directory without it, or with it still empty, is a creation that a crash
/// interrupted.
const FJALL_VERSION_MARKER: &str = "version";

/// Removes `path` if it holds a database whose creation never finished. fjall would otherwise
/// take it for a new one and fail on the journal file already there ("File exists"), and the
/// store could never open again. Nothing was ever stored in such a directory, since the
/// database is handed out only after the marker is durable.
fn remove_interrupted_creation(path: &Path) -> std::io::Result<()> {
    if !path.try_exists()? {
        return Ok(());
    }
    let marker_len = match std::fs::metadata(path.join(FJALL_VERSION_MARKER)) {
        Ok(metadata) => metadata.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e),
    };
    if marker_len == 0 {
        tracing::warn!(path = %path.display(), "removing a store whose creation was interrupted");
        std::fs::remove_dir_all(path)?;
    }
    Ok(())
}

/// An engine error of `store`, keeping its source.
fn engine_error(
    store: &str,
    operation: impl Into<String>,
    source: impl std::error::Error + Send + Sync + 'static,
) -> StreamsError {
    StreamsError::StoreEngine {
        store: store.to_string(),
        operation: operation.into(),
        source: Box::new(source),
    }
}

/// The fjall database of a state directory, shared by every store under it (see the module
/// documentation). Opened by the first store and closed with the last.
pub struct Engine {
    root: PathBuf,
    db: Database,
    /// Changelog offset per store (keyspace name) that its contents are valid up to.
    checkpoints: Keyspace,
    /// Keyspaces held by an open store.
    open: Mutex<HashSet<String>>,
}

/// The engines of this process, by state directory.
fn engines() -> &'static Mutex<HashMap<PathBuf, Weak<Engine>>> {
    static ENGINES: std::sync::OnceLock<Mutex<HashMap<PathBuf, Weak<Engine>>>> =
        std::sync::OnceLock::new();
    ENGINES.get_or_init(Default::default)
}

impl Engine {
    /// The engine of the state directory `root` (created if needed), shared with every other
    /// store of this process under it.
    pub fn of(root: &Path) -> Result<Arc<Engine>> {
        let failed = |what: String, e: std::io::Error| engine_error(ENGINE_DIR, what, e);
        std::fs::create_dir_all(root)
            .map_err(|e| failed(format!("creating {}", root.display()), e))?;
        let root = root
            .canonicalize()
            .map_err(|e| failed(format!("resolving {}", root.display()), e))?;
        let mut engines = engines().lock();
        if let Some(engine) = engines.get(&root).and_then(Weak::upgrade) {
            return Ok(engine);
        }
        let path = root.join(ENGINE_DIR);
        remove_interrupted_creation(&path)
            .map_err(|e| failed(format!("removing {}", path.display()), e))?;
        let mut config = Database::builder(&path)
            // Persist only on `flush`: a write syscall per put would cost more than the put.
            .manual_journal_persist(true)
            .worker_threads(ENGINE_WORKERS)
            // Memtables stay in memory until their journal can go, so the journals' bound
            // (fjall's default 512 MiB) bounds them: at the smallest fjall allows, the engine
            // flushes its oldest memtables sooner instead of holding hundreds of MiB when its
            // workers fall behind.
            .max_journaling_size(MAX_JOURNALING_BYTES)
            .into_config();
        // fjall 3.1 has no public way to share a block cache; its configuration's cache field
        // is public (and the version is pinned in Cargo.lock).
        config.cache = sharing().template.cache.clone();
        let db = Database::open(config)
            .map_err(|e| engine_error(ENGINE_DIR, format!("opening {}", path.display()), e))?;
        let checkpoints = db
            .keyspace("checkpoints", KeyspaceCreateOptions::default)
            .map_err(|e| engine_error(ENGINE_DIR, "opening keyspace 'checkpoints'", e))?;
        let engine = Arc::new(Engine {
            root: root.clone(),
            db,
            checkpoints,
            open: Mutex::new(HashSet::new()),
        });
        engines.retain(|_, engine| engine.strong_count() > 0);
        engines.insert(root, Arc::downgrade(&engine));
        Ok(engine)
    }

    /// The state directory this engine serves.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The names of every keyspace in the database.
    pub(super) fn keyspace_names(&self) -> Vec<String> {
        self.db
            .list_keyspace_names()
            .iter()
            .map(|name| name.to_string())
            .collect()
    }
}

/// A key-value engine on disk, restored from a local checkpoint plus the changelog tail.
///
/// Keys are ordered byte-wise. All methods take `&self`: fjall synchronizes internally, so the
/// task writes while interactive queries read from other threads.
pub struct PersistentKeyValueStore {
    name: String,
    path: PathBuf,
    engine: Arc<Engine>,
    /// The store's keyspace in the engine: its directory relative to the engine's root.
    keyspace: String,
    /// The store's pairs.
    data: Keyspace,
    cache: Mutex<Cache>,
}

impl Drop for PersistentKeyValueStore {
    fn drop(&mut self) {
        // Unflushed writes of a store closed without a flush are gone (its changelog has them).
        let dirty = self.cache.lock().dirty_bytes;
        DIRTY_TOTAL.fetch_sub(dirty, Ordering::Relaxed);
        OPEN_STORES.fetch_sub(1, Ordering::Relaxed);
        self.engine.open.lock().remove(&self.keyspace);
    }
}

impl std::fmt::Debug for PersistentKeyValueStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersistentKeyValueStore")
            .field("name", &self.name)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl PersistentKeyValueStore {
    /// Opens (creating if absent) the store `name` in the directory `dir/name`, as a keyspace
    /// of the engine of `dir` (see [`Engine`]), with the read cache the process's memory budget
    /// gives each store (see [`set_memory_budget`]).
    ///
    /// Fails if `name` is not a plain file name, or if the store is already open in this
    /// process, e.g. by a task that has not released it yet after a rebalance.
    pub fn open(dir: &Path, name: &str) -> Result<Self> {
        Self::open_with_cache(dir, name, default_record_cache_bytes())
    }

    /// Like [`open`](Self::open) with a read cache of about `cache_bytes` (0: none; writes
    /// since the last flush are kept in memory regardless).
    pub fn open_with_cache(dir: &Path, name: &str, cache_bytes: usize) -> Result<Self> {
        Self::open_in(&Engine::of(dir)?, dir, name, cache_bytes)
    }

    /// Opens the store `name` in `dir` (inside `engine`'s state directory) as a keyspace of
    /// `engine`, with a read cache of about `cache_bytes`.
    pub fn open_in(
        engine: &Arc<Engine>,
        dir: &Path,
        name: &str,
        cache_bytes: usize,
    ) -> Result<Self> {
        let bad_name = |reason: String| StreamsError::InvalidName {
            kind: "store",
            name: name.to_string(),
            reason,
        };
        // The name becomes a path component: refuse anything that would escape `dir`.
        if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\']) {
            return Err(bad_name(
                "it is no directory name (empty, '.', '..' or with a path separator)".into(),
            ));
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| engine_error(name, format!("creating {}", dir.display()), e))?;
        let dir = dir
            .canonicalize()
            .map_err(|e| engine_error(name, format!("resolving {}", dir.display()), e))?;
        let path = dir.join(name);
        let keyspace = path
            .strip_prefix(&engine.root)
            .ok()
            .and_then(Path::to_str)
            .filter(|relative| !relative.is_empty() && relative.len() < 256)
            .map(str::to_string)
            .ok_or_else(|| {
                bad_name(format!(
                    "{} is not a directory of at most 255 bytes inside the engine's {}",
                    path.display(),
                    engine.root.display()
                ))
            })?;
        if !engine.open.lock().insert(keyspace.clone()) {
            return Err(StreamsError::StoreInUse {
                store: name.to_string(),
                path,
            });
        }
        // From here on, dropping `store` releases the keyspace again.
        let data = match engine.db.keyspace(&keyspace, || {
            KeyspaceCreateOptions::default().max_memtable_size(MEMTABLE_BYTES)
        }) {
            Ok(data) => data,
            Err(e) => {
                engine.open.lock().remove(&keyspace);
                return Err(engine_error(
                    name,
                    format!("opening keyspace '{keyspace}'"),
                    e,
                ));
            }
        };
        // Counted here, uncounted in `Drop`.
        OPEN_STORES.fetch_add(1, Ordering::Relaxed);
        let store = Self {
            name: name.to_string(),
            path,
            engine: engine.clone(),
            keyspace,
            data,
            cache: Mutex::new(Cache {
                capacity: cache_bytes,
                ..Cache::default()
            }),
        };
        store.claim_directory()?;
        Ok(store)
    }

    /// Makes sure the keyspace belongs to the store's directory: without the directory's
    /// marker (a first open, or the directory was removed, e.g. by an application reset)
    /// whatever the keyspace holds is from before, and goes with its checkpoint.
    fn claim_directory(&self) -> Result<()> {
        let marker = self.path.join(STORE_MARKER);
        let io_error = |what: &str, e: std::io::Error| {
            engine_error(&self.name, format!("{what} {}", marker.display()), e)
        };
        match marker.try_exists() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => return Err(io_error("checking", e)),
        }
        self.clear()?;
        std::fs::create_dir_all(&self.path)
            .map_err(|e| io_error("creating the directory of", e))?;
        std::fs::write(&marker, self.keyspace.as_bytes()).map_err(|e| io_error("writing", e))
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The store's keyspace in the engine.
    pub(super) fn keyspace(&self) -> &str {
        &self.keyspace
    }

    /// Moves the unflushed writes into fjall (not yet durable), so that one journal sync
    /// of the engine makes them durable along with other stores'.
    pub(super) fn spill_writes(&self) -> Result<()> {
        self.spill(&mut self.cache.lock())
    }

    /// Deletes the store's keyspace and directory: what dropping a window store's expired
    /// segment does, in one step whatever the number of keys.
    pub(super) fn destroy(&self) -> Result<()> {
        {
            let mut cache = self.cache.lock();
            *cache = Cache {
                capacity: cache.capacity,
                ..Cache::default()
            };
        }
        // The keyspace first: a directory left behind by a crash is harmless, a keyspace
        // without its directory would be opened (empty) again.
        self.engine
            .db
            .delete_keyspace(self.data.clone())
            .map_err(|e| self.error("deleting the keyspace", e))?;
        match std::fs::remove_dir_all(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(engine_error(
                &self.name,
                format!("removing {}", self.path.display()),
                e,
            )),
            _ => Ok(()),
        }
    }

    fn error(&self, what: &str, e: fjall::Error) -> StreamsError {
        engine_error(&self.name, what, e)
    }

    /// Writes `pairs` to fjall as one atomic batch (not yet durable), calling `each` on every
    /// pair on the way.
    fn write_batch(
        &self,
        pairs: impl IntoIterator<Item = (Bytes, Option<Bytes>)>,
        mut each: impl FnMut(&Bytes, &Option<Bytes>),
    ) -> Result<()> {
        let mut batch = self.engine.db.batch();
        for (key, value) in pairs {
            each(&key, &value);
            match value {
                Some(value) => batch.insert(&self.data, key.as_ref(), value.as_ref()),
                None => batch.remove(&self.data, key.as_ref()),
            }
        }
        if batch.is_empty() {
            return Ok(());
        }
        batch.commit().map_err(|e| self.error("writing a batch", e))
    }

    /// Moves the unflushed writes into fjall (not yet durable), keeping them as clean cache
    /// entries. Called with the cache locked, so no write can slip in between.
    fn spill(&self, cache: &mut Cache) -> Result<()> {
        if cache.dirty.is_empty() {
            return Ok(());
        }
        let dirty = mem::take(&mut cache.dirty);
        DIRTY_TOTAL.fetch_sub(mem::take(&mut cache.dirty_bytes), Ordering::Relaxed);
        let mut clean = Vec::with_capacity(dirty.len());
        self.write_batch(dirty, |key, value| clean.push((key.clone(), value.clone())))?;
        for (key, value) in clean {
            cache.remember(key, value);
        }
        Ok(())
    }

    /// Records an unflushed write, spilling the store's writes into fjall when it holds more
    /// than its own bound, or its share of the process's while all stores together hold more
    /// than theirs (see `Sharing::dirty_total_bytes`).
    fn write_dirty(&self, cache: &mut Cache, key: Bytes, value: Option<Bytes>) -> Result<()> {
        let before = cache.dirty_bytes;
        cache.write(key, value);
        let total = if cache.dirty_bytes >= before {
            DIRTY_TOTAL.fetch_add(cache.dirty_bytes - before, Ordering::Relaxed)
                + (cache.dirty_bytes - before)
        } else {
            DIRTY_TOTAL
                .fetch_sub(before - cache.dirty_bytes, Ordering::Relaxed)
                .saturating_sub(before - cache.dirty_bytes)
        };
        let sharing = sharing();
        let share = sharing.dirty_total_bytes / OPEN_STORES.load(Ordering::Relaxed).max(1);
        if cache.dirty_bytes > sharing.dirty_spill_bytes
            || (total > sharing.dirty_total_bytes && cache.dirty_bytes >= share)
        {
            self.spill(cache)?;
        }
        Ok(())
    }

    /// Makes everything written so far durable.
    fn persist(&self) -> Result<()> {
        self.spill(&mut self.cache.lock())?;
        self.engine
            .db
            .persist(DURABLE)
            .map_err(|e| self.error("flushing the journal", e))
    }

    /// Writes many changes at once (`None` deletes the key), for restoring from the changelog:
    /// straight into fjall as one atomic batch, bypassing the cache. Durable after the next
    /// [`flush`](KeyValueBytesStore::flush) or [`write_checkpoint`](Self::write_checkpoint).
    pub fn put_batch(&self, pairs: Vec<(Bytes, Option<Bytes>)>) -> Result<()> {
        let mut cache = self.cache.lock();
        // Earlier writes must reach fjall first so the batch's values win.
        self.spill(&mut cache)?;
        let cached = !cache.hot.is_empty() || !cache.cold.is_empty();
        self.write_batch(pairs, |key, _| {
            if cached {
                cache.forget(key);
            }
        })
    }

    /// Records that the contents are valid up to changelog `offset`, durably.
    ///
    /// Order: every earlier write is made durable first, then the offset is written and made
    /// durable, so a checkpoint found after a crash never refers to data that was lost.
    pub fn write_checkpoint(&self, offset: i64) -> Result<()> {
        self.persist()?;
        self.engine
            .checkpoints
            .insert(self.keyspace.as_bytes(), offset.to_le_bytes())
            .map_err(|e| self.error("writing the checkpoint", e))?;
        self.persist()
    }

    /// The changelog offset of the last checkpoint, if one is present and readable.
    ///
    /// An unreadable checkpoint counts as absent: the caller then restores from scratch, which
    /// is always correct.
    pub fn read_checkpoint(&self) -> Option<i64> {
        match self.engine.checkpoints.get(self.keyspace.as_bytes()) {
            Ok(Some(bytes)) => <[u8; 8]>::try_from(bytes.as_ref())
                .ok()
                .map(i64::from_le_bytes),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(store = %self.name, error = %e, "unreadable checkpoint, ignoring it");
                None
            }
        }
    }

    /// Removes the checkpoint, durably: under exactly-once the runtime removes it while it
    /// writes uncommitted changes, so a crash leads to a restore from scratch rather than
    /// trusting a store that may hold aborted writes.
    pub fn remove_checkpoint(&self) -> Result<()> {
        self.engine
            .checkpoints
            .remove(self.keyspace.as_bytes())
            .map_err(|e| self.error("removing the checkpoint", e))?;
        // Durable now, before any later write can reach a table file ahead of the journal.
        self.persist()
    }
}

impl KeyValueBytesStore for PersistentKeyValueStore {
    fn name(&self) -> &str {
        &self.name
    }

    /// Holds the cache lock while asking fjall on a miss, so a concurrent spill cannot be
    /// overtaken by a stale value entering the cache.
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        let mut cache = self.cache.lock();
        if let Some(value) = cache.lookup(key) {
            return Ok(value);
        }
        let value = self
            .data
            .get(key)
            .map_err(|e| self.error("reading a key", e))?
            .map(|value| Bytes::copy_from_slice(&value));
        cache.remember(Bytes::copy_from_slice(key), value.clone());
        Ok(value)
    }

    fn put(&self, key: Bytes, value: Bytes) -> Result<()> {
        let mut cache = self.cache.lock();
        cache.forget(&key);
        self.write_dirty(&mut cache, key, Some(value))
    }

    fn delete(&self, key: &[u8]) -> Result<Option<Bytes>> {
        let old = self.get(key)?;
        if old.is_some() {
            let mut cache = self.cache.lock();
            cache.forget(key);
            self.write_dirty(&mut cache, Bytes::copy_from_slice(key), None)?;
        }
        Ok(old)
    }

    /// Scans fjall merged with the unflushed writes in the range. Only a store holding more
    /// than [`MERGE_DIRTY_MAX`] of them spills them into fjall first: sorting a few in-range
    /// writes is cheaper than a fjall batch, and a join fetching its window on every record
    /// made each of its writes a batch of its own.
    fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<KeyValues> {
        // An empty or inverted range answers nothing (rather than leaving it to the engine).
        let empty = match (from, to) {
            (Bound::Included(a), Bound::Included(b)) => a > b,
            (Bound::Included(a) | Bound::Excluded(a), Bound::Excluded(b))
            | (Bound::Excluded(a), Bound::Included(b)) => a >= b,
            _ => false,
        };
        if empty {
            return Ok(Vec::new());
        }
        let mut unflushed: Vec<(Bytes, Option<Bytes>)> = {
            let mut cache = self.cache.lock();
            if cache.dirty.len() > MERGE_DIRTY_MAX {
                self.spill(&mut cache)?;
            }
            cache
                .dirty
                .iter()
                .filter(|(key, _)| RangeBounds::<[u8]>::contains(&(from, to), key.as_ref()))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect()
        };
        unflushed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut unflushed = unflushed.into_iter().peekable();
        let mut out = Vec::new();
        for guard in self.data.range::<&[u8], _>((from, to)) {
            let (key, value) = guard
                .into_inner()
                .map_err(|e| self.error("scanning a range", e))?;
            // Unflushed keys before this one, and this one if it was overwritten or deleted.
            let mut overwritten = false;
            while let Some((next, _)) = unflushed.peek() {
                if next.as_ref() > key.as_ref() {
                    break;
                }
                overwritten = next.as_ref() == key.as_ref();
                if let Some((next, Some(newer))) = unflushed.next() {
                    out.push((next, newer));
                }
            }
            if !overwritten {
                out.push((Bytes::copy_from_slice(&key), Bytes::copy_from_slice(&value)));
            }
        }
        out.extend(unflushed.filter_map(|(key, value)| Some((key, value?))));
        Ok(out)
    }

    /// fjall's estimate plus unflushed writes: counts overwritten and deleted entries not
    /// compacted away yet.
    fn approximate_len(&self) -> u64 {
        (self.data.approximate_len() + self.cache.lock().dirty.len()) as u64
    }

    fn flush(&self) -> Result<()> {
        self.persist()
    }

    /// Also removes the checkpoint (first, durably): it would vouch for data that is gone.
    fn clear(&self) -> Result<()> {
        self.remove_checkpoint()?;
        {
            // Unflushed writes and cached values are dropped with the keys. Released before
            // `persist`, which takes the lock again.
            let mut cache = self.cache.lock();
            DIRTY_TOTAL.fetch_sub(cache.dirty_bytes, Ordering::Relaxed);
            *cache = Cache {
                capacity: cache.capacity,
                ..Cache::default()
            };
        }
        self.data.clear().map_err(|e| self.error("clearing", e))?;
        self.persist()
    }

    fn persistent(&self) -> bool {
        true
    }

    fn put_batch(&self, pairs: Vec<(Bytes, Option<Bytes>)>) -> Result<()> {
        PersistentKeyValueStore::put_batch(self, pairs)
    }

    fn read_checkpoint(&self) -> Option<i64> {
        PersistentKeyValueStore::read_checkpoint(self)
    }

    fn write_checkpoint(&self, offset: i64) -> Result<()> {
        PersistentKeyValueStore::write_checkpoint(self, offset)
    }

    fn remove_checkpoint(&self) -> Result<()> {
        PersistentKeyValueStore::remove_checkpoint(self)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::graph::{PersistentStores, StoreDef, StoreKind, StoreProvider};
    use crate::store::prefix_range;
    use crate::task::TaskId;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn keys(pairs: KeyValues) -> Vec<Bytes> {
        pairs.into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn a_creation_interrupted_before_the_version_marker_is_started_over() {
        let dir = tempfile::tempdir().unwrap();
        // What a kill -9 inside fjall's `create_new` leaves: the lock and the first journal
        // file, no version marker.
        let path = dir.path().join(ENGINE_DIR);
        std::fs::create_dir_all(path.join("keyspaces")).unwrap();
        std::fs::write(path.join("lock"), b"").unwrap();
        std::fs::write(path.join("0.jnl"), b"").unwrap();
        let store = PersistentKeyValueStore::open(dir.path(), "s").unwrap();
        store.put(b("k"), b("v")).unwrap();
        assert_eq!(store.get(b"k").unwrap(), Some(b("v")));
    }

    #[test]
    fn round_trip_overwrite_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = PersistentKeyValueStore::open(dir.path(), "s").unwrap();
        assert!(store.persistent());
        assert_eq!(store.name(), "s");
        assert_eq!(store.get(b"k").unwrap(), None);
        store.put(b("k"), b("v1")).unwrap();
        assert_eq!(store.get(b"k").unwrap(), Some(b("v1")));
        store.put(b("k"), b("v2")).unwrap();
        assert_eq!(store.get(b"k").unwrap(), Some(b("v2")));
        store.flush().unwrap();
        // After a flush the value comes from the cache or fjall; both must agree.
        assert_eq!(store.get(b"k").unwrap(), Some(b("v2")));
        assert_eq!(store.delete(b"k").unwrap(), Some(b("v2")));
        assert_eq!(store.get(b"k").unwrap(), None);
        assert_eq!(store.delete(b"k").unwrap(), None);
        store.flush().unwrap();
        assert_eq!(store.get(b"k").unwrap(), None);
    }

    #[test]
    fn ranges_and_prefixes_follow_byte_order_across_flushed_and_unflushed_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = PersistentKeyValueStore::open(dir.path(), "s").unwrap();
        for key in ["a1", "b1", "a3"] {
            store.put(b(key), b("v")).unwrap();
        }
        store.flush().unwrap();
        // Unflushed: a new key, a delete of a flushed key, and a key with a 0xff byte.
        store.put(b("a2"), b("v")).unwrap();
        store.delete(b"a3").unwrap();
        store
            .put(Bytes::from_static(&[b'a', 0xff]), b("v"))
            .unwrap();
        assert_eq!(
            keys(prefix_range(&store, b"a").unwrap()),
            [b("a1"), b("a2"), Bytes::from_static(&[b'a', 0xff])]
        );
        let range = store
            .range(Bound::Excluded(b"a1"), Bound::Included(b"b1"))
            .unwrap();
        assert_eq!(
            keys(range),
            [b("a2"), Bytes::from_static(&[b'a', 0xff]), b("b1")]
        );
        let all = store.range(Bound::Unbounded, Bound::Unbounded).unwrap();
        assert_eq!(all.len(), 4);
        assert_eq!(all[0], (b("a1"), b("v")));
        // Empty and inverted bounds answer nothing instead of failing.
        assert!(
            store
                .range(Bound::Included(b"b"), Bound::Excluded(b"b"))
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .range(Bound::Included(b"z"), Bound::Included(b"a"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_range_merges_a_few_unflushed_writes_without_spilling_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = PersistentKeyValueStore::open(dir.path(), "s").unwrap();
        for key in ["a", "c", "e"] {
            store.put(b(key), b("flushed")).unwrap();
        }
        store.flush().unwrap();
        store.put(b("b"), b("new")).unwrap();
        store.put(b("c"), b("newer")).unwrap();
        store.delete(b"e").unwrap();
        store.put(b("f"), b("new")).unwrap();
        let all = store.range(Bound::Unbounded, Bound::Unbounded).unwrap();
        assert_eq!(
            all,
            [
                (b("a"), b("flushed")),
                (b("b"), b("new")),
                (b("c"), b("newer")),
                (b("f"), b("new")),
            ]
        );
        assert_eq!(
            store
                .range(Bound::Excluded(b"a"), Bound::Excluded(b"f"))
                .unwrap(),
            [(b("b"), b("new")), (b("c"), b("newer"))]
        );
        // Still unflushed: the scans did not write them into fjall.
        assert_eq!(store.cache.lock().dirty.len(), 4);
        // Past the bound a scan spills first, and answers the same.
        for i in 0..=MERGE_DIRTY_MAX {
            store.put(b(&format!("z{i:04}")), b("v")).unwrap();
        }
        let all = store
            .range(Bound::Unbounded, Bound::Excluded(b"z"))
            .unwrap();
        assert_eq!(keys(all), [b("a"), b("b"), b("c"), b("f")]);
        assert!(store.cache.lock().dirty.is_empty());
    }

    #[test]
    fn flushed_data_and_checkpoint_survive_close_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = PersistentKeyValueStore::open(dir.path(), "s").unwrap();
            assert_eq!(store.read_checkpoint(), None);
            store.put(b("kept"), b("1")).unwrap();
            store.put(b("gone"), b("2")).unwrap();
            store.delete(b"gone").unwrap();
            store.write_checkpoint(42).unwrap();
            assert_eq!(store.read_checkpoint(), Some(42));
        }
        let store = PersistentKeyValueStore::open(dir.path(), "s").unwrap();
        assert_eq!(store.get(b"kept").unwrap(), Some(b("1")));
        assert_eq!(store.get(b"gone").unwrap(), None);
        assert_eq!(store.read_checkpoint(), Some(42));
        // The checkpoint lives apart from the data: scans never see it.
        assert_eq!(
            keys(store.range(Bound::Unbounded, Bound::Unbounded).unwrap()),
            [b("kept")]
        );
        store.write_checkpoint(-1).unwrap();
        assert_eq!(store.read_checkpoint(), Some(-1));
        store.remove_checkpoint().unwrap();
        assert_eq!(store.read_checkpoint(), None);
        drop(store);
        let store = PersistentKeyValueStore::open(dir.path(), "s").unwrap();
        assert_eq!(store.read_checkpoint(), None);
        assert_eq!(store.get(b"kept").unwrap(), Some(b("1")));
    }

    #[test]
    fn a_second_open_of_the_same_store_fails_as_in_use_and_bad_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = PersistentKeyValueStore::open(dir.path(), "s").unwrap();
        match PersistentKeyValueStore::open(dir.path(), "s") {
            Err(StreamsError::StoreInUse { store, path }) => {
                assert_eq!(store, "s");
                assert!(path.ends_with("s"), "{}", path.display());
            }
            other => panic!("expected a store error, got {other:?}"),
        }
        // Closing it releases it.
        drop(first);
        PersistentKeyValueStore::open(dir.path(), "s").unwrap();
        for bad in ["", "..", "a/b"] {
            assert!(matches!(
                PersistentKeyValueStore::open(dir.path(), bad),
                Err(StreamsError::InvalidName { kind: "store", .. })
            ));
        }
    }

    #[test]
    fn stores_of_one_state_directory_share_an_engine_and_keep_their_keys_apart() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::of(dir.path()).unwrap();
        let first =
            PersistentKeyValueStore::open_in(&engine, &dir.path().join("app/0_0"), "s", 0).unwrap();
        let second =
            PersistentKeyValueStore::open_in(&engine, &dir.path().join("app/0_1"), "s", 0).unwrap();
        assert!(Arc::ptr_eq(&Engine::of(dir.path()).unwrap(), &engine));
        first.put(b("k"), b("a")).unwrap();
        second.put(b("k"), b("b")).unwrap();
        first.write_checkpoint(1).unwrap();
        second.write_checkpoint(2).unwrap();
        second.clear().unwrap();
        assert_eq!(first.get(b"k").unwrap(), Some(b("a")));
        assert_eq!(first.read_checkpoint(), Some(1));
        assert_eq!(second.get(b"k").unwrap(), None);
        assert_eq!(second.read_checkpoint(), None);
        // One database for the state directory, none in the stores' directories.
        assert!(dir.path().join(ENGINE_DIR).join("version").is_file());
        assert!(!dir.path().join("app/0_0/s/version").exists());
    }

    #[test]
    fn a_store_whose_directory_was_removed_starts_empty_without_its_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let task = dir.path().join("app").join("0_0");
        let open = || {
            let engine = Engine::of(dir.path()).unwrap();
            PersistentKeyValueStore::open_in(&engine, &task, "s", 0).unwrap()
        };
        {
            let store = open();
            store.put(b("k"), b("v")).unwrap();
            store.write_checkpoint(9).unwrap();
        }
        {
            let store = open();
            assert_eq!(
                store.read_checkpoint(),
                Some(9),
                "kept while the directory is"
            );
            assert_eq!(store.get(b"k").unwrap(), Some(b("v")));
        }
        // What `rill reset` does to an application's local state; the engine stays.
        std::fs::remove_dir_all(dir.path().join("app")).unwrap();
        let store = open();
        assert_eq!(store.read_checkpoint(), None);
        assert_eq!(store.get(b"k").unwrap(), None);
    }

    #[test]
    fn clear_removes_every_key_and_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let store = PersistentKeyValueStore::open(dir.path(), "s").unwrap();
        store.put(b("flushed"), b("1")).unwrap();
        store.write_checkpoint(7).unwrap();
        store.put(b("unflushed"), b("2")).unwrap();
        store.clear().unwrap();
        assert_eq!(store.get(b"flushed").unwrap(), None);
        assert_eq!(store.get(b"unflushed").unwrap(), None);
        assert!(
            store
                .range(Bound::Unbounded, Bound::Unbounded)
                .unwrap()
                .is_empty()
        );
        assert_eq!(store.read_checkpoint(), None);
        store.put(b("after"), b("3")).unwrap();
        store.flush().unwrap();
        drop(store);
        let store = PersistentKeyValueStore::open(dir.path(), "s").unwrap();
        assert_eq!(
            keys(store.range(Bound::Unbounded, Bound::Unbounded).unwrap()),
            [b("after")]
        );
    }

    #[test]
    fn put_batch_writes_and_deletes_after_earlier_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = PersistentKeyValueStore::open(dir.path(), "s").unwrap();
        store.put(b("x"), b("old")).unwrap();
        store.put(b("y"), b("old")).unwrap();
        assert_eq!(store.get(b"y").unwrap(), Some(b("old"))); // now cached
        let mut pairs: Vec<(Bytes, Option<Bytes>)> = (0..1000)
            .map(|i| (b(&format!("k{i:04}")), Some(b(&i.to_string()))))
            .collect();
        pairs.push((b("x"), None));
        pairs.push((b("y"), Some(b("new"))));
        store.put_batch(pairs).unwrap();
        assert_eq!(store.get(b"x").unwrap(), None);
        assert_eq!(store.get(b"y").unwrap(), Some(b("new")));
        assert_eq!(store.get(b"k0999").unwrap(), Some(b("999")));
        assert_eq!(prefix_range(&store, b"k").unwrap().len(), 1000);
        store.write_checkpoint(1001).unwrap();
        drop(store);
        let store = PersistentKeyValueStore::open(dir.path(), "s").unwrap();
        assert_eq!(store.read_checkpoint(), Some(1001));
        assert_eq!(store.get(b"k0500").unwrap(), Some(b("500")));
        assert_eq!(store.get(b"x").unwrap(), None);
    }

    #[test]
    fn a_small_cache_evicts_without_losing_values() {
        let dir = tempfile::tempdir().unwrap();
        // Room for a few entries only, so the generations turn over many times.
        let store = PersistentKeyValueStore::open_with_cache(dir.path(), "s", 1000).unwrap();
        for i in 0..500u32 {
            store.put(b(&format!("k{i}")), b(&i.to_string())).unwrap();
            if i % 50 == 0 {
                store.flush().unwrap();
            }
        }
        for i in (0..500u32).rev() {
            assert_eq!(
                store.get(format!("k{i}").as_bytes()).unwrap(),
                Some(b(&i.to_string()))
            );
        }
        assert!(store.cache.lock().hot_bytes < 1000);
    }

    #[test]
    fn provider_opens_persistent_stores_under_app_and_task_and_in_memory_ones_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let mut provider = PersistentStores {
            state_dir: dir.path().to_path_buf(),
            application_id: "app".to_string(),
        };
        let def = |name: &str, kind| StoreDef {
            name: name.to_string(),
            kind,
            logged: true,
            window_retention: None,
            caching: true,
            key_serde: Arc::new(()),
            value_serde: Arc::new(()),
        };
        let task = TaskId {
            subtopology: 1,
            partition: 3,
        };
        let disk = provider
            .engine(task, &def("counts", StoreKind::Persistent))
            .unwrap();
        assert!(disk.persistent());
        assert!(dir.path().join("app").join("1_3").join("counts").is_dir());
        let memory = provider
            .engine(task, &def("cache", StoreKind::InMemory))
            .unwrap();
        assert!(!memory.persistent());
        assert!(!dir.path().join("app").join("1_3").join("cache").exists());
    }

    #[test]
    fn the_unflushed_writes_of_all_stores_stay_within_the_process_bound() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::of(dir.path()).unwrap();
        let stores: Vec<PersistentKeyValueStore> = (0..8)
            .map(|i| {
                PersistentKeyValueStore::open_in(&engine, dir.path(), &format!("s{i}"), 0).unwrap()
            })
            .collect();
        let sharing = sharing();
        let value = Bytes::from(vec![7u8; 64 * 1024]);
        // Each store stays under its own bound, but together they write 1.5 times the bound
        // of all: without a process-wide one they would hold it all.
        let per_store = sharing.dirty_total_bytes * 3 / 2 / stores.len();
        assert!(per_store < sharing.dirty_spill_bytes);
        let mut most = 0;
        for round in 0..per_store / value.len() {
            for store in &stores {
                store
                    .put(Bytes::from(format!("k{round}")), value.clone())
                    .unwrap();
                let held: usize = stores.iter().map(|s| s.cache.lock().dirty_bytes).sum();
                most = most.max(held);
            }
        }
        let share = sharing.dirty_total_bytes / stores.len();
        assert!(
            most <= sharing.dirty_total_bytes + share,
            "held {most} bytes unflushed, bound {}",
            sharing.dirty_total_bytes
        );
        // Nothing was lost on the way: every store answers every key.
        for store in &stores {
            assert_eq!(store.get(b"k0").unwrap(), Some(value.clone()));
        }
    }
}
