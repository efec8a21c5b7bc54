#!/usr/bin/env bash
# Model-checks the wait-queue protocol (smp/waitq.pml) with spin, exhaustively:
#   1. safety: assertions (memory conservation in every state, a clean
#      quiescent end) and invalid end states (deadlock, or a waiter asleep
#      forever);
#   2. the LTL property no_lost_wakeup, searched for acceptance cycles.
# Exits non-zero on any error, or if a search was cut short (depth, memory),
# and then prints the counterexample trail and keeps the work directory.
# Takes about a minute and up to ~1.3 GiB of memory on one core.
set -euo pipefail
cd "$(dirname "$0")/../.."

command -v spin >/dev/null || { echo "run_spin: spin is not installed (apt-get install spin)" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/kheap_spin.XXXXXX")
keep_work=0
cleanup() {
	if [ "$keep_work" -eq 0 ]; then
		rm -rf "$work"
	fi
}
trap cleanup EXIT

# The trail file is written beside the model, so the model is copied.
cp smp/waitq.pml "$work/"
cd "$work"
spin -a waitq.pml >spin.log

# COLLAPSE compresses state vectors losslessly; MEMLIM stops a runaway search
# with an error instead of swapping; -m sets the depth limit well above the
# model's deepest run (about 500 steps with the claim).
pan_flags=(-O2 -w -DCOLLAPSE -DMEMLIM=3072)
gcc "${pan_flags[@]}" -DNOCLAIM -DSAFETY -o pan_safety pan.c
gcc "${pan_flags[@]}" -o pan_ltl pan.c

check() {
	local name=$1
	shift
	local log="$work/$name.log"
	local started=$SECONDS
	"$@" >"$log" 2>&1 || true
	grep -E "errors:|states, stored" "$log" | sed "s/^/run_spin: $name: /"
	if ! grep -q "errors: 0" "$log" || grep -qE "max search depth too small|out of memory" "$log"; then
		keep_work=1
		echo "run_spin: $name FAILED after $((SECONDS - started))s; log: $log"
		if ls "$work"/*.trail >/dev/null 2>&1; then
			spin -t -p -g -l waitq.pml >"$work/$name.trail.txt" 2>&1 || true
			tail -n 60 "$work/$name.trail.txt"
			echo "run_spin: full counterexample: $work/$name.trail.txt"
		fi
		exit 1
	fi
	echo "run_spin: $name passed in $((SECONDS - started))s"
}

check safety ./pan_safety -m100000
check no_lost_wakeup ./pan_ltl -a -m100000 -N no_lost_wakeup
