#!/usr/bin/env bash
# The companion with a NAS and a client, each in its own network namespace on one
# bridge (10.77.0.0/24, all inside namespaces this suite makes and removes):
#   companion 10.77.0.11: `pinas dns` (port 53, the switch record nas.home),
#                         `pinas companion`, `pinas web` (port 8080)
#   nas       10.77.0.10: a health endpoint (python3 http.server) and UDP listeners on
#                         ports 9 and 7 that record every datagram
#   client    10.77.0.20: dig
# It checks, against these real peers: the NAS's link going down moves the switch after
# 3 missed heartbeats with reason `heartbeat`, seen by dig from the client; a wake sends
# the byte-exact magic packet to the NAS's broadcast address on ports 9 and 7 and the
# state goes waking -> online (and the switch back); going-offline is acknowledged only
# once dig answers the companion's address, and twice means one switch, two acks;
# coming-online switches back; no or a wrong token gets 401 and then 429; a snapshot over
# 1 MiB gets 413; an invalid MAC gets 422.
#   tests/companion/netns.sh [path/to/pinas]   (default target/debug/pinas, built if missing)
# The inbox: at coming-online its ready files reach the NAS's rsync daemon with matching
# BLAKE2b and leave the companion before the switch moves, while a file still being
# written stays; a flush cut by the NAS's link going down loses and duplicates nothing and
# leaves no partial file under the real name, and the next flush completes.
# Needs root (namespaces), ip, tc, dig, curl, python3, rsync, b2sum. Ends with "companion-netns: N passed, ...".
set -uo pipefail
cd "$(dirname "$0")/../.."
PINAS=${1:-target/debug/pinas}
SUITE=companion-netns
source tests/lib/skip.sh
suite_require_root "network namespaces and a bridge"
suite_require_tools ip tc dig curl python3 rsync b2sum
[ -x "$PINAS" ] || cargo build -p pinas >/dev/null || exit 1
PINAS=$(realpath "$PINAS")

ID=$$
NS_BR=pcbr$ID NS_C=pcc$ID NS_N=pcn$ID NS_X=pcx$ID
W=$(mktemp -d /tmp/pinas-companion-netns.XXXXXX)
chmod 755 "$W"
PIDS=()
cleanup() {
    # Their children too (the rsync daemon forks one per connection).
    local kids=()
    for p in "${PIDS[@]}"; do kids+=($(ps -o pid= --ppid "$p" 2>/dev/null)); done
    PIDS+=("${kids[@]}")
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    sleep 0.3
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
    for n in $NS_C $NS_N $NS_X $NS_BR; do ip netns del "$n" 2>/dev/null; done
    rm -rf "$W"
}
trap cleanup EXIT
# (Background jobs use `ip netns exec` itself, so that $! is the program's pid.)
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# ---- the network
for n in $NS_BR $NS_C $NS_N $NS_X; do ip netns add "$n" || exit 1; done
nsx $NS_BR ip link add br0 type bridge
nsx $NS_BR ip link set br0 up
i=0
for pair in "$NS_C 10.77.0.11" "$NS_N 10.77.0.10" "$NS_X 10.77.0.20"; do
    set -- $pair
    i=$((i + 1))
    nsx $NS_BR ip link add "p$i" type veth peer name eth0 netns "$1"
    nsx $NS_BR ip link set "p$i" master br0 up
    nsx "$1" ip addr add "$2/24" brd 10.77.0.255 dev eth0
    nsx "$1" ip link set eth0 up
    nsx "$1" ip link set lo up
done

MAC=02:77:00:00:00:10
cat >"$W/config.toml" <<CONF
[paths]
state_dir = "$W/state"
run_dir = "$W/run"
shares_root = "$W/shares"
disks_dir = "$W/disks"
[web]
bind_address = "10.77.0.11:8080"
https_address = ""
static_dir = "$W/www"
[log]
level = "info"
[smb]
enabled = false
[dns]
listen = "10.77.0.11:53"
upstreams = []
[dns.switch]
name = "nas.home"
nas_addresses = ["10.77.0.10"]
companion_addresses = ["10.77.0.11"]
ttl_secs = 1
[companion]
nas_name = "bignas"
nas_mac = "$MAC"
nas_ip = "10.77.0.10"
health_url = "http://10.77.0.10:8000/health"
heartbeat_interval_secs = 1
misses_before_takeover = 3
wake_timeout_secs = 30
health_timeout_ms = 500
inbox_target = "rsync://10.77.0.10/inbox/from-companion"
inbox_dir = "$W/inbox"
inbox_settle_secs = 1
inbox_interval_secs = 3600
CONF
mkdir -p "$W/inbox" "$W/nasinbox"
cat >"$W/rsyncd.conf" <<CONF
use chroot = no
timeout = 60
pid file = $W/rsyncd.pid
[inbox]
path = $W/nasinbox
read only = false
uid = root
gid = root
CONF
export PINAS_CONFIG_PATH=$W/config.toml
mkdir -p "$W/www" "$W/nas"
echo ok >"$W/nas/health"

ip netns exec $NS_C "$PINAS" dns >"$W/dns.log" 2>&1 & PIDS+=($!)
ip netns exec $NS_C "$PINAS" companion >"$W/companion.log" 2>&1 & PIDS+=($!)
ip netns exec $NS_C "$PINAS" web >"$W/web.log" 2>&1 & PIDS+=($!)
ip netns exec $NS_N rsync --daemon --no-detach --config="$W/rsyncd.conf" --address=10.77.0.10 >"$W/rsyncd.log" 2>&1 & PIDS+=($!)
HEALTH_PID=
start_health() {
    ip netns exec $NS_N python3 -m http.server 8000 --bind 10.77.0.10 --directory "$W/nas" >/dev/null 2>&1 &
    HEALTH_PID=$!; PIDS+=($HEALTH_PID)
}
stop_health() { kill "$HEALTH_PID" 2>/dev/null; wait "$HEALTH_PID" 2>/dev/null; }
for port in 9 7; do
    ip netns exec $NS_N python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
while True:
    d, a = s.recvfrom(4096)
    with open(sys.argv[2], "a") as f:
        f.write("%s %s\n" % (a[0], d.hex()))
' "$port" "$W/udp$port" >/dev/null 2>&1 & PIDS+=($!)
done

SOCK=$W/run/companion.sock
admin() { # METHOD PATH [JSON]: the companion's socket as an administrator
    curl -s --unix-socket "$SOCK" -H 'x-pinas-role: admin' -H 'x-pinas-user: admin' \
        -H 'content-type: application/json' -X "$1" "http://companion$2" ${3:+-d "$3"}
}
dnsapi() { curl -s --unix-socket "$W/run/dns.sock" -H 'x-pinas-role: admin' "http://dns$1"; }
json() { python3 -c 'import json,sys; v=json.load(sys.stdin)
for k in sys.argv[1].split("."): v = v[k] if v is not None else None
print(v if not isinstance(v,(dict,list)) else json.dumps(v))' "$1"; }
ask() { nsx $NS_X dig +short +tries=1 +time=1 @10.77.0.11 nas.home A; }
state() { admin GET /status | json state; }
# from the NAS, through the web role, as `pinas agent` does
nas_post() { # PATH TOKEN [curl args]: prints the HTTP status, the body to $W/body
    local path=$1 token=$2; shift 2
    nsx $NS_N curl -s -o "$W/body" -w '%{http_code}' -X POST ${token:+-H "authorization: Bearer $token"} \
        -H 'content-type: application/json' "$@" "http://10.77.0.11:8080$path"
}
wait_for() { # SECONDS CMD...: until CMD succeeds
    local t=$1; shift
    local end=$((SECONDS + t))
    until "$@"; do [ $SECONDS -ge $end ] && return 1; sleep 0.2; done
}

PASSED=0 FAILED=0
pass() { echo "PASS - $*"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL - $*"; FAILED=$((FAILED + 1)); }
check() { local name=$1; shift; if "$@"; then pass "$name"; else fail "$name"; fi; }

wait_for 30 test -S "$SOCK" && wait_for 30 test -S "$W/run/dns.sock" &&
    wait_for 30 nsx $NS_N curl -s -o /dev/null http://10.77.0.11:8080/api/system/health || {
    echo "the companion's processes did not start"; tail -20 "$W"/*.log
    suite_summary 0 1; exit 1
}
TOKEN=$(admin POST /pairing/token | json token)
[ ${#TOKEN} = 64 ] || { echo "no pairing token"; suite_summary 0 1; exit 1; }

# ---- the NAS is up; then its link goes down
start_health
is_state() { [ "$(state)" = "$1" ]; }
answers() { [ "$(ask)" = "$1" ]; }
check "the NAS answering its health URL is online, nas.home is the NAS" \
    eval 'wait_for 20 is_state online && wait_for 10 answers 10.77.0.10'
nsx $NS_N ip link set eth0 down
down=$SECONDS
if wait_for 20 answers 10.77.0.11; then
    took=$((SECONDS - down))
    reason=$(dnsapi /switch | json reason)
    why=$(admin GET /status | json reason)
    if [ "$reason" = heartbeat ] && [ "$(state)" = unreachable ] && [[ $why == *"3 heartbeats missed"* ]] && [ $took -ge 2 ]; then
        pass "NAS link down: after 3 missed heartbeats ($took s) dig answers the companion, reason heartbeat"
    else
        fail "NAS link down: switch reason '$reason', state $(state) ($why), after $took s"
    fi
else
    fail "NAS link down: dig never answered the companion's address ($(ask))"
fi

# ---- wake: the NAS's link is back but it "sleeps" (no health endpoint)
stop_health
nsx $NS_N ip link set eth0 up
: >"$W/udp9"; : >"$W/udp7"
code=$(admin POST /wake | json task_id)
want="ff ff ff ff ff ff"; for _ in $(seq 16); do want="$want ${MAC//:/ }"; done
want=${want// /}
got_packet() { grep -q . "$W/udp9" && grep -q . "$W/udp7"; }
if [ -n "$code" ] && wait_for 10 got_packet; then
    p9=$(head -1 "$W/udp9"); p7=$(head -1 "$W/udp7")
    if [ "${p9#* }" = "$want" ] && [ "${p7#* }" = "$want" ] && [ "${p9%% *}" = 10.77.0.11 ]; then
        pass "wake: the magic packet arrived byte-exact on ports 9 and 7 (${#want} hex digits)"
    else
        fail "wake: packets differ: 9: $p9 / 7: $p7 / want $want"
    fi
else
    fail "wake: no magic packet on the NAS (task '$code')"
fi
now=$(state)
check "wake: the state is waking while the NAS does not answer ($now)" test "$now" = waking
start_health
check "wake: the NAS answering makes it online and nas.home the NAS again" \
    eval 'wait_for 20 is_state online && wait_for 10 answers 10.77.0.10'
hist=$(admin GET '/history?days=1' | python3 -c 'import json,sys; print(" ".join(r["state"] for r in json.load(sys.stdin)))')
check "the history holds each transition: $hist" test "$hist" = "online unreachable waking online"

# ---- handshake from the NAS through the web role
code=$(nas_post /api/companion/nas-going-offline "")
check "going-offline without a token: 401 ($code)" test "$code" = 401
changed0=$(dnsapi /switch | json changed_at_ms)
code=$(nas_post /api/companion/nas-going-offline "$TOKEN")
after=$(ask)
check "going-offline acked ($code) only once dig answers the companion ($after)" \
    test "$code" = 200 -a "$after" = 10.77.0.11 -a "$(json acknowledged <"$W/body")" = True
changed1=$(dnsapi /switch | json changed_at_ms)
code=$(nas_post /api/nas-going-offline "$TOKEN")
changed2=$(dnsapi /switch | json changed_at_ms)
check "going-offline twice (the second on the old path): two acks, one switch" \
    test "$code" = 200 -a "$changed1" != "$changed0" -a "$changed2" = "$changed1" -a "$(json switched <"$W/body")" = False
check "the state is going_offline" is_state going_offline
# The inbox fills while the NAS sleeps: two files that rest, one still being written.
mkdir -p "$W/inbox/sub"
head -c 300000 /dev/urandom >"$W/inbox/a.txt"
head -c 2000000 /dev/urandom >"$W/inbox/sub/b.bin"
sums=$(cd "$W/inbox" && b2sum a.txt sub/b.bin)
python3 -c 'import sys, time
with open(sys.argv[1], "ab") as f:
    for _ in range(40):
        f.write(b"x" * 1000); f.flush(); time.sleep(0.25)' "$W/inbox/writing.log" & WRITER=$!
sleep 1.5
code=$(nas_post /api/nas-coming-online "$TOKEN")
after=$(ask)
check "coming-online acked ($code) once dig answers the NAS ($after)" test "$code" = 200 -a "$after" = 10.77.0.10
moved=$(json inbox.moved_files <"$W/body")
nas_sums=$(cd "$W/nasinbox/from-companion" 2>/dev/null && b2sum a.txt sub/b.bin 2>/dev/null)
check "coming-online flushed the inbox first: $moved files on the NAS with the same BLAKE2b" \
    test "$moved" = 2 -a "$nas_sums" = "$sums"
check "the flushed files are gone from the companion" test ! -e "$W/inbox/a.txt" -a ! -e "$W/inbox/sub/b.bin"
check "a file still being written stayed in the inbox, not on the NAS" \
    test -e "$W/inbox/writing.log" -a ! -e "$W/nasinbox/from-companion/writing.log"
kill $WRITER 2>/dev/null; wait $WRITER 2>/dev/null
check "coming-online then the heartbeat: online" wait_for 10 is_state online

# ---- a flush cut by the NAS's link going down, then completed
rm -f "$W/inbox/writing.log"
head -c 12000000 /dev/urandom >"$W/inbox/big.bin"
big_sum=$(b2sum <"$W/inbox/big.bin")
touch -d '-5 seconds' "$W/inbox/big.bin"
nsx $NS_C tc qdisc add dev eth0 root tbf rate 8mbit burst 32kbit latency 400ms || fail "cannot slow the link down with tc tbf"
admin POST /inbox/flush >"$W/cut.json" & FLUSH=$!
sleep 3
nsx $NS_N ip link set eth0 down
wait $FLUSH
cut_code=$(json error.code <"$W/cut.json")
nsx $NS_N ip link set eth0 up
nsx $NS_C tc qdisc del dev eth0 root
partial_named=$(test -e "$W/nasinbox/from-companion/big.bin" && echo yes || echo no)
failures=$(admin GET /inbox | json consecutive_failures)
check "a flush cut mid-way failed ($cut_code, $failures failure), kept the file, left nothing under its name" \
    test "$cut_code" = inbox_flush_failed -a -e "$W/inbox/big.bin" -a "$partial_named" = no -a "$failures" = 1
out=$(admin POST /inbox/flush)
copies=$(find "$W/nasinbox" -name 'big.bin*' -not -path '*/.rsync-partial/*' | wc -l)
check "the next flush completes: one copy with the same BLAKE2b, gone from the companion ($out)" \
    test "$(json moved_files <<<"$out")" = 1 -a "$(b2sum <"$W/nasinbox/from-companion/big.bin")" = "$big_sum" -a ! -e "$W/inbox/big.bin" -a "$copies" = 1
# A file of the same name, size and time already on the NAS but with other content:
# rsync's quick check skips it, the checksum pass finds it different and sends it.
head -c 50000 /dev/urandom >"$W/inbox/same.bin"
head -c 50000 /dev/urandom >"$W/nasinbox/from-companion/same.bin"
touch -d '-5 seconds' "$W/inbox/same.bin"
touch -r "$W/inbox/same.bin" "$W/nasinbox/from-companion/same.bin"
same_sum=$(b2sum <"$W/inbox/same.bin")
out=$(admin POST /inbox/flush)
check "a look-alike already on the NAS is replaced after the checksum pass, then deleted here ($out)" \
    test "$(json moved_files <<<"$out")" = 1 -a "$(b2sum <"$W/nasinbox/from-companion/same.bin")" = "$same_sum" -a ! -e "$W/inbox/same.bin"
check "the inbox status: nothing pending, no failures" \
    test "$(admin GET /inbox | json pending_files)" = 0 -a "$(admin GET /inbox | json consecutive_failures)" = 0

python3 -c 'import sys; sys.stdout.write("{\"schema_version\":1,\"hostname\":\"bignas\",\"pad\":\"" + "x" * (1 << 20) + "\"}")' >"$W/big.json"
code=$(nas_post /api/companion/snapshot "$TOKEN" --data-binary @"$W/big.json")
check "a snapshot over 1 MiB: 413 ($code)" test "$code" = 413
code=$(nas_post /api/companion/snapshot "$TOKEN" -d '{"schema_version":1,"hostname":"bignas","shares":[{"name":"media"}]}')
check "a snapshot: stored ($code)" test "$code" = 200 -a "$(admin GET /snapshot | json snapshot.hostname)" = bignas

# ---- `pinas agent` on the NAS, as its unit runs it at shutdown and at boot
printf '%s\n' "$TOKEN" >"$W/agent-token"; chmod 600 "$W/agent-token"
printf 'companion_url = "http://10.77.0.11:8080"\ntoken_file = "%s"\ntimeout_secs = 5\n' "$W/agent-token" >"$W/agent.toml"
if nsx $NS_N "$PINAS" agent --config "$W/agent.toml" going-offline >"$W/agent.log" 2>&1; then
    after=$(ask)
    check "pinas agent going-offline: acked, dig answers the companion ($after), snapshot of this host" \
        test "$after" = 10.77.0.11 -a "$(admin GET /snapshot | json snapshot.hostname)" = "$(hostname)"
else
    fail "pinas agent going-offline failed: $(tail -3 "$W/agent.log")"
fi
if nsx $NS_N "$PINAS" agent --config "$W/agent.toml" coming-online >>"$W/agent.log" 2>&1; then
    check "pinas agent coming-online: acked, dig answers the NAS" answers 10.77.0.10
else
    fail "pinas agent coming-online failed: $(tail -3 "$W/agent.log")"
fi
# A companion that accepts the connection and never answers: the shutdown waits the
# timeout (5 s per call: snapshot, then going-offline), no longer.
ip netns exec $NS_N python3 -c 'import socket, time
s = socket.socket(); s.bind(("10.77.0.10", 8099)); s.listen(8); c = []
while True: c.append(s.accept())' >/dev/null 2>&1 & PIDS+=($!)
sleep 0.5
printf 'companion_url = "http://10.77.0.10:8099"\ntoken_file = "%s"\ntimeout_secs = 2\n' "$W/agent-token" >"$W/stuck.toml"
start=$SECONDS
nsx $NS_N "$PINAS" agent --config "$W/stuck.toml" going-offline >"$W/stuck.log" 2>&1
rc=$?
took=$((SECONDS - start))
check "pinas agent against a companion that never answers gives up in $took s (exit $rc)" \
    test $rc = 1 -a $took -le 6

codes=""
for _ in 1 2 3 4 5 6; do codes="$codes $(nas_post /api/companion/nas-coming-online wrongtoken)"; done
# Five failures a minute per client (the token-less call above was one), then 429.
limited() { [[ $codes =~ ^(\ 401){1,5}(\ 429)+$ ]]; }
check "a wrong token: 401, then 429 ($codes)" limited

bad=$(admin GET /settings | python3 -c 'import json,sys; v=json.load(sys.stdin); v["nas_mac"]="02:77:00:00:00"; print(json.dumps(v))')
out=$(admin PUT /settings "$bad")
check "an invalid MAC: 422 invalid_mac, nothing saved" \
    test "$(echo "$out" | json error.code)" = invalid_mac -a "$(admin GET /settings | json nas_mac)" = "$MAC"

if [ $FAILED -gt 0 ]; then
    for f in dns companion web; do echo "--- $f.log"; tail -15 "$W/$f.log"; done
fi
suite_summary $PASSED $FAILED
