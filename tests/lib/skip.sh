# The skip protocol of the shell suites (docs/testing.md). Sourced by a suite after it
# sets SUITE (the name its summary line starts with, e.g. SUITE=e2e-nas):
#
#   suite_require_root WHY       skip the whole suite unless root
#   suite_require_tools T...     skip the whole suite unless every tool is installed
#   suite_skip REASON            skip the whole suite: prints the summary and exits 77
#   check_skip NAME REASON       one check cannot run here: counted as skipped
#   suite_summary PASSED FAILED  prints "<suite>: P passed, F failed, S skipped";
#                                returns 1 when anything failed
#
# Every skip prints "SKIP <suite>[::<check>]: <reason>" and appends the same line, without
# "SKIP ", to $PINAS_TEST_SKIPS when set. Under CI=true (root, every tool installed by
# scripts/setup --test) a skip is a failure: the suite exits 1, a check counts as failed.

SKIPPED=0
SKIP_FAILED=0

_skip_record() { # what reason
    echo "SKIP $1: $2"
    if [ -n "${PINAS_TEST_SKIPS:-}" ]; then
        echo "$1: $2" >>"$PINAS_TEST_SKIPS"
    fi
}

suite_skip() {
    if [ "${CI:-}" = true ]; then
        echo "FAIL $SUITE: skipped under CI=true, where a skip is a failure: $1"
        echo "$SUITE: 0 passed, 1 failed, 0 skipped"
        exit 1
    fi
    _skip_record "$SUITE" "$1"
    echo "$SUITE: 0 passed, 0 failed, 1 skipped"
    exit 77
}

suite_require_root() {
    [ "$(id -u)" -eq 0 ] || suite_skip "needs root: $1"
}

# Looks in PATH, then /usr/sbin and /sbin (where Debian puts smbd, losetup, dnsmasq).
have_tool() {
    command -v "$1" >/dev/null || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]
}

suite_require_tools() {
    local missing=() t
    for t in "$@"; do have_tool "$t" || missing+=("$t"); done
    [ ${#missing[@]} -eq 0 ] ||
        suite_skip "${missing[*]} not installed (scripts/setup --test installs every test tool)"
}

check_skip() {
    if [ "${CI:-}" = true ]; then
        echo "FAIL - $1: skipped under CI=true, where a skip is a failure: $2"
        SKIP_FAILED=$((SKIP_FAILED + 1))
    else
        _skip_record "$SUITE::$1" "$2"
        SKIPPED=$((SKIPPED + 1))
    fi
}

suite_summary() {
    local failed=$(($2 + SKIP_FAILED))
    echo "$SUITE: $1 passed, $failed failed, $SKIPPED skipped"
    [ "$failed" -eq 0 ]
}
