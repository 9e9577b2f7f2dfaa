//! Compares embedded key-value engines on the state-store workload of the streams runtime, to
//! choose the engine behind `PersistentKeyValueStore` by measurement (see BENCHMARKS.md).
//!
//! Run (release, each engine 3 times on a fresh directory, medians printed as a Markdown table):
//! `cargo run --release -p rill-streams --features bench-engines --example store_engines`
//!
//! Workloads:
//! - **update**: count by key: 1,000,000 get+put on 100,000 distinct 10-byte keys with 8-byte
//!   values, made durable every 10,000 updates (the commit interval);
//! - **restore**: bulk-load 1,000,000 distinct keys in batches of 10,000, durable at the end;
//! - **get**: random point gets on the restored 1,000,000 keys;
//! - **prefix scan**: scans of 1,000 keys each (`key-123` covers `key-123000..=key-123999`);
//! - **wide update**: 300,000 count-by-key updates over the restored 1,000,000 keys, durable
//!   every 10,000.

#![allow(missing_docs, clippy::unwrap_used)]

use std::ops::Bound;
use std::path::Path;
use std::time::Instant;

use bytes::Bytes;
use rill_streams::{KeyValueBytesStore, PersistentKeyValueStore};

const UPDATES: u64 = 1_000_000;
const DISTINCT: u64 = 100_000;
const COMMIT_EVERY: u64 = 10_000;
const RESTORE_KEYS: u64 = 1_000_000;
const BATCH: u64 = 10_000;
const GETS: u64 = 500_000;
const SCANS: u64 = 300;
const RUNS: usize = 3;
const WIDE_UPDATES: u64 = 300_000;

/// Operations per second of each workload in one run.
#[derive(Clone, Copy, Default)]
struct Run {
    update: f64,
    restore: f64,
    get: f64,
    scan_keys: f64,
    scans: f64,
    /// (e) count by key over the restored 1,000,000 keys (a B-tree rewrites more pages per
    /// commit when the same number of updates spreads over more keys).
    update_wide: f64,
}

/// A small deterministic generator (xorshift), so every engine sees the same key sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn key(i: u64) -> Vec<u8> {
    format!("key-{i:06}").into_bytes()
}

fn per_sec(ops: u64, start: Instant) -> f64 {
    ops as f64 / start.elapsed().as_secs_f64()
}

/// The same workloads written against each engine in its fastest safe idiom.
trait Engine {
    const NAME: &'static str;
    fn run(dir: &Path) -> Run;
}

struct Fjall;

impl Engine for Fjall {
    const NAME: &'static str = "fjall 3.1.13 (raw)";

    fn run(dir: &Path) -> Run {
        use fjall::{Database, KeyspaceCreateOptions, PersistMode};
        let open = |path: &Path| {
            // Manual journal persistence: writes stay in the journal buffer until `persist`,
            // which is what a commit interval wants (no write syscall per put).
            let db = Database::builder(path)
                .manual_journal_persist(true)
                .open()
                .unwrap();
            let ks = db.keyspace("s", KeyspaceCreateOptions::default).unwrap();
            (db, ks)
        };
        let mut run = Run::default();

        let (db, ks) = open(&dir.join("update"));
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let start = Instant::now();
        for i in 1..=UPDATES {
            let k = key(rng.next() % DISTINCT);
            let count = ks
                .get(&k)
                .unwrap()
                .map_or(0, |v| u64::from_le_bytes(v.as_ref().try_into().unwrap()));
            ks.insert(k, (count + 1).to_le_bytes()).unwrap();
            if i % COMMIT_EVERY == 0 {
                db.persist(PersistMode::SyncData).unwrap();
            }
        }
        run.update = per_sec(UPDATES, start);
        drop((ks, db));

        let (db, ks) = open(&dir.join("restore"));
        let start = Instant::now();
        for b in 0..RESTORE_KEYS / BATCH {
            let mut batch = db.batch();
            for i in b * BATCH..(b + 1) * BATCH {
                batch.insert(&ks, key(i), i.to_le_bytes());
            }
            batch.commit().unwrap();
        }
        db.persist(PersistMode::SyncData).unwrap();
        run.restore = per_sec(RESTORE_KEYS, start);

        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let start = Instant::now();
        for _ in 0..GETS {
            assert!(ks.get(key(rng.next() % RESTORE_KEYS)).unwrap().is_some());
        }
        run.get = per_sec(GETS, start);

        let start = Instant::now();
        for s in 0..SCANS {
            let prefix = format!("key-{:03}", (s * 7) % 1000);
            let n = ks.prefix(prefix).map(|g| g.into_inner().unwrap()).count();
            assert_eq!(n, 1000);
        }
        run.scans = per_sec(SCANS, start);
        run.scan_keys = run.scans * 1000.0;

        let mut rng = Rng(0x1234_5678_9abc_def1);
        let start = Instant::now();
        for i in 1..=WIDE_UPDATES {
            let k = key(rng.next() % RESTORE_KEYS);
            let count = ks
                .get(&k)
                .unwrap()
                .map_or(0, |v| u64::from_le_bytes(v.as_ref().try_into().unwrap()));
            ks.insert(k, (count + 1).to_le_bytes()).unwrap();
            if i % COMMIT_EVERY == 0 {
                db.persist(PersistMode::SyncData).unwrap();
            }
        }
        run.update_wide = per_sec(WIDE_UPDATES, start);
        run
    }
}

struct Redb;

impl Engine for Redb {
    const NAME: &'static str = "redb 4.6.0 (raw)";

    fn run(dir: &Path) -> Run {
        use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
        const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("s");
        let mut run = Run::default();

        let db = Database::create(dir.join("update.redb")).unwrap();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let start = Instant::now();
        // One write transaction per commit interval, committed with fsync.
        for _ in 0..UPDATES / COMMIT_EVERY {
            let txn = db.begin_write().unwrap();
            {
                let mut table = txn.open_table(TABLE).unwrap();
                for _ in 0..COMMIT_EVERY {
                    let k = key(rng.next() % DISTINCT);
                    let count = table
                        .get(k.as_slice())
                        .unwrap()
                        .map_or(0, |v| u64::from_le_bytes(v.value().try_into().unwrap()));
                    table
                        .insert(k.as_slice(), (count + 1).to_le_bytes().as_slice())
                        .unwrap();
                }
            }
            txn.commit().unwrap();
        }
        run.update = per_sec(UPDATES, start);
        drop(db);

        let db = Database::create(dir.join("restore.redb")).unwrap();
        let start = Instant::now();
        let batches = RESTORE_KEYS / BATCH;
        for b in 0..batches {
            let mut txn = db.begin_write().unwrap();
            // Only the last batch needs to be durable: the earlier ones become durable with it.
            if b + 1 < batches {
                txn.set_durability(Durability::None).unwrap();
            }
            {
                let mut table = txn.open_table(TABLE).unwrap();
                for i in b * BATCH..(b + 1) * BATCH {
                    table
                        .insert(key(i).as_slice(), i.to_le_bytes().as_slice())
                        .unwrap();
                }
            }
            txn.commit().unwrap();
        }
        run.restore = per_sec(RESTORE_KEYS, start);

        let read = db.begin_read().unwrap();
        let table = read.open_table(TABLE).unwrap();
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let start = Instant::now();
        for _ in 0..GETS {
            let k = key(rng.next() % RESTORE_KEYS);
            assert!(table.get(k.as_slice()).unwrap().is_some());
        }
        run.get = per_sec(GETS, start);

        let start = Instant::now();
        for s in 0..SCANS {
            let from = format!("key-{:03}", (s * 7) % 1000).into_bytes();
            let mut to = from.clone();
            *to.last_mut().unwrap() += 1;
            let n = table
                .range(from.as_slice()..to.as_slice())
                .unwrap()
                .map(|e| {
                    let (k, v) = e.unwrap();
                    (k.value().to_vec(), v.value().to_vec())
                })
                .count();
            assert_eq!(n, 1000);
        }
        run.scans = per_sec(SCANS, start);
        run.scan_keys = run.scans * 1000.0;
        drop((table, read));

        let mut rng = Rng(0x1234_5678_9abc_def1);
        let start = Instant::now();
        for _ in 0..WIDE_UPDATES / COMMIT_EVERY {
            let txn = db.begin_write().unwrap();
            {
                let mut table = txn.open_table(TABLE).unwrap();
                for _ in 0..COMMIT_EVERY {
                    let k = key(rng.next() % RESTORE_KEYS);
                    let count = table
                        .get(k.as_slice())
                        .unwrap()
                        .map_or(0, |v| u64::from_le_bytes(v.value().try_into().unwrap()));
                    table
                        .insert(k.as_slice(), (count + 1).to_le_bytes().as_slice())
                        .unwrap();
                }
            }
            txn.commit().unwrap();
        }
        run.update_wide = per_sec(WIDE_UPDATES, start);
        run
    }
}

/// redb behind the `KeyValueBytesStore` shape: `&self` methods, so the open write transaction
/// lives in a mutex and each operation opens the table again (a `Table` borrows the
/// transaction, and keeping both in one struct would need unsafe code).
struct RedbPerOp;

impl Engine for RedbPerOp {
    const NAME: &'static str = "redb 4.6.0 (table opened per operation)";

    fn run(dir: &Path) -> Run {
        use redb::{Database, ReadableTable, TableDefinition, WriteTransaction};
        use std::sync::Mutex;
        const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("s");
        struct Store {
            db: Database,
            txn: Mutex<Option<WriteTransaction>>,
        }
        impl Store {
            fn with<R>(&self, f: impl FnOnce(&mut redb::Table<&[u8], &[u8]>) -> R) -> R {
                let mut guard = self.txn.lock().unwrap();
                let txn = guard.get_or_insert_with(|| self.db.begin_write().unwrap());
                let mut table = txn.open_table(TABLE).unwrap();
                f(&mut table)
            }
            fn flush(&self) {
                if let Some(txn) = self.txn.lock().unwrap().take() {
                    txn.commit().unwrap();
                }
            }
        }
        let mut run = Run::default();
        let store = Store {
            db: Database::create(dir.join("update.redb")).unwrap(),
            txn: Mutex::new(None),
        };
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let start = Instant::now();
        for i in 1..=UPDATES {
            let k = key(rng.next() % DISTINCT);
            let count = store.with(|t| {
                t.get(k.as_slice())
                    .unwrap()
                    .map_or(0, |v| u64::from_le_bytes(v.value().try_into().unwrap()))
            });
            let v = Bytes::copy_from_slice(&(count + 1).to_le_bytes());
            store.with(|t| {
                t.insert(k.as_slice(), v.as_ref()).unwrap();
            });
            if i % COMMIT_EVERY == 0 {
                store.flush();
            }
        }
        run.update = per_sec(UPDATES, start);

        let store = Store {
            db: Database::create(dir.join("restore.redb")).unwrap(),
            txn: Mutex::new(None),
        };
        let start = Instant::now();
        for b in 0..RESTORE_KEYS / BATCH {
            store.with(|t| {
                for i in b * BATCH..(b + 1) * BATCH {
                    t.insert(key(i).as_slice(), i.to_le_bytes().as_slice())
                        .unwrap();
                }
            });
        }
        store.flush();
        run.restore = per_sec(RESTORE_KEYS, start);

        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let start = Instant::now();
        for _ in 0..GETS {
            let k = key(rng.next() % RESTORE_KEYS);
            let v = store.with(|t| {
                t.get(k.as_slice())
                    .unwrap()
                    .map(|v| Bytes::copy_from_slice(v.value()))
            });
            assert!(v.is_some());
        }
        run.get = per_sec(GETS, start);

        let start = Instant::now();
        for s in 0..SCANS {
            let from = format!("key-{:03}", (s * 7) % 1000).into_bytes();
            let mut to = from.clone();
            *to.last_mut().unwrap() += 1;
            let n = store.with(|t| {
                t.range(from.as_slice()..to.as_slice())
                    .unwrap()
                    .map(|e| {
                        let (k, v) = e.unwrap();
                        (
                            Bytes::copy_from_slice(k.value()),
                            Bytes::copy_from_slice(v.value()),
                        )
                    })
                    .count()
            });
            assert_eq!(n, 1000);
        }
        run.scans = per_sec(SCANS, start);
        run.scan_keys = run.scans * 1000.0;

        let mut rng = Rng(0x1234_5678_9abc_def1);
        let start = Instant::now();
        for i in 1..=WIDE_UPDATES {
            let k = key(rng.next() % RESTORE_KEYS);
            let count = store.with(|t| {
                t.get(k.as_slice())
                    .unwrap()
                    .map_or(0, |v| u64::from_le_bytes(v.value().try_into().unwrap()))
            });
            let v = Bytes::copy_from_slice(&(count + 1).to_le_bytes());
            store.with(|t| {
                t.insert(k.as_slice(), v.as_ref()).unwrap();
            });
            if i % COMMIT_EVERY == 0 {
                store.flush();
            }
        }
        run.update_wide = per_sec(WIDE_UPDATES, start);
        run
    }
}

/// rill's `PersistentKeyValueStore` through the `KeyValueBytesStore` trait the runtime uses:
/// what the runtime will actually get, including copies into `Bytes`.
struct Rill;

impl Engine for Rill {
    const NAME: &'static str = "rill PersistentKeyValueStore (fjall)";

    fn run(dir: &Path) -> Run {
        let mut run = Run::default();

        let store = PersistentKeyValueStore::open(dir, "update").unwrap();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let start = Instant::now();
        for i in 1..=UPDATES {
            let k = key(rng.next() % DISTINCT);
            let count = store
                .get(&k)
                .unwrap()
                .map_or(0, |v| u64::from_le_bytes(v.as_ref().try_into().unwrap()));
            store
                .put(
                    Bytes::from(k),
                    Bytes::copy_from_slice(&(count + 1).to_le_bytes()),
                )
                .unwrap();
            if i % COMMIT_EVERY == 0 {
                store.flush().unwrap();
            }
        }
        run.update = per_sec(UPDATES, start);
        drop(store);

        let store = PersistentKeyValueStore::open(dir, "restore").unwrap();
        let start = Instant::now();
        for b in 0..RESTORE_KEYS / BATCH {
            let pairs = (b * BATCH..(b + 1) * BATCH)
                .map(|i| {
                    (
                        Bytes::from(key(i)),
                        Some(Bytes::copy_from_slice(&i.to_le_bytes())),
                    )
                })
                .collect();
            store.put_batch(pairs).unwrap();
        }
        store.flush().unwrap();
        run.restore = per_sec(RESTORE_KEYS, start);

        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let start = Instant::now();
        for _ in 0..GETS {
            assert!(
                store
                    .get(&key(rng.next() % RESTORE_KEYS))
                    .unwrap()
                    .is_some()
            );
        }
        run.get = per_sec(GETS, start);

        let start = Instant::now();
        for s in 0..SCANS {
            let from = format!("key-{:03}", (s * 7) % 1000).into_bytes();
            let mut to = from.clone();
            *to.last_mut().unwrap() += 1;
            let n = store
                .range(Bound::Included(&from), Bound::Excluded(&to))
                .unwrap()
                .len();
            assert_eq!(n, 1000);
        }
        run.scans = per_sec(SCANS, start);
        run.scan_keys = run.scans * 1000.0;

        let mut rng = Rng(0x1234_5678_9abc_def1);
        let start = Instant::now();
        for i in 1..=WIDE_UPDATES {
            let k = key(rng.next() % RESTORE_KEYS);
            let count = store
                .get(&k)
                .unwrap()
                .map_or(0, |v| u64::from_le_bytes(v.as_ref().try_into().unwrap()));
            store
                .put(
                    Bytes::from(k),
                    Bytes::copy_from_slice(&(count + 1).to_le_bytes()),
                )
                .unwrap();
            if i % COMMIT_EVERY == 0 {
                store.flush().unwrap();
            }
        }
        run.update_wide = per_sec(WIDE_UPDATES, start);
        run
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn measure<E: Engine>() -> Run {
    let runs: Vec<Run> = (0..RUNS)
        .map(|n| {
            let dir = tempfile::tempdir_in(std::env::current_dir().unwrap()).unwrap();
            let run = E::run(dir.path());
            eprintln!(
                "{} run {}: update {:.0}/s restore {:.0}/s get {:.0}/s scan {:.0} keys/s wide update {:.0}/s",
                E::NAME,
                n + 1,
                run.update,
                run.restore,
                run.get,
                run.scan_keys,
                run.update_wide
            );
            run
        })
        .collect();
    let of = |f: fn(&Run) -> f64| median(runs.iter().map(f).collect());
    Run {
        update: of(|r| r.update),
        restore: of(|r| r.restore),
        get: of(|r| r.get),
        scan_keys: of(|r| r.scan_keys),
        scans: of(|r| r.scans),
        update_wide: of(|r| r.update_wide),
    }
}

fn main() {
    let only = std::env::args().nth(1);
    let mut rows = Vec::new();
    let wanted = |name: &str| only.as_deref().is_none_or(|o| name.contains(o));
    if wanted(Fjall::NAME) {
        rows.push((Fjall::NAME, measure::<Fjall>()));
    }
    if wanted(Redb::NAME) {
        rows.push((Redb::NAME, measure::<Redb>()));
    }
    if wanted(RedbPerOp::NAME) {
        rows.push((RedbPerOp::NAME, measure::<RedbPerOp>()));
    }
    if wanted(Rill::NAME) {
        rows.push((Rill::NAME, measure::<Rill>()));
    }
    println!(
        "| engine | (a) count-by-key get+put/s, durable every 10k | (b) restore puts/s, batches of 10k | (c) point gets/s | (d) prefix scan, keys/s (scans/s) | (e) count-by-key over 1M keys, get+put/s |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, r) in rows {
        println!(
            "| {name} | {:.0} | {:.0} | {:.0} | {:.0} ({:.0}) | {:.0} |",
            r.update, r.restore, r.get, r.scan_keys, r.scans, r.update_wide
        );
    }
}
