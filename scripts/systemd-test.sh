#!/usr/bin/env bash
# RELIABILITY 83 under a real systemd: boots this machine's own systemd in a container
# (systemd-nspawn over an overlay of /, nothing changed on the host, its own network namespace so
# Squid's 3128 and the daemon's 5001 are the container's loopback, not the host's), installs the
# package built exactly as the README says, and checks, through a real Squid and real WebSocket
# subscribers (examples/ws_sub.rs): Type=notify readiness, each request streamed exactly once,
# `systemctl reload` (subscriber stays), Debian's logrotate for Squid (nothing lost),
# `systemctl restart` (1001, then `since` resumes exactly once), the watchdog (SIGSTOP: restarted),
# /run and the rest read-only as the service user inside the unit's namespace,
# `systemd-analyze security` on the running unit, no secret in the journal, `systemctl stop`
# (1001, exit status 0) and `apt purge` (nothing left). Always powers the container off and
# unmounts what it mounted, also when a step fails. Every wait is bounded. Needs root.
#
# Ends with "N passed, M failed"; exits 1 on failure. PROXYTAIL_DEB=path.deb skips the build.
set -uo pipefail
cd "$(dirname "$0")/.."

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else fail "$what"; fi; }
same() { if [ "$2" = "$3" ]; then ok "$1"; else fail "$1: expected '$2', got '$3'"; fi; }

if [ "$(id -u)" -ne 0 ]; then
    echo "systemd-test.sh mounts an overlay and boots a container: run it as root (CI does)" >&2
    exit 1
fi

# ---- tools -----------------------------------------------------------------------------------
missing=()
command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
[ -x /usr/sbin/squid ] || missing+=(squid)
command -v logrotate >/dev/null || missing+=(logrotate)
command -v curl >/dev/null || missing+=(curl)
if [ "${#missing[@]}" -gt 0 ]; then
    # Installing must not start Squid on the host.
    policy=/usr/sbin/policy-rc.d
    had_policy=0; [ -e "$policy" ] && had_policy=1
    if [ "$had_policy" -eq 0 ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"; fi
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
        --no-install-recommends "${missing[@]}" >/dev/null
    if [ "$had_policy" -eq 0 ]; then rm -f "$policy"; fi
fi

# ---- build, as the README says ---------------------------------------------------------------
if [ -n "${PROXYTAIL_DEB:-}" ]; then
    deb=$PROXYTAIL_DEB
else
    command -v cargo-deb >/dev/null || cargo install cargo-deb --locked
    rm -rf target/debian
    cargo deb --strip >/dev/null || { echo "cargo deb --strip failed" >&2; exit 1; }
    deb=$(ls target/debian/proxytail_*.deb)
fi
cargo build --quiet --example ws_sub || { echo "cannot build examples/ws_sub" >&2; exit 1; }
sub_bin=target/debug/examples/ws_sub

# ---- the container ---------------------------------------------------------------------------
top=$(mktemp -d -p /dev/shm)
root=$(mktemp -d)
mkdir -p "$top/upper" "$top/work"
nspawn=
leader=
mounted=0
teardown() {
    if [ -n "$leader" ] && kill -0 "$leader" 2>/dev/null; then
        timeout 30 nsenter -t "$leader" -a systemctl poweroff >/dev/null 2>&1 || true
    fi
    if [ -n "$nspawn" ]; then
        # Bounded: a container that does not power off within 60 s is killed.
        for _ in $(seq 120); do kill -0 "$nspawn" 2>/dev/null || break; sleep 0.5; done
        if kill -0 "$nspawn" 2>/dev/null; then kill -KILL "$nspawn" 2>/dev/null || true; fi
        wait "$nspawn" 2>/dev/null || true
    fi
    if [ "$mounted" -eq 1 ]; then umount "$root" || umount -l "$root" || true; fi
    rm -rf "$top"
    rmdir "$root" 2>/dev/null || true
}
trap teardown EXIT
trap 'exit 130' INT TERM

mount -t overlay overlay -o lowerdir=/,upperdir="$top/upper",workdir="$top/work" "$root" || exit 1
mounted=1
machine="pt-test-$$"
systemd-nspawn -D "$root" -M "$machine" --register=no --keep-unit --private-network -b \
    </dev/null >"$top/console.log" 2>&1 &
nspawn=$!
# The container's PID 1 is nspawn's child once it has become systemd (an intermediate child
# comes and goes first).
for _ in $(seq 300); do
    leader=$(pgrep -P "$nspawn" -x systemd | head -1)
    [ -n "$leader" ] && break
    sleep 0.1
done
if [ -z "$leader" ]; then
    fail "container booted: $(tail -20 "$top/console.log")"
    echo "$passed passed, $failed failed"; exit 1
fi
# inside CMD...: run inside the container, at most 120 s.
inside() { timeout 120 nsenter -t "$leader" -a "$@"; }
# PID 1 answers systemctl once its private socket exists (a few seconds into the boot).
for _ in $(seq 120); do inside test -S /run/systemd/private && break; sleep 0.5; done
state=$(inside systemctl is-system-running --wait 2>&1)
case "$state" in
    running|degraded) ok "container's systemd is up ($state)" ;;
    *) fail "container's systemd: $state: $(tail -20 "$top/console.log")"; echo "$passed passed, $failed failed"; exit 1 ;;
esac

# wait_for SECONDS DESCRIPTION CMD...: true once CMD succeeds, checked twice a second.
wait_for() {
    local secs=$1 what=$2
    shift 2
    for _ in $(seq $((secs * 2))); do
        if "$@" >/dev/null 2>&1; then ok "$what"; return 0; fi
        sleep 0.5
    done
    fail "$what (not within ${secs}s)"
    return 1
}

# ---- install, user, Squid, service --------------------------------------------------------------
inside mkdir -p /opt/t
# Files go in through stdin: the container's /tmp is its own, and /work may be another mount.
inside sh -c 'cat > /opt/t/p.deb' <"$deb"
inside sh -c 'cat > /opt/t/ws_sub && chmod 0755 /opt/t/ws_sub' <"$sub_bin"
# man-db's trigger rebuilds the whole man database (minutes on a loaded machine): off, in the
# container's overlay only. A dpkg killed half-way would leave the package half-configured.
inside rm -f /var/lib/man-db/auto-update
check "dpkg -i the package" timeout 300 nsenter -t "$leader" -a dpkg -i /opt/t/p.deb
password='correct horse battery staple 83'
# As the README shows it: no --config, the packaged configuration is found.
check "proxytail user add ops (no --config)" inside sh -c "printf '%s\n' '$password' | proxytail user add ops >/dev/null"
check "Squid starts" inside systemctl start squid
check "proxytail starts (Type=notify: returns once READY=1)" inside systemctl start proxytail
same "unit type" notify "$(inside systemctl show -p Type --value proxytail)"
same "active after start" active "$(inside systemctl is-active proxytail)"
status_text=$(inside systemctl show -p StatusText --value proxytail)
check "STATUS= shows the last id ($status_text)" grep -q 'last id' <<<"$status_text"
same "watchdog armed" 10000000 "$(inside systemctl show -p WatchdogUSec --value proxytail | sed 's/^10s$/10000000/')"

request() { inside curl -s -o /dev/null --max-time 10 -x http://127.0.0.1:3128 "http://127.0.0.1:9/ops/$1"; }
# subscribe NAME [SINCE]: a ws_sub in the background inside the container, output in /opt/t/NAME.
subscribe() {
    inside setsid -f sh -c "exec /opt/t/ws_sub 127.0.0.1:5001 ops '$password' ${2:-} >/opt/t/$1 2>&1"
    wait_for 20 "subscriber $1 connected" inside grep -q '^OPEN' "/opt/t/$1"
}
# exactly_once NAME FROM TO: each of /ops/FROM../ops/TO appears exactly once in NAME's output.
exactly_once() {
    local n bad=0
    for i in $(seq "$2" "$3"); do
        n=$(inside grep -c " http://127.0.0.1:9/ops/$i\$" "/opt/t/$1")
        [ "$n" = 1 ] || { echo "  /ops/$i seen $n times by $1"; bad=1; }
    done
    return "$bad"
}
has_all() { [ "$(inside grep -c ' http://127.0.0.1:9/ops/' "/opt/t/$1")" -ge "$2" ]; }
last_id() { inside sh -c "grep '^ENTRY' /opt/t/$1 | tail -1 | cut -d' ' -f2"; }

subscribe s1
for i in $(seq 1 20); do request "$i"; done
wait_for 30 "20 requests through Squid streamed" has_all s1 20
check "each request exactly once" exactly_once s1 1 20

# ---- reload keeps the subscriber ---------------------------------------------------------------
pid_before=$(inside systemctl show -p MainPID --value proxytail)
check "systemctl reload" inside systemctl reload proxytail
same "same process after reload" "$pid_before" "$(inside systemctl show -p MainPID --value proxytail)"
for i in $(seq 21 25); do request "$i"; done
wait_for 30 "subscriber kept across reload gets new entries" has_all s1 25
check "no close on reload" bash -c "! nsenter -t $leader -a grep -q '^CLOSE' /opt/t/s1"

# ---- Debian's logrotate for Squid ------------------------------------------------------------------
check "logrotate -f /etc/logrotate.d/squid" inside logrotate -f /etc/logrotate.d/squid
for i in $(seq 26 35); do request "$i"; done
wait_for 30 "requests after logrotate streamed" has_all s1 35
check "nothing lost or doubled across logrotate" exactly_once s1 1 35

# ---- restart: 1001, then since resumes exactly once ---------------------------------------------
last=$(last_id s1)
check "systemctl restart" inside systemctl restart proxytail
wait_for 20 "subscriber closed with 1001 on restart" inside grep -qx 'CLOSE 1001' /opt/t/s1
for i in $(seq 36 40); do request "$i"; done
subscribe s2 "$last"
wait_for 30 "since=$last resumes after restart" has_all s2 5
check "since after restart: exactly once" exactly_once s2 36 40
same "since after restart: nothing older" 5 "$(inside grep -c '^ENTRY' /opt/t/s2)"

# ---- /run and the rest read-only as the service user, in the unit's namespace -------------------
mainpid=$(inside systemctl show -p MainPID --value proxytail)
as_unit() { inside nsenter -t "$mainpid" -m setpriv --reuid=proxytail --regid=proxytail --init-groups "$@"; }
check "state directory writable" as_unit touch /var/lib/proxytail/probe
# (/tmp and /var/tmp are the unit's own, PrivateTmp=yes: writable, private, discarded.)
for dir in /run /run/lock /run/squid /var/log/squid /var/lib /etc /usr; do
    check "$dir not writable by the service" bash -c "! nsenter -t $leader -a nsenter -t $mainpid -m setpriv --reuid=proxytail --regid=proxytail --init-groups touch $dir/probe 2>/dev/null"
done
check "/var/spool/squid unreadable by the service" bash -c "! nsenter -t $leader -a nsenter -t $mainpid -m setpriv --reuid=proxytail --regid=proxytail --init-groups ls /var/spool/squid >/dev/null 2>&1"
inside rm -f /var/lib/proxytail/probe

# ---- security score on the running unit -------------------------------------------------------
score=$(inside systemd-analyze security proxytail 2>&1 | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p')
echo "  systemd-analyze security (running): $score"
check "security exposure $score <= 2.0" awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.0) }'

# ---- watchdog: a stopped tailer gets the service restarted -------------------------------------
restarts=$(inside systemctl show -p NRestarts --value proxytail)
inside kill -STOP "$mainpid"
restarted() {
    local now
    now=$(nsenter -t "$leader" -a systemctl show -p MainPID --value proxytail)
    [ -n "$now" ] && [ "$now" != 0 ] && [ "$now" != "$mainpid" ] &&
        [ "$(nsenter -t "$leader" -a systemctl is-active proxytail)" = active ]
}
# WatchdogSec=10s + TimeoutAbortSec=5s + RestartSec=2s, plus margin.
wait_for 45 "SIGSTOPped daemon restarted by the watchdog" restarted
same "one restart more" "$((restarts + 1))" "$(inside systemctl show -p NRestarts --value proxytail)"
check "journal names the watchdog" bash -c "nsenter -t $leader -a journalctl -u proxytail --no-pager | grep -qi 'watchdog'"
last=$(last_id s2)
subscribe s3 "$last"
for i in $(seq 41 45); do request "$i"; done
wait_for 30 "streaming again after the watchdog restart" has_all s3 5
check "after the watchdog restart: exactly once" exactly_once s3 41 45

# ---- no secret in the journal -------------------------------------------------------------------
inside journalctl -u proxytail --no-pager >"$top/journal.txt" 2>&1
check "journal has the daemon's lines" grep -q 'proxytail listening' "$top/journal.txt"
check "no password in the journal" bash -c "! grep -qF '$password' '$top/journal.txt'"
check "no hash or credential header in the journal" bash -c "! grep -qiE 'argon2id|authorization|token=' '$top/journal.txt'"

# ---- stop: 1001, exit status 0 ------------------------------------------------------------------
check "systemctl stop" inside systemctl stop proxytail
wait_for 20 "subscriber closed with 1001 on stop" inside grep -qx 'CLOSE 1001' /opt/t/s3
same "exit status 0" 0 "$(inside systemctl show -p ExecMainStatus --value proxytail)"
same "result success" success "$(inside systemctl show -p Result --value proxytail)"

# ---- purge --------------------------------------------------------------------------------------
check "apt purge" timeout 300 nsenter -t "$leader" -a env DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq proxytail
check "/etc/proxytail gone" inside test ! -e /etc/proxytail
check "/var/lib/proxytail gone" inside test ! -e /var/lib/proxytail
check "user gone" inside sh -c '! getent passwd proxytail'
check "unit gone" inside sh -c '! systemctl cat proxytail >/dev/null 2>&1'

if [ "$failed" -ne 0 ]; then
    echo "--- journal of proxytail ---"; tail -40 "$top/journal.txt"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
