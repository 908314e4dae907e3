//! The network: one namespace per host, each with one address on a shared bridge, and the
//! link faults a test injects between them.
//!
//! ```text
//!   namespace <prefix>-m1          namespace <prefix>-hub          namespace <prefix>-a1
//!   eth0 10.77.0.10 ----veth---- h0 -+- br0 -+- h3 ----veth---- eth0 10.77.0.13
//!    |  clsact egress filters          |       |                   |  clsact egress filters
//!    +-> sink (dropped packets)        ...     ...                 +-> sink
//! ```
//!
//! Every test has its own hub, so every test uses the same subnet without seeing the
//! others'. Nothing is added to the namespace the tests run in; the test process reaches a
//! host by running a command in its namespace (`ip netns exec`), which is also how every
//! process of a host is started, so it lives and dies with the host.
//!
//! # Faults, with what the kernel offers
//!
//! A fault is a traffic-control filter on the egress of a host's `eth0` (a `clsact` qdisc):
//!
//! * **cut** `from -> to`: a `u32` filter on the destination address whose action redirects
//!   the packet (`mirred`) to the host's `sink`, a veth pair with no address: the packet is
//!   silently lost, as in a real partition (no reset, no ICMP). Cutting both directions puts
//!   one filter on each side. `gact`'s `drop` is not used because some kernels (the CI's
//!   among them) are built without it; `u32`, `mirred` and `cls_bpf` are in every kernel
//!   that has `clsact`.
//! * **loss** on everything a host sends: a classic BPF filter (`cls_bpf`) that draws a
//!   random number per packet (`ld rand`) and redirects to the sink below a threshold.
//! * **delay** on everything a host sends: `netem` as the root qdisc. Kernels without
//!   `netem` (`CONFIG_NET_SCH_NETEM` unset) refuse it: [`Fabric::set_delay`] then returns
//!   [`FaultUnsupported`] and the caller decides.
//!
//! Faults only drop or delay IPv4 packets; ARP keeps working, as it would in a partitioned
//! switch fabric where hosts keep their neighbour entries.
//!
//! # Cleanup
//!
//! Dropping the [`Fabric`] kills every process left in its namespaces (the nodes, the
//! executors they started, their tasks) and deletes the namespaces, also when the test
//! panics. Namespaces left behind by a test process that was itself killed carry its pid in
//! their name, and the next fabric created on the machine deletes them.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fmt;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Every namespace this harness creates starts with this.
const NAMESPACE_PREFIX: &str = "berth-e2e-";
/// The bridge in the hub namespace.
const BRIDGE: &str = "br0";
/// The host side of a host's link.
const HOST_INTERFACE: &str = "eth0";
/// The device dropped packets are redirected to (the other end, `sink-peer`, has no
/// address and drops what arrives).
const SINK_INTERFACE: &str = "sink";
/// The first three octets of every host's address; the last is [`HOST_OCTET_FIRST`] + index.
const SUBNET: [u8; 3] = [10, 77, 0];
/// The last octet of the first host's address.
const HOST_OCTET_FIRST: u8 = 10;
/// The most hosts one fabric holds: the addresses left in the /24.
pub const HOSTS_MAX: usize = 240;
/// The filter priority of a cut towards host `index` is this plus `index`.
const CUT_PRIORITY_BASE: usize = 1000;
/// The filter priority of a host's loss.
const LOSS_PRIORITY: usize = 900;
/// How long dropping a fabric waits for the processes in its namespaces to die.
const TEARDOWN_PATIENCE: Duration = Duration::from_secs(10);

/// One host of a [`Fabric`]: its index in the fabric, in the order added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostId(pub usize);

/// A host: a network namespace with one address.
#[derive(Clone, Debug)]
pub struct Host {
    /// Its short name in messages (`m1`, `a2`, `client`).
    pub name: String,
    /// Its namespace's name.
    pub namespace: String,
    /// Its address on the bridge.
    pub address: Ipv4Addr,
}

/// A fault the kernel cannot inject (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultUnsupported {
    /// What was refused, and what the tool said.
    pub reason: String,
}

impl fmt::Display for FaultUnsupported {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.reason)
    }
}

/// The faults in force, so that they can be listed and healed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Links cut, as (from, to): packets from `from` to `to` are dropped.
    pub cuts: BTreeSet<(HostId, HostId)>,
    /// Hosts losing this percentage of what they send.
    pub loss_percent: BTreeMap<HostId, u8>,
    /// Hosts whose packets are delayed this long.
    pub delay: BTreeMap<HostId, Duration>,
}

/// A test's network of hosts. See the [module docs](self).
#[derive(Debug)]
pub struct Fabric {
    prefix: String,
    hub: String,
    hosts: Vec<Host>,
    faults: Faults,
}

impl Fabric {
    /// Creates the hub namespace and its bridge for a test called `name`.
    ///
    /// # Panics
    /// If namespaces cannot be created (not root, no `ip`), with what to do about it: the
    /// fault tests fail rather than pass without running.
    pub fn new(name: &str) -> Fabric {
        require_support();
        remove_stale_namespaces();
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let short: String = name
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(12)
            .collect();
        let prefix = format!(
            "{NAMESPACE_PREFIX}{}-{}-{short}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let hub = format!("{prefix}-hub");
        let fabric = Fabric {
            prefix,
            hub,
            hosts: Vec::new(),
            faults: Faults::default(),
        };
        ip(&["netns", "add", &fabric.hub]);
        ip(&["-n", &fabric.hub, "link", "set", "lo", "up"]);
        ip(&["-n", &fabric.hub, "link", "add", BRIDGE, "type", "bridge"]);
        ip(&["-n", &fabric.hub, "link", "set", BRIDGE, "up"]);
        fabric
    }

    /// Adds a host called `name` (unique in this fabric, letters and digits): its
    /// namespace, its link to the bridge, its address and its fault filters' qdisc.
    pub fn add_host(&mut self, name: &str) -> HostId {
        assert!(
            self.hosts.len() < HOSTS_MAX,
            "a fabric holds at most {HOSTS_MAX} hosts"
        );
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric())
                && self.hosts.iter().all(|host| host.name != name),
            "host names are unique and alphanumeric: {name:?}"
        );
        let index = self.hosts.len();
        let namespace = format!("{}-{name}", self.prefix);
        let octet = HOST_OCTET_FIRST + u8::try_from(index).expect("bounded by HOSTS_MAX");
        let address = Ipv4Addr::new(SUBNET[0], SUBNET[1], SUBNET[2], octet);
        let hub_side = format!("h{index}");
        ip(&["netns", "add", &namespace]);
        // Recorded before the links exist, so that a failure below still cleans up.
        self.hosts.push(Host {
            name: name.to_string(),
            namespace: namespace.clone(),
            address,
        });
        ip(&["-n", &namespace, "link", "set", "lo", "up"]);
        ip(&[
            "link",
            "add",
            HOST_INTERFACE,
            "netns",
            &namespace,
            "type",
            "veth",
            "peer",
            "name",
            &hub_side,
            "netns",
            &self.hub,
        ]);
        ip(&["-n", &self.hub, "link", "set", &hub_side, "master", BRIDGE]);
        ip(&["-n", &self.hub, "link", "set", &hub_side, "up"]);
        ip(&[
            "-n",
            &namespace,
            "addr",
            "add",
            &format!("{address}/24"),
            "dev",
            HOST_INTERFACE,
        ]);
        ip(&["-n", &namespace, "link", "set", HOST_INTERFACE, "up"]);
        ip(&[
            "-n",
            &namespace,
            "link",
            "add",
            SINK_INTERFACE,
            "type",
            "veth",
            "peer",
            "name",
            "sink-peer",
        ]);
        ip(&["-n", &namespace, "link", "set", SINK_INTERFACE, "up"]);
        ip(&["-n", &namespace, "link", "set", "sink-peer", "up"]);
        tc(&[
            "-n",
            &namespace,
            "qdisc",
            "add",
            "dev",
            HOST_INTERFACE,
            "clsact",
        ]);
        HostId(index)
    }

    /// The host `id`.
    pub fn host(&self, id: HostId) -> &Host {
        &self.hosts[id.0]
    }

    /// Every host, by id.
    pub fn hosts(&self) -> impl Iterator<Item = (HostId, &Host)> {
        self.hosts
            .iter()
            .enumerate()
            .map(|(index, host)| (HostId(index), host))
    }

    /// The faults in force.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// A command that runs `program` in host `id`'s namespace. `ip netns exec` execs the
    /// program in place, so the child's pid is the program's.
    pub fn command(&self, id: HostId, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.host(id).namespace])
            .arg(program);
        command
    }

    /// Drops every packet `from` sends to `to`. Replies still flow the other way, so a TCP
    /// connection between them stalls in both directions, but a datagram or the first
    /// packet of a connection from `to` still arrives.
    pub fn cut_one_way(&mut self, from: HostId, to: HostId) {
        assert_ne!(from, to, "a host cannot be cut from itself");
        if !self.faults.cuts.insert((from, to)) {
            return;
        }
        let namespace = self.host(from).namespace.clone();
        let destination = format!("{}/32", self.host(to).address);
        let priority = (CUT_PRIORITY_BASE + to.0).to_string();
        tc(&[
            "-n",
            &namespace,
            "filter",
            "add",
            "dev",
            HOST_INTERFACE,
            "egress",
            "pref",
            &priority,
            "protocol",
            "ip",
            "u32",
            "match",
            "ip",
            "dst",
            &destination,
            "action",
            "mirred",
            "egress",
            "redirect",
            "dev",
            SINK_INTERFACE,
        ]);
    }

    /// Cuts the link between `a` and `b` in both directions.
    pub fn cut(&mut self, a: HostId, b: HostId) {
        self.cut_one_way(a, b);
        self.cut_one_way(b, a);
    }

    /// Cuts `host` from each of `others`, both directions.
    pub fn isolate(&mut self, host: HostId, others: &[HostId]) {
        for other in others.iter().filter(|other| **other != host) {
            self.cut(host, *other);
        }
    }

    /// Lets packets from `from` to `to` through again.
    pub fn heal_one_way(&mut self, from: HostId, to: HostId) {
        if !self.faults.cuts.remove(&(from, to)) {
            return;
        }
        let namespace = self.host(from).namespace.clone();
        let priority = (CUT_PRIORITY_BASE + to.0).to_string();
        tc(&[
            "-n",
            &namespace,
            "filter",
            "del",
            "dev",
            HOST_INTERFACE,
            "egress",
            "pref",
            &priority,
        ]);
    }

    /// Heals the link between `a` and `b`, both directions.
    pub fn heal(&mut self, a: HostId, b: HostId) {
        self.heal_one_way(a, b);
        self.heal_one_way(b, a);
    }

    /// Makes `host` lose `percent` (1 to 100) of the packets it sends, at random.
    pub fn set_loss(&mut self, host: HostId, percent: u8) {
        assert!((1..=100).contains(&percent), "loss of {percent}%");
        self.clear_loss(host);
        // Drop when a random u32 is below the threshold.
        let threshold = (u64::from(u32::MAX) + 1) * u64::from(percent) / 100;
        let threshold = u32::try_from(threshold).unwrap_or(u32::MAX);
        let program = loss_program(threshold);
        let namespace = self.host(host).namespace.clone();
        tc(&[
            "-n",
            &namespace,
            "filter",
            "add",
            "dev",
            HOST_INTERFACE,
            "egress",
            "pref",
            &LOSS_PRIORITY.to_string(),
            "protocol",
            "ip",
            "bpf",
            "bytecode",
            &program,
            "action",
            "mirred",
            "egress",
            "redirect",
            "dev",
            SINK_INTERFACE,
        ]);
        self.faults.loss_percent.insert(host, percent);
    }

    /// Stops `host`'s random loss.
    pub fn clear_loss(&mut self, host: HostId) {
        if self.faults.loss_percent.remove(&host).is_none() {
            return;
        }
        let namespace = self.host(host).namespace.clone();
        tc(&[
            "-n",
            &namespace,
            "filter",
            "del",
            "dev",
            HOST_INTERFACE,
            "egress",
            "pref",
            &LOSS_PRIORITY.to_string(),
        ]);
    }

    /// Delays every packet `host` sends by `delay`, with `netem`.
    ///
    /// # Errors
    /// [`FaultUnsupported`] if the kernel has no `netem`.
    pub fn set_delay(&mut self, host: HostId, delay: Duration) -> Result<(), FaultUnsupported> {
        let namespace = self.host(host).namespace.clone();
        let milliseconds = format!("{}ms", delay.as_millis());
        let output = run(Command::new("tc").args([
            "-n",
            &namespace,
            "qdisc",
            "replace",
            "dev",
            HOST_INTERFACE,
            "root",
            "netem",
            "delay",
            &milliseconds,
        ]));
        if !output.status.success() {
            return Err(FaultUnsupported {
                reason: format!(
                    "tc netem refused a delay ({}): the kernel lacks CONFIG_NET_SCH_NETEM",
                    String::from_utf8_lossy(&output.stderr).trim()
                ),
            });
        }
        self.faults.delay.insert(host, delay);
        Ok(())
    }

    /// Stops delaying `host`'s packets.
    pub fn clear_delay(&mut self, host: HostId) {
        if self.faults.delay.remove(&host).is_none() {
            return;
        }
        let namespace = self.host(host).namespace.clone();
        tc(&[
            "-n",
            &namespace,
            "qdisc",
            "del",
            "dev",
            HOST_INTERFACE,
            "root",
        ]);
    }

    /// Whether this kernel can delay packets (`netem`), tried on the hub's loopback.
    pub fn delay_supported(&self) -> bool {
        let added = run(Command::new("tc").args([
            "-n", &self.hub, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms",
        ]))
        .status
        .success();
        if added {
            tc(&["-n", &self.hub, "qdisc", "del", "dev", "lo", "root"]);
        }
        added
    }

    /// Removes every fault: cuts, loss and delay.
    pub fn heal_all(&mut self) {
        let cuts: Vec<(HostId, HostId)> = self.faults.cuts.iter().copied().collect();
        for (from, to) in cuts {
            self.heal_one_way(from, to);
        }
        let lossy: Vec<HostId> = self.faults.loss_percent.keys().copied().collect();
        for host in lossy {
            self.clear_loss(host);
        }
        let delayed: Vec<HostId> = self.faults.delay.keys().copied().collect();
        for host in delayed {
            self.clear_delay(host);
        }
    }

    /// The processes in host `id`'s namespace.
    pub fn processes(&self, id: HostId) -> Vec<u32> {
        namespace_processes(&self.host(id).namespace)
    }

    /// Kills (SIGKILL) every process in host `id`'s namespace and waits until they are
    /// gone: what a power cut does to a machine.
    ///
    /// # Panics
    /// If some process survives [`TEARDOWN_PATIENCE`].
    pub fn kill_all(&self, id: HostId) {
        let namespace = &self.host(id).namespace;
        assert!(
            kill_namespace_processes(namespace),
            "processes in {namespace} survived SIGKILL for {TEARDOWN_PATIENCE:?}: {:?}",
            namespace_processes(namespace)
        );
    }
}

impl Drop for Fabric {
    fn drop(&mut self) {
        for host in &self.hosts {
            if !kill_namespace_processes(&host.namespace) {
                eprintln!(
                    "processes in {} survived SIGKILL for {TEARDOWN_PATIENCE:?}: {:?}",
                    host.namespace,
                    namespace_processes(&host.namespace)
                );
            }
        }
        for host in &self.hosts {
            let _ = run(Command::new("ip").args(["netns", "del", &host.namespace]));
        }
        let _ = run(Command::new("ip").args(["netns", "del", &self.hub]));
    }
}

/// The classic BPF program (`tc ... bpf bytecode`) that matches a packet when a random
/// `u32` is below `threshold`:
///
/// ```text
///   ld  rand              ; A = a random u32 (ancillary load SKF_AD_RANDOM)
///   jge #threshold, 0, 1  ; A >= threshold: next instruction, else skip it
///   ret #0                ; no match: the packet goes on
///   ret #-1               ; match: the action (redirect to the sink) runs
/// ```
fn loss_program(threshold: u32) -> String {
    const LOAD_ABSOLUTE_WORD: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JUMP_IF_GREATER_OR_EQUAL: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
    const RETURN: u16 = 0x06; // BPF_RET | BPF_K
    // SKF_AD_OFF (-0x1000) + SKF_AD_RANDOM (56), as the unsigned offset the kernel reads.
    const RANDOM_OFFSET: u32 = 0xFFFF_F038;
    format!(
        "4,{LOAD_ABSOLUTE_WORD} 0 0 {RANDOM_OFFSET},{JUMP_IF_GREATER_OR_EQUAL} 0 1 {threshold},\
         {RETURN} 0 0 0,{RETURN} 0 0 {}",
        u32::MAX
    )
}

/// Panics with what to do unless this process can create network namespaces.
fn require_support() {
    let probe = Command::new("ip").arg("-V").output();
    let tc_probe = Command::new("tc").arg("-V").output();
    if probe.is_err() || tc_probe.is_err() {
        panic!(
            "the fault tests need `ip` and `tc` (Debian: apt-get install -y iproute2), and run \
             as root; they do not pass without running"
        );
    }
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Uid:"))
                .and_then(|uids| uids.split_whitespace().nth(1).map(str::to_string))
        })
        .is_some_and(|effective| effective == "0");
    if !root {
        panic!(
            "the fault tests create network namespaces and need root (run `cargo test` as \
             root, as CI does); they do not pass without running"
        );
    }
}

/// Deletes namespaces this harness created in test processes that no longer run.
fn remove_stale_namespaces() {
    let listing = run(Command::new("ip").args(["netns", "list"]));
    let text = String::from_utf8_lossy(&listing.stdout);
    for name in text
        .lines()
        .filter_map(|line| line.split_whitespace().next())
    {
        let Some(rest) = name.strip_prefix(NAMESPACE_PREFIX) else {
            continue;
        };
        let Some(pid) = rest
            .split('-')
            .next()
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            kill_namespace_processes(name);
            let _ = run(Command::new("ip").args(["netns", "del", name]));
        }
    }
}

/// The processes in namespace `namespace`.
fn namespace_processes(namespace: &str) -> Vec<u32> {
    let output = run(Command::new("ip").args(["netns", "pids", namespace]));
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .filter_map(|pid| pid.parse().ok())
        .collect()
}

/// SIGKILLs every process in `namespace` until none is left or [`TEARDOWN_PATIENCE`]
/// passed; whether none is left.
fn kill_namespace_processes(namespace: &str) -> bool {
    let deadline = Instant::now() + TEARDOWN_PATIENCE;
    loop {
        let pids = namespace_processes(namespace);
        if pids.is_empty() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        for pid in pids {
            crate::netns::process::signal(pid, crate::netns::process::Signal::Kill);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a command to completion, capturing its output.
fn run(command: &mut Command) -> std::process::Output {
    command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"))
}

/// Runs `ip args...`; panics with its error output if it fails.
fn ip(args: &[&str]) {
    checked(Command::new("ip").args(args));
}

/// Runs `tc args...`; panics with its error output if it fails.
fn tc(args: &[&str]) {
    checked(Command::new("tc").args(args));
}

fn checked(command: &mut Command) {
    let output = run(command);
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loss_program_has_four_instructions() {
        assert_eq!(
            loss_program(1 << 31),
            "4,32 0 0 4294963256,53 0 1 2147483648,6 0 0 0,6 0 0 4294967295"
        );
    }
}
