#!/usr/bin/env bash
# Builds the .deb with cargo-deb, lints it, installs it with dpkg, checks the files, users and
# permissions it created and its systemd unit, runs the installed daemon as its own user against a
# temporary log (no running systemd needed), then removes and purges the package and checks that
# nothing is left. Needs root (CI runs as root). Ends with "N passed, M failed"; exits 1 on failure.
#
# Environment: PROXYTAIL_DEB=path.deb tests that package instead of building one.
set -euo pipefail
cd "$(dirname "$0")/.."

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
# check DESCRIPTION COMMAND...: one test.
check() {
    local what=$1
    shift
    if "$@"; then ok "$what"; else fail "$what"; fi
}
# same DESCRIPTION EXPECTED ACTUAL
same() {
    if [ "$2" = "$3" ]; then ok "$1"; else fail "$1: expected '$2', got '$3'"; fi
}
finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}

if [ "$(id -u)" -ne 0 ]; then
    echo "deb-test.sh installs a package system-wide: run it as root (CI does)" >&2
    exit 1
fi

# ---- tools -----------------------------------------------------------------------------------
missing=()
command -v lintian >/dev/null || missing+=(lintian)
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v dpkg-shlibdeps >/dev/null || missing+=(dpkg-dev)
command -v adduser >/dev/null || missing+=(adduser)
command -v curl >/dev/null || missing+=(curl)
command -v man >/dev/null || missing+=(man-db)
if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ -z "${PROXYTAIL_DEB:-}" ] && ! command -v cargo-deb >/dev/null; then
    cargo install cargo-deb --locked
fi

tmp=$(mktemp -d)
chmod 0755 "$tmp"
daemon_pid=
cleanup() {
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then kill -TERM "$daemon_pid"; fi
    if dpkg-query -W -f='${Status}' proxytail 2>/dev/null | grep -q installed; then
        dpkg -P proxytail >/dev/null 2>&1 || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# A leftover from an earlier run would hide what this package does.
if dpkg-query -W -f='${Status}' proxytail 2>/dev/null | grep -qv not-installed; then
    dpkg -P proxytail >/dev/null
fi

# ---- build -----------------------------------------------------------------------------------
if [ -n "${PROXYTAIL_DEB:-}" ]; then
    deb=$PROXYTAIL_DEB
else
    rm -rf target/debian
    # Exactly the README's command (man pages come from packaging/man, kept current by
    # tests/man_pages.rs). --strip: the release profile keeps line tables (debug = 1).
    cargo deb --strip >/dev/null
    deb=$(ls target/debian/proxytail_*.deb)
fi
check "package built: $deb" test -s "$deb"

# ---- lintian ---------------------------------------------------------------------------------
lintian --tag-display-limit 0 "$deb" >"$tmp/lintian.txt" 2>&1 || true
sed 's/^/  lintian: /' "$tmp/lintian.txt"
same "lintian reports no errors" 0 "$(grep -c '^E:' "$tmp/lintian.txt" || true)"

# ---- install ---------------------------------------------------------------------------------
check "dpkg -i installs the package" dpkg -i "$deb"

check "binary installed and executable" test -x /usr/bin/proxytail
same "--version" "proxytail $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)" \
    "$(/usr/bin/proxytail --version)"
same "config file mode and owner" "644 root root" "$(stat -c '%a %U %G' /etc/proxytail/proxytail.toml)"
same "users file mode and owner" "640 root proxytail" "$(stat -c '%a %U %G' /etc/proxytail/users)"
same "users file has no users" "" "$(grep -v '^#' /etc/proxytail/users | grep -v '^$' || true)"
conffiles=$(dpkg-query -W -f='${Conffiles}\n' proxytail | awk 'NF {print $1}' | sort | tr '\n' ' ')
same "conffiles" "/etc/default/proxytail /etc/proxytail/proxytail.toml /etc/proxytail/users " "$conffiles"
check "config keeps Debian's Squid log path" grep -qx 'access-log = \["/var/log/squid/access.log"\]' \
    /etc/proxytail/proxytail.toml
check "config listens on 127.0.0.1:5001" grep -qx 'listen = "127.0.0.1:5001"' /etc/proxytail/proxytail.toml
check "man page installed" test -s /usr/share/man/man1/proxytail.1.gz
check "man finds the page" bash -c "man -w proxytail >/dev/null"
check "copyright installed" test -s /usr/share/doc/proxytail/copyright
check "changelog installed" test -s /usr/share/doc/proxytail/changelog.Debian.gz
check "nginx snippet installed" test -s /usr/share/doc/proxytail/examples/nginx/proxytail-locations.conf
check "Prometheus examples installed" test -s /usr/share/doc/proxytail/examples/prometheus/alerts.yml
check "fleet examples installed" test -s /usr/share/doc/proxytail/examples/fleet/central.toml

# The system user: its own group, group proxy for Squid's logs, no login shell, no real home.
check "user proxytail exists" bash -c "getent passwd proxytail >/dev/null"
uid=$(id -u proxytail)
check "proxytail is a system user (uid $uid < 1000)" test "$uid" -lt 1000
same "primary group" proxytail "$(id -gn proxytail)"
check "member of group proxy" bash -c "id -nG proxytail | tr ' ' '\n' | grep -qx proxy"
same "login shell" /usr/sbin/nologin "$(getent passwd proxytail | cut -d: -f7)"
same "state directory" "750 proxytail proxytail" "$(stat -c '%a %U %G' /var/lib/proxytail)"

# ---- the unit ---------------------------------------------------------------------------------
unit=$(dpkg -L proxytail | grep '/systemd/system/proxytail\.service$' | head -1)
check "unit installed ($unit)" test -s "$unit"
check "unit enabled" test -L /etc/systemd/system/multi-user.target.wants/proxytail.service
if systemd-analyze verify "$unit" >"$tmp/verify.txt" 2>&1; then
    ok "systemd-analyze verify"
else
    fail "systemd-analyze verify: $(cat "$tmp/verify.txt")"
fi
score=$(systemd-analyze security --offline=yes "$unit" 2>&1 | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p')
echo "  systemd-analyze security: $score"
check "security exposure $score <= 2.0" awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.0) }'
for key in 'ExecReload=/bin/kill -HUP $MAINPID' 'StateDirectory=proxytail' \
    'ExecStartPre=/usr/bin/proxytail check-config --config /etc/proxytail/proxytail.toml' \
    'SocketBindAllow=tcp:5001' 'SocketBindDeny=any' 'InaccessiblePaths=-/var/spool/squid' \
    'CapabilityBoundingSet=' 'NoNewPrivileges=yes' 'User=proxytail' 'Type=notify' \
    'NotifyAccess=main' 'WatchdogSec=10s' 'ReadOnlyPaths=/run'; do
    check "unit has $key" grep -qxF "$key" "$unit"
done

# ---- run the installed daemon as its user ------------------------------------------------------
# A log laid out like Debian's Squid's: directory proxy:proxy 0750, file proxy:proxy 0640.
install -d -o proxy -g proxy -m 0750 "$tmp/squid"
log="$tmp/squid/access.log"
install -o proxy -g proxy -m 0640 /dev/null "$log"
install -d -o proxytail -g proxytail -m 0750 "$tmp/state"
as_daemon=(setpriv --reuid=proxytail --regid=proxytail --init-groups --inh-caps=-all)
flags=(--config /etc/proxytail/proxytail.toml --access-log "$log" --state-dir "$tmp/state")

if "${as_daemon[@]}" /usr/bin/proxytail check-config "${flags[@]}" >"$tmp/check.txt" 2>&1; then
    ok "check-config passes for the installed config as user proxytail"
else
    fail "check-config as user proxytail: $(cat "$tmp/check.txt")"
fi
sed 's/^/  check-config: /' "$tmp/check.txt"
install -o root -g root -m 0600 /dev/null "$tmp/secret.log"
if "${as_daemon[@]}" /usr/bin/proxytail check-config "${flags[@]}" --access-log "$tmp/secret.log" \
    >"$tmp/check2.txt" 2>&1; then
    fail "check-config accepts a log the daemon cannot read"
else
    check "check-config names the unreadable log" grep -q "error: .*$tmp/secret.log is not readable" "$tmp/check2.txt"
fi

"${as_daemon[@]}" /usr/bin/proxytail "${flags[@]}" --listen 127.0.0.1:0 2>"$tmp/daemon.log" &
daemon_pid=$!
# wait_log TEXT: prints the first line of the daemon's log containing TEXT (ANSI colour codes
# stripped), read as the log is written, at most 30 s; never polls a port. Exit 1 if none came.
wait_log() {
    local line rc=1 pid
    exec 3< <(exec timeout 30 tail -n +1 -f "$tmp/daemon.log")
    pid=$!
    while IFS= read -r -u 3 line; do
        line=$(printf '%s' "$line" | sed 's/\x1b\[[0-9;]*m//g')
        case "$line" in *"$1"*) printf '%s\n' "$line"; rc=0; break ;; esac
    done
    kill "$pid" 2>/dev/null || true
    exec 3<&-
    return "$rc"
}
addr=$(wait_log 'proxytail listening' | grep -o 'local=[0-9.:]*' | sed 's/local=//' || true)
if [ -n "$addr" ]; then
    ok "installed daemon listens on $addr as user proxytail"
    same "daemon runs as proxytail" proxytail "$(ps -o user= -p "$daemon_pid" | tr -d ' ')"
    same "GET /api/health" 200 "$(curl -s -o /dev/null -w '%{http_code}' "http://$addr/api/health")"
    same "GET / (dashboard)" 200 "$(curl -s -o /dev/null -w '%{http_code}' "http://$addr/")"
    same "GET /api/ws-token without credentials" 401 \
        "$(curl -s -o /dev/null -w '%{http_code}' "http://$addr/api/ws-token")"
    same "GET /api/ws-token for a user not yet added" 401 "$(curl -s -o /dev/null -w '%{http_code}' \
        -u 'alice:correct horse battery staple' "http://$addr/api/ws-token")"

    # A user added with the installed binary, the users file keeping root:proxytail 0640, then
    # applied by SIGHUP (the unit's ExecReload) without a restart.
    # As the README shows it: no --config, the packaged configuration is found by default.
    printf 'correct horse battery staple\n' | /usr/bin/proxytail user add alice >/dev/null
    same "user list" alice "$(/usr/bin/proxytail user list)"
    same "users file mode and owner kept by user add" "640 root proxytail" \
        "$(stat -c '%a %U %G' /etc/proxytail/users)"
    kill -HUP "$daemon_pid"
    check "SIGHUP reloads the users" eval "wait_log 'reloaded users and keys' >/dev/null"
    same "GET /api/ws-token as alice after the reload" 200 "$(curl -s -o "$tmp/token.json" -w '%{http_code}' \
        -u 'alice:correct horse battery staple' "http://$addr/api/ws-token")"
    check "token response is a success" grep -q '"status":"success"' "$tmp/token.json"
    same "GET /metrics without credentials" 401 "$(curl -s -o /dev/null -w '%{http_code}' "http://$addr/metrics")"
    same "GET /metrics as alice" 200 "$(curl -s -o "$tmp/metrics.txt" -w '%{http_code}' \
        -u 'alice:correct horse battery staple' "http://$addr/metrics")"
    check "metrics hold proxytail_lines_read_total" grep -q '^proxytail_lines_read_total{' "$tmp/metrics.txt"
    check "same daemon process after the reload" kill -0 "$daemon_pid"

    kill -TERM "$daemon_pid"
    rc=0
    wait "$daemon_pid" || rc=$?
    daemon_pid=
    same "daemon exits 0 on SIGTERM" 0 "$rc"
    check "the daemon keeps its state in the state directory" test -n "$(ls -A "$tmp/state")"
else
    fail "installed daemon did not report listening: $(cat "$tmp/daemon.log")"
    kill -TERM "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" || true
    daemon_pid=
fi

# ---- remove, then purge ---------------------------------------------------------------------
check "dpkg -r removes the package" dpkg -r proxytail
check "binary removed" test ! -e /usr/bin/proxytail
check "conffiles kept after remove" test -f /etc/proxytail/proxytail.toml
check "user kept after remove" bash -c "getent passwd proxytail >/dev/null"
check "dpkg -P purges the package" dpkg -P proxytail
check "/etc/proxytail gone" test ! -e /etc/proxytail
check "/etc/default/proxytail gone" test ! -e /etc/default/proxytail
check "/var/lib/proxytail gone" test ! -e /var/lib/proxytail
check "user proxytail gone" bash -c '! getent passwd proxytail'
check "group proxytail gone" bash -c '! getent group proxytail'
check "statoverride gone" bash -c '! dpkg-statoverride --list /etc/proxytail/users'
check "unit no longer enabled" test ! -e /etc/systemd/system/multi-user.target.wants/proxytail.service

finish
