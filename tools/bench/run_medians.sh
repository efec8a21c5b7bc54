#!/bin/sh
# Builds kheap_bench optimised, runs it RUNS times (default 3) one after the
# other, and prints the cell-by-cell medians of those runs. Each run's full
# output and CSV stay in OUTDIR (default: a fresh directory under /tmp).
#
# usage: tools/bench/run_medians.sh [RUNS [OUTDIR]]
# BAZEL_OUTPUT_BASE, when set, is passed to bazel as --output_base.
set -eu
cd "$(dirname "$0")/../.."

runs=${1:-3}
out=${2:-$(mktemp -d /tmp/kheap_bench.XXXXXX)}
bazel_cmd="bazel${BAZEL_OUTPUT_BASE:+ --output_base=$BAZEL_OUTPUT_BASE}"

$bazel_cmd build -c opt //tools/bench:kheap_bench
bin="$($bazel_cmd info -c opt bazel-bin)/tools/bench/kheap_bench"
mkdir -p "$out"

i=1
while [ "$i" -le "$runs" ]; do
	echo "run $i of $runs, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
	if ! "$bin" --csv="$out/run$i.csv" >"$out/run$i.txt"; then
		echo "run $i failed; see $out/run$i.txt" >&2
		exit 1
	fi
	i=$((i + 1))
done
"$bin" --report "$out"/run*.csv | tee "$out/median.txt"
echo "raw runs and medians: $out" >&2
