#!/usr/bin/env bash
# `pinas dns` runs as an unprivileged user, as its systemd unit runs it: its own uid and
# gid, no supplementary groups, no capabilities, config.toml from $CREDENTIALS_DIRECTORY,
# and only <state_dir>/dns and the socket folder writable. The state folder above it and
# the shared pinas.db belong to root. dig must get answers, a blocklist must download,
# and the role's state must survive a restart, all in files it owns under dns/.
#   tests/dns/unprivileged.sh [path/to/pinas]     (default target/debug/pinas, built if missing)
# Needs root (to switch to the unprivileged user), setpriv (util-linux), dig, curl and
# python3; skips (exit 77) otherwise, fails under CI=true (docs/testing.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
PINAS=${1:-target/debug/pinas}
SUITE=dns-unprivileged
source tests/lib/skip.sh
suite_require_root "to run pinas dns as another user"
suite_require_tools setpriv dig curl python3
[ -x "$PINAS" ] || cargo build -p pinas >/dev/null

UID_DNS=65534 # nobody: owns nothing on this machine but what the test gives it
W=$(mktemp -d /tmp/pinas-dns-unpriv.XXXXXX)
PID=
trap '[ -n "$PID" ] && kill -9 "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT
chmod 755 "$W"
install -m 755 "$PINAS" "$W/pinas"
mkdir -p "$W/state/dns" "$W/run" "$W/creds"
chmod 755 "$W/state"
# The shared database of the other roles: root's, unreadable for the DNS user.
install -m 600 /dev/null "$W/state/pinas.db"
chown "$UID_DNS:$UID_DNS" "$W/state/dns" "$W/run"
echo "0.0.0.0 tracker.test" > "$W/list.txt"
chmod 644 "$W/list.txt"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
DNS_PORT=$(port)
cat > "$W/creds/config.toml" <<CONF
[paths]
state_dir = "$W/state"
run_dir = "$W/run"
shares_root = "$W/shares"
disks_dir = "$W/disks"
[log]
level = "warn"
[dns]
listen = "127.0.0.1:$DNS_PORT"
upstreams = []
CONF
chown -R "$UID_DNS:$UID_DNS" "$W/creds"
chmod 500 "$W/creds"; chmod 400 "$W/creds/config.toml"

start_dns() {
    env -i PATH=/usr/bin:/bin CREDENTIALS_DIRECTORY="$W/creds" \
        setpriv --reuid="$UID_DNS" --regid="$UID_DNS" --clear-groups --inh-caps=-all \
        --no-new-privs "$W/pinas" dns 2>>"$W/dns.log" &
    PID=$!
    for _ in $(seq 1 100); do [ -S "$W/run/dns.sock" ] && break; sleep 0.1; done
}
fail() { echo "FAIL: $*"; echo "--- dns.log"; cat "$W/dns.log"; suite_summary 0 1 || exit 1; }
api() { curl -sf --unix-socket "$W/run/dns.sock" -H 'content-type: application/json' -H 'x-pinas-role: admin' "$@"; }
ask() { dig +short +tries=1 +time=2 @127.0.0.1 -p "$DNS_PORT" "$1" A; }

start_dns
[ -S "$W/run/dns.sock" ] || fail "no control socket"
grep -q "^Uid:[[:space:]]*$UID_DNS" "/proc/$PID/status" || fail "not running as uid $UID_DNS"
grep -q "^CapEff:[[:space:]]*0*$" "/proc/$PID/status" || fail "has capabilities: $(grep CapEff "/proc/$PID/status")"
api -X POST http://pinas/records -d '{"name":"printer.home","type":"A","value":"192.168.1.20"}' >/dev/null \
    || fail "cannot add a record"
api -X POST http://pinas/blocklists -d "{\"url\":\"$W/list.txt\"}" >/dev/null || fail "cannot add a blocklist"
[ "$(ask printer.home)" = "192.168.1.20" ] || fail "no answer for a local record"
[ "$(ask tracker.test)" = "0.0.0.0" ] || fail "the blocklist does not block"

# Everything it wrote is its own, private, and under dns/.
for f in "$W/state/dns" "$W/state/dns/dns.db" "$W/state/dns/pihole-token" "$W/state/dns/lists"; do
    [ -e "$f" ] || fail "$f is missing"
    [ "$(stat -c %u "$f")" = "$UID_DNS" ] || fail "$f belongs to $(stat -c %U "$f")"
done
[ "$(stat -c %a "$W/state/dns")" = 700 ] || fail "dns/ is $(stat -c %a "$W/state/dns"), not 700"
[ "$(stat -c %a "$W/state/dns/dns.db")" = 600 ] || fail "dns.db is not 600"
[ "$(stat -c %a "$W/state/dns/pihole-token")" = 600 ] || fail "pihole-token is not 600"
[ "$(stat -c %s "$W/state/pinas.db")" = 0 ] || fail "the shared database was written"
extra=$(find "$W/state" -mindepth 1 -maxdepth 1 ! -name dns ! -name pinas.db)
[ -z "$extra" ] || fail "wrote outside dns/: $extra"

# A restart keeps the records (they live in its own database).
kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
# The socket of the stopped process stays behind; start_dns waits for the new one.
rm -f "$W/run/dns.sock"
start_dns
[ -S "$W/run/dns.sock" ] || fail "no control socket after a restart"
answer=
for _ in $(seq 1 10); do
    answer=$(ask printer.home || true)
    [ "$answer" = "192.168.1.20" ] && break
    sleep 0.3
done
[ "$answer" = "192.168.1.20" ] || fail "the record was lost across a restart"
kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
echo "PASS: pinas dns as uid $UID_DNS without capabilities answers, blocks and keeps its state in dns/ (0700)"
suite_summary 1 0
