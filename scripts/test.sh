#!/bin/bash
# Build and test ulpo the way CI does:
#   1. the normal build (-Werror), every suite;
#   2. an ASan+UBSan build with clang (also -Dfuzz=true), every suite but vm;
#   3. a ThreadSanitizer build running what crosses threads: the engine suite, the
#      64-socket async stress test and the async record-layer tests;
#   4. fuzz_tls_rx and fuzz_nvme_pdu from the ASan build, FUZZ_TIME seconds each, on their
#      seed corpora.
# Ends with one line per test and, last, "N passed, N failed, N skipped" (meson's OK,
# EXPECTEDFAIL / FAIL, TIMEOUT, ERROR, UNEXPECTEDPASS / SKIP; a build that fails and the
# fuzz run count as one test each). Exits non-zero if anything failed.
# Env: FUZZ_TIME (default 60), MESON_TEST_ARGS (extra `meson test` arguments).
set -eu

cd "$(dirname "$0")/.."
FUZZ_TIME=${FUZZ_TIME:-60}
MESON_TEST_ARGS=${MESON_TEST_ARGS:-}
RESULTS=$(mktemp)
trap 'rm -f "$RESULTS"' EXIT
start=$(date +%s)

# One result: phase, test name, result word, seconds.
record() {
	printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RESULTS"
}

banner() {
	echo
	echo "==== $* ===="
}

# meson setup, or reconfigure a build folder left by an earlier run.
setup() {
	local dir=$1
	shift
	if [ -d "$dir/meson-private" ]; then
		meson setup --reconfigure "$dir" "$@"
	else
		meson setup "$dir" "$@"
	fi
}

# Append the results of the last `meson test` in $2 (its testlog.json) under phase $1.
collect() {
	python3 - "$1" "$2/meson-logs/testlog.json" "$RESULTS" <<'PY'
import json, sys
phase, log, out = sys.argv[1:4]
with open(log) as f, open(out, "a") as o:
    for line in f:
        if line.strip():
            t = json.loads(line)
            o.write("%s\t%s\t%s\t%.1f\n" % (phase, t["name"], t["result"], t.get("duration", 0)))
PY
}

# Build every target of folder $1 but those only the vm suite uses: its guest programs
# are linked -static, which ASan cannot be.
compile_but_vm() {
	local targets
	targets=$(python3 - "$1" <<'PY'
import json, os, subprocess, sys
d = sys.argv[1]
intro = lambda what: json.loads(subprocess.check_output(["meson", "introspect", d, what]))
vm, other = set(), set()
for t in intro("--tests"):
    (vm if all(s.endswith(":vm") for s in t["suite"]) else other).update(t["depends"])
for t in intro("--targets"):
    if t["id"] not in vm - other:
        print(" ".join(os.path.relpath(f, d) for f in t["filename"]))
PY
) || return 1
	ninja -C "$1" $targets
}

# Build folder $2 with command $3 and run its tests as phase $1; extra arguments go to
# `meson test`.
build_and_test() {
	local phase=$1 dir=$2 build=$3 t0
	shift 3
	t0=$(date +%s)
	if ! $build "$dir"; then
		record "$phase" build FAIL $(($(date +%s) - t0))
		return
	fi
	rm -f "$dir/meson-logs/testlog.json"
	# meson test exits non-zero when a test fails: the results say which.
	meson test -C "$dir" --no-rebuild --print-errorlogs $MESON_TEST_ARGS "$@" || true
	if [ -f "$dir/meson-logs/testlog.json" ]; then
		collect "$phase" "$dir"
	else
		record "$phase" "meson test" ERROR $(($(date +%s) - t0))
	fi
}

banner "0/4 GnuTLS with kTLS, the peer for unmodified programs (built once, then cached)"
t0=$(date +%s)
if bash tests/interop/build_gnutls_ktls.sh >/dev/null; then
	record setup gnutls-ktls OK $(($(date +%s) - t0))
else
	record setup gnutls-ktls FAIL $(($(date +%s) - t0))
fi

banner "1/4 normal build (-Werror), all suites"
if setup build-test -Dwerror=true; then
	build_and_test normal build-test "meson compile -C"
else
	record normal setup FAIL 0
fi

banner "2/4 ASan+UBSan build (clang), all suites but vm"
# UBSan only prints by default: make undefined behaviour fail the test.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
# Sanitizer runs are slower: give each test three times its timeout.
if CC=clang setup build-san -Db_sanitize=address,undefined -Db_lundef=false \
	-Dfuzz=true; then
	build_and_test asan+ubsan build-san compile_but_vm --no-suite vm --no-suite preload-interop \
		--timeout-multiplier 3
else
	record asan+ubsan setup FAIL 0
fi

banner "3/4 ThreadSanitizer build (clang): engine, async stress, async record layer, parallel decrypt, NVMe/TCP, whole-connection offload"
TSAN_TESTS="engine engine-env engine-env-bad stress async tls-async rx-ahead ddp ddp-async target toe toe-async"
compile_tsan() {
	ninja -C "$1" tests/engine/test_engine tests/tls/test_stress tests/tls/test_async \
		tests/tls/test_tls tests/tls/test_rx_ahead tests/nvme/test_ddp tests/nvme/test_target \
		tests/toe/test_toe
}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}
if CC=clang setup build-tsan -Db_sanitize=thread -Db_lundef=false; then
	build_and_test tsan build-tsan compile_tsan --timeout-multiplier 5 $TSAN_TESTS
else
	record tsan setup FAIL 0
fi

banner "4/4 fuzz_tls_rx and fuzz_nvme_pdu for ${FUZZ_TIME}s each"
for name in tls_rx nvme_pdu; do
	fuzzer=build-san/fuzz/fuzz_$name
	if [ -x "$fuzzer" ]; then
		# New inputs go to a folder of the build, so the seed corpus in git stays as it is.
		mkdir -p build-san/fuzz-corpus/$name build-san/fuzz-artifacts
		t0=$(date +%s)
		if "$fuzzer" -max_total_time="$FUZZ_TIME" -timeout=10 -rss_limit_mb=4096 \
			-print_final_stats=1 -artifact_prefix=build-san/fuzz-artifacts/ \
			build-san/fuzz-corpus/$name fuzz/corpus/$name >build-san/fuzz-$name.log 2>&1; then
			res=OK
			grep -E '^#[0-9]+' build-san/fuzz-$name.log | tail -n 1 || true
			grep -E '^stat::(number_of_executed_units|average_exec_per_sec)' \
				build-san/fuzz-$name.log || true
		else
			res=FAIL
			# The crash report and the input that caused it.
			grep -v -E '^#[0-9]+' build-san/fuzz-$name.log | tail -n 60
			ls -l build-san/fuzz-artifacts/
		fi
		record fuzz $name "$res" $(($(date +%s) - t0))
	else
		echo "no $fuzzer: the sanitizer build failed"
		record fuzz $name FAIL 0
	fi
done

banner "summary ($(($(date +%s) - start))s)"
python3 - "$RESULTS" <<'PY'
import sys
counts = {"passed": 0, "failed": 0, "skipped": 0}
kind = {"OK": "passed", "EXPECTEDFAIL": "passed", "SKIP": "skipped"}
for line in open(sys.argv[1]):
    phase, name, result, secs = line.rstrip("\n").split("\t")
    counts[kind.get(result, "failed")] += 1
    print("%-8s %-11s %-55s %6ss" % (result, phase, name, secs))
print("%(passed)d passed, %(failed)d failed, %(skipped)d skipped" % counts)
sys.exit(1 if counts["failed"] else 0)
PY
