#!/usr/bin/env bash
# The inbox over SSH: the companion (10.79.0.11) and a NAS (10.79.0.10) in two network
# namespaces on one veth pair, made and removed here. The NAS runs a real sshd (its own
# host key, the companion's public key in a user's authorized_keys, no password
# login); the companion's inbox target is `user@10.79.0.10:/path`. It checks that:
#   - the companion made its own key pair at start, the private key 0600;
#   - a flush sends the ready files over SSH: on the NAS with the same BLAKE2b, gone from
#     the companion only after; the NAS's host key is pinned in the companion's
#     known_hosts on that first connection;
#   - a NAS that answers with another host key is refused: the flush fails, the files
#     stay on the companion and nothing reaches the NAS;
#   - the private key is in no API answer.
#   tests/companion/ssh.sh [path/to/pinas]   (default target/debug/pinas, built if missing)
# Needs root (namespaces), ip, curl, python3, rsync, b2sum, ssh, ssh-keygen and sshd
# (openssh-server). Ends with "companion-ssh: N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$0")/../.."
PINAS=${1:-target/debug/pinas}
SUITE=companion-ssh
source tests/lib/skip.sh
suite_require_root "network namespaces, and sshd logging a user in"
suite_require_tools ip curl python3 rsync b2sum ssh ssh-keygen sshd
[ -x "$PINAS" ] || cargo build -p pinas >/dev/null || exit 1
PINAS=$(realpath "$PINAS")
SSHD=$(command -v sshd || echo /usr/sbin/sshd)

ID=$$
NS_C=psc$ID NS_N=psn$ID
W=$(mktemp -d /tmp/pinas-companion-ssh.XXXXXX)
chmod 755 "$W"
NAS_USER=pinasinbox$ID
NAS_USER=${NAS_USER:0:31}
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    sleep 0.3
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
    for n in $NS_C $NS_N; do ip netns del "$n" 2>/dev/null; done
    userdel "$NAS_USER" 2>/dev/null
    rm -rf "$W"
}
trap cleanup EXIT
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# ---- the link
for n in $NS_C $NS_N; do ip netns add "$n" || exit 1; done
nsx $NS_C ip link add eth0 type veth peer name eth0 netns $NS_N
nsx $NS_C ip addr add 10.79.0.11/24 dev eth0
nsx $NS_N ip addr add 10.79.0.10/24 dev eth0
for n in $NS_C $NS_N; do nsx $n ip link set lo up; nsx $n ip link set eth0 up; done

# ---- the NAS: a user whose home holds the inbox, and sshd with its own host key
mkdir -p "$W/nas"
useradd --home-dir "$W/nas/home" --create-home --shell /bin/sh "$NAS_USER" || {
    echo "cannot add the NAS's user $NAS_USER"; suite_summary 0 1; exit 1
}
# No password, but not locked either: sshd refuses a locked account even to a key.
usermod -p '*' "$NAS_USER"
install -d -o "$NAS_USER" -m 0700 "$W/nas/home/.ssh"
install -d -o "$NAS_USER" -m 0755 "$W/nas/home/inbox"
ssh-keygen -q -t ed25519 -N '' -f "$W/nas/host_key" || exit 1
ssh-keygen -q -t ed25519 -N '' -f "$W/nas/other_host_key" || exit 1
cat >"$W/nas/sshd_config" <<CONF
ListenAddress 10.79.0.10:22
HostKey $W/nas/HOSTKEY
PidFile none
AuthorizedKeysFile $W/nas/home/.ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
UsePAM no
StrictModes no
AllowUsers $NAS_USER
CONF
mkdir -p /run/sshd 2>/dev/null # sshd's privilege separation folder
SSHD_PID=
start_sshd() { # HOST_KEY_FILE
    sed "s|$W/nas/HOSTKEY|$1|" "$W/nas/sshd_config" >"$W/nas/sshd_config.now"
    ip netns exec $NS_N "$SSHD" -D -e -f "$W/nas/sshd_config.now" >>"$W/sshd.log" 2>&1 &
    SSHD_PID=$!; PIDS+=($SSHD_PID)
}
stop_sshd() { kill "$SSHD_PID" 2>/dev/null; wait "$SSHD_PID" 2>/dev/null; }

# ---- the companion
cat >"$W/config.toml" <<CONF
[paths]
state_dir = "$W/state"
run_dir = "$W/run"
shares_root = "$W/shares"
disks_dir = "$W/disks"
[log]
level = "info"
[smb]
enabled = false
[dns]
listen = "10.79.0.11:53"
upstreams = []
[companion]
nas_name = "bignas"
nas_ip = "10.79.0.10"
inbox_target = "$NAS_USER@10.79.0.10:$W/nas/home/inbox/from-companion"
inbox_dir = "$W/inbox"
inbox_settle_secs = 1
inbox_interval_secs = 3600
CONF
mkdir -p "$W/inbox"
export PINAS_CONFIG_PATH=$W/config.toml
ip netns exec $NS_C "$PINAS" companion >"$W/companion.log" 2>&1 & PIDS+=($!)
SOCK=$W/run/companion.sock
admin() { # METHOD PATH: the companion's socket as an administrator
    curl -s --unix-socket "$SOCK" -H 'x-pinas-role: admin' -H 'x-pinas-user: admin' \
        -H 'content-type: application/json' -X "$1" "http://companion$2"
}
json() { python3 -c 'import json,sys; v=json.load(sys.stdin)
for k in sys.argv[1].split("."): v = v[k] if v is not None else None
print(v if not isinstance(v,(dict,list)) else json.dumps(v))' "$1"; }
wait_for() { # SECONDS CMD...
    local end=$((SECONDS + $1)); shift
    until "$@"; do [ $SECONDS -ge $end ] && return 1; sleep 0.2; done
}
PASSED=0 FAILED=0
pass() { echo "PASS - $*"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL - $*"; FAILED=$((FAILED + 1)); }
check() { local name=$1; shift; if "$@"; then pass "$name"; else fail "$name"; fi; }

wait_for 30 test -S "$SOCK" || {
    echo "pinas companion did not start"; tail -20 "$W/companion.log"; suite_summary 0 1; exit 1
}
KEY=$W/state/companion/ssh/id_ed25519
KH=$W/state/companion/ssh/known_hosts
mode=$(stat -c %a "$KEY" 2>/dev/null)
check "the companion made its SSH key pair at start, the private key 0600 ($mode)" \
    test "$mode" = 600 -a -s "$KEY.pub"
pub=$(admin GET /inbox | json ssh_public_key)
check "the inbox status shows the public key to put in authorized_keys" test "$pub" = "$(cat "$KEY.pub")"
install -o "$NAS_USER" -m 0600 "$KEY.pub" "$W/nas/home/.ssh/authorized_keys"
start_sshd "$W/nas/host_key"
nsx $NS_N python3 -c 'import socket,sys,time
for _ in range(100):
    try: socket.create_connection(("10.79.0.10", 22), 0.2).close(); sys.exit(0)
    except OSError: time.sleep(0.1)
sys.exit(1)' || { echo "sshd did not start"; cat "$W/sshd.log"; suite_summary 0 1; exit 1; }

# ---- a flush over SSH
mkdir -p "$W/inbox/sub"
head -c 300000 /dev/urandom >"$W/inbox/a.txt"
head -c 3000000 /dev/urandom >"$W/inbox/sub/b.bin"
touch -d '-5 seconds' "$W/inbox/a.txt" "$W/inbox/sub/b.bin"
sums=$(cd "$W/inbox" && b2sum a.txt sub/b.bin)
out=$(admin POST /inbox/flush)
nas_sums=$(cd "$W/nas/home/inbox/from-companion" 2>/dev/null && b2sum a.txt sub/b.bin 2>/dev/null)
check "a flush over SSH: 2 files on the NAS with the same BLAKE2b ($out)" \
    test "$(json moved_files <<<"$out")" = 2 -a "$nas_sums" = "$sums"
check "the flushed files are gone from the companion" test ! -e "$W/inbox/a.txt" -a ! -e "$W/inbox/sub/b.bin"
owner=$(stat -c %U "$W/nas/home/inbox/from-companion/a.txt" 2>/dev/null)
check "they were written by the NAS's user over SSH ($owner)" test "$owner" = "$NAS_USER"
host_pub=$(cut -d' ' -f1,2 "$W/nas/host_key.pub")
check "the NAS's host key is pinned in the companion's known_hosts" grep -qF "$host_pub" "$KH"

# ---- the NAS answers with another host key: refused, nothing moves
stop_sshd
start_sshd "$W/nas/other_host_key"
sleep 1
head -c 100000 /dev/urandom >"$W/inbox/c.bin"
touch -d '-5 seconds' "$W/inbox/c.bin"
out=$(admin POST /inbox/flush)
err=$(json error.message <<<"$out")
check "another host key: the flush fails, saying so (${err:0:160})" \
    eval '[ "$(json error.code <<<"$out")" = inbox_flush_failed ] && [[ $err == *"Host key verification failed"* || $err == *"HOST IDENTIFICATION HAS CHANGED"* ]]'
check "the file stayed on the companion and did not reach the NAS" \
    test -e "$W/inbox/c.bin" -a ! -e "$W/nas/home/inbox/from-companion/c.bin"
stop_sshd
start_sshd "$W/nas/host_key"
sleep 1
out=$(admin POST /inbox/flush)
check "the pinned host key back: the file moves ($out)" \
    test "$(json moved_files <<<"$out")" = 1 -a ! -e "$W/inbox/c.bin" -a -e "$W/nas/home/inbox/from-companion/c.bin"

answers=$(admin GET /inbox; admin GET /settings; admin GET /status)
priv=$(sed -n 2p "$KEY")
check "no API answer holds the private key" test -n "$priv" -a "${answers/$priv/}" = "$answers"
if grep -qF "$priv" "$W/companion.log"; then fail "the private key is in the log"; else pass "the private key is not in the log"; fi

if [ $FAILED -gt 0 ]; then
    echo "--- companion.log"; tail -15 "$W/companion.log"
    echo "--- sshd.log"; tail -15 "$W/sshd.log"
fi
suite_summary $PASSED $FAILED
