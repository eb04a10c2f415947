//! The state directory: the procedures' journals (`promotion.json`, `rejoin.json`), the
//! live state, the pause marker and the locks. The only module that writes to
//! `state_dir`.
//!
//! Every file is written atomically (write to a temporary file, fsync, rename, fsync the
//! directory), so a reader or a restarted daemon sees the old content or the new one,
//! never half of each. A journal that cannot be read, or does not hold its trigger's steps
//! ([`Journal::validate`]), is an error naming the file, never "no promotion": guessing
//! either way could promote twice or refuse wrongly.
//!
//! Every state file is read through [`careful_read`] (a regular file, at most 1 MiB,
//! never blocking on a FIFO), and every write error names the file being written.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::careful_read;
use crate::journal::{Journal, Procedure, Promotion, Rejoin, RejoinJournal};

const LIVE_FILE: &str = "live.json";
const PAUSE_FILE: &str = "pause.json";
const LOCK_FILE: &str = "promotion.lock";
const DAEMON_LOCK_FILE: &str = "daemon.lock";

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    path: PathBuf,
}

/// Another process holds a lock in `state_dir`.
#[derive(Debug, thiserror::Error)]
#[error("{what} holds the lock {}: {holder}", path.display())]
pub struct LockHeld {
    /// Who holds it, in words ("another promotion", "a running daemon").
    pub what: &'static str,
    pub path: PathBuf,
    /// What the holder wrote into the lock file (pid, command, since when).
    pub holder: String,
}

/// A lock in `state_dir`; released when dropped, or by the kernel when the process dies.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

impl StateDir {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates the directory (mode 0700) when missing.
    pub fn ensure(&self) -> anyhow::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.path)
            .with_context(|| format!("cannot create state_dir {}", self.path.display()))
    }

    /// The promotion journal's path.
    pub fn journal_path(&self) -> PathBuf {
        self.path.join(Promotion::FILE)
    }

    /// A procedure's journal, `None` when none was ever started (or the last one was
    /// archived). Refused, naming the file, when it is not JSON, has another version, or
    /// does not describe its procedure ([`Journal::validate`]): read as "none" it could
    /// start a second promotion, read as done it could refuse one wrongly.
    pub fn load<P: Procedure>(&self) -> anyhow::Result<Option<Journal<P>>> {
        let path = self.path.join(P::FILE);
        let Some(text) = read_if_exists(&path)? else {
            return Ok(None);
        };
        let name = P::NAME;
        let inspect = "inspect it, then move it away only if no procedure is in progress";
        let value: serde_json::Value = serde_json::from_str(&text).with_context(|| {
            format!(
                "the {name} journal {} is not valid JSON; {inspect}",
                path.display()
            )
        })?;
        let version = value.get("version");
        if version.and_then(serde_json::Value::as_u64) != Some(u64::from(P::VERSION)) {
            // Said as the file has it: "has version 2", "has no version", never Rust's
            // "Some(2)".
            let has = match version {
                None | Some(serde_json::Value::Null) => "has no version".to_string(),
                Some(version) => format!("has version {version}"),
            };
            bail!(
                "the {name} journal {} {has}; this build reads version {}",
                path.display(),
                P::VERSION
            );
        }
        let journal: Journal<P> = serde_json::from_value(value)
            .with_context(|| format!("the {name} journal {} cannot be read", path.display()))?;
        if let Err(problem) = journal.validate() {
            bail!(
                "the {name} journal {} does not describe the {name}: {problem}; {inspect}",
                path.display()
            );
        }
        Ok(Some(journal))
    }

    /// Persists a procedure's journal atomically.
    pub fn save<P: Procedure>(&self, journal: &Journal<P>) -> anyhow::Result<()> {
        self.save_json(P::FILE, journal)
    }

    /// Moves a procedure's journal aside as `<stem>.<time>.json` (kept: it records what
    /// the procedure did), or `<stem>.<time>-<n>.json` when that name is taken (two in
    /// one second): an archive is never overwritten. Returns the new path, `None` when
    /// there was none.
    pub fn archive<P: Procedure>(&self, now: jiff::Timestamp) -> anyhow::Result<Option<PathBuf>> {
        let from = self.path.join(P::FILE);
        if !from.exists() {
            return Ok(None);
        }
        let stem = P::FILE.trim_end_matches(".json");
        let stamp = now.strftime("%Y%m%dT%H%M%SZ").to_string();
        let to = (0..)
            .map(|n| match n {
                0 => self.path.join(format!("{stem}.{stamp}.json")),
                n => self.path.join(format!("{stem}.{stamp}-{n}.json")),
            })
            .find(|to| !to.exists())
            .expect("an unbounded range has a free name");
        std::fs::rename(&from, &to)
            .with_context(|| format!("cannot move {} to {}", from.display(), to.display()))?;
        sync_dir(&self.path).with_context(|| {
            format!(
                "cannot make the move of {} to {} durable",
                from.display(),
                to.display()
            )
        })?;
        Ok(Some(to))
    }

    /// The promotion journal, `None` when no promotion ever started.
    pub fn load_journal(&self) -> anyhow::Result<Option<Journal>> {
        self.load::<Promotion>()
    }

    /// Persists the promotion journal atomically.
    pub fn save_journal(&self, journal: &Journal) -> anyhow::Result<()> {
        self.save(journal)
    }

    /// The `rejoin` journal in progress (`rejoin.json`: running or failed), `None` when
    /// there is none (never rejoined, or the last rejoin finished and was archived).
    pub fn load_rejoin(&self) -> anyhow::Result<Option<RejoinJournal>> {
        self.load::<Rejoin>()
    }

    /// The last `rejoin`'s journal: the one in progress, else the newest archived one;
    /// `None` when this host never rejoined.
    pub fn last_rejoin(&self) -> anyhow::Result<Option<RejoinJournal>> {
        if let Some(journal) = self.load_rejoin()? {
            return Ok(Some(journal));
        }
        let Some(newest) = self.newest_archive::<Rejoin>()? else {
            return Ok(None);
        };
        let text = careful_read::read_to_string(&newest, careful_read::STATE)?;
        let journal: RejoinJournal = serde_json::from_str(&text).with_context(|| {
            format!(
                "the archived rejoin journal {} cannot be read",
                newest.display()
            )
        })?;
        Ok(Some(journal))
    }

    /// The newest `<stem>.<time>[-<n>].json` of a procedure, by its time and number.
    fn newest_archive<P: Procedure>(&self) -> anyhow::Result<Option<PathBuf>> {
        let stem = format!("{}.", P::FILE.trim_end_matches(".json"));
        let entries = match std::fs::read_dir(&self.path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot list {}", self.path.display()));
            }
        };
        let newest = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let stamp = name.strip_prefix(&stem)?.strip_suffix(".json")?;
                let (time, n) = match stamp.split_once('-') {
                    Some((time, n)) => (time.to_string(), n.parse::<u32>().ok()?),
                    None => (stamp.to_string(), 0),
                };
                Some(((time, n), entry.path()))
            })
            .max_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, path)| path);
        Ok(newest)
    }

    /// The live state the daemon writes each round.
    pub fn load_live<T: DeserializeOwned>(&self) -> anyhow::Result<Option<T>> {
        self.load_json(LIVE_FILE)
    }

    pub fn save_live<T: Serialize>(&self, live: &T) -> anyhow::Result<()> {
        self.save_json(LIVE_FILE, live)
    }

    /// The pause marker, when automatic promotion is paused.
    pub fn load_pause<T: DeserializeOwned>(&self) -> anyhow::Result<Option<T>> {
        self.load_json(PAUSE_FILE)
    }

    pub fn save_pause<T: Serialize>(&self, pause: &T) -> anyhow::Result<()> {
        self.save_json(PAUSE_FILE, pause)
    }

    pub fn remove_pause(&self) -> anyhow::Result<()> {
        remove_if_exists(&self.path.join(PAUSE_FILE))
    }

    /// Proves the directory is writable now (for the smoke test): creates a small file,
    /// fsyncs it and removes it again. Nothing is left behind.
    pub fn check_writable(&self) -> anyhow::Result<()> {
        let path = self
            .path
            .join(format!(".smoke-write-test.{}", std::process::id()));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| format!("cannot create a file in {}", self.path.display()))?;
        let written = file
            .write_all(b"failover-watchdog smoke test\n")
            .and_then(|()| file.sync_all());
        let removed = std::fs::remove_file(&path);
        written.with_context(|| format!("cannot write {}", path.display()))?;
        removed.with_context(|| format!("cannot remove {}", path.display()))
    }

    /// Takes the promotion lock without waiting. `holder` says who we are; a loser reads
    /// it back to name us.
    pub fn lock_promotion(&self, holder: &str) -> anyhow::Result<StateLock> {
        self.lock(LOCK_FILE, "another promotion", holder)
    }

    /// Taken by the daemon for as long as it runs: a second daemon on the same
    /// `state_dir`, or `reset`, is refused while it is held.
    pub fn lock_daemon(&self, holder: &str) -> anyhow::Result<StateLock> {
        self.lock(DAEMON_LOCK_FILE, "a running daemon", holder)
    }

    fn lock(&self, name: &str, what: &'static str, holder: &str) -> anyhow::Result<StateLock> {
        self.ensure()?;
        let path = self.path.join(name);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| {
                format!(
                    "cannot open the lock file {} (as uid {}; it is owned by uid {}): run this command as the user the daemon runs as, or as root",
                    path.display(),
                    current_uid(),
                    std::fs::metadata(&path).map_or("?".to_string(), |m| {
                        std::os::unix::fs::MetadataExt::uid(&m).to_string()
                    })
                )
            })?;
        owned_like_its_directory(&file, &path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                // The holder wrote one line; a lock file grown huge is not read whole.
                let mut holder = String::new();
                let _ = (&file).take(4096).read_to_string(&mut holder);
                return Err(LockHeld {
                    what,
                    path,
                    holder: holder.trim().to_string(),
                }
                .into());
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        let written = (|| -> std::io::Result<()> {
            file.set_len(0)?;
            file.rewind()?;
            writeln!(file, "{holder}")?;
            file.sync_all()
        })();
        written.with_context(|| format!("cannot write the lock file {}", path.display()))?;
        Ok(StateLock { _file: file })
    }

    /// Moves the promotion journal aside as `promotion.<time>.json`.
    pub fn archive_journal(&self, now: jiff::Timestamp) -> anyhow::Result<Option<PathBuf>> {
        self.archive::<Promotion>(now)
    }

    fn load_json<T: DeserializeOwned>(&self, name: &str) -> anyhow::Result<Option<T>> {
        let path = self.path.join(name);
        let Some(text) = read_if_exists(&path)? else {
            return Ok(None);
        };
        let value = serde_json::from_str(&text)
            .with_context(|| format!("cannot parse {}", path.display()))?;
        Ok(Some(value))
    }

    fn save_json<T: Serialize>(&self, name: &str, value: &T) -> anyhow::Result<()> {
        self.ensure()?;
        let mut bytes = serde_json::to_vec_pretty(value)?;
        bytes.push(b'\n');
        write_atomic(&self.path.join(name), &bytes)
    }
}

/// Write, fsync, rename, fsync the directory. Whichever stage fails, the error names
/// the file being written and the stage (a bare "No space left on device" told the
/// operator nothing about where).
fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).with_context(|| {
        format!(
            "cannot write {}: cannot create its temporary file {}",
            path.display(),
            tmp.display()
        )
    })?;
    owned_like_its_directory(&file, &tmp)?;
    file.write_all(bytes).with_context(|| {
        format!(
            "cannot write {}: cannot write its temporary file {}",
            path.display(),
            tmp.display()
        )
    })?;
    file.sync_all().with_context(|| {
        format!(
            "cannot write {}: cannot fsync its temporary file {}",
            path.display(),
            tmp.display()
        )
    })?;
    drop(file);
    std::fs::rename(&tmp, path).with_context(|| {
        format!(
            "cannot write {}: cannot rename {} to it",
            path.display(),
            tmp.display()
        )
    })?;
    if let Some(dir) = path.parent() {
        sync_dir(dir).with_context(|| format!("cannot make {} durable", path.display()))?;
    }
    Ok(())
}

/// A file this process made in `state_dir`, given to the directory's owner when we run
/// as root: a command an operator runs as root (`rejoin --yes`, `reset`) must never
/// leave a file the daemon, running as the service user, cannot open (a root-owned
/// `promotion.lock` kept it from promoting). As any other user, nothing to do: the file
/// is ours, and so is the directory we could write in.
fn owned_like_its_directory(file: &File, path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    if current_uid() != 0 {
        return Ok(());
    }
    let Some(dir) = path.parent() else {
        return Ok(());
    };
    let owner = std::fs::metadata(dir)
        .with_context(|| format!("cannot read the owner of {}", dir.display()))?;
    let mine = file.metadata()?;
    if (mine.uid(), mine.gid()) == (owner.uid(), owner.gid()) {
        return Ok(());
    }
    std::os::unix::fs::fchown(file, Some(owner.uid()), Some(owner.gid())).with_context(|| {
        format!(
            "cannot give {} to the owner of {} (uid {})",
            path.display(),
            dir.display(),
            owner.uid()
        )
    })
}

/// The effective user id of this process.
fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot fsync the directory {}", dir.display()))
}

/// A state file's text, `None` when there is none; read through [`careful_read`], so
/// a FIFO, a device or a file over 1 MiB is an error naming the file.
fn read_if_exists(path: &Path) -> anyhow::Result<Option<String>> {
    match careful_read::read_to_string(path, careful_read::STATE) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn remove_if_exists(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Trigger;

    /// A fresh promotion journal.
    fn journal() -> Journal {
        Journal::new("n", Trigger::Manual, "r", jiff::Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn the_rejoin_journal_round_trips_and_one_without_its_steps_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateDir::new(dir.path().join("state"));
        assert!(store.load_rejoin().unwrap().is_none());
        let position = crate::gtid::GtidPosition::parse("0-1-5").unwrap();
        let mut journal =
            RejoinJournal::rejoin("n", "peer", "h:1", position, jiff::Timestamp::UNIX_EPOCH);
        store.save(&journal).unwrap();
        assert_eq!(store.load_rejoin().unwrap(), Some(journal.clone()));
        journal.steps.clear();
        store.save(&journal).unwrap();
        let error = format!("{:#}", store.load_rejoin().unwrap_err());
        assert!(
            error.contains("rejoin.json does not describe the rejoin"),
            "{error}"
        );
        store
            .save(&RejoinJournal::rejoin(
                "n",
                "p",
                "h:1",
                Default::default(),
                jiff::Timestamp::UNIX_EPOCH,
            ))
            .unwrap();
        let archived = store
            .archive::<Rejoin>(jiff::Timestamp::UNIX_EPOCH)
            .unwrap()
            .unwrap();
        assert!(
            archived.ends_with("rejoin.19700101T000000Z.json"),
            "{archived:?}"
        );
        assert!(store.load_rejoin().unwrap().is_none());
    }

    /// Issue 18: a finished rejoin's journal was replaced by the next `rejoin`, so the
    /// drill history was lost. Archives are never overwritten, even within one second,
    /// and the last rejoin is the one in progress, else the newest archive.
    #[test]
    fn finished_rejoins_are_kept_and_the_last_one_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateDir::new(dir.path().join("state"));
        assert!(store.last_rejoin().unwrap().is_none(), "never rejoined");
        let rejoin = |peer: &str| {
            RejoinJournal::rejoin(
                "n",
                peer,
                "h:1",
                Default::default(),
                jiff::Timestamp::UNIX_EPOCH,
            )
        };
        let mut kept = Vec::new();
        for peer in ["first", "second", "third"] {
            store.save(&rejoin(peer)).unwrap();
            kept.push(
                store
                    .archive::<Rejoin>(jiff::Timestamp::UNIX_EPOCH)
                    .unwrap()
                    .unwrap(),
            );
        }
        let names: Vec<String> = kept
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "rejoin.19700101T000000Z.json",
                "rejoin.19700101T000000Z-1.json",
                "rejoin.19700101T000000Z-2.json"
            ]
        );
        assert_eq!(store.last_rejoin().unwrap().unwrap().record.peer, "third");
        store.save(&rejoin("running")).unwrap();
        assert_eq!(store.last_rejoin().unwrap().unwrap().record.peer, "running");
    }

    #[test]
    fn journal_round_trips_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateDir::new(dir.path().join("state"));
        assert!(store.load_journal().unwrap().is_none());
        let journal = journal();
        store.save_journal(&journal).unwrap();
        assert_eq!(store.load_journal().unwrap(), Some(journal));
        assert!(!dir.path().join("state/promotion.tmp").exists());
    }

    #[test]
    fn a_corrupt_journal_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateDir::new(dir.path());
        for bad in ["{\"version\": 1, \"node\"", "{\"version\": 9}", "[]"] {
            std::fs::write(store.journal_path(), bad).unwrap();
            let err = format!("{:#}", store.load_journal().unwrap_err());
            assert!(err.contains("promotion.json"), "{err}");
        }
    }

    /// The bug: `"steps": []` was read as a promotion with nothing left to do (a dry run
    /// panicked, a daemon stayed `promoting` for ever).
    #[test]
    fn a_journal_without_its_five_steps_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateDir::new(dir.path());
        let journal = journal();
        let whole = serde_json::to_value(&journal).unwrap();
        let steps = whole["steps"].as_array().unwrap().clone();
        let reversed: Vec<_> = steps.iter().rev().cloned().collect();
        let twice: Vec<_> = steps.iter().chain(&steps[..1]).cloned().collect();
        for (bad, problem) in [
            (vec![], "it has no steps"),
            (steps[..4].to_vec(), "notify missing"),
            (reversed, "out of order"),
            (twice, "stop_replica more than once"),
        ] {
            let mut value = whole.clone();
            value["steps"] = serde_json::Value::Array(bad);
            std::fs::write(store.journal_path(), value.to_string()).unwrap();
            let err = format!("{:#}", store.load_journal().unwrap_err());
            assert!(err.contains("promotion.json"), "{err}");
            assert!(err.contains(problem), "{problem}: {err}");
        }
    }

    /// Regression: "has version Some(2)" in the message.
    #[test]
    fn a_journal_of_another_version_says_2_not_some_2() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateDir::new(dir.path());
        let path = store.journal_path().display().to_string();
        for (text, has) in [
            ("{\"version\": 2}", "has version 2"),
            ("{\"node\": \"n\"}", "has no version"),
            ("{\"version\": null}", "has no version"),
            ("{\"version\": \"1\"}", "has version \"1\""),
        ] {
            std::fs::write(store.journal_path(), text).unwrap();
            let err = format!("{:#}", store.load_journal().unwrap_err());
            assert_eq!(
                err,
                format!("the promotion journal {path} {has}; this build reads version 1"),
                "{text}"
            );
        }
    }

    /// Regression: a FIFO or a huge file in `state_dir` would hang `status` or fill
    /// memory; each is an error naming the file, at once.
    #[test]
    fn a_fifo_or_oversized_state_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateDir::new(dir.path());
        crate::careful_read::make_fifo(&store.journal_path());
        let reader = store.clone();
        let err = crate::careful_read::returns_at_once(move || {
            reader.load_journal().map_err(|e| format!("{e:#}"))
        })
        .unwrap_err();
        assert_eq!(
            err,
            format!(
                "{} is a FIFO, not a regular file",
                store.journal_path().display()
            )
        );

        let live = dir.path().join(LIVE_FILE);
        std::fs::File::create(&live)
            .unwrap()
            .set_len(2 * 1024 * 1024)
            .unwrap();
        let err = format!("{:#}", store.load_live::<serde_json::Value>().unwrap_err());
        assert_eq!(
            err,
            format!(
                "{} is 2 MiB, more than the 1 MiB a state file may be",
                live.display()
            )
        );
    }

    /// Regression: ENOSPC while saving said "No space left on device" without the
    /// file. `/dev/full` (behind the temporary file's name) answers every write so.
    #[test]
    fn enospc_names_the_file_being_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateDir::new(dir.path());
        let tmp = dir.path().join("promotion.tmp");
        std::os::unix::fs::symlink("/dev/full", &tmp).unwrap();
        let journal = journal();
        let err = format!("{:#}", store.save_journal(&journal).unwrap_err());
        assert_eq!(
            err,
            format!(
                "cannot write {}: cannot write its temporary file {}: No space left on device (os error 28)",
                store.journal_path().display(),
                tmp.display()
            )
        );
    }

    /// Every stage of the atomic write names the file: the temporary file cannot be
    /// created (no directory), the rename cannot replace a directory.
    #[test]
    fn every_write_error_names_the_file_being_written() {
        let dir = tempfile::tempdir().unwrap();
        let nowhere = dir.path().join("missing/live.json");
        let err = format!("{:#}", write_atomic(&nowhere, b"{}").unwrap_err());
        assert!(
            err.starts_with(&format!(
                "cannot write {}: cannot create its temporary file {}: ",
                nowhere.display(),
                dir.path().join("missing/live.tmp").display()
            )),
            "{err}"
        );

        let occupied = dir.path().join("pause.json");
        std::fs::create_dir(&occupied).unwrap();
        std::fs::write(occupied.join("inside"), "x").unwrap();
        let err = format!("{:#}", write_atomic(&occupied, b"{}").unwrap_err());
        assert!(
            err.starts_with(&format!(
                "cannot write {}: cannot rename {} to it: ",
                occupied.display(),
                dir.path().join("pause.tmp").display()
            )),
            "{err}"
        );
    }

    #[test]
    fn the_lock_excludes_a_second_holder_and_names_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateDir::new(dir.path());
        let lock = store.lock_promotion("pid 42 (daemon)").unwrap();
        let err = store.lock_promotion("pid 43").unwrap_err();
        let held = err.downcast_ref::<LockHeld>().expect("LockHeld");
        assert_eq!(held.holder, "pid 42 (daemon)");
        drop(lock);
        store.lock_promotion("pid 43").unwrap();
    }

    #[test]
    fn the_daemon_lock_is_separate_from_the_promotion_lock() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateDir::new(dir.path());
        let _daemon = store.lock_daemon("pid 7 (daemon)").unwrap();
        let _promotion = store.lock_promotion("pid 7").unwrap();
        let err = store.lock_daemon("pid 8").unwrap_err();
        assert!(
            err.to_string().contains("a running daemon holds the lock"),
            "{err}"
        );
    }

    #[test]
    fn archiving_moves_the_journal_aside() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateDir::new(dir.path());
        assert_eq!(
            store.archive_journal(jiff::Timestamp::UNIX_EPOCH).unwrap(),
            None
        );
        store.save_journal(&journal()).unwrap();
        let archived = store
            .archive_journal(jiff::Timestamp::UNIX_EPOCH)
            .unwrap()
            .unwrap();
        assert!(
            archived.ends_with("promotion.19700101T000000Z.json"),
            "{archived:?}"
        );
        assert!(store.load_journal().unwrap().is_none());
    }

    /// Issue 19, item 7: `rejoin --yes` run as root left a root-owned `promotion.lock`
    /// the service user's daemon could not open: no promotion. Every file made in
    /// `state_dir` belongs to the directory's owner.
    #[test]
    fn files_made_as_root_belong_to_the_state_dirs_owner() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        let service = if current_uid() == 0 {
            65534
        } else {
            current_uid()
        };
        if current_uid() == 0 {
            std::os::unix::fs::chown(&state, Some(service), Some(service)).unwrap();
        }
        let store = StateDir::new(&state);
        let _lock = store.lock_promotion("pid 1 (test)").unwrap();
        store.save_journal(&journal()).unwrap();
        store.save_live(&serde_json::json!({"x": 1})).unwrap();
        for name in ["promotion.lock", "promotion.json", "live.json"] {
            let meta = std::fs::metadata(state.join(name)).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (service, service), "{name}");
        }
    }
}
