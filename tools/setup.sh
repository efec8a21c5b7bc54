#!/usr/bin/env bash
# Installs, idempotently, every Debian package kheap's build, tests,
# benchmarks and install check need. Safe to run again: packages already
# present are left alone and the package index is refreshed only when
# something is missing.
set -euo pipefail

# Cross compilers, qemu-user and Arm libraries for --config=aarch64/armv7.
bash "$(dirname "$0")/setup_cross.sh"

packages=(
	bazel-bootstrap
	bazel-rules-java
	build-essential
	clang
	libbenchmark-dev
	libck-dev
	libclang-rt-14-dev
	libgoogle-perftools-dev
	libgtest-dev
	libjemalloc-dev
	libmimalloc-dev
	liburcu-dev
	pkg-config
	python3
	spin
)

missing=()
for package in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$package")
	fi
done

if [ "${#missing[@]}" -eq 0 ]; then
	echo "setup: all ${#packages[@]} packages already installed"
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	sudo=sudo
else
	sudo=
fi

echo "setup: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "setup: done"
