# shellcheck shell=bash
# Sourced by scripts/test and the scripts/tier-*.sh: which test executables
# drive real components, and how a tier runs them and counts the results.
# Needs only bash and coreutils (it is also sourced inside the trixie root).

# Integration test targets (file names in tests/, globs) that drive real
# components: podman, the registry, containerd, firewalld. They run once per
# tier; every other test executable (unit tests, fake-executable CLI tests)
# runs once, before the tiers.
REAL_TEST_TARGETS=('e2e' 'e2e_*' 'containerd*' 'setup_host_firewalld*')

# Tests (libtest name filters) that need root: a private containerd in a
# mount namespace, firewalld in private namespaces. They say so themselves
# (and fail under CI=true); the rootless tier skips them by name and lists
# them in its summary.
ROOT_ONLY_TESTS=(containerd_pulls_through_the_cache setup_host_against_real_firewalld)

# is_real_target NAME: whether a test target is a real-component one.
is_real_target() {
    local pattern
    for pattern in "${REAL_TEST_TARGETS[@]}"; do
        # shellcheck disable=SC2053 # the pattern is a glob on purpose
        [[ $1 == $pattern ]] && return 0
    done
    return 1
}

# list_test_executables JSON FAST REAL: split the executables of
# `cargo test --no-run --message-format=json` output into two files of
# "name path" lines (unit test executables are named after their crate).
list_test_executables() {
    local json=$1 fast=$2 real=$3 kind name path
    : > "$fast"
    : > "$real"
    # One compiler-artifact line per target; test executables only (not the
    # drcache binary itself, built for the tests with "test":false).
    while IFS=$'\t' read -r kind name path; do
        if [ "$kind" = test ] && is_real_target "$name"; then
            printf '%s %s\n' "$name" "$path" >> "$real"
        else
            printf '%s %s\n' "$name" "$path" >> "$fast"
        fi
    done < <(grep '"profile":{[^}]*"test":true}' "$json" |
             sed -n 's/.*"reason":"compiler-artifact".*"kind":\["\([a-z-]*\)"\].*"name":"\([^"]*\)".*"executable":"\([^"]*\)".*/\1\t\2\t\3/p')
    [ -s "$real" ] || { echo "tier-lib: no real-component test executables found" >&2; return 1; }
}

# run_binaries LIST RESULT [LIBTEST ARGS...]: run each "name path" of LIST
# from the repo root with the libtest arguments, through the command in the
# array TEST_RUNNER if set (e.g. runuser ...), output to stdout; write
# "PASSED FAILED" summed from libtest's result lines to RESULT and the
# tests' own `OPTED OUT, NOT RUN: name: reason` lines to RESULT.skipped; an
# opted-out test is not counted as passed (libtest shows it as ok). An executable
# that fails without a failed test (crash, setup panic) counts as one failure.
# Returns non-zero when anything failed.
run_binaries() {
    local list=$1 result=$2; shift 2
    local passed=0 failed=0 name path log rc p f o lines
    log=$(mktemp)
    : > "$result.skipped"
    while read -r name path; do
        echo "== $name"
        rc=0
        ${TEST_RUNNER[@]+"${TEST_RUNNER[@]}"} "$path" "$@" 2>&1 | tee "$log" || rc=$?
        lines=$(grep -E '^test result: ' "$log" || true)
        grep -E '^OPTED OUT, NOT RUN: ' "$log" | sed 's/^OPTED OUT, NOT RUN: /opted out, not run: /' \
            >> "$result.skipped" || true
        o=$(grep -cE '^OPTED OUT, NOT RUN: ' "$log" || true)
        p=$(sed -n 's/.* \([0-9][0-9]*\) passed;.*/\1/p' <<< "$lines" | paste -sd+ | sed 's/^$/0/')
        f=$(sed -n 's/.* \([0-9][0-9]*\) failed;.*/\1/p' <<< "$lines" | paste -sd+ | sed 's/^$/0/')
        p=$((p - o)) f=$((f))
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
            echo "== $name exited with status $rc without a failed test: counted as a failure"
            f=1
        fi
        passed=$((passed + p)) failed=$((failed + f))
    done < "$list"
    rm -f "$log"
    echo "$passed $failed" > "$result"
    [ "$failed" -eq 0 ]
}

# skip_args: libtest arguments that skip the root-only tests.
skip_args() {
    local t
    for t in "${ROOT_ONLY_TESTS[@]}"; do printf -- '--skip\n%s\n' "$t"; done
}
