#!/usr/bin/env bash
# Builds kheap with Bazel and installs it under PREFIX for programs built
# outside Bazel:
#   PREFIX/include/kheap/*.h, PREFIX/include/zephyr/**.h   public headers
#   PREFIX/lib/libkheap.a                                  every kheap object, PIC
#   PREFIX/lib/libkheap.so.N, PREFIX/lib/libkheap.so       shared library and dev link
#   PREFIX/lib/libkheap_malloc.so                          malloc replacement (LD_PRELOAD)
#   PREFIX/lib/pkgconfig/kheap.pc                          cflags and libs
#
# Invariants: running it again over the same PREFIX gives the same tree (files
# are overwritten, never appended to); nothing outside those paths is touched;
# the .pc file names the system libraries the Bazel build links, so a static
# link (pkg-config --static) gets them without the script repeating them.
#
# Environment:
#   BAZEL        the Bazel command, with startup options (default: bazel),
#                e.g. BAZEL="bazel --output_base=/tmp/bazel_me"
#   BAZEL_FLAGS  extra build options (default: none), e.g. "--config=opt"
set -euo pipefail

readonly KHEAP_VERSION="0.1.0"

die() {
	echo "install.sh: error: $*" >&2
	exit 1
}

usage() {
	echo "usage: tools/install.sh PREFIX" >&2
	echo "  builds kheap with Bazel and installs headers, libkheap.a, libkheap.so," >&2
	echo "  libkheap_malloc.so and lib/pkgconfig/kheap.pc under PREFIX" >&2
	exit 2
}

[[ $# -eq 1 && -n "$1" ]] || usage
case "$1" in
-h | --help) usage ;;
esac

for tool in install readelf ln mktemp; do
	command -v "$tool" >/dev/null || die "'$tool' not found on PATH"
done

read -r -a bazel_cmd <<<"${BAZEL:-bazel}"
read -r -a bazel_flags <<<"${BAZEL_FLAGS:-}"
command -v "${bazel_cmd[0]}" >/dev/null || die "'${bazel_cmd[0]}' not found (set BAZEL to the Bazel command)"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[[ -f "$repo_root/WORKSPACE" ]] || die "no WORKSPACE at $repo_root; run the script from a kheap checkout"

mkdir -p "$1" || die "cannot create prefix directory '$1'"
prefix="$(cd "$1" && pwd)"

cd "$repo_root"
echo "install.sh: building //:libkheap.so, //:kheap_archive and //malloc:libkheap_malloc.so"
"${bazel_cmd[@]}" build "${bazel_flags[@]}" //:libkheap.so //:kheap_archive //malloc:libkheap_malloc.so ||
	die "bazel build failed (see the output above)"
bazel_bin="$("${bazel_cmd[@]}" info "${bazel_flags[@]}" bazel-bin 2>/dev/null)" ||
	die "'bazel info bazel-bin' failed"

built_so="$bazel_bin/libkheap.so"
built_a="$bazel_bin/libkheap.a"
built_flags="$bazel_bin/libkheap.a.linkflags"
built_malloc="$bazel_bin/malloc/libkheap_malloc.so"
for f in "$built_so" "$built_a" "$built_flags" "$built_malloc"; do
	[[ -f "$f" ]] || die "expected build output '$f' is missing"
done

soname="$(readelf -d "$built_so" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')"
[[ "$soname" == libkheap.so.* ]] ||
	die "$built_so has SONAME '${soname:-<none>}', expected libkheap.so.<major>"

installed=()

install_file() {
	local mode="$1" src="$2" dst="$3"
	install -D -m "$mode" "$src" "$dst" || die "cannot install '$src' to '$dst'"
	installed+=("$dst")
}

while IFS= read -r -d '' header; do
	install_file 0644 "$repo_root/include/$header" "$prefix/include/$header"
done < <(cd "$repo_root/include" && find kheap zephyr -name '*.h' -print0 | sort -z)

install_file 0644 "$built_a" "$prefix/lib/libkheap.a"
install_file 0755 "$built_so" "$prefix/lib/$soname"
ln -sfn "$soname" "$prefix/lib/libkheap.so" || die "cannot link $prefix/lib/libkheap.so"
installed+=("$prefix/lib/libkheap.so -> $soname")
install_file 0755 "$built_malloc" "$prefix/lib/libkheap_malloc.so"

# The system libraries the Bazel link uses, in link order, then -pthread.
private_libs=""
while IFS= read -r flag; do
	[[ -n "$flag" ]] || continue
	case " $private_libs " in
	*" $flag "*) ;;
	*) private_libs="${private_libs:+$private_libs }$flag" ;;
	esac
done <"$built_flags"
case " $private_libs " in
*" -pthread "*) ;;
*) private_libs="${private_libs:+$private_libs }-pthread" ;;
esac

pc_dir="$prefix/lib/pkgconfig"
mkdir -p "$pc_dir" || die "cannot create '$pc_dir'"
pc_tmp="$(mktemp "$pc_dir/.kheap.pc.XXXXXX")"
trap 'rm -f "$pc_tmp"' EXIT
cat >"$pc_tmp" <<EOF
prefix=$prefix
includedir=\${prefix}/include
libdir=\${prefix}/lib

Name: kheap
Description: Multicore heap service with Zephyr's k_heap and sys_heap API
Version: $KHEAP_VERSION
Cflags: -I\${includedir}
Libs: -L\${libdir} -lkheap
Libs.private: $private_libs
EOF
chmod 0644 "$pc_tmp"
mv -f "$pc_tmp" "$pc_dir/kheap.pc" || die "cannot write '$pc_dir/kheap.pc'"
installed+=("$pc_dir/kheap.pc")

echo "install.sh: installed kheap $KHEAP_VERSION into $prefix:"
printf '  %s\n' "${installed[@]}"
