//! Opening the embedded log with the binary's settings.

use std::path::Path;
use std::sync::Arc;

use rill_log_embedded::{EmbeddedConfig, EmbeddedLog, FsyncPolicy};

/// Opens (creating if needed) the embedded log in `data_dir`.
pub fn open(data_dir: &Path, fsync: FsyncPolicy) -> anyhow::Result<Arc<EmbeddedLog>> {
    let config = EmbeddedConfig::new(data_dir).fsync(fsync);
    Ok(Arc::new(EmbeddedLog::open(config)?))
}
