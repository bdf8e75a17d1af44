# Shared functions for the image scripts: logging, progress, checks.
# Sourced by scripts/build-image, scripts/run-qemu, scripts/bench-image and tests/image/run.

PINAS_ROOT=${PINAS_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
OUT=${PINAS_OUT:-$PINAS_ROOT/out}
LOG=${LOG:-/dev/null}

die() { printf 'error: %s\n' "$*" >&2; [ "$LOG" = /dev/null ] || printf 'error: %s\n' "$*" >>"$LOG"; exit 1; }
log() { printf '%s\n' "$*" >>"$LOG"; }
note() { printf '%s\n' "$*"; log "$*"; }

# step N TOTAL TEXT: one line per build stage on the terminal, with elapsed seconds.
STEP_START=$(date +%s)
step() {
    local now; now=$(date +%s)
    printf '[%s/%s] %-48s (+%ss)\n' "$1" "$2" "$3" "$((now - STEP_START))"
    log "==== [$1/$2] $3"
}

# run CMD...: run a command with its output sent to the build log; on failure show the
# log's tail so the reason is visible without opening the file.
run() {
    log "+ $*"
    local rc=0
    "$@" >>"$LOG" 2>&1 || rc=$?
    if [ "$rc" != 0 ]; then
        printf 'error: command failed (exit %s): %s\n' "$rc" "$*" >&2
        if [ "$LOG" != /dev/null ]; then
            printf -- '--- last lines of %s ---\n' "$LOG" >&2
            tail -n 25 "$LOG" >&2
        fi
        exit "$rc"
    fi
}

need_root() {
    [ "$(id -u)" = 0 ] || die "$1 needs root (loop devices, binfmt_misc, chroot for arm64 maintainer scripts); run it with sudo"
}

# hash_inputs FILE|DIR...: a stable content hash of files and directory trees (names, modes,
# link targets, contents), used as cache keys under out/cache.
hash_inputs() {
    local p
    for p in "$@"; do
        if [ -d "$p" ]; then
            (cd "$p" && find . -print0 | LC_ALL=C sort -z | while IFS= read -r -d '' f; do
                if [ -L "$f" ]; then printf 'L %s %s\n' "$f" "$(readlink "$f")"
                elif [ -d "$f" ]; then printf 'D %s %s\n' "$f" "$(stat -c %a "$f")"
                else printf 'F %s %s %s\n' "$f" "$(stat -c %a "$f")" "$(sha256sum <"$f" | cut -c1-64)"; fi
            done)
        elif [ -e "$p" ]; then
            printf 'F %s %s\n' "$(basename "$p")" "$(sha256sum <"$p" | cut -c1-64)"
        else
            printf 'M %s\n' "$p"
        fi
    done | sha256sum | cut -c1-16
}

# read_meta FILE: load KEY=VALUE lines of a board meta file into BOARD_<KEY> variables
# without executing it (board folders are data only).
read_meta() {
    local key val
    while IFS= read -r line || [ -n "$line" ]; do
        case "$line" in ''|'#'*) continue ;; esac
        key=${line%%=*}; val=${line#*=}
        case "$key" in *[!A-Z0-9_]*|'') die "$1: bad line: $line" ;; esac
        val=${val#\"}; val=${val%\"}
        printf -v "BOARD_$key" '%s' "$val"
    done <"$1"
}

# sd_size_pow2 FILE MIN_BYTES: grow a disk image copy to the next power of two that is at
# least MIN_BYTES (the raspi3b machine refuses other SD sizes).
sd_size_pow2() {
    local size min=$2 p=1
    size=$(stat -c %s "$1")
    [ "$size" -gt "$min" ] && min=$size
    while [ "$p" -lt "$min" ]; do p=$((p * 2)); done
    truncate -s "$p" "$1"
}
