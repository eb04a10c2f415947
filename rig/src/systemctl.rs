//! A `systemctl` shim to put first on the `PATH` of the process under test.
//!
//! This module owns the fake service manager: a POSIX `sh` script named `systemctl`
//! in a temporary `bin/` directory, and its state in the sibling `state/` directory.
//! The script finds its state through its own path (`$0`), never through the
//! environment, so it works whatever environment the caller passes (even an empty
//! one). Every invocation is logged, so tests can assert what the daemon ran.
//!
//! Supported, with real systemctl's messages and exit codes where it matters:
//!
//! - `start|restart U...`: known unit → active, logged in [`SystemctlShim::started`];
//!   unknown → exit 5, `Failed to start U: Unit U not found.`; after
//!   [`SystemctlShim::fail_start`] → exit 1, unit `failed`; after
//!   [`SystemctlShim::hang_start`] → sleeps an hour (it `exec`s `sleep`, so killing
//!   the process kills the sleep).
//! - `stop U...`, `is-active [-q] U...` (exit 0 if any is active, else 3),
//!   `is-failed`, `is-enabled`, `status`, `cat U`, `list-unit-files [PATTERN...]`,
//!   `show [-p|--property=P[,P]] [--value] U...` (`LoadState` is `loaded` or
//!   `not-found`; also `Id`, `ActiveState`, `SubState`, `UnitFileState`),
//!   `daemon-reload`, `reset-failed`, `--version`.
//!
//! Unit names without a type suffix get `.service`, as with systemd.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use tempfile::TempDir;

/// The shim script. `state` is `../state` relative to the script's directory.
const SCRIPT: &str = r#"#!/bin/sh
# systemctl stand-in written by failover-watchdog-rig (rig/src/systemctl.rs).
# Its state lives in ../state next to this script's directory.
set -f
PATH="${PATH:+$PATH:}/usr/local/bin:/usr/bin:/bin"
export PATH
case $0 in
  */*) here=${0%/*} ;;
  *) here=. ;;
esac
state="$here/../state"
printf '%s\n' "$*" >> "$state/calls.log"

normalize() {
  case $1 in
    *.service|*.socket|*.target|*.timer|*.mount|*.automount|*.path|*.slice|*.scope|*.device|*.swap)
      printf '%s' "$1" ;;
    *) printf '%s.service' "$1" ;;
  esac
}
known() {
  while IFS= read -r k; do
    [ "$k" = "$1" ] && return 0
  done < "$state/known"
  return 1
}
check_name() {
  case $1 in
    ''|*/*) echo "Invalid unit name \"$1\" was escaped as \"$1\" (maybe you should use systemd-escape?)" >&2; exit 1 ;;
  esac
}
load_state() { if known "$1"; then echo loaded; else echo not-found; fi; }
active_state() {
  if [ -e "$state/active/$1" ]; then echo active
  elif [ -e "$state/failed/$1" ]; then echo failed
  else echo inactive
  fi
}
sub_state() {
  case $(active_state "$1") in
    active) echo running ;;
    failed) echo failed ;;
    *) echo dead ;;
  esac
}

verb=
units=
props=
value=0
quiet=0
while [ $# -gt 0 ]; do
  case $1 in
    --version)
      echo "systemd 252 (252-rig-shim)"
      echo "+PAM (failover-watchdog-rig systemctl shim)"
      exit 0 ;;
    -p|--property) shift; props="$props,${1-}" ;;
    -p*) props="$props,${1#-p}" ;;
    --property=*) props="$props,${1#--property=}" ;;
    --value) value=1 ;;
    -q|--quiet) quiet=1 ;;
    --) shift; for a in "$@"; do units="$units $a"; done; break ;;
    -*) ;;
    *) if [ -z "$verb" ]; then verb=$1; else units="$units $1"; fi ;;
  esac
  shift
done

need_units() {
  if [ -z "$units" ]; then echo "Too few arguments." >&2; exit 1; fi
}

case $verb in
  start|restart|reload-or-restart|try-restart)
    need_units
    for u in $units; do
      check_name "$u"
      u=$(normalize "$u")
      if ! known "$u"; then
        echo "Failed to $verb $u: Unit $u not found." >&2
        exit 5
      fi
      if [ -e "$state/hang/$u" ]; then
        echo $$ >> "$state/hung.pids"
        exec sleep 3600
      fi
      if [ -e "$state/fail/$u" ]; then
        rm -f "$state/active/$u"
        : > "$state/failed/$u"
        echo "Job for $u failed because the control process exited with error code." >&2
        echo "See \"systemctl status $u\" and \"journalctl -xeu $u\" for details." >&2
        exit 1
      fi
      rm -f "$state/failed/$u"
      : > "$state/active/$u"
      printf '%s\n' "$u" >> "$state/started.log"
    done
    exit 0 ;;
  stop)
    need_units
    for u in $units; do
      check_name "$u"
      u=$(normalize "$u")
      if ! known "$u"; then
        echo "Failed to stop $u: Unit $u not loaded." >&2
        exit 5
      fi
      rm -f "$state/active/$u"
      printf '%s\n' "$u" >> "$state/stopped.log"
    done
    exit 0 ;;
  is-active|is-failed)
    need_units
    rc=3
    [ "$verb" = is-failed ] && rc=1
    for u in $units; do
      s=$(active_state "$(normalize "$u")")
      [ "$quiet" = 1 ] || echo "$s"
      if [ "$verb" = is-active ] && [ "$s" = active ]; then rc=0; fi
      if [ "$verb" = is-failed ] && [ "$s" = failed ]; then rc=0; fi
    done
    exit $rc ;;
  is-enabled)
    need_units
    for u in $units; do
      u=$(normalize "$u")
      if known "$u"; then
        [ "$quiet" = 1 ] || echo enabled
      else
        echo "Failed to get unit file state for $u: No such file or directory" >&2
        exit 1
      fi
    done
    exit 0 ;;
  show)
    [ -n "$props" ] || props="Id,Names,LoadState,ActiveState,SubState,UnitFileState"
    first=1
    for u in $units; do
      u=$(normalize "$u")
      [ "$first" = 1 ] || [ "$value" = 1 ] || echo
      first=0
      old_ifs=$IFS
      IFS=,
      for p in $props; do
        IFS=$old_ifs
        case $p in
          '') continue ;;
          Id|Names) v=$u ;;
          LoadState) v=$(load_state "$u") ;;
          ActiveState) v=$(active_state "$u") ;;
          SubState) v=$(sub_state "$u") ;;
          UnitFileState) if known "$u"; then v=enabled; else v=; fi ;;
          Description) v="$u (failover-watchdog-rig shim)" ;;
          *) v= ;;
        esac
        if [ "$value" = 1 ]; then echo "$v"; else echo "$p=$v"; fi
      done
      IFS=$old_ifs
    done
    exit 0 ;;
  cat)
    need_units
    for u in $units; do
      u=$(normalize "$u")
      if ! known "$u"; then
        echo "No files found for $u." >&2
        exit 1
      fi
      printf '# /etc/systemd/system/%s\n[Unit]\nDescription=%s (failover-watchdog-rig shim)\n\n[Service]\nExecStart=/bin/true\n' "$u" "$u"
    done
    exit 0 ;;
  list-unit-files)
    n=0
    echo "UNIT FILE                                STATE   PRESET"
    while IFS= read -r k; do
      match=0
      if [ -z "$units" ]; then match=1; fi
      for pat in $units; do
        case $k in $pat) match=1 ;; esac
      done
      if [ "$match" = 1 ]; then
        printf '%-40s enabled enabled\n' "$k"
        n=$((n + 1))
      fi
    done < "$state/known"
    echo
    echo "$n unit files listed."
    [ "$n" -gt 0 ] || exit 1
    exit 0 ;;
  status)
    need_units
    rc=0
    for u in $units; do
      u=$(normalize "$u")
      if ! known "$u"; then
        echo "Unit $u could not be found." >&2
        rc=4
        continue
      fi
      s=$(active_state "$u")
      echo "* $u - $u (failover-watchdog-rig shim)"
      echo "     Loaded: loaded (/etc/systemd/system/$u; enabled; preset: enabled)"
      echo "     Active: $s ($(sub_state "$u"))"
      [ "$s" = active ] || [ "$rc" = 4 ] || rc=3
    done
    exit $rc ;;
  reset-failed)
    for u in $units; do rm -f "$state/failed/$(normalize "$u")"; done
    exit 0 ;;
  daemon-reload|enable|disable|'')
    exit 0 ;;
  *)
    echo "Unknown command verb '$verb'." >&2
    exit 1 ;;
esac
"#;

/// Appends `.service` to a unit name without a type suffix, as systemd does.
pub fn normalize_unit(unit: &str) -> String {
    const TYPES: &[&str] = &[
        ".service",
        ".socket",
        ".target",
        ".timer",
        ".mount",
        ".automount",
        ".path",
        ".slice",
        ".scope",
        ".device",
        ".swap",
    ];
    if TYPES.iter().any(|t| unit.ends_with(t)) {
        unit.to_owned()
    } else {
        format!("{unit}.service")
    }
}

fn check_unit(unit: &str) -> anyhow::Result<()> {
    if unit.is_empty() || unit.contains(['/', '\n', ' ', '\t', '\0']) {
        bail!("invalid unit name {unit:?}");
    }
    Ok(())
}

/// A `systemctl` executable in a temporary directory, with its state next to it.
///
/// Dropping it removes the directory and kills any `start` still hanging because of
/// [`SystemctlShim::hang_start`].
#[derive(Debug)]
pub struct SystemctlShim {
    dir: TempDir,
    bin: PathBuf,
}

impl SystemctlShim {
    /// Writes the shim; `known_units` are the units that exist (normalized with
    /// [`normalize_unit`]), all inactive.
    pub fn new(known_units: &[&str]) -> anyhow::Result<SystemctlShim> {
        let dir = tempfile::Builder::new()
            .prefix("fwrig-systemctl-")
            .tempdir()
            .context("creating the systemctl shim directory")?;
        let bin = dir.path().join("bin");
        let shim = SystemctlShim { dir, bin };
        for sub in [
            "bin",
            "state/active",
            "state/failed",
            "state/fail",
            "state/hang",
        ] {
            let path = shim.dir.path().join(sub);
            std::fs::create_dir_all(&path)
                .with_context(|| format!("creating {}", path.display()))?;
        }
        let mut known = String::new();
        for unit in known_units {
            check_unit(unit)?;
            known.push_str(&normalize_unit(unit));
            known.push('\n');
        }
        for (name, contents) in [
            ("known", known.as_str()),
            ("calls.log", ""),
            ("started.log", ""),
            ("stopped.log", ""),
        ] {
            let path = shim.state_dir().join(name);
            std::fs::write(&path, contents)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        let script = shim.script_path();
        std::fs::write(&script, SCRIPT).with_context(|| format!("writing {}", script.display()))?;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("chmod 755 {}", script.display()))?;
        Ok(shim)
    }

    /// The directory holding only `systemctl`: put it first on the child's `PATH`.
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// The shim itself (`bin_dir()/systemctl`).
    pub fn script_path(&self) -> PathBuf {
        self.bin_dir().join("systemctl")
    }

    /// [`SystemctlShim::bin_dir`] followed by this process's `PATH`.
    pub fn path_env(&self) -> OsString {
        let current = std::env::var_os("PATH").unwrap_or_default();
        let dirs = std::iter::once(self.bin.clone()).chain(std::env::split_paths(&current));
        std::env::join_paths(dirs).expect("PATH entries contain no ':'")
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn flag(&self, kind: &str, unit: &str) -> PathBuf {
        check_unit(unit).expect("a valid unit name");
        self.state_dir().join(kind).join(normalize_unit(unit))
    }

    fn touch(path: &Path) {
        std::fs::write(path, "").unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }

    fn remove(path: &Path) {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("removing {}: {e}", path.display()),
        }
    }

    /// From now on `systemctl start unit` exits 1 with systemd's "Job for ... failed"
    /// message on stderr, and the unit becomes `failed` (not active).
    pub fn fail_start(&self, unit: &str) {
        Self::touch(&self.flag("fail", unit));
    }

    /// From now on `systemctl start unit` sleeps for an hour; the caller's timeout must
    /// kill it. The unit stays inactive.
    pub fn hang_start(&self, unit: &str) {
        Self::touch(&self.flag("hang", unit));
    }

    /// Undoes [`SystemctlShim::fail_start`] and [`SystemctlShim::hang_start`] for `unit`.
    pub fn clear_faults(&self, unit: &str) {
        Self::remove(&self.flag("fail", unit));
        Self::remove(&self.flag("hang", unit));
    }

    /// Makes `unit` known (as if its unit file had been installed).
    pub fn add_unit(&self, unit: &str) {
        check_unit(unit).expect("a valid unit name");
        let path = self.state_dir().join("known");
        let mut known = std::fs::read_to_string(&path).unwrap_or_default();
        known.push_str(&normalize_unit(unit));
        known.push('\n');
        std::fs::write(&path, known).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }

    /// Sets `unit` active or inactive without logging a call.
    pub fn set_active(&self, unit: &str, active: bool) {
        let path = self.flag("active", unit);
        if active {
            Self::touch(&path);
        } else {
            Self::remove(&path);
        }
    }

    fn read_lines(&self, name: &str) -> Vec<String> {
        let path = self.state_dir().join(name);
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Every invocation so far, its arguments joined by spaces, oldest first, e.g.
    /// `["start php-fpm.service", "is-active php-fpm.service"]`.
    pub fn calls(&self) -> Vec<String> {
        self.read_lines("calls.log")
    }

    /// The units started successfully (normalized), in order.
    pub fn started(&self) -> Vec<String> {
        self.read_lines("started.log")
    }

    /// The units stopped (normalized), in order.
    pub fn stopped(&self) -> Vec<String> {
        self.read_lines("stopped.log")
    }

    /// Whether `unit` is active now.
    pub fn is_active(&self, unit: &str) -> bool {
        self.flag("active", unit).exists()
    }
}

impl Drop for SystemctlShim {
    fn drop(&mut self) {
        // Kill the `sleep`s left by hang_start whose caller did not kill them. Check the
        // command line first: the pid may have been reused.
        let Ok(pids) = std::fs::read_to_string(self.state_dir().join("hung.pids")) else {
            return;
        };
        for pid in pids
            .lines()
            .filter_map(|l| l.trim().parse::<libc::pid_t>().ok())
        {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if cmdline.starts_with(b"sleep\0") {
                // SAFETY: kill has no memory-safety preconditions.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Output};
    use std::time::{Duration, Instant};

    fn run(shim: &SystemctlShim, args: &[&str]) -> Output {
        Command::new("systemctl")
            .args(args)
            .env("PATH", shim.path_env())
            .output()
            .expect("running the shim")
    }

    fn stdout(o: &Output) -> String {
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn stderr(o: &Output) -> String {
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    #[test]
    fn records_calls_and_starts_known_units() -> anyhow::Result<()> {
        let shim = SystemctlShim::new(&["php-fpm.service", "nginx"])?;
        assert!(!shim.is_active("php-fpm.service"));

        let out = run(&shim, &["is-active", "php-fpm.service"]);
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(stdout(&out), "inactive\n");

        let out = run(&shim, &["start", "php-fpm.service"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(shim.is_active("php-fpm.service"));
        let out = run(&shim, &["is-active", "php-fpm.service"]);
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(stdout(&out), "active\n");

        // Without a suffix, `.service` is meant.
        assert!(
            run(&shim, &["--no-block", "start", "nginx"])
                .status
                .success()
        );
        assert!(shim.is_active("nginx.service"));

        let out = run(&shim, &["start", "nope.service"]);
        assert_eq!(out.status.code(), Some(5));
        assert!(
            stderr(&out).contains("Unit nope.service not found."),
            "{}",
            stderr(&out)
        );

        let out = run(
            &shim,
            &["show", "-p", "LoadState", "--value", "php-fpm.service"],
        );
        assert_eq!(stdout(&out), "loaded\n");
        let out = run(
            &shim,
            &["show", "--property=LoadState", "--value", "nope.service"],
        );
        assert_eq!(stdout(&out), "not-found\n");
        assert!(out.status.success());
        let out = run(&shim, &["show", "-p", "LoadState,ActiveState", "nginx"]);
        assert_eq!(stdout(&out), "LoadState=loaded\nActiveState=active\n");

        assert!(run(&shim, &["cat", "php-fpm.service"]).status.success());
        assert_eq!(run(&shim, &["cat", "nope.service"]).status.code(), Some(1));
        let out = run(&shim, &["list-unit-files", "php-fpm.service"]);
        assert!(out.status.success());
        assert!(stdout(&out).contains("php-fpm.service"));
        assert_eq!(
            run(&shim, &["list-unit-files", "nope*"]).status.code(),
            Some(1)
        );

        let out = run(&shim, &["--version"]);
        assert!(stdout(&out).starts_with("systemd "));

        assert!(run(&shim, &["stop", "nginx.service"]).status.success());
        assert!(!shim.is_active("nginx"));

        assert_eq!(
            shim.calls(),
            vec![
                "is-active php-fpm.service",
                "start php-fpm.service",
                "is-active php-fpm.service",
                "--no-block start nginx",
                "start nope.service",
                "show -p LoadState --value php-fpm.service",
                "show --property=LoadState --value nope.service",
                "show -p LoadState,ActiveState nginx",
                "cat php-fpm.service",
                "cat nope.service",
                "list-unit-files php-fpm.service",
                "list-unit-files nope*",
                "--version",
                "stop nginx.service",
            ]
        );
        assert_eq!(shim.started(), vec!["php-fpm.service", "nginx.service"]);
        assert_eq!(shim.stopped(), vec!["nginx.service"]);
        Ok(())
    }

    #[test]
    fn fail_start_fails_and_leaves_the_unit_down() -> anyhow::Result<()> {
        let shim = SystemctlShim::new(&["php-fpm.service"])?;
        shim.fail_start("php-fpm.service");
        let out = run(&shim, &["start", "php-fpm.service"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("Job for php-fpm.service failed"),
            "{}",
            stderr(&out)
        );
        assert!(!shim.is_active("php-fpm.service"));
        assert!(shim.started().is_empty());
        let out = run(&shim, &["is-active", "php-fpm.service"]);
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(stdout(&out), "failed\n");

        shim.clear_faults("php-fpm.service");
        assert!(run(&shim, &["start", "php-fpm.service"]).status.success());
        assert!(shim.is_active("php-fpm.service"));
        assert_eq!(shim.started(), vec!["php-fpm.service"]);
        Ok(())
    }

    #[test]
    fn works_with_an_empty_environment() -> anyhow::Result<()> {
        let shim = SystemctlShim::new(&["php-fpm.service"])?;
        let out = Command::new(shim.script_path())
            .args(["start", "php-fpm.service"])
            .env_clear()
            .current_dir("/")
            .output()?;
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(shim.started(), vec!["php-fpm.service"]);
        Ok(())
    }

    #[test]
    fn hang_start_hangs_until_killed_and_drop_cleans_up() -> anyhow::Result<()> {
        let shim = SystemctlShim::new(&["php-fpm.service"])?;
        shim.hang_start("php-fpm.service");

        // The caller kills it.
        let mut child = Command::new("systemctl")
            .args(["start", "php-fpm.service"])
            .env("PATH", shim.path_env())
            .spawn()?;
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            child.try_wait()?.is_none(),
            "start returned instead of hanging"
        );
        child.kill()?;
        child.wait()?;
        assert!(!shim.is_active("php-fpm.service"));

        // Nobody kills it: dropping the shim does.
        let mut child = Command::new(shim.script_path())
            .args(["start", "php-fpm.service"])
            .spawn()?;
        let t0 = Instant::now();
        while !shim.state_dir().join("hung.pids").exists()
            || std::fs::read_to_string(shim.state_dir().join("hung.pids"))?
                .lines()
                .count()
                < 2
        {
            assert!(t0.elapsed() < Duration::from_secs(5));
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(100));
        drop(shim);
        let status = child.wait()?;
        assert!(!status.success());
        assert!(t0.elapsed() < Duration::from_secs(10));
        Ok(())
    }
}
