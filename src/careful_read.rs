//! The one way the binary reads a file on an operator's behalf: the config (the
//! standby's and the witness's), the secret and TLS files it names, and the state files
//! in `state_dir` (journal, live state, pause marker).
//!
//! Each of those paths is outside data: a FIFO without a writer would hang every
//! command, `/dev/zero` would grow without end, a 200 MiB "token" would be taken in
//! whole. So a file is opened with `O_NONBLOCK` (opening a FIFO cannot wait for a
//! writer), the *opened descriptor* is `fstat`ed (not the path, which could be swapped
//! between the check and the open), anything that is not a regular file is refused, a
//! size over the cap is refused before a byte is read, and at most cap + 1 bytes are
//! read, so a file that grows while it is read is still refused rather than read on.
//! Every refusal is an error naming the file and the problem.
//!
//! Its own module, not part of `store.rs`: the config is read (and refused) before
//! `state_dir` is touched, and `store.rs` owns `state_dir`; both use this.

use std::fs::{FileType, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// What is read, and how large it may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// What the file is, in words, as the refusal says it ("a secret").
    pub what: &'static str,
    /// The largest size accepted, in bytes.
    pub cap: u64,
}

/// A config file (the standby's or the witness's): the shipped example, every key
/// commented, is some 10 KiB.
pub const CONFIG: Limit = Limit {
    what: "a config file",
    cap: 1024 * 1024,
};

/// A secret file: a password or a token is a line, a key file a few KiB.
pub const SECRET: Limit = Limit {
    what: "a secret",
    cap: 64 * 1024,
};

/// A PEM file of TLS material (a CA bundle, a client certificate or its key): a CA
/// bundle of every public root is some 200 KiB.
pub const PEM: Limit = Limit {
    what: "a PEM file",
    cap: 1024 * 1024,
};

/// A state file (journal, live state, pause marker): a few KiB, even with a long error
/// recorded in every step.
pub const STATE: Limit = Limit {
    what: "a state file",
    cap: 1024 * 1024,
};

/// A file that could not be read, or was refused.
#[derive(Debug, thiserror::Error)]
#[error("{} {problem}", path.display())]
pub struct ReadError {
    /// The file as it was named to us.
    pub path: PathBuf,
    /// What is wrong.
    pub problem: Problem,
}

/// What is wrong with a file; each reads after the file's name.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// Opening, `fstat` or reading failed (missing, no permission, ...).
    #[error("cannot be read: {0}")]
    Io(std::io::Error),
    /// A FIFO, a device, a directory, a socket.
    #[error("is {0}, not a regular file")]
    NotRegular(&'static str),
    /// Larger than the cap before a byte was read.
    #[error("is {}, more than the {} {} may be", human_size(*.size), human_size(.limit.cap), .limit.what)]
    TooLarge { size: u64, limit: Limit },
    /// Within the cap when opened, past it while read.
    #[error("grew past the {} {} may be while it was read", human_size(.limit.cap), .limit.what)]
    Grew { limit: Limit },
    #[error("is not UTF-8 text")]
    NotUtf8,
}

impl ReadError {
    /// The file does not exist (for the state files, where that means "none yet").
    pub fn is_not_found(&self) -> bool {
        matches!(&self.problem, Problem::Io(e) if e.kind() == std::io::ErrorKind::NotFound)
    }
}

/// The whole of the regular file at `path`, as text, when it is no larger than
/// `limit.cap`. Never blocks on a FIFO, never reads more than `limit.cap + 1` bytes.
pub fn read_to_string(path: &Path, limit: Limit) -> Result<String, ReadError> {
    let refuse = |problem| ReadError {
        path: path.to_path_buf(),
        problem,
    };
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer. On the
    // regular file we go on to read it has no effect. O_NOCTTY: a terminal named here
    // must not become our controlling terminal before it is refused.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| refuse(Problem::Io(e)))?;
    // `File::metadata` is fstat on the descriptor: what we check is what we read.
    let metadata = file.metadata().map_err(|e| refuse(Problem::Io(e)))?;
    if !metadata.is_file() {
        return Err(refuse(Problem::NotRegular(kind(metadata.file_type()))));
    }
    if metadata.len() > limit.cap {
        return Err(refuse(Problem::TooLarge {
            size: metadata.len(),
            limit,
        }));
    }
    // One byte past the cap tells a file that grew from one that fits exactly.
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0) + 1);
    file.take(limit.cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| refuse(Problem::Io(e)))?;
    if bytes.len() as u64 > limit.cap {
        return Err(refuse(Problem::Grew { limit }));
    }
    String::from_utf8(bytes).map_err(|_| refuse(Problem::NotUtf8))
}

/// A file that is not regular, in words.
fn kind(file_type: FileType) -> &'static str {
    if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_dir() {
        "a directory"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

/// A size for people: "64 KiB", "200 MiB"; a size between whole units is rounded up
/// ("1.1 MiB"), so a file just over a cap never reads as equal to it.
fn human_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (name, unit) in UNITS {
        if bytes >= unit {
            if bytes.is_multiple_of(unit) {
                return format!("{} {name}", bytes / unit);
            }
            let tenths = (u128::from(bytes) * 10).div_ceil(u128::from(unit));
            return format!("{}.{} {name}", tenths / 10, tenths % 10);
        }
    }
    format!("{bytes} bytes")
}

/// Makes a FIFO at `path`, for the tests of every careful reader.
#[cfg(test)]
pub(crate) fn make_fifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c_path` is a valid NUL-terminated string that outlives the call.
    let made = unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) };
    assert_eq!(made, 0, "mkfifo {}", path.display());
}

/// Runs `read` on a thread and waits at most five seconds for it: a read that blocks
/// (the bug) fails the test instead of hanging it.
#[cfg(test)]
pub(crate) fn returns_at_once<T: Send + 'static>(read: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(read());
    });
    rx.recv_timeout(std::time::Duration::from_secs(5))
        .expect("the read blocked (a FIFO without a writer?)")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A FIFO with no writer: the open must not wait for one.
    #[test]
    fn a_fifo_without_a_writer_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("token");
        make_fifo(&fifo);
        let path = fifo.clone();
        let err = returns_at_once(move || read_to_string(&path, SECRET).map_err(|e| e.to_string()))
            .unwrap_err();
        assert_eq!(
            err,
            format!("{} is a FIFO, not a regular file", fifo.display())
        );
    }

    /// `/dev/zero` grew the buffer to gigabytes.
    #[test]
    fn dev_zero_is_refused_as_not_a_regular_file() {
        let err = read_to_string(Path::new("/dev/zero"), CONFIG).unwrap_err();
        assert!(matches!(err.problem, Problem::NotRegular(_)), "{err}");
        assert_eq!(
            err.to_string(),
            "/dev/zero is a character device, not a regular file"
        );
    }

    #[test]
    fn a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_to_string(dir.path(), CONFIG).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("is a directory, not a regular file"),
            "{err}"
        );
    }

    /// A 200 MiB token file was accepted. A sparse file has the size without the disk.
    #[test]
    fn an_oversized_file_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(200 * 1024 * 1024).unwrap();
        let err = read_to_string(&path, SECRET).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{} is 200 MiB, more than the 64 KiB a secret may be",
                path.display()
            )
        );
    }

    #[test]
    fn a_file_of_exactly_the_cap_is_read_and_one_byte_more_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, vec![b'a'; 64 * 1024]).unwrap();
        assert_eq!(read_to_string(&path, SECRET).unwrap().len(), 64 * 1024);
        std::fs::write(&path, vec![b'a'; 64 * 1024 + 1]).unwrap();
        let err = read_to_string(&path, SECRET).unwrap_err().to_string();
        assert!(
            err.ends_with("is 64.1 KiB, more than the 64 KiB a secret may be"),
            "{err}"
        );
    }

    /// `/proc` files are regular and say size 0, then yield more: the file that grows
    /// while it is read.
    #[test]
    fn a_file_that_grows_past_the_cap_while_read_is_refused() {
        let tiny = Limit {
            what: "a test file",
            cap: 16,
        };
        let err = read_to_string(Path::new("/proc/self/status"), tiny).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/proc/self/status grew past the 16 bytes a test file may be while it was read"
        );
    }

    #[test]
    fn a_missing_file_is_not_found_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nothing");
        let err = read_to_string(&path, STATE).unwrap_err();
        assert!(err.is_not_found());
        assert!(
            err.to_string()
                .starts_with(&format!("{} cannot be read: ", path.display())),
            "{err}"
        );
    }

    #[test]
    fn text_that_is_not_utf8_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        let err = read_to_string(&path, SECRET).unwrap_err();
        assert!(matches!(err.problem, Problem::NotUtf8), "{err}");
    }

    #[test]
    fn sizes_read_for_people_and_round_up() {
        assert_eq!(human_size(0), "0 bytes");
        assert_eq!(human_size(1023), "1023 bytes");
        assert_eq!(human_size(64 * 1024), "64 KiB");
        assert_eq!(human_size(1024 * 1024 + 1), "1.1 MiB");
        assert_eq!(human_size(200 * 1024 * 1024), "200 MiB");
        assert_eq!(human_size(3 << 30), "3 GiB");
    }
}
