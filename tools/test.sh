#!/usr/bin/env bash
# Sets up the machine and runs every kheap test, then prints one line:
# "N passed, M failed", counted from the GoogleTest cases plus the checks
# below that are not GoogleTest binaries. Exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."

bash tools/setup.sh

bazel test //... --test_output=errors
bazel_status=$?

extra=()
run_check() {
	local name=$1
	shift
	echo "check: $name"
	if "$@"; then
		extra+=("$name=pass")
	else
		extra+=("$name=fail")
	fi
}

run_check install bash tools/check_install.sh

python3 tools/count_tests.py "$(bazel info bazel-testlogs)" "${extra[@]}"
count_status=$?

if [ "$bazel_status" -ne 0 ] || [ "$count_status" -ne 0 ]; then
	exit 1
fi
