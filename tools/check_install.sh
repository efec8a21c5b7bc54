#!/usr/bin/env bash
# Proves that an installed kheap works for a program built outside Bazel.
#
# Installs into a fresh temporary prefix with tools/install.sh (twice, to show
# the install is repeatable), checks the installed files (SONAME, no build-tree
# run paths, every exported symbol also in libkheap.a), then builds one plain C
# program against it with pkg-config three ways and runs each:
#   shared   cc app.c $(pkg-config --cflags --libs kheap), run via LD_LIBRARY_PATH
#   archive  libkheap.a and its private libraries linked statically, libc shared
#   static   cc -static app.c $(pkg-config --static --cflags --libs kheap)
# Prints "install check: ok" and exits 0 only if every step passed.
#
# Environment: BAZEL and BAZEL_FLAGS are passed on to tools/install.sh;
# CC picks the compiler (default: cc); KEEP_TMP=1 keeps the temporary folder.
set -euo pipefail

fail() {
	echo "install check: FAILED: $*" >&2
	exit 1
}

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cc="${CC:-cc}"
for tool in "$cc" pkg-config readelf nm; do
	command -v "$tool" >/dev/null || fail "'$tool' not found on PATH"
done

work="$(mktemp -d "${TMPDIR:-/tmp}/kheap-install-check.XXXXXX")"
if [[ "${KEEP_TMP:-0}" == 1 ]]; then
	echo "install check: keeping $work"
else
	trap 'rm -rf "$work"' EXIT
fi
prefix="$work/prefix"

"$repo_root/tools/install.sh" "$prefix" || fail "tools/install.sh $prefix failed"
"$repo_root/tools/install.sh" "$prefix" >/dev/null || fail "a second tools/install.sh into the same prefix failed"

libdir="$prefix/lib"
for f in include/kheap/k_heap.h include/zephyr/kernel.h include/zephyr/sys/sys_heap.h \
	lib/libkheap.a lib/libkheap.so lib/pkgconfig/kheap.pc; do
	[[ -e "$prefix/$f" ]] || fail "$prefix/$f was not installed"
done
[[ -L "$libdir/libkheap.so" ]] || fail "lib/libkheap.so is not a symlink"

soname="$(readelf -d "$libdir/libkheap.so" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')"
[[ -n "$soname" && -f "$libdir/$soname" && ! -L "$libdir/$soname" ]] ||
	fail "libkheap.so has SONAME '${soname:-<none>}', which is not the installed library file"
if readelf -d "$libdir/libkheap.so" | grep -Eq '\((RPATH|RUNPATH)\)'; then
	fail "libkheap.so carries a run path: $(readelf -d "$libdir/libkheap.so" | grep -E 'RPATH|RUNPATH')"
fi

# The archive must hold everything the shared library exports, apart from the
# symbols the linker itself adds to every shared object.
nm -D --defined-only "$libdir/libkheap.so" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' |
	grep -vx -e __bss_start -e _edata -e _end -e _init -e _fini | sort -u >"$work/so.syms"
nm --defined-only "$libdir/libkheap.a" 2>/dev/null | awk 'NF == 3 && $2 ~ /^[TDBRVW]$/ {print $3}' |
	sort -u >"$work/a.syms"
grep -qx k_heap_alloc "$work/so.syms" || fail "libkheap.so does not export k_heap_alloc"
missing="$(comm -23 "$work/so.syms" "$work/a.syms")"
[[ -z "$missing" ]] || fail "libkheap.a lacks symbols libkheap.so exports: $(echo "$missing" | tr '\n' ' ')"

export PKG_CONFIG_PATH="$libdir/pkgconfig"
pkg-config --exists kheap || fail "pkg-config cannot find kheap in $PKG_CONFIG_PATH"
echo "install check: pkg-config kheap: $(pkg-config --cflags --libs kheap)"
echo "install check: pkg-config --static kheap: $(pkg-config --static --libs kheap)"

cat >"$work/app.c" <<'EOF'
/* A program written for Zephyr's heap API, built against an installed kheap. */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zephyr/kernel.h>

#define EXPECT(cond)                                                                               \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "app: %s:%d: expected %s\n", __FILE__, __LINE__, #cond);   \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

K_HEAP_DEFINE(app_heap, 64 * 1024);

static int double_frees_seen;

static void count_double_free(enum kheap_fault fault, const void *heap, const void *ptr,
			      const char *detail)
{
	(void)heap;
	(void)ptr;
	(void)detail;
	if (fault == KHEAP_FAULT_DOUBLE_FREE) {
		__atomic_fetch_add(&double_frees_seen, 1, __ATOMIC_SEQ_CST);
	}
}

static void *free_when_waited_on(void *block)
{
	while (k_heap_waiter_count(&app_heap) == 0) {
		sched_yield();
	}
	k_heap_free(&app_heap, block);
	return NULL;
}

static void check_k_heap(void)
{
	struct sys_memory_stats stats;
	pthread_t freer;
	void *big, *p;

	p = k_heap_alloc(&app_heap, 100, K_NO_WAIT);
	EXPECT(p != NULL);
	memset(p, 0xa5, 100);
	EXPECT(k_heap_usable_size(&app_heap, p) >= 100);
	EXPECT(k_heap_runtime_stats_get(&app_heap, &stats) == 0);
	EXPECT(stats.allocated_bytes >= 100);
	k_heap_free(&app_heap, p);
	EXPECT(k_heap_alloc(&app_heap, 0, K_NO_WAIT) == NULL);

	big = k_heap_alloc(&app_heap, 40 * 1024, K_NO_WAIT);
	EXPECT(big != NULL);
	EXPECT(k_heap_alloc(&app_heap, 40 * 1024, K_MSEC(20)) == NULL);
	EXPECT(pthread_create(&freer, NULL, free_when_waited_on, big) == 0);
	p = k_heap_alloc(&app_heap, 40 * 1024, K_SECONDS(10));
	EXPECT(p != NULL);
	EXPECT(pthread_join(freer, NULL) == 0);
	k_heap_free(&app_heap, p);

	EXPECT(k_heap_runtime_stats_get(&app_heap, &stats) == 0);
	EXPECT(stats.allocated_bytes == 0);
	EXPECT(sys_heap_validate(&app_heap.heap));
}

static void check_system_heap(void)
{
	char *s = k_malloc(32);
	int *zeros = k_calloc(16, sizeof(int));
	void *aligned = k_aligned_alloc(256, 100);

	EXPECT(s != NULL && zeros != NULL && aligned != NULL);
	EXPECT(((uintptr_t)aligned & 255) == 0);
	for (int i = 0; i < 16; i++) {
		EXPECT(zeros[i] == 0);
	}
	strcpy(s, "kheap");
	s = k_realloc(s, 4096);
	EXPECT(s != NULL && strcmp(s, "kheap") == 0);
	k_free(s);
	k_free(zeros);
	k_free(aligned);
	k_free(NULL);
}

static void check_sys_heap(void)
{
	static char region[8192] __attribute__((aligned(8)));
	struct sys_heap heap;
	struct sys_memory_stats stats;
	kheap_fault_handler_t previous;
	void *a, *b, *left, *middle, *right;

	EXPECT(sys_heap_init(&heap, region, sizeof(region)) == 0);
	a = sys_heap_alloc(&heap, 200);
	b = sys_heap_aligned_alloc(&heap, 64, 100);
	EXPECT(a != NULL && b != NULL);
	EXPECT(((uintptr_t)b & 63) == 0);
	EXPECT(sys_heap_usable_size(&heap, a) >= 200);
	a = sys_heap_realloc(&heap, a, 1000);
	EXPECT(a != NULL);
	EXPECT(sys_heap_runtime_stats_get(&heap, &stats) == 0);
	EXPECT(stats.allocated_bytes >= 1100 && stats.cached_bytes == 0);
	EXPECT(sys_heap_validate(&heap));
	sys_heap_free(&heap, a);
	sys_heap_free(&heap, b);
	EXPECT(sys_heap_runtime_stats_get(&heap, &stats) == 0);
	EXPECT(stats.allocated_bytes == 0);

	/* Live neighbours on both sides keep the freed block from merging away. */
	left = sys_heap_alloc(&heap, 64);
	middle = sys_heap_alloc(&heap, 64);
	right = sys_heap_alloc(&heap, 64);
	EXPECT(left != NULL && middle != NULL && right != NULL);
	sys_heap_free(&heap, middle);
	previous = kheap_set_fault_handler(count_double_free);
	sys_heap_free(&heap, middle);
	kheap_set_fault_handler(previous);
	EXPECT(double_frees_seen == 1);
	sys_heap_free(&heap, left);
	sys_heap_free(&heap, right);
	EXPECT(sys_heap_validate(&heap));
}

int main(void)
{
	check_k_heap();
	check_system_heap();
	check_sys_heap();
	printf("app: ok\n");
	return 0;
}
EOF

build_and_run() {
	local kind="$1" exe="$work/app_$1"
	shift
	echo "install check: [$kind] $cc -o app_$kind app.c $*"
	"$cc" -std=c11 -Wall -Wextra -Werror -o "$exe" "$work/app.c" "$@" ||
		fail "[$kind] building app.c against the installed kheap failed"
	local needed
	needed="$(readelf -d "$exe" | sed -n 's/.*(NEEDED).*\[\(.*\)\].*/\1/p' | tr '\n' ' ')"
	case "$kind" in
	shared) [[ " $needed" == *" $soname "* ]] || fail "[$kind] app does not load $soname (needs: $needed)" ;;
	*) [[ " $needed" != *" libkheap"* ]] || fail "[$kind] app loads a shared kheap (needs: $needed)" ;;
	esac
	LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$exe" ||
		fail "[$kind] app exited with status $?"
}

read -r -a cflags <<<"$(pkg-config --cflags kheap)"
read -r -a libs <<<"$(pkg-config --libs kheap)"
read -r -a static_libs <<<"$(pkg-config --static --libs kheap)"

build_and_run shared "${cflags[@]}" "${libs[@]}"
build_and_run archive "${cflags[@]}" -Wl,-Bstatic "${static_libs[@]}" -Wl,-Bdynamic
build_and_run static -static "${cflags[@]}" "${static_libs[@]}"

echo "install check: ok"
