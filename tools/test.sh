#!/usr/bin/env bash
# Sets up the machine and runs every kheap test, then prints one line:
# "N passed, M failed", counted from the GoogleTest cases of every
# configuration run here, plus the checks below that are not GoogleTest
# binaries. Exits non-zero on any failure.
#
# Configurations: the native suite; the concurrency suites again under
# ThreadSanitizer; every suite built for ARMv8-A (aarch64) and ARMv7-A
# (armhf) and run under qemu-user (tests tagged native-only excepted); the
# tests again under AddressSanitizer and UndefinedBehaviorSanitizer. Checks:
# the install, a smoke run of the allocator benchmark, 30 s of libFuzzer, the wait-queue model in spin, and a short
# heapstress soak under ASan (docs/RELIABILITY.md).
set -uo pipefail
cd "$(dirname "$0")/.."

bash tools/setup.sh

status=0
testlogs=()

run_suite() {
	local label=$1
	shift
	echo "suite: $label"
	if ! bazel test "$@"; then
		status=1
	fi
	testlogs+=("$(bazel info "${@:1:$#-1}" bazel-testlogs 2>/dev/null)")
}

# bazel info takes the configuration flags but not the target patterns; the
# last argument of each suite is its single target pattern.
run_suite native //...
run_suite tsan --config=tsan //tests:concurrency
run_suite aarch64 --config=aarch64 //...
run_suite armv7 --config=armv7 //...
run_suite asan --config=asan //tests/...
run_suite ubsan --config=ubsan //tests/...

checks=()
run_check() {
	local name=$1
	shift
	echo "check: $name"
	if "$@"; then
		checks+=("$name=pass")
	else
		checks+=("$name=fail")
	fi
}

run_check install bash tools/check_install.sh
run_check benchmark-smoke bazel run //tools/bench:kheap_bench -- --smoke
run_check fuzz bash tests/fuzz/run_fuzz.sh 30
run_check wait-queue-model bash tests/model/run_spin.sh
# A short soak: heapstress under AddressSanitizer, every workload, fixed seed.
# (docs/RELIABILITY.md has the long form.)
run_check heapstress-asan-soak bazel run --config=asan //tools:heapstress -- \
	--duration 5 --seed 20261125 --quiet

if ! python3 tools/count_tests.py "${testlogs[@]}" "${checks[@]}"; then
	status=1
fi
exit "$status"
