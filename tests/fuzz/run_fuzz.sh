#!/usr/bin/env bash
# Builds the heap fuzz harness (tests/fuzz/heap_fuzz.cc) as a libFuzzer
# target with clang, AddressSanitizer and UndefinedBehaviorSanitizer, and
# runs it for a bounded time over a scratch copy of tests/fuzz/corpus/.
#
# Usage: tests/fuzz/run_fuzz.sh [seconds]       (default 60, or $KHEAP_FUZZ_SECONDS)
#        tests/fuzz/run_fuzz.sh --replay FILE... (run the given inputs once)
#
# Exits 0 when the time ran out without a failure. On a crash, leak or hang
# it exits non-zero and prints the reproducer's path and the command that
# replays it; the build directory is then kept. The committed corpus is only
# read: new inputs the fuzzer finds go to the scratch copy.
set -euo pipefail
cd "$(dirname "$0")/../.."

replay=()
seconds=${KHEAP_FUZZ_SECONDS:-60}
if [ "${1:-}" = "--replay" ]; then
	shift
	replay=("$@")
	[ "${#replay[@]}" -gt 0 ] || { echo "run_fuzz: --replay needs input files" >&2; exit 2; }
	for input in "${replay[@]}"; do
		[ -f "$input" ] || { echo "run_fuzz: no such input: $input" >&2; exit 2; }
	done
elif [ $# -gt 0 ]; then
	seconds=$1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/kheap_fuzz.XXXXXX")
keep_work=0
cleanup() {
	if [ "$keep_work" -eq 0 ]; then
		rm -rf "$work"
	fi
}
trap cleanup EXIT

case "$(uname -m)" in
x86_64) arch_define=-DKHEAP_ARCH_X86_64 ;;
aarch64) arch_define=-DKHEAP_ARCH_AARCH64 ;;
*) arch_define= ;;
esac

sanitizers=-fsanitize=address,undefined
common=(-g -O1 -fno-omit-frame-pointer -fno-sanitize-recover=undefined -I. -Iinclude
	$arch_define)

echo "run_fuzz: building in $work"
mkdir -p "$work/obj"
sources=(heap/*.c smp/*.c arch/generic/cpu.c)
for src in "${sources[@]}"; do
	obj="$work/obj/$(echo "$src" | tr / _).o"
	clang -std=c11 -fno-strict-aliasing -Wall -Wextra -Werror "${common[@]}" \
		"$sanitizers" -fsanitize=fuzzer-no-link -c "$src" -o "$obj" &
done
wait
clang++ -std=c++17 -Wall -Wextra -Werror "${common[@]}" "$sanitizers" -fsanitize=fuzzer \
	tests/fuzz/heap_fuzz.cc "$work"/obj/*.o -lck -lurcu-bp -lurcu-common -pthread \
	-o "$work/heap_fuzz"

# Leaks are checked per input; halt_on_error keeps the first report readable.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

if [ "${#replay[@]}" -gt 0 ]; then
	"$work/heap_fuzz" "${replay[@]}"
	exit
fi

mkdir -p "$work/corpus" "$work/artifacts"
cp tests/fuzz/corpus/* "$work/corpus/"
echo "run_fuzz: fuzzing for ${seconds}s"
status=0
"$work/heap_fuzz" -max_total_time="$seconds" -max_len=2048 -timeout=20 -rss_limit_mb=2048 \
	-print_final_stats=1 -artifact_prefix="$work/artifacts/" "$work/corpus" \
	>"$work/fuzz.log" 2>&1 || status=$?
grep -E '(INITED|DONE) |stat::number_of_executed_units|stat::new_units_added' \
	"$work/fuzz.log" || true
if [ "$status" -ne 0 ]; then
	keep_work=1
	tail -n 60 "$work/fuzz.log"
	echo "run_fuzz: FAILED (exit $status); full log: $work/fuzz.log"
	for artifact in "$work"/artifacts/*; do
		[ -e "$artifact" ] || continue
		echo "run_fuzz: reproducer: $artifact"
		echo "run_fuzz: replay with: tests/fuzz/run_fuzz.sh --replay $artifact"
	done
	exit 1
fi
echo "run_fuzz: no failure in ${seconds}s"
