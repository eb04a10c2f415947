//! A network of namespaces the rig makes, and the faults a real network makes in it.
//!
//! [`Network::create`] makes five network namespaces on this machine, named
//! `fw-<pid>x<n>-<role>`: one per [`Host`] (primary, standby, witness A, witness B) and
//! a hub. The hub holds a bridge; each host has one veth pair to it (`eth0` on its side,
//! `10.213.<s>.<1..4>/24`, `lo` up) and so does the test process itself, from the root
//! namespace (`10.213.<s>.254`, the *controller*): that is how the test's clients (the
//! write load, the checks after a run) and the stand-ins it serves (Cloudflare,
//! Telegram: "the internet") are reached. `<s>` is a /24 no interface of this machine
//! uses yet. Nothing is routed beyond the bridge: traffic stays inside the namespaces.
//!
//! **Faults** are `nftables` drop rules in one `bridge` table in the hub: the network
//! itself loses the packets, so a SYN goes unanswered until its timeout and an open
//! connection falls silent without a FIN, in one direction or both ([`Cut`]). Every
//! change rewrites the whole chain in one `nft -f` transaction, so the rules in force
//! are always exactly [`Network::cuts`]. Flapping is cuts added and removed on a
//! schedule by the caller. A process is run inside a host with
//! [`Network::command`] / [`Network::exec_prefix`] (`ip netns exec <ns> …`); killing,
//! stopping and restarting it is its owner's business (e.g. [`crate::mariadb::MariaDb`]).
//! Delay, jitter and loss go through [`shaped::ShapedLink`], a userspace relay: this
//! kernel has no `netem` qdisc.
//!
//! **Teardown**: `Drop` kills whatever still runs in the namespaces (only the rig starts
//! processes there) and deletes them, which destroys every veth with them; it runs on
//! a panic too. A run that was killed outright leaves its namespaces behind:
//! [`Network::create`] first sweeps every `fw-<pid>x…` namespace whose `<pid>` is gone.
//!
//! [`Network::preflight`] refuses, with a message saying what is missing, where
//! namespaces cannot be made (not root, no `ip`, no `nft`, no namespace support): the
//! campaign fails there, it never skips.

pub mod shaped;
pub mod stage;

use std::ffi::OsString;
use std::fmt;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context as _, bail};

/// The first two octets of every address the rig assigns (a private test range); the
/// test process's MariaDB account for it is [`crate::mariadb::NETNS_CLIENTS`].
const NET_PREFIX: [u8; 2] = [10, 213];
/// The controller's (the test process's) last octet.
const CONTROLLER_OCTET: u8 = 254;
/// The prefix of every namespace and root-side interface the rig makes.
const NAME_PREFIX: &str = "fw-";

/// A host of the network, each in its own namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Host {
    /// The primary's MariaDB.
    Primary,
    /// The standby's MariaDB and the daemon.
    Standby,
    /// The first witness.
    WitnessA,
    /// The second witness.
    WitnessB,
}

impl Host {
    pub const ALL: [Host; 4] = [Host::Primary, Host::Standby, Host::WitnessA, Host::WitnessB];

    /// Its name in namespace names and messages.
    pub fn label(self) -> &'static str {
        match self {
            Host::Primary => "primary",
            Host::Standby => "standby",
            Host::WitnessA => "witness-a",
            Host::WitnessB => "witness-b",
        }
    }

    fn octet(self) -> u8 {
        match self {
            Host::Primary => 1,
            Host::Standby => 2,
            Host::WitnessA => 3,
            Host::WitnessB => 4,
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Packets the network drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Everything between the two hosts, both ways (a blackhole).
    Between(Host, Host),
    /// Only packets from `from` to `to`: `to`'s answers still arrive, but a TCP
    /// connection needs both ways, so neither side's connections get through.
    OneWay { from: Host, to: Host },
    /// Everything to and from the host, the controller (and the stand-ins) included.
    Isolate(Host),
}

impl fmt::Display for Cut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cut::Between(a, b) => write!(f, "{a}<->{b} dropped"),
            Cut::OneWay { from, to } => write!(f, "{from}->{to} dropped"),
            Cut::Isolate(host) => write!(f, "{host} isolated"),
        }
    }
}

/// The namespaces, the bridge and the cuts in force. See the module doc.
pub struct Network {
    /// `fw-<pid>x<n>`: the prefix of every name this network uses.
    tag: String,
    /// The third octet of this network's /24.
    subnet: u8,
    ip: PathBuf,
    nft: PathBuf,
    /// The root namespace's end of the controller's veth.
    controller_if: String,
    cuts: Mutex<Vec<Cut>>,
}

impl fmt::Debug for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Network")
            .field("tag", &self.tag)
            .field("subnet", &self.subnet())
            .finish()
    }
}

/// The tools the rig needs to make namespaces, found, or why it cannot.
struct Tools {
    ip: PathBuf,
    nft: PathBuf,
}

fn find_tool(name: &str, package: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from));
    for dir in dirs {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!(
        "the network fault rig needs `{name}` and it is not installed (Debian: apt-get install {package}; scripts/install-deps.sh does it)"
    )
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Runs a tool to completion; the error quotes the command and what it said.
fn run(program: &Path, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", program.display()))?;
    if !output.status.success() {
        bail!(
            "`{} {}` failed ({}): {}",
            program.display(),
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

impl Network {
    /// Whether namespaces can be made here; the error says what is missing and how to
    /// get it. Makes and deletes one throwaway namespace to be sure.
    pub fn preflight() -> anyhow::Result<()> {
        Self::tools().map(|_| ())
    }

    fn tools() -> anyhow::Result<Tools> {
        if !is_root() {
            bail!(
                "the network fault rig makes network namespaces and nftables rules, which needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN); run it as root, e.g. in CI's container"
            );
        }
        let ip = find_tool("ip", "iproute2")?;
        let nft = find_tool("nft", "nftables")?;
        let probe = format!("{NAME_PREFIX}{}x-preflight", std::process::id());
        run(&ip, &["netns", "add", &probe]).context(
            "this machine cannot make network namespaces (`ip netns add` failed); the network fault rig needs them",
        )?;
        let nft_works = run(&ip, &["netns", "exec", &probe, "nft", "list", "ruleset"]);
        let _ = run(&ip, &["netns", "del", &probe]);
        nft_works.context("nft does not work inside a network namespace here")?;
        Ok(Tools { ip, nft })
    }

    /// Sweeps namespaces left by crashed runs, then makes a fresh network (see the
    /// module doc). Blocking: call it from `spawn_blocking` in async code, or accept a
    /// few tens of milliseconds.
    pub fn create() -> anyhow::Result<Network> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        // Two networks made at once in this process would see the same free subnet.
        static MAKING: Mutex<()> = Mutex::new(());
        let tools = Self::tools()?;
        let _making = MAKING.lock().unwrap_or_else(|e| e.into_inner());
        sweep_stale(&tools.ip);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{NAME_PREFIX}{}x{n}", std::process::id());
        let subnet = free_subnet(&tools.ip, n)?;
        let network = Network {
            controller_if: format!("fw{}x{n}", std::process::id()),
            tag,
            subnet,
            ip: tools.ip,
            nft: tools.nft,
            cuts: Mutex::new(Vec::new()),
        };
        // From here on, Drop undoes whatever was made.
        network.build().with_context(|| {
            format!(
                "making the namespaces of network {} ({}.0/24)",
                network.tag,
                network.subnet()
            )
        })?;
        Ok(network)
    }

    fn build(&self) -> anyhow::Result<()> {
        let hub = self.hub();
        self.ip(&["netns", "add", &hub])?;
        self.ip(&["-n", &hub, "link", "set", "lo", "up"])?;
        self.ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        self.ip(&["-n", &hub, "link", "set", "br0", "up"])?;
        for host in Host::ALL {
            let ns = self.namespace(host);
            let address = format!("{}/24", self.address(host));
            self.ip(&["netns", "add", &ns])?;
            self.ip(&[
                "-n",
                &hub,
                "link",
                "add",
                host.label(),
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &ns,
            ])?;
            self.ip(&[
                "-n",
                &hub,
                "link",
                "set",
                host.label(),
                "master",
                "br0",
                "up",
            ])?;
            self.ip(&["-n", &ns, "addr", "add", &address, "dev", "eth0"])?;
            self.ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            self.ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        let controller = format!("{}/24", self.controller_address());
        self.ip(&[
            "link",
            "add",
            &self.controller_if,
            "type",
            "veth",
            "peer",
            "name",
            "controller",
            "netns",
            &hub,
        ])?;
        self.ip(&[
            "-n",
            &hub,
            "link",
            "set",
            "controller",
            "master",
            "br0",
            "up",
        ])?;
        self.ip(&["addr", "add", &controller, "dev", &self.controller_if])?;
        self.ip(&["link", "set", &self.controller_if, "up"])?;
        self.apply(&[])
    }

    fn ip(&self, args: &[&str]) -> anyhow::Result<String> {
        run(&self.ip, args)
    }

    /// `10.213.<s>`: this network's /24, for messages.
    pub fn subnet(&self) -> String {
        format!("{}.{}.{}", NET_PREFIX[0], NET_PREFIX[1], self.subnet)
    }

    /// The namespace a host lives in.
    pub fn namespace(&self, host: Host) -> String {
        format!("{}-{}", self.tag, host.label())
    }

    fn hub(&self) -> String {
        format!("{}-hub", self.tag)
    }

    /// A host's address (on its `eth0`).
    pub fn address(&self, host: Host) -> Ipv4Addr {
        Ipv4Addr::new(NET_PREFIX[0], NET_PREFIX[1], self.subnet, host.octet())
    }

    /// The test process's own address on the bridge, from the root namespace: where it
    /// serves what the hosts reach "on the internet" (the stand-ins).
    pub fn controller_address(&self) -> Ipv4Addr {
        Ipv4Addr::new(NET_PREFIX[0], NET_PREFIX[1], self.subnet, CONTROLLER_OCTET)
    }

    /// `ip netns exec <namespace>`: put before a command line to run it in `host`.
    /// `ip` execs the command, so the child's pid is the command's own.
    pub fn exec_prefix(&self, host: Host) -> Vec<OsString> {
        vec![
            self.ip.clone().into_os_string(),
            "netns".into(),
            "exec".into(),
            self.namespace(host).into(),
        ]
    }

    /// `program` run inside `host`.
    pub fn command(
        &self,
        host: Host,
        program: impl AsRef<std::ffi::OsStr>,
    ) -> tokio::process::Command {
        let prefix = self.exec_prefix(host);
        let mut command = tokio::process::Command::new(&prefix[0]);
        command.args(&prefix[1..]).arg(program);
        command
    }

    /// The cuts in force.
    pub fn cuts(&self) -> Vec<Cut> {
        self.cuts.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Adds a cut (the network starts dropping those packets at once).
    pub fn cut(&self, cut: Cut) -> anyhow::Result<()> {
        let mut cuts = self.cuts.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = cuts.clone();
        next.push(cut);
        self.apply(&next)?;
        *cuts = next;
        Ok(())
    }

    /// Removes one cut equal to `cut`, if it is in force.
    pub fn mend(&self, cut: Cut) -> anyhow::Result<()> {
        let mut cuts = self.cuts.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = cuts.clone();
        if let Some(i) = next.iter().position(|c| *c == cut) {
            next.remove(i);
        }
        self.apply(&next)?;
        *cuts = next;
        Ok(())
    }

    /// Removes every cut.
    pub fn heal(&self) -> anyhow::Result<()> {
        let mut cuts = self.cuts.lock().unwrap_or_else(|e| e.into_inner());
        self.apply(&[])?;
        cuts.clear();
        Ok(())
    }

    /// The `nft` rules of these cuts (one `drop` per direction).
    fn rules(&self, cuts: &[Cut]) -> Vec<String> {
        let mut rules = Vec::new();
        let drop = |from: Ipv4Addr, to: Ipv4Addr| format!("ip saddr {from} ip daddr {to} drop");
        for cut in cuts {
            match *cut {
                Cut::Between(a, b) => {
                    rules.push(drop(self.address(a), self.address(b)));
                    rules.push(drop(self.address(b), self.address(a)));
                }
                Cut::OneWay { from, to } => {
                    rules.push(drop(self.address(from), self.address(to)));
                }
                Cut::Isolate(host) => {
                    rules.push(format!("ip saddr {} drop", self.address(host)));
                    rules.push(format!("ip daddr {} drop", self.address(host)));
                }
            }
        }
        rules
    }

    /// Makes the hub's rules exactly `cuts`, in one transaction.
    fn apply(&self, cuts: &[Cut]) -> anyhow::Result<()> {
        // `add table` is idempotent; `flush table` then empties it, so the first call
        // and every later one read the same.
        let mut script = String::from(
            "add table bridge fw\nflush table bridge fw\n\
             add chain bridge fw forward { type filter hook forward priority 0; policy accept; }\n",
        );
        for rule in self.rules(cuts) {
            script.push_str("add rule bridge fw forward ");
            script.push_str(&rule);
            script.push('\n');
        }
        let mut child = Command::new(&self.ip)
            .args(["netns", "exec", &self.hub()])
            .arg(&self.nft)
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("running nft in the hub namespace")?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(script.as_bytes())
                .context("writing the nft script")?;
        }
        let output = child.wait_with_output().context("waiting for nft")?;
        if !output.status.success() {
            bail!(
                "nft refused the rules ({}): {}\n{script}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }

    /// The rules in force, as `nft list ruleset` prints them in the hub.
    pub fn ruleset(&self) -> anyhow::Result<String> {
        let hub = self.hub();
        let nft = self.nft.to_string_lossy().into_owned();
        self.ip(&["netns", "exec", &hub, &nft, "list", "ruleset"])
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let mut namespaces: Vec<String> = Host::ALL.iter().map(|h| self.namespace(*h)).collect();
        namespaces.push(self.hub());
        for ns in &namespaces {
            remove_namespace(&self.ip, ns);
        }
        // Gone with the hub's end already, unless the kernel is still tearing it down.
        let _ = run(&self.ip, &["link", "del", &self.controller_if]);
    }
}

/// Kills what runs in `ns` (only the rig starts processes there) and deletes it.
fn remove_namespace(ip: &Path, ns: &str) {
    if let Ok(pids) = run(ip, &["netns", "pids", ns]) {
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<libc::pid_t>().ok())
        {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe {
                libc::kill(pid, libc::SIGCONT);
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
    let _ = run(ip, &["netns", "del", ns]);
}

/// Deletes every `fw-<pid>x…` namespace whose creating process is gone.
fn sweep_stale(ip: &Path) {
    let Ok(list) = run(ip, &["netns", "list"]) else {
        return;
    };
    for ns in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(pid) = ns
            .strip_prefix(NAME_PREFIX)
            .and_then(|rest| rest.split_once('x'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !process_alive(pid) {
            tracing::info!(namespace = ns, "removing a namespace left by a crashed run");
            remove_namespace(ip, ns);
        }
    }
}

/// A third octet (1 to 250) whose `10.213.<s>.0/24` no interface of the root namespace
/// uses; where the search starts depends on the process and the network's number, so
/// that two processes seldom try the same one.
fn free_subnet(ip: &Path, n: u32) -> anyhow::Result<u8> {
    let used = run(ip, &["-4", "-o", "addr", "show"])?;
    let start = std::process::id().wrapping_add(n);
    (0..250u32)
        .filter_map(|i| u8::try_from(1 + start.wrapping_add(i) % 250).ok())
        .find(|s| !used.contains(&format!(" {}.{}.{s}.", NET_PREFIX[0], NET_PREFIX[1])))
        .context("every 10.213.x.0/24 is in use on this machine")
}

/// A small seeded random number generator (SplitMix64): the campaign's schedules and the
/// relay's delays must come out the same from the same seed, on any machine.
#[derive(Debug, Clone)]
pub struct Prng(u64);

impl Prng {
    pub fn new(seed: u64) -> Prng {
        Prng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[low, high]` (`low` when `high <= low`).
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        low + self.next_u64() % (high - low + 1)
    }

    /// One of `items` (which must not be empty).
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next_u64() % items.len() as u64) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_repeats_from_a_seed_and_stays_in_range() {
        let (mut a, mut b) = (Prng::new(7), Prng::new(7));
        let draws: Vec<u64> = (0..100).map(|_| a.range(3, 9)).collect();
        assert_eq!(draws, (0..100).map(|_| b.range(3, 9)).collect::<Vec<_>>());
        assert!(draws.iter().all(|d| (3..=9).contains(d)));
        assert!((3..=9).all(|v| draws.contains(&v)), "every value drawn");
        assert_ne!(Prng::new(8).next_u64(), Prng::new(7).next_u64());
        let u = Prng::new(1).unit();
        assert!((0.0..1.0).contains(&u));
    }

    fn rules_of(cuts: &[Cut]) -> Vec<String> {
        let network = Network {
            tag: "fw-0x0".into(),
            subnet: 9,
            ip: PathBuf::from("ip"),
            nft: PathBuf::from("nft"),
            controller_if: "fw0x0".into(),
            cuts: Mutex::new(Vec::new()),
        };
        let rules = network.rules(cuts);
        // Never made: nothing to delete.
        std::mem::forget(network);
        rules
    }

    #[test]
    fn the_root_account_covers_the_range() {
        assert_eq!(
            crate::mariadb::NETNS_CLIENTS,
            format!("{}.{}.%", NET_PREFIX[0], NET_PREFIX[1])
        );
    }

    #[test]
    fn each_cut_drops_what_it_says() {
        assert_eq!(
            rules_of(&[Cut::Between(Host::Primary, Host::Standby)]),
            [
                "ip saddr 10.213.9.1 ip daddr 10.213.9.2 drop",
                "ip saddr 10.213.9.2 ip daddr 10.213.9.1 drop"
            ]
        );
        assert_eq!(
            rules_of(&[Cut::OneWay {
                from: Host::WitnessA,
                to: Host::Primary
            }]),
            ["ip saddr 10.213.9.3 ip daddr 10.213.9.1 drop"]
        );
        assert_eq!(
            rules_of(&[Cut::Isolate(Host::Standby)]),
            ["ip saddr 10.213.9.2 drop", "ip daddr 10.213.9.2 drop"]
        );
    }

    /// Root only (the campaign and CI run as root); elsewhere it proves the refusal.
    #[test]
    fn a_cut_drops_silently_and_mending_it_lets_traffic_through() {
        if !is_root() {
            let err = Network::preflight().unwrap_err();
            assert!(format!("{err:#}").contains("root"), "{err:#}");
            return;
        }
        let network = Network::create().unwrap();
        let primary = network.namespace(Host::Primary);
        assert!(network.ruleset().unwrap().contains("table bridge fw"));
        // A process left running in a namespace: dropping the network must kill it.
        let mut leftover = Command::new(&network.ip)
            .args(["netns", "exec", &primary, "sleep", "30"])
            .spawn()
            .unwrap();
        let reach = |port: u16| {
            std::net::TcpStream::connect_timeout(
                &(network.address(Host::Primary), port).into(),
                std::time::Duration::from_millis(300),
            )
        };
        // Nothing listens on port 9: refused at once, so the path is up.
        let refused = reach(9).unwrap_err();
        assert_eq!(
            refused.kind(),
            std::io::ErrorKind::ConnectionRefused,
            "{refused}"
        );
        network.cut(Cut::Isolate(Host::Primary)).unwrap();
        let silent = reach(9).unwrap_err();
        assert_eq!(silent.kind(), std::io::ErrorKind::TimedOut, "{silent}");
        network.heal().unwrap();
        assert_eq!(
            reach(9).unwrap_err().kind(),
            std::io::ErrorKind::ConnectionRefused
        );
        let names: Vec<String> = Host::ALL.iter().map(|h| network.namespace(*h)).collect();
        let ip = network.ip.clone();
        drop(network);
        let status = leftover.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL),
            "{status}"
        );
        let left = run(&ip, &["netns", "list"]).unwrap();
        for name in names {
            assert!(!left.contains(&name), "{name} left behind: {left}");
        }
    }
}
