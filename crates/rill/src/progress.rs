//! Progress bars for long work, drawn on stderr only when it is a terminal (indicatif hides
//! them otherwise, so logs and CI output stay clean).

use parking_lot::Mutex;

use indicatif::ProgressBar;
pub use rill_bench::progress::bar;
use rill_log::TopicPartition;
use rill_streams::RestoreListener;

/// One bar for every store restore of the process: restores running at once add up on it,
/// and it goes away when none is left (a later rebalance starts it again).
pub struct RestoreProgress {
    bar: ProgressBar,
    running: Mutex<usize>,
}

impl RestoreProgress {
    pub fn new() -> Self {
        let bar = bar(0, "changelog records restored");
        bar.finish_and_clear();
        RestoreProgress {
            bar,
            running: Mutex::new(0),
        }
    }
}

impl RestoreListener for RestoreProgress {
    fn on_restore_start(&self, store: &str, _changelog: &TopicPartition, to_restore: u64) {
        let mut running = self.running.lock();
        if *running == 0 {
            self.bar.reset();
            self.bar.set_length(0);
        }
        *running += 1;
        self.bar.inc_length(to_restore);
        self.bar.set_message(format!("({store})"));
    }

    fn on_batch_restored(&self, _store: &str, _changelog: &TopicPartition, records: u64) {
        self.bar.inc(records);
    }

    fn on_restore_end(&self, _store: &str, _changelog: &TopicPartition, _restored: u64) {
        let mut running = self.running.lock();
        *running = running.saturating_sub(1);
        if *running == 0 {
            self.bar.finish_and_clear();
        }
    }
}
