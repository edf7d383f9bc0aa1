#!/usr/bin/env bash
# The reverse proxy tests: Debian's nginx, Apache httpd and Caddy, each run as a private instance on
# 127.0.0.1 (own config, pid and logs in a temporary directory; never the system service) with the
# shipped snippet, in front of a real daemon, through the token + WebSocket flow. Installs the three
# packages when missing (root; CI is root), then runs the Rust tests tests/pkg_{nginx,apache,caddy}.rs,
# which fail in CI (CI set) if a front end is absent.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -x /usr/sbin/nginx ] || missing+=(nginx)
[ -x /usr/sbin/apache2 ] || missing+=(apache2)
[ -x /usr/bin/caddy ] || missing+=(caddy)
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing ${missing[*]}: install them (apt-get install ${missing[*]}) or run as root" >&2
        exit 1
    fi
    # Only the binaries are needed: keep the installs from starting their system services (port 80).
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        trap 'rm -f "$policy"' EXIT
    fi
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
        --no-install-recommends "${missing[@]}" >/dev/null
fi

cargo test --test pkg_nginx --test pkg_apache --test pkg_caddy
