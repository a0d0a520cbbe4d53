//! Durable state: the core's [`Snapshot`] as `state.json` in the data directory.
//!
//! Writes are atomic: a temporary file in the same directory is written and fsynced, renamed
//! over `state.json`, and the directory is fsynced, so a crash leaves either the old or the new
//! file, never a mix. They happen on a [`Saver`] thread so that a slow disk (an SD card) never
//! stalls the event loop. A failed write is retried with backoff (a newer snapshot replaces the
//! one being retried) and shows in [`SaveStatus`], which `/health` and `/metrics` report. Loading
//! never fails: a missing file means a fresh start, and a file
//! that cannot be read or parsed is moved aside as `state.json.corrupt-<ms>` with a log line.

use crate::core::Snapshot;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The file name inside the data directory.
pub const STATE_FILE: &str = "state.json";

/// The format this build writes; files of other versions are moved aside like corrupt ones.
const FORMAT_VERSION: u32 = 1;

/// The file's contents: a version tag, when it was written, and the snapshot.
#[derive(Serialize, Deserialize)]
struct StateFile {
    mppd_state: u32,
    /// Server time (ms since the Unix epoch) of the save.
    saved_at: u64,
    #[serde(flatten)]
    snapshot: Snapshot,
}

/// The data directory.
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// A store in `dir`, created if missing (a failure is logged; saves will report it again).
    pub fn open(dir: &Path) -> Store {
        if let Err(e) = fs::create_dir_all(dir) {
            log::error!("cannot create the data directory {}: {e}; state will not be saved", dir.display());
        }
        Store { dir: dir.to_path_buf() }
    }

    /// Where the state lives.
    pub fn path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// The saved snapshot, or an empty one when there is none or it is unusable (then moved
    /// aside, tagged with `now`).
    pub fn load(&self, now: u64) -> Snapshot {
        let path = self.path();
        let problem = match fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<StateFile>(&bytes) {
                Ok(file) if file.mppd_state == FORMAT_VERSION => {
                    log::info!(
                        "loaded {} ({} names, {} bans)",
                        path.display(),
                        file.snapshot.profiles.len(),
                        file.snapshot.bans.len()
                    );
                    return file.snapshot;
                }
                Ok(file) => format!("it has format version {}, this build reads {FORMAT_VERSION}", file.mppd_state),
                Err(e) => format!("it is not valid: {e}"),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                log::info!("no saved state at {}; starting clean", path.display());
                return Snapshot::default();
            }
            Err(e) => format!("it cannot be read: {e}"),
        };
        let aside = self.dir.join(format!("{STATE_FILE}.corrupt-{now}"));
        match fs::rename(&path, &aside) {
            Ok(()) => log::error!(
                "saved state {} ignored because {problem}; moved it to {} and starting clean",
                path.display(),
                aside.display()
            ),
            Err(e) => log::error!(
                "saved state {} ignored because {problem}; could not move it aside ({e}); starting clean",
                path.display()
            ),
        }
        Snapshot::default()
    }

    /// Writes `snapshot` atomically (blocking: call it from the [`Saver`] thread).
    pub fn save(&self, snapshot: &Snapshot, saved_at: u64) -> io::Result<()> {
        let file = StateFile { mppd_state: FORMAT_VERSION, saved_at, snapshot: snapshot.clone() };
        let bytes = serde_json::to_vec_pretty(&file).map_err(io::Error::other)?;
        write_atomically(&self.dir, STATE_FILE, &bytes, 0o666)
    }
}

/// Replaces `dir/name` with `bytes` so that a crash leaves either the old file or the new one,
/// whole: a temporary file (created with `mode`, less the umask) is written and fsynced, renamed
/// over the target, and the directory fsynced.
pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let result = (|| {
        let mut out = OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
        out.write_all(bytes)?;
        out.sync_all()?;
        fs::rename(&tmp, dir.join(name))?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// A snapshot waiting to be written, with its time.
type Job = (Snapshot, u64);

/// The first wait before a failed save is tried again; it doubles after each failure.
const RETRY_FIRST: Duration = Duration::from_millis(500);
/// The longest wait between two attempts.
const RETRY_MAX: Duration = Duration::from_secs(30);

/// How saving goes, written by the [`Saver`] thread, read for `/health` and `/metrics`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SaveStatus {
    /// Failed attempts since start (retries included).
    pub failures: u64,
    /// When the last save succeeded, in seconds since the Unix epoch.
    pub last_success_unix_s: Option<f64>,
    /// Why the latest attempt failed; `None` once a save succeeds again.
    pub error: Option<String>,
}

type SharedStatus = Arc<Mutex<SaveStatus>>;

fn update(status: &SharedStatus, change: impl FnOnce(&mut SaveStatus)) {
    change(&mut status.lock().unwrap_or_else(PoisonError::into_inner));
}

/// Writes snapshots on its own thread, newest first: when several are queued only the last is
/// written. A failed write is retried after [`RETRY_FIRST`], doubling up to [`RETRY_MAX`], until
/// it or a newer snapshot is written. [`finish`](Saver::finish) waits until everything handed
/// over is on disk, or its last attempt failed.
pub struct Saver {
    jobs: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    status: SharedStatus,
}

impl Saver {
    pub fn spawn(store: Store) -> io::Result<Saver> {
        let (jobs, queue) = mpsc::channel();
        let status = SharedStatus::default();
        let shared = Arc::clone(&status);
        let thread =
            std::thread::Builder::new().name("mppd-saver".into()).spawn(move || write_jobs(&store, &queue, &shared))?;
        Ok(Saver { jobs: Some(jobs), thread: Some(thread), status })
    }

    /// Hands a snapshot to the writer thread.
    pub fn submit(&self, snapshot: Snapshot, saved_at: u64) {
        if let Some(jobs) = &self.jobs
            && jobs.send((snapshot, saved_at)).is_err()
        {
            log::error!("the state writer is gone; state not saved");
            update(&self.status, |s| {
                s.failures += 1;
                s.error = Some("the state writer is gone".to_string());
            });
        }
    }

    /// How saving goes now.
    pub fn status(&self) -> SaveStatus {
        self.status.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Waits until every submitted snapshot is written (or the last attempt failed); the error
    /// of a failed last attempt.
    pub fn finish(&mut self) -> Result<(), String> {
        self.jobs = None;
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            log::error!("the state writer panicked");
            update(&self.status, |s| s.error = Some("the state writer panicked".to_string()));
        }
        self.status().error.map_or(Ok(()), Err)
    }
}

impl Drop for Saver {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

fn write_jobs(store: &Store, queue: &Receiver<Job>, status: &SharedStatus) {
    let mut failed: Option<Job> = None;
    let mut retry_in = RETRY_FIRST;
    loop {
        let (mut job, last_attempt) = match failed.take() {
            None => match queue.recv() {
                Ok(job) => (job, false),
                Err(_) => return,
            },
            // A newer snapshot replaces the failed one; without one it is tried again.
            Some(job) => match queue.recv_timeout(retry_in) {
                Ok(newer) => (newer, false),
                Err(RecvTimeoutError::Timeout) => (job, false),
                Err(RecvTimeoutError::Disconnected) => (job, true),
            },
        };
        while let Ok(newer) = queue.try_recv() {
            job = newer;
        }
        let (snapshot, saved_at) = &job;
        match store.save(snapshot, *saved_at) {
            Ok(()) => {
                let was_failing = status.lock().unwrap_or_else(PoisonError::into_inner).error.is_some();
                if was_failing {
                    log::warn!("saved state to {} again", store.path().display());
                } else {
                    log::debug!(
                        "saved state to {} ({} names, {} bans)",
                        store.path().display(),
                        snapshot.profiles.len(),
                        snapshot.bans.len()
                    );
                }
                let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
                update(status, |s| {
                    s.error = None;
                    s.last_success_unix_s = Some(now);
                });
                retry_in = RETRY_FIRST;
            }
            Err(e) => {
                let error = format!("cannot save state to {}: {e}", store.path().display());
                if last_attempt {
                    log::error!("{error}; the latest changes are lost");
                } else {
                    log::error!("{error}; trying again in {} ms", retry_in.as_millis());
                }
                update(status, |s| {
                    s.failures += 1;
                    s.error = Some(error);
                });
                if last_attempt {
                    return;
                }
                failed = Some(job);
                retry_in = (retry_in * 2).min(RETRY_MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{SavedProfile, UserId};

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mppd-store-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn sample() -> Snapshot {
        let id = UserId::parse("0123456789abcdef01234567").unwrap();
        Snapshot { profiles: vec![SavedProfile { id, name: "n".into(), color: "#000000".into() }], bans: vec![] }
    }

    #[test]
    fn missing_file_starts_clean_and_saves_round_trip() {
        let dir = temp_dir("roundtrip");
        let store = Store::open(&dir);
        assert_eq!(store.load(1), Snapshot::default());
        store.save(&sample(), 5).unwrap();
        assert_eq!(store.load(6), sample());
        let names: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from(STATE_FILE)], "no temporary file left");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn corrupt_file_is_moved_aside() {
        let dir = temp_dir("corrupt");
        let store = Store::open(&dir);
        fs::write(store.path(), b"{\"mppd_state\":1,\"profiles\":[").unwrap();
        assert_eq!(store.load(42), Snapshot::default());
        assert!(!store.path().exists());
        assert!(dir.join("state.json.corrupt-42").exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn saver_writes_the_latest_snapshot_before_finishing() {
        let dir = temp_dir("saver");
        let store = Store::open(&dir);
        let mut saver = Saver::spawn(store.clone()).unwrap();
        saver.submit(Snapshot::default(), 1);
        saver.submit(sample(), 2);
        assert_eq!(saver.finish(), Ok(()));
        assert_eq!(store.load(3), sample());
        assert!(saver.status().last_success_unix_s.is_some());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_save_is_reported_and_retried_until_it_succeeds() {
        let dir = temp_dir("retry");
        let store = Store::open(&dir);
        // The data directory becomes a file: every write in it fails.
        fs::remove_dir_all(&dir).unwrap();
        fs::write(&dir, b"not a directory").unwrap();
        let mut saver = Saver::spawn(store.clone()).unwrap();
        saver.submit(sample(), 1);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while saver.status().failures < 2 {
            assert!(std::time::Instant::now() < deadline, "no retry: {:?}", saver.status());
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(saver.status().error.is_some_and(|e| e.contains("cannot save state")));
        // Writable again: the retry saves the snapshot it held.
        fs::remove_file(&dir).unwrap();
        fs::create_dir(&dir).unwrap();
        while saver.status().error.is_some() {
            assert!(std::time::Instant::now() < deadline, "the retry did not save: {:?}", saver.status());
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(store.load(2), sample());
        assert_eq!(saver.finish(), Ok(()));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn finishing_with_a_failing_save_reports_it() {
        let dir = temp_dir("final");
        let store = Store::open(&dir);
        fs::remove_dir_all(&dir).unwrap();
        fs::write(&dir, b"not a directory").unwrap();
        let mut saver = Saver::spawn(store).unwrap();
        saver.submit(sample(), 1);
        let error = saver.finish().expect_err("the final save fails");
        assert!(error.contains("cannot save state"), "{error}");
        fs::remove_file(&dir).unwrap();
    }
}
