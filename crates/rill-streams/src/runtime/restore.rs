//! Fills a store from its changelog partition before its task processes anything.

use std::time::{Duration, Instant};

use rill_log::{ConsumerConfig, IsolationLevel, Log, Offset, SeekTo, TopicPartition};

use crate::error::{Result, StreamsError};
use crate::store::KeyValueBytesStore;

/// How long a restore may go without progress before it is reported as stuck. Longer than
/// Kafka's default transaction timeout (60 s, then up to 10 s until the broker aborts): a
/// producer that died inside a transaction holds read-committed readers of its partitions back
/// until then, unless its successor fences it sooner.
pub(crate) const STALL_LIMIT: Duration = Duration::from_secs(180);

/// How often a restore that makes no progress says so.
const STALL_NOTICE: Duration = Duration::from_secs(20);

/// Applies `changelog` from `from` (or the beginning) to its end; answers the records applied
/// and the offset after the last one.
pub(crate) fn restore(
    log: &dyn Log,
    engine: &dyn KeyValueBytesStore,
    changelog: &TopicPartition,
    from: Option<Offset>,
    progress: &std::sync::atomic::AtomicU64,
    listener: Option<&dyn super::RestoreListener>,
) -> Result<(u64, Offset)> {
    let config = ConsumerConfig {
        isolation: IsolationLevel::ReadCommitted,
        max_poll_records: Some(10_000),
        client_id: Some(format!("restore-{changelog}")),
        ..ConsumerConfig::default()
    };
    let consumer = log
        .consumer(&config, None)
        .map_err(|e| StreamsError::log("creating a restore consumer", e))?;
    let failed = |e| StreamsError::log("restoring a store", e);
    consumer
        .assign(std::slice::from_ref(changelog))
        .map_err(failed)?;
    consumer
        .seek(changelog, from.map_or(SeekTo::Beginning, SeekTo::Offset))
        .map_err(failed)?;
    let end = consumer.watermarks(changelog).map_err(failed)?.high;
    let start = consumer.position(changelog).map_err(failed)?;
    let listener = listener.filter(|_| end > start);
    if let Some(listener) = listener {
        listener.on_restore_start(engine.name(), changelog, (end - start).max(0) as u64);
    }
    let mut applied = 0;
    let mut last_progress = Instant::now();
    let mut last_notice = Instant::now();
    while consumer.position(changelog).map_err(failed)? < end {
        let records = consumer.poll(Duration::from_millis(100)).map_err(failed)?;
        if records.is_empty() {
            if last_progress.elapsed() > STALL_LIMIT {
                return Err(StreamsError::TimedOut {
                    what: format!(
                        "restoring store '{}' from {changelog} (stopped before offset {end})",
                        engine.name()
                    ),
                    waited: last_progress.elapsed(),
                });
            }
            if last_notice.elapsed() > STALL_NOTICE {
                last_notice = Instant::now();
                tracing::warn!(
                    %changelog,
                    end,
                    waited_s = last_progress.elapsed().as_secs(),
                    "restore waiting: an open transaction (of a crashed instance?) holds the \
                     changelog back until it commits, aborts or times out"
                );
            }
            continue;
        }
        last_progress = Instant::now();
        progress.fetch_add(records.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let batch: Vec<_> = records
            .into_iter()
            .filter_map(|record| Some((record.key?, record.value)))
            .collect();
        applied += batch.len() as u64;
        let count = batch.len() as u64;
        engine.put_batch(batch)?;
        if let Some(listener) = listener {
            listener.on_batch_restored(engine.name(), changelog, count);
        }
    }
    consumer.close().map_err(failed)?;
    if let Some(listener) = listener {
        listener.on_restore_end(engine.name(), changelog, applied);
    }
    Ok((applied, end))
}
