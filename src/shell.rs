//! Operator commands: the one place that starts them. The fence command and the hooks
//! ([`run`]: `sh -c`, the promotion's facts as `FAILOVER_*` environment variables, output
//! logged with every configured secret scrubbed out) and the smoke test's trial boot
//! ([`run_in_own_group`] with a program and its arguments, no shell).
//!
//! A command is its whole process group, not just the process we start: each runs in a
//! group of its own (`process_group(0)`), and that group is killed with SIGKILL when the
//! command exits, when it runs out of time, and when the future running it is dropped (a
//! step's deadline, a check's bound). So nothing a command starts in the background
//! outlives it, unless it leaves the group on purpose (`setsid`, `systemd-run`).
//!
//! stdout and stderr go into one pipe, read while the command runs (a full pipe would
//! stall it) and capped at its last [`OUTPUT_KEPT_BYTES`]. Once the group is killed the
//! rest is read for at most [`OUTPUT_DRAIN`]: a process that left the group may hold the
//! pipe open forever, and it must not hold us past the timeout.

use std::os::fd::OwnedFd;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, anyhow};
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::process::Command;
use tokio::time::Instant;

use crate::secret::Scrubber;

/// How much of a command's output is kept: its end tells what happened.
pub const OUTPUT_KEPT_BYTES: usize = 64 * 1024;
/// How long the rest of the output may take once the command's process group is gone.
pub const OUTPUT_DRAIN: Duration = Duration::from_secs(2);
/// [`Finished::tail`] has this many lines.
const TAIL_LINES: usize = 5;

/// How a command ended.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    /// The last lines of its output, for alerts and the journal.
    pub tail: String,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// "exit 0" / "exit 3" / "killed by a signal".
    pub fn describe(&self) -> String {
        match self.code {
            Some(code) => format!("exit {code}"),
            None => "killed by a signal".to_string(),
        }
    }
}

/// Runs `command` with `sh -c` as `what` (named in the log); an error when it cannot
/// start or does not finish within `timeout` (its process group is killed then).
pub async fn run(
    what: &str,
    command: &str,
    env: &[(&str, String)],
    timeout: Duration,
    scrubber: &Scrubber,
) -> anyhow::Result<Finished> {
    tracing::info!("{what}: running `{command}`");
    let ran = run_in_own_group(Program::Shell(command), env, timeout)
        .await
        .with_context(|| format!("{what}: cannot run `{command}`"))?;
    if ran.output_cut {
        tracing::info!(
            "{what}: (its output is longer than {} KiB: only the end is kept)",
            OUTPUT_KEPT_BYTES / 1024
        );
    }
    let text = scrubbed(&ran.output, ran.output_cut, scrubber);
    for line in text.lines() {
        tracing::info!("{what}: {line}");
    }
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n");
    match ran.ended {
        Ended::TimedOut => Err(anyhow!(
            "{what}: `{command}` did not finish within {} and was killed{}",
            humantime::format_duration(timeout),
            if tail.is_empty() {
                String::new()
            } else {
                format!("; its last output: {}", tail.replace('\n', " | "))
            }
        )),
        Ended::Exited(status) => {
            let finished = Finished {
                code: status.code(),
                tail,
            };
            tracing::info!("{what}: {}", finished.describe());
            Ok(finished)
        }
    }
}

/// What to start.
#[derive(Debug, Clone, Copy)]
pub enum Program<'a> {
    /// A command line for `sh -c` (the fence command, the hooks).
    Shell(&'a str),
    /// A program and its arguments, no shell (the trial boot).
    Argv(&'a [String]),
}

/// How a command in its own process group ended.
#[derive(Debug)]
pub enum Ended {
    /// It exited (or a signal ended it) within its time.
    Exited(ExitStatus),
    /// It was still running at its timeout, and was killed.
    TimedOut,
}

/// A command's end and the end of its output.
#[derive(Debug)]
pub struct Ran {
    pub ended: Ended,
    /// stdout and stderr together, in the order written: the last [`OUTPUT_KEPT_BYTES`].
    pub output: Vec<u8>,
    /// Whether earlier output was dropped to keep to the cap (`output` may then start in
    /// the middle of a line).
    pub output_cut: bool,
}

/// Starts `program` in a process group of its own, stdin closed, `env` added, stdout and
/// stderr into one pipe, and waits at most `timeout` for it to exit. Then (or when this
/// future is dropped) its whole group is killed. An error only when it cannot start.
pub async fn run_in_own_group(
    program: Program<'_>,
    env: &[(&str, String)],
    timeout: Duration,
) -> std::io::Result<Ran> {
    let deadline = Instant::now() + timeout;
    let (writer, reader) = pipe::pipe()?;
    let writer: OwnedFd = writer.into_blocking_fd()?;
    let mut child = {
        let mut command = program.command()?;
        command
            .stdin(Stdio::null())
            .stdout(writer.try_clone()?)
            .stderr(writer)
            .process_group(0)
            .kill_on_drop(true);
        for (name, value) in env {
            command.env(name, value);
        }
        command.spawn()?
        // The command, with our copies of the pipe's write end, is dropped here: the
        // pipe ends once the group's processes have closed theirs.
    };
    // Declared after `child`, so dropped before it: the group goes first, then tokio
    // kills and reaps the leader (kill_on_drop).
    let group = child
        .id()
        .and_then(|pid| libc::pid_t::try_from(pid).ok())
        .map(KillGroupOnDrop);
    let mut kept = Kept::default();
    let mut reading = Box::pin(kept.read_to_end(reader));
    let mut read_all = false;
    let ended = loop {
        tokio::select! {
            status = child.wait() => break Ended::Exited(status?),
            () = tokio::time::sleep_until(deadline) => break Ended::TimedOut,
            () = &mut reading, if !read_all => read_all = true,
        }
    };
    drop(group);
    let drain_until = Instant::now() + OUTPUT_DRAIN;
    if let Ended::TimedOut = ended {
        // SIGKILL cannot be ignored: reap the leader now.
        let _ = tokio::time::timeout_at(drain_until, child.wait()).await;
    }
    if !read_all {
        // A process that left the group (setsid) may still hold the pipe: stop reading.
        let _ = tokio::time::timeout_at(drain_until, &mut reading).await;
    }
    drop(reading);
    Ok(Ran {
        ended,
        output_cut: kept.cut,
        output: kept.bytes,
    })
}

impl Program<'_> {
    fn command(self) -> std::io::Result<Command> {
        match self {
            Program::Shell(line) => {
                let mut command = Command::new("sh");
                command.arg("-c").arg(line);
                Ok(command)
            }
            Program::Argv(argv) => {
                let Some((program, args)) = argv.split_first() else {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "no program given",
                    ));
                };
                let mut command = Command::new(program);
                command.args(args);
                Ok(command)
            }
        }
    }
}

/// Kills a command's process group (SIGKILL to -pgid) when dropped.
struct KillGroupOnDrop(libc::pid_t);

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        // SAFETY: kill has no memory-safety preconditions. The group is the command's own
        // (process_group(0)) and is dropped before its leader is reaped, or in the same
        // poll right after it: its id cannot have been handed to another group yet. Once
        // the group is empty, this is a harmless ESRCH.
        unsafe {
            libc::kill(-self.0, libc::SIGKILL);
        }
    }
}

/// The end of a command's output.
#[derive(Default)]
struct Kept {
    bytes: Vec<u8>,
    cut: bool,
}

impl Kept {
    /// Reads the pipe to its end, keeping the last [`OUTPUT_KEPT_BYTES`].
    async fn read_to_end(&mut self, mut reader: pipe::Receiver) {
        let mut buffer = [0u8; 8192];
        while let Ok(read @ 1..) = reader.read(&mut buffer).await {
            self.bytes.extend_from_slice(&buffer[..read]);
            // Cut back to the cap only once it is twice over: each byte moves once.
            if self.bytes.len() > 2 * OUTPUT_KEPT_BYTES {
                self.keep_the_cap();
            }
        }
        self.keep_the_cap();
    }

    fn keep_the_cap(&mut self) {
        let excess = self.bytes.len().saturating_sub(OUTPUT_KEPT_BYTES);
        if excess > 0 {
            self.bytes.drain(..excess);
            self.cut = true;
        }
    }
}

/// The output as text with every secret replaced. When its start was cut off, its first
/// (partial) line goes too: it may begin in the middle of a secret, which no replace
/// would catch.
fn scrubbed(output: &[u8], cut: bool, scrubber: &Scrubber) -> String {
    let whole_lines = match (cut, output.iter().position(|&b| b == b'\n')) {
        (false, _) => output,
        (true, Some(newline)) => &output[newline + 1..],
        // One line longer than the cap: no part of it is safe to show.
        (true, None) => &[],
    };
    scrubber.scrub(&String::from_utf8_lossy(whole_lines))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::secret::Secret;

    fn scrubbing(secret: &str) -> Scrubber {
        Scrubber::new([&Secret::inline(secret)])
    }

    /// Orphans are handed to their nearest "subreaper" ancestor, else to PID 1, which in
    /// a container may never reap them (a zombie still answers `kill(pid, 0)`). This
    /// process becomes theirs, so a test can reap what a command left behind and see
    /// that the pid is gone. Process-wide, harmless to other tests.
    fn adopt_orphans() {
        // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes plain integers.
        let done = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        assert_eq!(done, 0, "{}", std::io::Error::last_os_error());
    }

    /// Waits (bounded) until `pid` is gone, reaping it if it is ours; panics if it lives.
    async fn assert_gone(pid: libc::pid_t, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // SAFETY: plain syscalls on an integer pid; status is a valid out-pointer.
            let gone = unsafe {
                let mut status = 0;
                libc::waitpid(pid, &mut status, libc::WNOHANG);
                libc::kill(pid, 0) == -1
                    && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
            };
            if gone {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what} (pid {pid}) is still alive"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits (bounded) for a command to write a pid into `file`.
    async fn pid_in(file: &Path) -> libc::pid_t {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(text) = std::fs::read_to_string(file)
                && let Ok(pid) = text.trim().parse()
            {
                return pid;
            }
            assert!(
                Instant::now() < deadline,
                "nothing wrote {}",
                file.display()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A shell snippet: a background child that writes its own pid to `file` and then
    /// sleeps, with the command's stdout still open.
    fn background_child(file: &Path) -> String {
        format!("sh -c 'echo $$ > {}; exec sleep 300' &", file.display())
    }

    #[tokio::test]
    async fn output_env_and_exit_code_are_reported_and_secrets_scrubbed() {
        let env = [("FAILOVER_NODE", "standby-1".to_string())];
        let done = run(
            "hook",
            "echo node=$FAILOVER_NODE token=s3cret; exit 4",
            &env,
            Duration::from_secs(5),
            &scrubbing("s3cret"),
        )
        .await
        .unwrap();
        assert_eq!(done.code, Some(4));
        assert!(!done.success());
        assert_eq!(done.tail, "node=standby-1 token=[redacted]");
    }

    #[tokio::test]
    async fn a_successful_command_reports_the_tail_of_stdout_and_stderr_in_order() {
        let done = run(
            "post_promote",
            "for i in 1 2 3 4 5 6; do echo line $i; done; echo warned >&2",
            &[],
            Duration::from_secs(5),
            &Scrubber::none(),
        )
        .await
        .unwrap();
        assert!(done.success(), "{done:?}");
        assert_eq!(done.describe(), "exit 0");
        assert_eq!(done.tail, "line 3\nline 4\nline 5\nline 6\nwarned");
    }

    #[tokio::test]
    async fn a_command_that_hangs_is_killed_at_its_timeout() {
        let err = run(
            "fence",
            "echo powering off; sleep 30",
            &[],
            Duration::from_millis(200),
            &Scrubber::none(),
        )
        .await
        .unwrap_err();
        assert!(
            err.to_string().contains(
                "did not finish within 200ms and was killed; its last output: powering off"
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_hook_that_starts_a_background_child_has_its_whole_group_killed_at_the_timeout() {
        adopt_orphans();
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("child.pid");
        // The hook waits for its child to be up, so the timeout finds both running.
        let hook = format!(
            "{} while [ ! -s {file} ]; do sleep 0.01; done; echo child up; sleep 300",
            background_child(&pid_file),
            file = pid_file.display()
        );
        let timeout = Duration::from_secs(2);
        let started = Instant::now();
        let err = run("pre_promote", &hook, &[], timeout, &Scrubber::none())
            .await
            .unwrap_err();
        assert!(started.elapsed() < timeout + OUTPUT_DRAIN, "{err}");
        assert!(
            err.to_string().contains("did not finish within 2s"),
            "{err}"
        );
        assert!(err.to_string().ends_with("child up"), "{err}");
        let child = pid_in(&pid_file).await;
        assert_gone(child, "the hook's background child").await;
    }

    #[tokio::test]
    async fn a_command_that_exits_leaving_a_child_on_its_stdout_returns_at_once_and_the_child_is_killed()
     {
        adopt_orphans();
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("child.pid");
        let hook = format!(
            "{} while [ ! -s {file} ]; do sleep 0.01; done; echo done",
            background_child(&pid_file),
            file = pid_file.display()
        );
        let timeout = Duration::from_secs(60);
        let started = Instant::now();
        let done = run("post_promote", &hook, &[], timeout, &Scrubber::none())
            .await
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(10), "{done:?}");
        assert!(done.success(), "{done:?}");
        assert_eq!(done.tail, "done");
        assert_gone(pid_in(&pid_file).await, "the hook's background child").await;
    }

    /// A child that left the group (setsid) cannot be killed with it and keeps the pipe
    /// open: the output is drained for a bounded time, not to its end.
    #[tokio::test]
    async fn a_command_whose_escaped_child_keeps_stdout_open_still_returns_at_its_timeout() {
        adopt_orphans();
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("escaped.pid");
        let hook = format!(
            "setsid sh -c 'echo $$ > {file}; exec sleep 300' & while [ ! -s {file} ]; do sleep 0.01; done; echo escaped; sleep 300",
            file = pid_file.display()
        );
        let timeout = Duration::from_millis(500);
        let started = Instant::now();
        let err = run("fence_command", &hook, &[], timeout, &Scrubber::none()).await;
        let took = started.elapsed();
        let escaped = pid_in(&pid_file).await;
        // SAFETY: kill with an integer pid; the test's own leftover.
        unsafe { libc::kill(escaped, libc::SIGKILL) };
        assert_gone(escaped, "the escaped child").await;
        let err = err.unwrap_err();
        assert!(
            took < timeout + OUTPUT_DRAIN + Duration::from_secs(2),
            "{took:?}: {err}"
        );
        assert!(err.to_string().ends_with("escaped"), "{err}");
    }

    #[tokio::test]
    async fn dropping_the_future_kills_the_whole_group() {
        adopt_orphans();
        let dir = tempfile::tempdir().unwrap();
        let leader_file = dir.path().join("leader.pid");
        let child_file = dir.path().join("child.pid");
        let hook = format!(
            "echo $$ > {}; {} sleep 300",
            leader_file.display(),
            background_child(&child_file)
        );
        let scrubber = Scrubber::none();
        let mut running = Box::pin(run(
            "on_failure",
            &hook,
            &[],
            Duration::from_secs(300),
            &scrubber,
        ));
        let (leader, child) = tokio::select! {
            ended = &mut running => panic!("the hook ended: {ended:?}"),
            pids = async { (pid_in(&leader_file).await, pid_in(&child_file).await) } => pids,
        };
        // As a step's deadline does.
        drop(running);
        assert_gone(child, "the hook's background child").await;
        assert_gone(leader, "the hook's shell").await;
    }

    #[tokio::test]
    async fn only_the_end_of_a_long_output_is_kept() {
        let ran = run_in_own_group(
            Program::Shell("head -c 300000 /dev/zero | tr '\\0' x; echo; echo the end"),
            &[],
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert!(matches!(ran.ended, Ended::Exited(status) if status.success()));
        assert!(ran.output_cut);
        assert_eq!(ran.output.len(), OUTPUT_KEPT_BYTES);
        assert!(ran.output.ends_with(b"x\nthe end\n"));
    }

    #[test]
    fn a_secret_cut_in_half_at_the_cap_is_not_shown() {
        let secrets = scrubbing("s3cret");
        assert_eq!(
            scrubbed(b"cret, then\nok s3cret\n", true, &secrets),
            "ok [redacted]\n"
        );
        assert_eq!(scrubbed(b"cret and no line end", true, &secrets), "");
        assert_eq!(
            scrubbed(b"s3cret\nok\n", false, &secrets),
            "[redacted]\nok\n"
        );
    }

    #[tokio::test]
    async fn a_program_runs_without_a_shell_and_a_missing_one_cannot_start() {
        let argv = ["/bin/echo", "$HOME", "two words"].map(String::from);
        let ran = run_in_own_group(Program::Argv(&argv), &[], Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(ran.output, b"$HOME two words\n");
        let missing = ["/nonexistent/app-check".to_string()];
        let err = run_in_own_group(Program::Argv(&missing), &[], Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
        let err = run_in_own_group(Program::Argv(&[]), &[], Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    }
}
