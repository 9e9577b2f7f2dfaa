//! The exclusive lock on the data directory: `DATA/LOCK`, flock'ed through std's
//! `File::try_lock` and holding "pid N" so a refused opener can say who holds it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use rill_log::{LogError, Result};

/// Held for the life of an open log; dropping it closes the file, which releases the lock.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Locks `dir` (created when absent), or fails with `DirectoryLocked` naming the holder.
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock> {
        std::fs::create_dir_all(dir).map_err(|e| LogError::io("create data directory", dir, e))?;
        let path = dir.join("LOCK");
        // No truncate on open: until we hold the lock, the holder's pid must stay readable.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| LogError::io("open lock file", &path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(LogError::DirectoryLocked {
                    path: dir.to_path_buf(),
                    holder: read_holder(&mut file),
                });
            }
            Err(TryLockError::Error(e)) => return Err(LogError::io("lock", path, e)),
        }
        write_pid(&mut file, &path)?;
        Ok(DirLock { _file: file })
    }
}

fn read_holder(file: &mut File) -> String {
    let mut text = String::new();
    // The holder may be writing its pid this very moment; an empty or unreadable file still
    // refuses the open, it just cannot name the holder.
    let _ = file.read_to_string(&mut text);
    let text = text.trim();
    if text.is_empty() {
        "another process (no pid recorded)".to_string()
    } else {
        text.to_string()
    }
}

fn write_pid(file: &mut File, path: &PathBuf) -> Result<()> {
    let io = |e| LogError::io("write lock file", path, e);
    file.set_len(0).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    write!(file, "pid {}", std::process::id()).map_err(io)?;
    file.flush().map_err(io)
}
