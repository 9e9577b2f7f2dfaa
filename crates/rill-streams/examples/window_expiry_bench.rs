//! Cost of window-store expiry: the same processor (append each record under its key and
//! time, then expire by stream time) over a plain key-value engine, where expiry is a full
//! scan deleting and logging each expired entry, and over a time-segmented engine
//! (`add_window_store`), where it drops whole segments. Both run in the test driver, in
//! memory, alternating, so that a loaded machine slows both alike.
//!
//! ```text
//! cargo run --release -p rill-streams --example window_expiry_bench [records] [rounds]
//! ```

use std::time::{Duration, Instant};

use rill_streams::{
    InitContext, Processor, ProcessorContext, Record, Result, StoreOptions, StreamsBuilder,
    TopologyTestDriver, WindowStore,
};

const KEYS: usize = 10_000;
/// One record per millisecond of event time, kept for a minute.
const RETENTION: Duration = Duration::from_secs(60);

struct Keep(WindowStore<String, String>);

impl Processor<String, String, String, String> for Keep {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        r: Record<String, String>,
    ) -> Result<()> {
        self.0.append(&r.key, r.timestamp, &r.value)?;
        self.0.expire(ctx.stream_time())
    }
}

/// Runs `records` through a store added as `segmented` says; answers the elapsed time, the
/// changelog records written, and how many of them were deletions.
fn run(records: usize, segmented: bool) -> Result<(Duration, usize, usize)> {
    let builder = StreamsBuilder::new();
    let store = StoreOptions::in_memory("kept");
    if segmented {
        builder.add_window_store::<String, String>(store, RETENTION)?;
    } else {
        builder.add_state_store::<String, String>(store)?;
    }
    let retention = RETENTION.as_millis() as i64;
    builder.stream::<String, String>("in").process_built(
        move |ctx: &mut InitContext<'_>| Ok(Keep(ctx.window_store("kept", retention)?)),
        &["kept"],
    );
    let mut driver = TopologyTestDriver::new(builder.build()?, "bench")?;
    let keys: Vec<String> = (0..KEYS).map(|k| format!("key-{k:05}")).collect();
    let value = "v".repeat(32);
    let (mut logged, mut deletions) = (0, 0);
    let started = Instant::now();
    for i in 0..records {
        driver.pipe("in", &keys[i % KEYS], &value, i as i64)?;
        if i % 10_000 == 9_999 {
            let changelog = driver.read_raw("bench-kept-changelog");
            logged += changelog.len();
            deletions += changelog.iter().filter(|r| r.value.is_none()).count();
        }
    }
    let elapsed = started.elapsed();
    let changelog = driver.read_raw("bench-kept-changelog");
    logged += changelog.len();
    deletions += changelog.iter().filter(|r| r.value.is_none()).count();
    Ok((elapsed, logged, deletions))
}

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let records: usize = args.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let rounds: usize = args.next().map_or(Ok(3), |a| a.parse())?;
    for round in 1..=rounds {
        for segmented in [false, true] {
            let (elapsed, logged, deletions) = run(records, segmented)?;
            println!(
                "round {round}, {}: {records} records in {:.2} s, {:.0} records/s; \
                 changelog records {logged} ({deletions} deletions)",
                if segmented { "segmented" } else { "scan    " },
                elapsed.as_secs_f64(),
                records as f64 / elapsed.as_secs_f64()
            );
        }
    }
    Ok(())
}
