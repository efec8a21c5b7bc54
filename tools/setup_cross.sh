#!/usr/bin/env bash
# Installs, idempotently, what the Arm cross builds need: Debian's cross
# compilers, qemu-user to run the tests, the Arm builds of GoogleTest,
# liburcu and Google Benchmark (multiarch, side by side with the native ones)
# and one Concurrency Kit sysroot per Arm target.
#
# CK is the one library that cannot be installed through multiarch: its
# /usr/include/ck_md.h differs per architecture (CK_MD_TSO on amd64,
# CK_MD_RMO on Arm), so installing libck-dev:arm64 would replace the native
# one. The Arm packages are unpacked instead into /opt/kheap-sysroots/<target>,
# whose usr/include the Bazel toolchains in bazel/toolchains/ put ahead of
# /usr/include. Compiling Arm code against the amd64 ck_md.h would silently
# drop barriers that Arm needs, so each sysroot is checked for CK_MD_RMO.
#
# Safe to run again: with everything present it only queries dpkg and returns.
set -euo pipefail

sysroots=/opt/kheap-sysroots

host_packages=(
	g++-aarch64-linux-gnu
	g++-arm-linux-gnueabihf
	gcc-aarch64-linux-gnu
	gcc-arm-linux-gnueabihf
	qemu-user
)

# Debian architecture -> sysroot folder (the name the Bazel toolchain uses).
declare -A sysroot_of=(
	[arm64]=aarch64
	[armhf]=armhf
)
declare -A triplet_of=(
	[arm64]=aarch64-linux-gnu
	[armhf]=arm-linux-gnueabihf
)

# libc6 and libstdc++6 are what the tests run on under qemu-user: Debian's
# multiarch runtime, the one the multiarch libraries were built against.
target_packages=()
for arch in "${!sysroot_of[@]}"; do
	target_packages+=("libbenchmark-dev:$arch" "libgtest-dev:$arch" "liburcu-dev:$arch"
		"libc6:$arch" "libstdc++6:$arch")
done

if [ "$(id -u)" -ne 0 ]; then
	sudo=sudo
else
	sudo=
fi

is_installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

sysroot_complete() {
	local arch=$1
	local root="$sysroots/${sysroot_of[$arch]}"
	[ -f "$root/.ck-version" ] &&
		grep -q '^#define CK_MD_RMO' "$root/usr/include/ck_md.h" 2>/dev/null &&
		[ -e "$root/usr/lib/${triplet_of[$arch]}/libck.so" ]
}

index_refreshed=false
refresh_index() {
	if [ "$index_refreshed" = true ]; then
		return
	fi
	# A single stale mirror index must not stop the install: apt-get install
	# below still fails loudly if a package we need is really unavailable.
	if ! $sudo apt-get update -qq; then
		echo "setup_cross: apt-get update reported errors; trying with the index it has" >&2
	fi
	index_refreshed=true
}

need_index=false
foreign=$(dpkg --print-foreign-architectures)
for arch in "${!sysroot_of[@]}"; do
	if ! grep -qx "$arch" <<<"$foreign"; then
		echo "setup_cross: adding dpkg architecture $arch"
		$sudo dpkg --add-architecture "$arch"
		need_index=true
	fi
done

missing=()
for package in "${host_packages[@]}" "${target_packages[@]}"; do
	if ! is_installed "$package"; then
		missing+=("$package")
	fi
done

if [ "${#missing[@]}" -gt 0 ] || [ "$need_index" = true ]; then
	refresh_index
fi
if [ "${#missing[@]}" -gt 0 ]; then
	echo "setup_cross: installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
		"${missing[@]}"
fi

install_ck_sysroot() {
	local arch=$1
	local root="$sysroots/${sysroot_of[$arch]}"
	local download
	download=$(mktemp -d)
	# apt-get download fetches as the _apt user when it can write the folder.
	chmod 0755 "$download"
	if id _apt >/dev/null 2>&1; then
		chown _apt "$download"
	fi
	(cd "$download" && apt-get download -qq "libck-dev:$arch" "libck0:$arch") || {
		refresh_index
		(cd "$download" && apt-get download -qq "libck-dev:$arch" "libck0:$arch")
	}

	local staging="$root.staging"
	$sudo rm -rf "$staging"
	$sudo mkdir -p "$staging"
	local deb
	for deb in "$download"/*.deb; do
		$sudo dpkg -x "$deb" "$staging"
	done
	$sudo rm -rf "$staging/usr/share"
	if ! grep -q '^#define CK_MD_RMO' "$staging/usr/include/ck_md.h"; then
		echo "setup_cross: libck-dev:$arch does not define CK_MD_RMO; refusing it" >&2
		exit 1
	fi
	dpkg-deb -f "$download"/libck-dev_*.deb Version | $sudo tee "$staging/.ck-version" >/dev/null
	rm -rf "$download"

	$sudo rm -rf "$root"
	$sudo mv "$staging" "$root"
	echo "setup_cross: CK $(cat "$root/.ck-version") for $arch unpacked into $root"
}

for arch in "${!sysroot_of[@]}"; do
	if ! sysroot_complete "$arch"; then
		$sudo mkdir -p "$sysroots"
		install_ck_sysroot "$arch"
	fi
done

echo "setup_cross: cross compilers, qemu-user, Arm libraries and CK sysroots present"
