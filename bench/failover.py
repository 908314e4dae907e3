#!/usr/bin/env python3
"""Leader failover, Berth against ZooKeeper, on one machine in one run.

Run it through bench/failover.sh, which installs ZooKeeper and a JDK if missing, builds
`berth` and compiles the ZooKeeper contender. This driver starts every process, issues every
`kill -9` and reads every clock: one process, one monotonic clock (time.monotonic) for both
sides, so the ratio compares like with like.

Berth: three `berth master` processes on loopback with default settings. Once all three name
the same leader, the driver pauses (a random time from --settle-ms to twice that, so that kills
fall at every phase of heartbeats, pings and expiry ticks), SIGKILLs the leader and polls the
two survivors with `berth leader --json`, --poll-ms after each answer, until both name the same
new leader in a higher term. The sample is the time from just before kill(2) to the end of
that poll, so it overstates the failover by up to one poll period (reported). The killed
master is then restarted on its data directory, as a supervisor would restart it, and the next
repetition kills whoever leads then.

ZooKeeper: a three-server ensemble on loopback (one JVM each, default settings but tickTime)
and three contender processes (bench/ZooKeeperContender.java, the standard recipe with
EPHEMERAL_SEQUENTIAL nodes under /election, each watching its predecessor) that ask for the
smallest session timeout the ensemble allows, 2 x tickTime. After the same random pause, the
driver SIGKILLs the leading contender (what a Mesos master's crash looks like to ZooKeeper) and
waits for the next contender's line saying it leads: no polling, the line is timestamped as it
arrives. The killed contender is restarted (a new session, at the back of the line) before the
next repetition. The ensemble's servers are never killed.

Nothing is written outside --work.
"""

import argparse
import json
import math
import os
import queue
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

# How many masters, ZooKeeper servers and contenders.
MEMBERS = 3
BERTH_CLUSTER = "bench"
# How long one `berth leader` call may wait for the masters' answers. A master that is alive
# answers within a millisecond on loopback, even in the middle of an election.
BERTH_ASK_TIMEOUT_MS = 200
# Bounds on every wait, so that a broken run stops by itself.
START_TIMEOUT_S = 60.0
FAILOVER_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 5.0
# ZooKeeper settings other than tickTime: those of the sample zoo.cfg that Debian's package
# ships (in ticks).
ZOOKEEPER_INIT_LIMIT_TICKS = 10
ZOOKEEPER_SYNC_LIMIT_TICKS = 5
ZOOKEEPER_TICK_MS_DEFAULT = 2000


def main():
    arguments = parse_arguments()
    work = Path(arguments.work).resolve()
    ticks_ms = [int(tick) for tick in arguments.tick_ms.split(",") if tick]
    pauses = random.Random(arguments.seed)
    processes = Processes()
    # A SIGTERM stops the benchmark like Ctrl-C does: through the `finally` below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results = []
    try:
        if not arguments.skip_berth:
            results.append(measure_berth(arguments, pauses, work / "berth", processes))
        for tick_ms in ticks_ms:
            directory = work / f"zookeeper-tick-{tick_ms}"
            results.append(measure_zookeeper(arguments, pauses, tick_ms, directory, processes))
    finally:
        processes.stop_all()
    print_report(arguments, results)


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--berth", required=True, help="the berth binary")
    parser.add_argument("--work", required=True, help="a directory for every file of the run")
    parser.add_argument("--runs", type=int, default=20, help="repetitions per side")
    parser.add_argument(
        "--tick-ms",
        default="2000,250",
        help="ZooKeeper tickTime values to measure, comma-separated; each is a separate "
        "ensemble with the minimum session timeout, 2 x tickTime (empty: no ZooKeeper)",
    )
    parser.add_argument("--poll-ms", type=int, default=10, help="pause between Berth polls")
    parser.add_argument(
        "--settle-ms",
        type=int,
        default=1000,
        help="once the leader is stable, wait a random time from this to twice this before "
        "the kill, so that kills fall at every phase of heartbeats, pings and ZooKeeper's "
        "expiry ticks",
    )
    parser.add_argument("--seed", type=int, default=None, help="for the random waits")
    parser.add_argument("--java", default="java")
    parser.add_argument(
        "--zookeeper-classpath", default="", help="ZooKeeper's jar and a logger for the servers"
    )
    parser.add_argument(
        "--contender-classpath", default="", help="the compiled contender and ZooKeeper's jar"
    )
    parser.add_argument("--skip-berth", action="store_true", help="measure ZooKeeper only")
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    arguments = parser.parse_args()
    if arguments.runs < 1:
        parser.error("--runs must be at least 1")
    if arguments.seed is None:
        arguments.seed = random.SystemRandom().randrange(2**32)
    return arguments


# ---------------------------------------------------------------------------------------------
# Results


@dataclass
class Result:
    """One side's samples and how they were observed."""

    name: str
    setting: str
    observed: str
    samples_ms: list = field(default_factory=list)
    notes: list = field(default_factory=list)


def median(samples):
    return statistics.median(samples)


def percentile_nearest_rank(samples, fraction):
    """The smallest sample with at least `fraction` of the samples at or below it."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def print_report(arguments, results):
    results = [result for result in results if result.samples_ms]
    if not results:
        return
    berth = next((result for result in results if result.name == "Berth"), None)
    header = ["system", "setting", "runs", "p50", "p99", "min", "max"]
    header += ["p50 / Berth", "p99 / Berth"] if berth is not None else []
    rows = [report_row(result, berth) for result in results]
    numeric = set(range(2, len(header)))

    print()
    print(f"Leader failover: kill -9 the leader of {MEMBERS}, time until a new leader is known")
    print(f"  machine  {machine_description()}")
    print(f"  date     {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    print(
        f"  runs     {arguments.runs} per side; p50 is the median, p99 the nearest rank (the "
        "largest sample when there are fewer than 100 runs)"
    )
    print(f"  seed     {arguments.seed} (--seed: the random pauses before the kills)")
    print()
    widths = [max(len(row[column]) for row in [header] + rows) for column in range(len(header))]
    for row in [header] + rows:
        cells = [
            cell.rjust(width) if column in numeric else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(row, widths))
        ]
        print("  " + "  ".join(cells).rstrip())
    print()
    for result in results:
        print(f"{result.name}, {result.setting}")
        print(f"  observed: {result.observed}")
        for note in result.notes:
            print(f"  {note}")
        samples = ", ".join(f"{sample:.0f}" for sample in sorted(result.samples_ms))
        print(f"  samples in ms, sorted: {samples}")
    if arguments.markdown:
        print()
        alignments = ["---:" if column in numeric else "---" for column in range(len(header))]
        for row in [header, alignments] + rows:
            print("| " + " | ".join(row) + " |")


def report_row(result, berth):
    samples = result.samples_ms
    p50 = median(samples)
    p99 = percentile_nearest_rank(samples, 0.99)
    row = [
        result.name,
        result.setting,
        str(len(samples)),
        milliseconds(p50),
        milliseconds(p99),
        milliseconds(min(samples)),
        milliseconds(max(samples)),
    ]
    if berth is not None:
        if result is berth:
            row += ["", ""]
        else:
            berth_p99 = percentile_nearest_rank(berth.samples_ms, 0.99)
            row += [f"{p50 / median(berth.samples_ms):.1f}x", f"{p99 / berth_p99:.1f}x"]
    return row


def milliseconds(value):
    return f"{value:,.0f} ms"


def machine_description():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return f"{os.cpu_count()} cores, {model}, load average {load} at the end"


# ---------------------------------------------------------------------------------------------
# Processes


class Processes:
    """Every process the driver starts, so that all are stopped however the run ends."""

    def __init__(self):
        self.started = []

    def start(self, command, log_path, stdout=None, environment=None):
        log = open(log_path, "ab")
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=stdout if stdout is not None else log,
            stderr=log,
            env=environment,
        )
        log.close()
        self.started.append(process)
        return process

    def stop(self, process):
        """SIGTERM, then SIGKILL after STOP_TIMEOUT_S."""
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop_all(self):
        for process in self.started:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process in self.started:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def free_loopback_ports(count):
    """`count` distinct loopback ports that were free a moment ago (all held at once)."""
    sockets = []
    try:
        for _ in range(count):
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.bind(("127.0.0.1", 0))
            sockets.append(listener)
        return [listener.getsockname()[1] for listener in sockets]
    finally:
        for listener in sockets:
            listener.close()


def progress(text):
    print(text, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Berth


class BerthCluster:
    """Three `berth master` processes on loopback, each with its data directory and log."""

    def __init__(self, binary, directory, processes):
        self.binary = binary
        self.directory = directory
        self.processes = processes
        directory.mkdir(parents=True)
        self.secret_file = directory / "cluster-secret"
        descriptor = os.open(self.secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as secret:
            secret.write(secrets.token_hex(32) + "\n")
        self.addresses = [f"127.0.0.1:{port}" for port in free_loopback_ports(MEMBERS)]
        self.members = ",".join(
            f"{index + 1}={address}" for index, address in enumerate(self.addresses)
        )
        self.masters = [None] * MEMBERS
        self.environment = dict(os.environ, RUST_LOG="info", NO_COLOR="1")

    def start(self, index):
        master_id = str(index + 1)
        command = [
            self.binary, "master",
            "--id", master_id,
            "--masters", self.members,
            "--data-dir", str(self.directory / f"master-{master_id}"),
            "--cluster", BERTH_CLUSTER,
            "--secret-file", str(self.secret_file),
            # Should this driver die, the masters stop by themselves.
            "--parent-pid", str(os.getpid()),
        ]  # fmt: skip
        log = self.directory / f"master-{master_id}.log"
        self.masters[index] = self.processes.start(command, log, environment=self.environment)

    def kill(self, index):
        """kill -9; returns the monotonic time just before the signal was sent."""
        process = self.masters[index]
        killed_at = time.monotonic()
        os.kill(process.pid, signal.SIGKILL)
        return killed_at

    def reap(self, index):
        self.masters[index].wait()
        self.masters[index] = None

    def ask(self, indices):
        """`berth leader --json` against the masters `indices`: the parsed report, or None."""
        command = [
            self.binary, "leader", "--json",
            "--cluster", BERTH_CLUSTER,
            "--secret-file", str(self.secret_file),
            "--masters", ",".join(self.addresses[index] for index in indices),
            "--timeout-ms", str(BERTH_ASK_TIMEOUT_MS),
        ]  # fmt: skip
        # It exits with status 1 when no master names a leader, and prints the report anyway.
        output = subprocess.run(command, capture_output=True, text=True, check=False)
        try:
            return json.loads(output.stdout)
        except json.JSONDecodeError:
            return None

    def agreed(self, indices):
        """(leader address, term) if every master in `indices` names it; None otherwise."""
        report = self.ask(indices) or {}
        masters = report.get("masters", [])
        if len(masters) != len(indices) or not all(answer.get("answered") for answer in masters):
            return None
        named = {(answer.get("term"), answer.get("leader")) for answer in masters}
        if len(named) != 1:
            return None
        term, leader = named.pop()
        if term is None or leader is None:
            return None
        return leader, term

    def wait_for_leader(self, indices, poll_s):
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            agreement = self.agreed(indices)
            if agreement is not None:
                return agreement
            time.sleep(poll_s)
        raise RuntimeError(
            f"Berth: no leader agreed within {START_TIMEOUT_S:.0f} s; logs in {self.directory}"
        )


def measure_berth(arguments, pauses, directory, processes):
    poll_s = arguments.poll_ms / 1000.0
    cluster = BerthCluster(arguments.berth, directory, processes)
    everyone = list(range(MEMBERS))
    for index in everyone:
        cluster.start(index)
    progress(f"Berth: 3 masters at {', '.join(cluster.addresses)}; waiting for a leader")
    cluster.wait_for_leader(everyone, poll_s)

    result = Result(
        name="Berth",
        setting="defaults: election timeout 500-1000 ms, heartbeat 100 ms",
        observed="until both survivors name the same new leader in a higher term "
        f"(`berth leader --json` asked again {arguments.poll_ms} ms after each answer)",
    )
    poll_periods_ms = []
    call_durations_ms = []
    expected_term = None
    unprovoked_elections = 0
    for run in range(1, arguments.runs + 1):
        time.sleep(settle_pause_s(arguments, pauses))
        leader, term = cluster.wait_for_leader(everyone, poll_s)
        if expected_term is not None and term != expected_term:
            # The cluster elected again between runs: the restarted master or a delayed
            # heartbeat on a busy machine.
            unprovoked_elections += 1
        leader_index = cluster.addresses.index(leader)
        survivors = [index for index in everyone if index != leader_index]

        killed_at = cluster.kill(leader_index)
        previous_observation = killed_at
        while True:
            asked_at = time.monotonic()
            agreement = cluster.agreed(survivors)
            observed_at = time.monotonic()
            call_durations_ms.append((observed_at - asked_at) * 1000.0)
            poll_periods_ms.append((observed_at - previous_observation) * 1000.0)
            previous_observation = observed_at
            if agreement is not None and agreement[0] != leader and agreement[1] > term:
                break
            if observed_at - killed_at > FAILOVER_TIMEOUT_S:
                raise RuntimeError(
                    f"Berth: no new leader {FAILOVER_TIMEOUT_S:.0f} s after the kill; "
                    f"logs in {directory}"
                )
            time.sleep(poll_s)
        elapsed_ms = (observed_at - killed_at) * 1000.0
        result.samples_ms.append(elapsed_ms)
        new_leader, new_term = agreement
        expected_term = new_term
        progress(
            f"  Berth run {run}/{arguments.runs}: killed master {leader_index + 1} (term {term}); "
            f"master {cluster.addresses.index(new_leader) + 1} leads term {new_term} "
            f"after {elapsed_ms:.0f} ms"
        )
        cluster.reap(leader_index)
        cluster.start(leader_index)

    for index in everyone:
        processes.stop(cluster.masters[index])
    result.notes.append(
        "resolution: a poll ended every "
        f"{statistics.mean(poll_periods_ms):.1f} ms on average (at most "
        f"{max(poll_periods_ms):.1f} ms), of which one `berth leader` call took "
        f"{statistics.mean(call_durations_ms):.1f} ms; each sample overstates the failover by "
        "up to one poll period"
    )
    result.notes.append(
        f"runs that found a newer term than the failover before them left: "
        f"{unprovoked_elections} (an election no kill caused)"
    )
    result.notes.append(
        "between runs: the killed master restarts on its data directory, all three agree on "
        f"a leader, then a random pause of {arguments.settle_ms}-{2 * arguments.settle_ms} ms"
    )
    return result


# ---------------------------------------------------------------------------------------------
# ZooKeeper


class ZooKeeperEnsemble:
    """Three ZooKeeper servers on loopback, one JVM each, with their own ports and data."""

    def __init__(self, arguments, tick_ms, directory, processes):
        self.arguments = arguments
        self.tick_ms = tick_ms
        self.directory = directory
        self.processes = processes
        directory.mkdir(parents=True)
        ports = free_loopback_ports(3 * MEMBERS)
        self.client_ports = ports[0:MEMBERS]
        quorum_ports = ports[MEMBERS : 2 * MEMBERS]
        election_ports = ports[2 * MEMBERS : 3 * MEMBERS]
        self.servers = []
        servers_lines = [
            f"server.{index + 1}=127.0.0.1:{quorum_ports[index]}:{election_ports[index]}"
            for index in range(MEMBERS)
        ]
        for index in range(MEMBERS):
            server_directory = directory / f"server-{index + 1}"
            data = server_directory / "data"
            data.mkdir(parents=True)
            (data / "myid").write_text(f"{index + 1}\n")
            configuration = server_directory / "zoo.cfg"
            configuration.write_text(
                "\n".join(
                    [
                        f"tickTime={tick_ms}",
                        f"initLimit={ZOOKEEPER_INIT_LIMIT_TICKS}",
                        f"syncLimit={ZOOKEEPER_SYNC_LIMIT_TICKS}",
                        f"dataDir={data}",
                        f"clientPort={self.client_ports[index]}",
                        "clientPortAddress=127.0.0.1",
                        # Off: its web server would take port 8080 three times.
                        "admin.enableServer=false",
                        # `srvr` tells whether a server leads or follows.
                        "4lw.commands.whitelist=srvr",
                    ]
                    + servers_lines
                )
                + "\n"
            )
            command = [
                arguments.java,
                f"-Dzookeeper.log.dir={server_directory}",
                "-cp", arguments.zookeeper_classpath,
                "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                str(configuration),
            ]  # fmt: skip
            self.servers.append(
                processes.start(command, server_directory / "server.log")
            )
        self.connect_string = ",".join(f"127.0.0.1:{port}" for port in self.client_ports)

    def wait_until_serving(self):
        """Until one server leads and the others follow."""
        deadline = time.monotonic() + START_TIMEOUT_S
        modes = []
        while time.monotonic() < deadline:
            modes = [server_mode(port) for port in self.client_ports]
            if modes.count("leader") == 1 and modes.count("follower") == MEMBERS - 1:
                return
            for server in self.servers:
                if server.poll() is not None:
                    raise RuntimeError(f"ZooKeeper: a server exited; logs in {self.directory}")
            time.sleep(0.1)
        raise RuntimeError(
            f"ZooKeeper: no quorum within {START_TIMEOUT_S:.0f} s (modes {modes}); "
            f"logs in {self.directory}"
        )

    def stop(self):
        for server in self.servers:
            self.processes.stop(server)


def server_mode(port):
    """A ZooKeeper server's `Mode:` as its `srvr` command reports it, or None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as connection:
            connection.sendall(b"srvr")
            reply = b""
            while True:
                chunk = connection.recv(4096)
                if not chunk:
                    break
                reply += chunk
    except OSError:
        return None
    for line in reply.decode(errors="replace").splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    return None


class Contenders:
    """Contender processes, whose output lines arrive on one queue with their arrival time."""

    def __init__(self, arguments, ensemble, session_ms, processes):
        self.arguments = arguments
        self.ensemble = ensemble
        self.session_ms = session_ms
        self.processes = processes
        self.events = queue.Queue()
        # (arrival time, contender number, state) of every Disconnected, SyncConnected after a
        # disconnection, or Expired a contender reported.
        self.connection_events = []
        self.running = {}  # contender number -> process
        self.nodes = {}  # contender number -> its node under /election
        self.started = 0

    def start(self):
        """Starts one contender and waits until its node exists; returns its number."""
        self.started += 1
        number = self.started
        command = [
            self.arguments.java,
            "-cp", self.arguments.contender_classpath,
            "ZooKeeperContender",
            self.ensemble.connect_string,
            str(self.session_ms),
        ]  # fmt: skip
        log = self.ensemble.directory / f"contender-{number}.log"
        process = self.processes.start(command, log, stdout=subprocess.PIPE)
        self.running[number] = process
        threading.Thread(target=self._read, args=(number, process), daemon=True).start()
        granted = None
        while number not in self.nodes:
            _, sender, kind, value = self.next_event(START_TIMEOUT_S)
            if sender != number:
                raise RuntimeError(
                    f"ZooKeeper: contender {sender} said {kind} {value} while contender "
                    f"{number} started; logs in {self.ensemble.directory}"
                )
            if kind == "SESSION":
                granted = int(value)
            elif kind == "READY":
                self.nodes[number] = value
            elif kind != "LEADER":
                raise RuntimeError(f"ZooKeeper: contender {number} said {kind} {value}; see {log}")
        if granted != self.session_ms:
            raise RuntimeError(
                f"ZooKeeper granted a session timeout of {granted} ms, not the "
                f"{self.session_ms} ms asked for"
            )
        return number

    def _read(self, number, process):
        for line in process.stdout:
            arrived_at = time.monotonic()
            kind, _, value = line.decode(errors="replace").strip().partition(" ")
            self.events.put((arrived_at, number, kind, value))
        self.events.put((time.monotonic(), number, "EXIT", str(process.wait())))

    def next_event(self, timeout_s):
        event = self.poll_event(timeout_s)
        if event is None:
            raise RuntimeError(
                f"ZooKeeper: no word from the contenders within {timeout_s:.0f} s; "
                f"logs in {self.ensemble.directory}"
            )
        return event

    def poll_event(self, timeout_s):
        """The next line of a contender within `timeout_s`, or None. Connection state changes
        are only recorded: a contender that loses its connection and gets it back within its
        session keeps its place. One whose session expires exits, and that is an error."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                event = self.events.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                return None
            arrived_at, number, kind, value = event
            if kind == "STATE":
                self.connection_events.append((arrived_at, number, value))
                continue
            if kind == "EXIT" and number in self.running:
                raise RuntimeError(
                    f"ZooKeeper: contender {number} exited with status {value} (status 3: its "
                    f"session expired); logs in {self.ensemble.directory}"
                )
            return event

    def disconnections(self, since, until):
        return sum(
            1
            for arrived_at, _, state in self.connection_events
            if state == "Disconnected" and since <= arrived_at <= until
        )

    def in_line(self):
        """The running contenders, leader first."""
        return sorted(self.running, key=lambda number: self.nodes[number])

    def kill(self, number):
        """kill -9; returns the monotonic time just before the signal was sent."""
        process = self.running.pop(number)
        killed_at = time.monotonic()
        os.kill(process.pid, signal.SIGKILL)
        return killed_at


def measure_zookeeper(arguments, pauses, tick_ms, directory, processes):
    session_ms = 2 * tick_ms
    ensemble = ZooKeeperEnsemble(arguments, tick_ms, directory, processes)
    progress(
        f"ZooKeeper tickTime={tick_ms}: 3 servers at {ensemble.connect_string}; "
        "waiting for a quorum"
    )
    ensemble.wait_until_serving()
    contenders = Contenders(arguments, ensemble, session_ms, processes)
    first = contenders.start()
    wait_for_leader_line(contenders, first, START_TIMEOUT_S)
    for _ in range(MEMBERS - 1):
        contenders.start()

    default = " (default)" if tick_ms == ZOOKEEPER_TICK_MS_DEFAULT else ""
    result = Result(
        name="ZooKeeper",
        setting=f"tickTime {tick_ms} ms{default}, session timeout {session_ms} ms (minimum)",
        observed="until the next contender's watch has fired and it has read that its node is "
        "the lowest (its line is timestamped as it arrives: no polling)",
    )
    disturbed_runs = 0
    for run in range(1, arguments.runs + 1):
        time.sleep(settle_pause_s(arguments, pauses))
        expect_quiet(contenders)
        leader, successor = contenders.in_line()[0:2]
        killed_at = contenders.kill(leader)
        elapsed_ms = None
        killed_exited = False
        while elapsed_ms is None or not killed_exited:
            remaining = FAILOVER_TIMEOUT_S - (time.monotonic() - killed_at)
            arrived_at, sender, kind, value = contenders.next_event(max(remaining, 0.1))
            if sender == leader and kind == "EXIT":
                killed_exited = True
                continue
            if sender == successor and kind == "LEADER" and elapsed_ms is None:
                elapsed_ms = (arrived_at - killed_at) * 1000.0
                continue
            raise RuntimeError(
                f"ZooKeeper: contender {sender} said {kind} {value} during the failover; "
                f"logs in {directory}"
            )
        result.samples_ms.append(elapsed_ms)
        disturbed = contenders.disconnections(killed_at, killed_at + elapsed_ms / 1000.0) > 0
        disturbed_runs += disturbed
        progress(
            f"  ZooKeeper tickTime={tick_ms} run {run}/{arguments.runs}: killed the contender "
            f"of {contenders.nodes[leader]}; {contenders.nodes[successor]} leads after "
            f"{elapsed_ms:.0f} ms"
            + (" (a surviving contender lost its connection meanwhile)" if disturbed else "")
        )
        contenders.start()

    for process in contenders.running.values():
        processes.stop(process)
    ensemble.stop()
    result.notes.append(
        "between runs: the killed contender restarts (a new session, its node at the back of "
        f"the line), then a random pause of {arguments.settle_ms}-{2 * arguments.settle_ms} ms; "
        "the servers run throughout"
    )
    disconnections = contenders.disconnections(0.0, time.monotonic())
    result.notes.append(
        f"connection losses of contenders (each regained within its session): {disconnections} "
        f"in all, during {disturbed_runs} of the {arguments.runs} failovers; no session expired"
    )
    result.notes.append(
        f"other settings: initLimit={ZOOKEEPER_INIT_LIMIT_TICKS}, "
        f"syncLimit={ZOOKEEPER_SYNC_LIMIT_TICKS} (Debian's sample zoo.cfg), the rest ZooKeeper's "
        "defaults"
    )
    return result


def settle_pause_s(arguments, pauses):
    return arguments.settle_ms * (1.0 + pauses.random()) / 1000.0


def wait_for_leader_line(contenders, number, timeout_s):
    deadline = time.monotonic() + timeout_s
    while True:
        _, sender, kind, value = contenders.next_event(max(deadline - time.monotonic(), 0.1))
        if sender == number and kind == "LEADER":
            return
        raise RuntimeError(f"ZooKeeper: contender {sender} said {kind} {value} before any leader")


def expect_quiet(contenders):
    """Fails if a contender said anything but a connection state change since the last run."""
    event = contenders.poll_event(0.0)
    if event is not None:
        _, sender, kind, value = event
        raise RuntimeError(f"ZooKeeper: contender {sender} said {kind} {value} between runs")


if __name__ == "__main__":
    main()
