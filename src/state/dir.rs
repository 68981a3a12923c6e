//! The state directory on disk: created owner-only, and locked by one process at a time.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;

use super::{LOCK_FILE, StoreError};

/// Creates the directory readable by its owner only. An existing directory is kept as is.
pub(super) fn create_private_dir(path: &Path) -> Result<(), StoreError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path).map_err(|source| StoreError::CreateDir { path: path.to_owned(), source })
}

/// Takes the exclusive lock that keeps a second process off this state directory, and
/// writes this process's id into the lock file for the error message of the next one.
pub(super) fn acquire_lock(path: &Path) -> Result<File, StoreError> {
    let lock_path = path.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|source| StoreError::CreateDir { path: lock_path.clone(), source })?;

    if file.try_lock().is_err() {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let holder = match holder.trim() {
            "" => String::new(),
            pid => format!(" (pid {pid})"),
        };
        return Err(StoreError::Locked { path: path.to_owned(), holder });
    }

    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(file, "{}", std::process::id());
    let _ = file.flush();
    Ok(file)
}
