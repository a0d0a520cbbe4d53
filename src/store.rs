//! Durable state: the core's [`Snapshot`] as `state.json` in the data directory.
//!
//! Writes are atomic: a temporary file in the same directory is written and fsynced, renamed
//! over `state.json`, and the directory is fsynced, so a crash leaves either the old or the new
//! file, never a mix. They happen on a [`Saver`] thread so that a slow disk (an SD card) never
//! stalls the event loop. Loading never fails: a missing file means a fresh start, and a file
//! that cannot be read or parsed is moved aside as `state.json.corrupt-<ms>` with a log line.

use crate::core::Snapshot;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

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
        self.write_atomically(&bytes)
    }

    fn write_atomically(&self, bytes: &[u8]) -> io::Result<()> {
        let tmp = self.dir.join(format!("{STATE_FILE}.tmp"));
        let result = (|| {
            let mut out = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
            out.write_all(bytes)?;
            out.sync_all()?;
            fs::rename(&tmp, self.path())?;
            File::open(&self.dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

/// A snapshot waiting to be written, with its time.
type Job = (Snapshot, u64);

/// Writes snapshots on its own thread, newest first: when several are queued only the last is
/// written. [`finish`](Saver::finish) waits until everything handed over is on disk.
pub struct Saver {
    jobs: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Saver {
    pub fn spawn(store: Store) -> io::Result<Saver> {
        let (jobs, queue) = mpsc::channel();
        let thread = std::thread::Builder::new().name("mppd-saver".into()).spawn(move || write_jobs(&store, &queue))?;
        Ok(Saver { jobs: Some(jobs), thread: Some(thread) })
    }

    /// Hands a snapshot to the writer thread.
    pub fn submit(&self, snapshot: Snapshot, saved_at: u64) {
        if let Some(jobs) = &self.jobs
            && jobs.send((snapshot, saved_at)).is_err()
        {
            log::error!("the state writer is gone; state not saved");
        }
    }

    /// Waits until every submitted snapshot is written.
    pub fn finish(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            log::error!("the state writer panicked");
        }
    }
}

impl Drop for Saver {
    fn drop(&mut self) {
        self.finish();
    }
}

fn write_jobs(store: &Store, queue: &Receiver<Job>) {
    while let Ok(mut job) = queue.recv() {
        while let Ok(newer) = queue.try_recv() {
            job = newer;
        }
        let (snapshot, saved_at) = job;
        match store.save(&snapshot, saved_at) {
            Ok(()) => log::debug!(
                "saved state to {} ({} names, {} bans)",
                store.path().display(),
                snapshot.profiles.len(),
                snapshot.bans.len()
            ),
            Err(e) => log::error!("cannot save state to {}: {e}", store.path().display()),
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
        saver.finish();
        assert_eq!(store.load(3), sample());
        fs::remove_dir_all(&dir).unwrap();
    }
}
