#!/usr/bin/env bash
# Fleet benchmark (BENCHMARKS.md, "Fleet"): the release daemon and one local nats-server with
# JetStream (replicas 1; the daemon's own CPU is what is measured, not NATS replication).
#   1. an edge's CPU per line, reading a log of N lines from its start, without and with --publish
#      (until every entry is made, and with --publish until the stream holds them all);
#   2. a central taking three edges' streams of N entries each: wall time and CPU;
#   3. latency from an edge's log write to a central's WebSocket subscriber: three edges writing
#      RATE lines/s each for SECONDS s (examples/e2e_load.rs --fleet 3), p50/p99/p99.9/max, zero
#      loss per node. `scripts/fleet-bench.sh latency` runs only this part.
# CPU is the daemon's utime+stime from /proc/PID/stat, so other load on the machine disturbs it
# less than wall time. Bounded: every wait gives up after BOUND seconds.
# Usage: N=200000 scripts/fleet-bench.sh   (needs target/release/proxytail, nats-server, curl, jq)
#        PROXYTAIL_NATS_SERVER=/path/to/nats-server picks the server binary (default: nats-server on PATH;
#        scripts/test.sh installs a newer one, as the fleet tests also read it)
#        RATE=1000 SECONDS_=10 scripts/fleet-bench.sh latency   (also target/release/examples/e2e_load)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-200000}
PART=${1:-all}
RATE=${RATE:-1000}
SECONDS_=${SECONDS_:-10}
BIN=${BIN:-target/release/proxytail}
BOUND=${BOUND:-300}
NATS_SERVER=${PROXYTAIL_NATS_SERVER:-nats-server}
CLK=$(getconf CLK_TCK)
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_secs() { awk -v clk="$CLK" '{printf "%.2f", ($14+$15)/clk}' "/proc/$1/stat"; }
# wait_for DESCRIPTION COMMAND...: runs COMMAND every 0.1 s until it succeeds, at most BOUND s.
wait_for() {
  local what=$1; shift
  local deadline=$((SECONDS + BOUND))
  until "$@"; do
    if [ $SECONDS -ge $deadline ]; then echo "timeout: $what" >&2; exit 1; fi
    sleep 0.1
  done
}
# start_daemon NAME ARGS...: starts the daemon; sets PID and ADDR.
start_daemon() {
  local name=$1; shift
  : >"$tmp/$name.err"
  NO_COLOR=1 PROXYTAIL_LOG=warn,proxytail::app=info "$BIN" --listen 127.0.0.1:0 "$@" 2>"$tmp/$name.err" &
  PID=$!
  pids+=("$PID")
  wait_for "$name listening" grep -q 'proxytail listening' "$tmp/$name.err"
  ADDR=$(grep -o 'local=[0-9.:]*' "$tmp/$name.err" | head -1 | cut -d= -f2)
}
health() { curl -sf "http://$1/api/health"; }
made_all() { [ "$(health "$1" | jq .last_id)" = "$2" ]; }
published_all() { made_all "$1" "$2" && [ "$(health "$1" | jq .fleet.pending)" = 0 ]; }

nport=$(free_port)
: >"$tmp/nats.log"
"$NATS_SERVER" -a 127.0.0.1 -p "$nport" -js -sd "$tmp/nats" >"$tmp/nats.log" 2>&1 &
pids+=($!)
wait_for "nats-server ready" grep -q 'Server is ready' "$tmp/nats.log"
NATS="nats://127.0.0.1:$nport"

# 3. Write → central subscriber latency (bounded by --lines and --seconds, then --drain; the tool
# stops its edges and central by PID and exits 1 on any loss).
latency() {
  echo "latency, 3 edges at $RATE lines/s each for $SECONDS_ s; $("$NATS_SERVER" --version); load: $(uptime | sed 's/.*load average: //')"
  target/release/examples/e2e_load --bin "$BIN" --fleet 3 --nats "$NATS" --rate "$RATE" \
    --lines $((RATE * SECONDS_)) --seconds "$SECONDS_" --drain 60
}
if [ "$PART" = latency ]; then
  latency
  exit
fi

awk -v n="$N" 'BEGIN { for (i = 1; i <= n; i++)
  printf "1795835993.%03d     85 192.168.1.10 TCP_MISS/200 4096 GET http://bench.test/%d - HIER_DIRECT/93.184.216.34 text/html\n", i % 1000, i }' >"$tmp/access.log"

echo "N=$N lines; $(nproc) cores; $("$NATS_SERVER" --version); load: $(uptime | sed 's/.*load average: //')"

# 1. Edge without and with --publish.
start_daemon plain --state-dir "$tmp/plain" --access-log "$tmp/access.log" --from-start
t0=$SECONDS
wait_for "plain edge made all" made_all "$ADDR" "$N"
plain_cpu=$(cpu_secs "$PID"); plain_wall=$((SECONDS - t0))
kill "$PID"
start_daemon edge --state-dir "$tmp/edge" --access-log "$tmp/access.log" --from-start --publish "$NATS" --node-name a
t0=$SECONDS
wait_for "edge published all" published_all "$ADDR" "$N"
edge_cpu=$(cpu_secs "$PID"); edge_wall=$((SECONDS - t0))
kill "$PID"
echo "edge without --publish: cpu ${plain_cpu} s ($(awk -v c="$plain_cpu" -v n="$N" 'BEGIN{printf "%.2f", c*1e6/n}') µs/line), wall ~${plain_wall} s"
echo "edge with --publish:    cpu ${edge_cpu} s ($(awk -v c="$edge_cpu" -v n="$N" 'BEGIN{printf "%.2f", c*1e6/n}') µs/line), wall ~${edge_wall} s"

# 2. Central over three streams of N entries (node a is already full; b and c now).
for node in b c; do
  start_daemon "edge-$node" --state-dir "$tmp/edge-$node" --access-log "$tmp/access.log" --from-start --publish "$NATS" --node-name "$node"
  wait_for "edge $node published all" published_all "$ADDR" "$N"
  kill "$PID"
done
start_daemon central --state-dir "$tmp/central" --consume "$NATS" --nodes a,b,c
t0=$(date +%s.%N)
wait_for "central took all" made_all "$ADDR" $((3 * N))
t1=$(date +%s.%N)
central_cpu=$(cpu_secs "$PID")
echo "central, 3 x $N entries: $(awk -v a="$t0" -v b="$t1" -v n="$N" 'BEGIN{printf "%.1f s wall, %.0f entries/s", b-a, 3*n/(b-a)}'), cpu ${central_cpu} s ($(awk -v c="$central_cpu" -v n="$N" 'BEGIN{printf "%.2f", c*1e6/(3*n)}') µs/entry)"
echo "load after: $(uptime | sed 's/.*load average: //')"

latency
