#!/usr/bin/env bash
# DNS keeps answering while the web role is killed and restarted: `pinas dns` and
# `pinas web` run as separate processes (as their systemd units do); the web role is
# killed with SIGKILL and dig must keep getting answers from the DNS role.
#   tests/dns/web-killed.sh [path/to/pinas]     (default target/debug/pinas, built if missing)
# Needs dig (dnsutils), curl and python3; runs unprivileged on loopback high ports. Skips
# (exit 77) without them, fails under CI=true. Ends with "dns-web-killed: N passed, ...".
set -euo pipefail
cd "$(dirname "$0")/../.."
PINAS=${1:-target/debug/pinas}
SUITE=dns-web-killed
source tests/lib/skip.sh
suite_require_tools dig curl python3
[ -x "$PINAS" ] || cargo build -p pinas >/dev/null

W=$(mktemp -d /tmp/pinas-dns-web-killed.XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$W"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
DNS_PORT=$(port); WEB_PORT=$(port)
cat > "$W/config.toml" <<CONF
[paths]
state_dir = "$W"
run_dir = "$W/run"
shares_root = "$W/shares"
disks_dir = "$W/disks"
[web]
bind_address = "127.0.0.1:$WEB_PORT"
https_address = ""
static_dir = "$W/www"
[log]
level = "warn"
[smb]
enabled = false
[dns]
listen = "127.0.0.1:$DNS_PORT"
upstreams = []
CONF
export PINAS_CONFIG_PATH="$W/config.toml"
"$PINAS" dns 2>"$W/dns.log" & PIDS+=($!); DNS_PID=$!
start_web() { "$PINAS" web 2>>"$W/web.log" & PIDS+=($!); WEB_PID=$!; }
start_web
for _ in $(seq 1 100); do [ -S "$W/run/dns.sock" ] && curl -s -o /dev/null "http://127.0.0.1:$WEB_PORT/" && break; sleep 0.1; done
curl -sf --unix-socket "$W/run/dns.sock" -H 'content-type: application/json' -H 'x-pinas-role: admin' \
    -X POST http://pinas/records -d '{"name":"printer.home","type":"A","value":"192.168.1.20"}' >/dev/null

ask() { dig +short +tries=1 +time=1 @127.0.0.1 -p "$DNS_PORT" printer.home A; }
fail() {
    echo "FAIL: $*"; echo "--- dns.log"; cat "$W/dns.log"; echo "--- web.log"; tail -20 "$W/web.log"
    suite_summary 0 1 || exit 1
}

[ "$(ask)" = "192.168.1.20" ] || fail "no answer before the web role was killed"
curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$WEB_PORT/" | grep -qv 000 || fail "web role did not start"
kill -9 "$WEB_PID"
wait "$WEB_PID" 2>/dev/null || true
ok=0
for i in $(seq 1 20); do
    [ "$(ask)" = "192.168.1.20" ] && ok=$((ok + 1))
    sleep 0.1
done
[ "$ok" = 20 ] || fail "only $ok of 20 answers while the web role was down"
curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$WEB_PORT/" && fail "web role still answering after SIGKILL"
start_web
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$WEB_PORT/" && break; sleep 0.1; done
[ "$(ask)" = "192.168.1.20" ] || fail "no answer after the web role came back"
kill -0 "$DNS_PID" || fail "the DNS role died"
echo "PASS: 20 of 20 DNS answers while the web role was killed; still answering after it restarted"
suite_summary 1 0
