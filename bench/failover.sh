#!/usr/bin/env bash
# Leader failover, Berth against ZooKeeper, side by side on this machine in one run.
#
#   bench/failover.sh [--runs N] [--tick-ms 2000,250] [--poll-ms 10] [--settle-ms 1000]
#                     [--seed N] [--markdown] [--keep]
#
# SIGKILLs the leader of 3 `berth master` processes (default settings) and, separately, the
# leading contender of ZooKeeper's standard election recipe on a 3-server ensemble with the
# smallest session timeout it allows (2 x tickTime), N times each, and prints p50, p99, min
# and max of the time until a new leader is known, with the ratio. bench/failover.py says
# exactly what is measured and how.
#
# Installs what is missing with apt-get (Debian's zookeeper package and a JDK to compile the
# contender), builds `berth` in release mode, and keeps every file of the run in a temporary
# directory that is removed at the end (--keep, or a failure, keeps it for the logs). A manual
# benchmark: not part of `cargo test` or CI. Takes about 4 minutes with the defaults.
set -euo pipefail

usage() {
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
}

runs=20
tick_ms=2000,250
poll_ms=10
settle_ms=1000
markdown=()
seed=()
keep=false
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --tick-ms) tick_ms="$2"; shift 2 ;;
    --poll-ms) poll_ms="$2"; shift 2 ;;
    --settle-ms) settle_ms="$2"; shift 2 ;;
    --seed) seed=(--seed "$2"); shift 2 ;;
    --markdown) markdown=(--markdown); shift ;;
    --keep) keep=true; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

repository="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
zookeeper_jar=/usr/share/java/zookeeper.jar

# ZooKeeper from Debian's package; javac to compile the contender against its client.
if [[ ! -f "$zookeeper_jar" ]] || ! command -v java >/dev/null || ! command -v javac >/dev/null; then
  echo "Installing Debian's zookeeper package and a JDK..." >&2
  if [[ "$(id -u)" -eq 0 ]]; then
    sudo=()
  elif command -v sudo >/dev/null; then
    sudo=(sudo)
  else
    echo "run as root, or install them: apt-get install -y zookeeper default-jdk-headless" >&2
    exit 1
  fi
  "${sudo[@]}" apt-get update
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y zookeeper default-jdk-headless
fi
command -v python3 >/dev/null || { echo "python3 is needed (apt-get install -y python3)" >&2; exit 1; }

echo "Building berth (release)..." >&2
(cd "$repository" && cargo build --release -p berth-node)
target_directory="$(cd "$repository" && cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
berth="$target_directory/release/berth"

work="$(mktemp -d -t berth-failover-XXXXXXXX)"
cleanup() {
  local status=$?
  # A failed run keeps its logs: the error names them.
  if [[ "$keep" == true || $status -ne 0 ]]; then
    echo "Logs and data of the run: $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

# The servers log through slf4j-simple when it is there (Debian's libslf4j-java, a dependency
# of the zookeeper package); without it they are silent.
server_classpath="$zookeeper_jar"
if [[ -f /usr/share/java/slf4j-simple.jar ]]; then
  server_classpath="$server_classpath:/usr/share/java/slf4j-simple.jar"
fi
contender_classpath="$work/classes:$zookeeper_jar"
if [[ -f /usr/share/java/slf4j-nop.jar ]]; then
  contender_classpath="$contender_classpath:/usr/share/java/slf4j-nop.jar"
fi
javac -d "$work/classes" -cp "$zookeeper_jar" "$repository/bench/ZooKeeperContender.java"

python3 "$repository/bench/failover.py" \
  --berth "$berth" \
  --work "$work/run" \
  --runs "$runs" \
  --tick-ms "$tick_ms" \
  --poll-ms "$poll_ms" \
  --settle-ms "$settle_ms" \
  --java java \
  --zookeeper-classpath "$server_classpath" \
  --contender-classpath "$contender_classpath" \
  "${seed[@]}" \
  "${markdown[@]}"
