//! One redb database file that outlives an I/O failure.
//!
//! When a write fails (a full disk: ENOSPC; a bad block: EIO), redb fails that operation and every
//! later one of the same `Database` (`PreviousIo`) until it is dropped and opened again; opening
//! rolls the file back to its last durable commit. [`DbFile`] does that by itself: an I/O failure
//! reported with [`DbFile::fail`] closes the database, and the next [`DbFile::get`] opens it again
//! (at most once per [`RETRY`]), which succeeds once the cause is gone (space was freed). So the log
//! and the store come back without a restart.
//!
//! Reading works on a full disk, so a reader may reopen the file while writes would still fail.
//! The failure is therefore kept ([`DbFile::failure`], what readiness reports) until the disk
//! took a write: after a reopen, [`DbFile::get`] writes and syncs a small probe file beside the
//! database (at most once per [`RETRY`]) and clears the failure once that succeeds. Without it,
//! readiness would flap between ready (just reopened by a read) and not (the next write failed).
//!
//! What reopening costs the caller: writes committed without durability since the last durable
//! commit are gone. [`DbFile::reopened`] counts reopenings so that a caller relying on such writes
//! can tell, and replay them. This module never retries an operation and never decides what an
//! error means beyond "the file failed" (see [`is_io_failure`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use redb::Database;

/// Shortest time between two attempts to reopen (and between two probes of a reopened file).
pub const RETRY: Duration = Duration::from_secs(1);

/// Bytes the probe writes: the disk must take at least this much for the failure to clear.
const PROBE_BYTES: usize = 256 * 1024;

/// The database is closed after an I/O failure and could not be opened again yet.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} is unavailable since an I/O failure ({failure}); it is reopened once the cause is fixed (e.g. disk space freed){}", path.display(), retry.as_deref().map(|r| format!("; last attempt: {r}")).unwrap_or_default())]
pub struct Unavailable {
    pub path: PathBuf,
    /// The failure that closed it.
    pub failure: String,
    /// Why the last attempt to reopen failed, if there was one.
    pub retry: Option<String>,
}

/// Whether `error` means the file failed (redb then fails every later operation of the same
/// `Database`), as opposed to an error of the one operation.
pub fn is_io_failure(error: &redb::Error) -> bool {
    matches!(error, redb::Error::Io(_) | redb::Error::PreviousIo)
}

pub struct DbFile {
    path: PathBuf,
    cache_bytes: usize,
    state: Mutex<State>,
    reopened: AtomicU64,
}

struct State {
    db: Option<Arc<Database>>,
    failure: Option<String>,
    retry: Option<String>,
    next_attempt: Instant,
    /// An attempt to reopen (or a probe) is under way (on another thread).
    opening: bool,
    /// Reopened after a failure, but the disk has not taken a write since: `failure` stays set
    /// until a probe succeeds.
    unproven: bool,
}

impl DbFile {
    /// Opens (creating if needed) the database at `path` with a page cache of `cache_bytes`.
    pub fn open(path: &Path, cache_bytes: usize) -> Result<Self, redb::DatabaseError> {
        let db = open(path, cache_bytes)?;
        Ok(Self {
            path: path.to_path_buf(),
            cache_bytes,
            state: Mutex::new(State {
                db: Some(Arc::new(db)),
                failure: None,
                retry: None,
                next_attempt: Instant::now(),
                opening: false,
                unproven: false,
            }),
            reopened: AtomicU64::new(0),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open database; after a failure, opens it again first (at most once per [`RETRY`]).
    /// Callers hold the handle only for one operation, so that a reopening is not kept waiting.
    pub fn get(&self) -> Result<Arc<Database>, Unavailable> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(db) = &state.db {
            let db = Arc::clone(db);
            if state.unproven && !state.opening && Instant::now() >= state.next_attempt {
                state.opening = true;
                state.next_attempt = Instant::now() + RETRY;
                drop(state);
                self.probe();
            }
            return Ok(db);
        }
        let failure = state.failure.clone().unwrap_or_default();
        if state.opening || Instant::now() < state.next_attempt {
            return Err(self.unavailable(&state));
        }
        // Opened without the lock held: a repair can take a while, and `failure` (asked by
        // readiness probes) must not wait for it.
        state.opening = true;
        state.next_attempt = Instant::now() + RETRY;
        drop(state);
        // Fails (the file is locked) while an operation that began before the failure still
        // holds the old handle; the next attempt goes through once it is done.
        let opened = open(&self.path, self.cache_bytes);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.opening = false;
        match opened {
            Ok(db) => {
                let db = Arc::new(db);
                state.db = Some(Arc::clone(&db));
                state.unproven = true;
                state.opening = true;
                self.reopened.fetch_add(1, Ordering::AcqRel);
                tracing::warn!(path = %self.path.display(), %failure, "database reopened after an I/O failure");
                drop(state);
                self.probe();
                Ok(db)
            }
            Err(e) => {
                state.retry = Some(e.to_string());
                Err(self.unavailable(&state))
            }
        }
    }

    /// Writes and syncs [`PROBE_BYTES`] to a file beside the database, then removes it: clears
    /// the failure if the disk took them. Called with `opening` set, which it resets.
    fn probe(&self) {
        let probe = self.path.with_extension("probe");
        let written = std::fs::File::create(&probe).and_then(|mut f| {
            std::io::Write::write_all(&mut f, &[0u8; PROBE_BYTES])?;
            f.sync_all()
        });
        let _ = std::fs::remove_file(&probe);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.opening = false;
        match written {
            // Unless a new failure closed the file meanwhile: that one stands.
            Ok(()) if state.db.is_some() => {
                if state.unproven {
                    tracing::info!(path = %self.path.display(), "the disk takes writes again");
                }
                state.unproven = false;
                state.failure = None;
                state.retry = None;
            }
            Ok(()) => {}
            Err(e) => {
                state.retry = Some(format!(
                    "reopened for reading, but the disk does not take writes yet: {e}"
                ));
            }
        }
    }

    fn unavailable(&self, state: &State) -> Unavailable {
        Unavailable {
            path: self.path.clone(),
            failure: state.failure.clone().unwrap_or_default(),
            retry: state.retry.clone(),
        }
    }

    /// Closes the database after an I/O failure (`reason`); the next [`DbFile::get`] reopens it.
    /// A failure reported for a database already closed is ignored.
    pub fn fail(&self, reason: &str) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.db.take().is_some() {
            state.unproven = false;
            tracing::error!(path = %self.path.display(), %reason, "database closed after an I/O failure; it will be reopened");
            state.failure = Some(reason.to_string());
            state.next_attempt = Instant::now();
        }
    }

    /// Why the database failed, while it is closed or reopened but not yet proven writable
    /// (with the probe's error, if it failed).
    pub fn failure(&self) -> Option<String> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        (state.db.is_none() || state.unproven).then(|| {
            let failure = state.failure.clone().unwrap_or_default();
            match &state.retry {
                Some(retry) if state.unproven => format!("{failure}; {retry}"),
                _ => failure,
            }
        })
    }

    /// How many times the database was reopened after a failure.
    pub fn reopened(&self) -> u64 {
        self.reopened.load(Ordering::Acquire)
    }
}

fn open(path: &Path, cache_bytes: usize) -> Result<Database, redb::DatabaseError> {
    Database::builder().set_cache_size(cache_bytes).create(path)
}

#[cfg(test)]
mod tests {
    use redb::{ReadableDatabase, TableDefinition};

    use super::*;

    const T: TableDefinition<u64, u64> = TableDefinition::new("t");

    #[test]
    fn a_failed_file_reopens_at_its_last_durable_commit_once_nobody_holds_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = DbFile::open(&dir.path().join("db.redb"), 1 << 20).expect("open");
        let db = file.get().expect("db");
        let txn = db.begin_write().expect("write");
        txn.open_table(T)
            .expect("table")
            .insert(1, 10)
            .expect("insert");
        txn.commit().expect("commit");
        let mut txn = db.begin_write().expect("write");
        txn.set_durability(redb::Durability::None)
            .expect("durability");
        txn.open_table(T)
            .expect("table")
            .insert(2, 20)
            .expect("insert");
        txn.commit().expect("commit");

        file.fail("disk full");
        assert_eq!(file.failure().as_deref(), Some("disk full"));
        // The old handle is still held: the file stays locked, so reopening must wait.
        let err = file
            .get()
            .expect_err("unavailable while the old handle lives");
        assert!(err.to_string().contains("disk full"), "{err}");
        drop(db);
        // Within RETRY of the failed attempt nothing is tried; afterwards it opens.
        assert!(file.get().is_err());
        std::thread::sleep(RETRY);
        let db = file.get().expect("reopened");
        assert_eq!(file.reopened(), 1);
        // The disk took the probe's write: healthy again.
        assert_eq!(file.failure(), None);
        let txn = db.begin_read().expect("read");
        let table = txn.open_table(T).expect("table");
        assert_eq!(table.get(1).expect("get").map(|v| v.value()), Some(10));
        // The write without durability survives here only because the old handle closed cleanly;
        // after a real I/O failure it may not (tests/disk_full.rs covers that end to end).
    }

    /// Reads go on after a reopen, but the failure stays (what readiness reports) while the disk
    /// takes no write: here the probe's path is a directory, so its write fails.
    #[test]
    fn a_reopened_file_stays_failed_until_the_disk_takes_a_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db.redb");
        let file = DbFile::open(&path, 1 << 20).expect("open");
        let blocker = path.with_extension("probe");
        std::fs::create_dir(&blocker).expect("dir");
        file.fail("disk full");
        let db = file.get().expect("reopened for reading");
        assert!(db.begin_read().is_ok());
        let failure = file.failure().expect("still failed");
        assert!(
            failure.starts_with("disk full; reopened for reading"),
            "{failure}"
        );
        // Probes are at most once per RETRY: still failed right after.
        std::fs::remove_dir(&blocker).expect("rmdir");
        assert!(file.get().is_ok());
        assert!(file.failure().is_some());
        std::thread::sleep(RETRY);
        assert!(file.get().is_ok());
        assert_eq!(file.failure(), None);
        assert!(!blocker.exists(), "the probe file is removed");
    }

    #[test]
    fn io_failures_are_told_apart_from_other_errors() {
        assert!(is_io_failure(&redb::Error::PreviousIo));
        assert!(is_io_failure(&redb::Error::Io(std::io::Error::other(
            "ENOSPC"
        ))));
        assert!(!is_io_failure(&redb::Error::Corrupted("bad page".into())));
    }
}
