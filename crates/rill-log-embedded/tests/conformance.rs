//! The `rill-log` conformance suite run against the embedded log: one temporary data directory
//! per case, `FsyncPolicy::Always`, the background cleaner parked (cases run it on demand).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rill_log::{Log, LogError, Result, TopicPartition};
use rill_log_conformance::{Capabilities, Harness};
use rill_log_embedded::{EmbeddedConfig, EmbeddedLog, FsyncPolicy};

/// An embedded log in a temporary directory, reopened on restart.
struct EmbeddedHarness {
    /// Declared before `dir` so it is dropped (and closed) before the directory is removed.
    log: Option<Arc<EmbeddedLog>>,
    dir: tempfile::TempDir,
    /// Partitions to tear at the next crash.
    torn: Vec<TopicPartition>,
    /// How many tails were torn so far (alternates the kind of damage).
    tears: usize,
}

impl EmbeddedHarness {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("rill-conformance-")
            .tempdir()
            .expect("creating a temporary data directory");
        let log = Self::open(dir.path()).expect("opening the embedded log");
        Self {
            log: Some(log),
            dir,
            torn: Vec::new(),
            tears: 0,
        }
    }

    fn open(dir: &Path) -> Result<Arc<EmbeddedLog>> {
        let config = EmbeddedConfig::new(dir)
            .fsync(FsyncPolicy::Always)
            .cleaner_interval(Duration::from_secs(24 * 3600));
        EmbeddedLog::open(config).map(Arc::new)
    }

    fn current(&self) -> &Arc<EmbeddedLog> {
        self.log.as_ref().expect("the embedded log is open")
    }

    /// The last segment file of a partition.
    fn last_segment(&self, tp: &TopicPartition) -> Result<PathBuf> {
        let dir = self
            .dir
            .path()
            .join("topics")
            .join(&tp.topic)
            .join(tp.partition.to_string());
        let mut segments: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| LogError::io("list partition directory", &dir, e))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
            .collect();
        segments.sort();
        segments.pop().ok_or_else(|| LogError::Corrupt {
            path: dir,
            reason: "no segment file to tear".to_string(),
        })
    }

    /// Appends a torn batch to the partition's last segment: alternately the first batch of
    /// the segment cut one byte short (a write that stopped midway), and a full copy of it
    /// with its last byte flipped (a write whose data did not all reach the disk).
    fn tear(&mut self, tp: &TopicPartition) -> Result<()> {
        let path = self.last_segment(tp)?;
        let bytes = std::fs::read(&path).map_err(|e| LogError::io("read segment", &path, e))?;
        let garbage: Vec<u8> = if bytes.len() >= 4 {
            let length = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
            let batch = &bytes[..(4 + length).min(bytes.len())];
            if self.tears.is_multiple_of(2) {
                batch[..batch.len() - 1].to_vec()
            } else {
                let mut copy = batch.to_vec();
                if let Some(last) = copy.last_mut() {
                    *last ^= 0xff;
                }
                copy
            }
        } else {
            vec![0xde, 0xad, 0xbe, 0xef, 0x01, 0x02]
        };
        self.tears += 1;
        let mut file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| LogError::io("open segment to tear it", &path, e))?;
        file.write_all(&garbage)
            .and_then(|()| file.sync_all())
            .map_err(|e| LogError::io("tear segment", &path, e))
    }
}

impl Harness for EmbeddedHarness {
    fn backend(&self) -> &str {
        "embedded"
    }

    fn log(&self) -> Arc<dyn Log> {
        self.current().clone()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::all()
    }

    fn restart(&mut self) -> Result<()> {
        if let Some(log) = self.log.take() {
            log.close()?;
        }
        self.log = Some(Self::open(self.dir.path())?);
        Ok(())
    }

    fn crash_and_restart(&mut self) -> Result<()> {
        if let Some(log) = self.log.take() {
            log.crash_for_test();
        }
        for tp in std::mem::take(&mut self.torn) {
            self.tear(&tp)?;
        }
        self.log = Some(Self::open(self.dir.path())?);
        Ok(())
    }

    fn run_cleaner(&mut self) -> Result<()> {
        self.current().run_cleaner_now()
    }

    fn corrupt_tail(&mut self, partition: &TopicPartition) -> Result<()> {
        self.torn.push(partition.clone());
        Ok(())
    }
}

rill_log_conformance::conformance_suite!(
    harness: EmbeddedHarness::new(),
    unsupported: [],
);
