/*
 * The process heap behind malloc: one k_heap over a region reserved at the
 * first allocation, the fork handlers, statistics and the report at exit.
 *
 * Set-up runs once, inside the first allocation call of the process, which
 * may come before any constructor has run (from ld.so, from libc's own
 * start-up, from another library's constructor, from a preinit_array
 * function). It uses nothing that allocates: getenv (a walk over environ),
 * read(2) of /proc/self/environ when libc has not set environ yet (a
 * preinit_array function runs before that), sysconf, mmap, and
 * pthread_atfork (glibc keeps its first handlers in static storage). The
 * state moves UNSET -> BUSY -> DONE; the thread that wins UNSET -> BUSY sets
 * up and the others yield until DONE. Should the set-up thread re-enter an
 * allocation call while BUSY, that call fails with ENOMEM instead of
 * waiting for itself.
 *
 * The region is mapped PROT_READ | PROT_WRITE with MAP_NORESERVE: address
 * space only, each page committed when first touched. A k_heap needs its
 * whole region writable (it writes headers wherever blocks split), so the
 * region cannot be grown by mprotect as it fills. Under an address-space
 * limit (RLIMIT_AS, ulimit -v) the region takes at most a quarter of it, so
 * the program keeps room for its stacks, libraries and mappings. If the
 * system still refuses the size (strict overcommit, a limit reached
 * meanwhile), halves are tried down to KHEAP_MALLOC_MIN_HEAP_BYTES; with no
 * region at all, only mapped blocks are served and every smaller request
 * fails with ENOMEM.
 *
 * Per-CPU cache bound. k_heap bounds cached memory as a percentage of the
 * heap; the default (KHEAP_DEFAULT_CACHE_PERCENT, 6) of a 4 GiB region
 * would let every CPU park over 100 MiB of freed small blocks that only
 * requests of the same size can reuse. One percent (about 20 MiB per CPU on
 * two CPUs) bounds that hoard at no cost measured: the cache hits and
 * misses of python3 building JSON (about 6k/600), of sqlite3 inserting 300k
 * rows (1.2M/200) and of malloc_threads (120k-200k/30k-57k, depending on
 * timing) were the same at 1 and 6 percent, and so were their times
 * within noise. A build may set another value (-DKHEAP_MALLOC_CACHE_PERCENT=).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "heap/k_heap_internal.h"
#include "malloc/malloc_internal.h"

#ifndef KHEAP_MALLOC_CACHE_PERCENT
#define KHEAP_MALLOC_CACHE_PERCENT 1
#endif

enum setup_state {
	SETUP_UNSET,
	SETUP_BUSY,
	SETUP_DONE,
};

static struct k_heap malloc_heap;
static unsigned int setup_state;
static pid_t setup_tid;
static bool report_at_exit;
/* Where the report goes: stderr when empty, else a file appended to. */
static char report_path[256];

struct k_heap *kheap_malloc_ready_heap;
uintptr_t kheap_malloc_region_start;
size_t kheap_malloc_region_bytes;
size_t kheap_malloc_page_bytes = 4096;

/*
 * Copies the value of environment variable `name` into `value` (truncated
 * to `cap` - 1 bytes) and returns true, or returns false if it is unset.
 * Before libc has set environ, reads the process's initial environment
 * from /proc/self/environ in pieces, with no allocation.
 */
static bool read_setting(const char *name, char *value, size_t cap)
{
	size_t name_length = strlen(name), column = 0, stored = 0;
	enum { AT_NAME, IN_VALUE, SKIPPING } where = AT_NAME;
	const char *direct;
	char piece[512];
	ssize_t got;
	int fd;

	if (environ != NULL) {
		direct = getenv(name);
		if (direct == NULL)
			return false;
		stored = strlen(direct) < cap - 1 ? strlen(direct) : cap - 1;
		memcpy(value, direct, stored);
		value[stored] = '\0';
		return true;
	}
	fd = open("/proc/self/environ", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	for (;;) {
		got = read(fd, piece, sizeof(piece));
		if (got <= 0)
			break;
		for (ssize_t i = 0; i < got; i++) {
			char c = piece[i];

			if (where == IN_VALUE) {
				if (c == '\0' || stored == cap - 1)
					goto done;
				value[stored++] = c;
			} else if (c == '\0') {
				where = AT_NAME;
				column = 0;
			} else if (where == AT_NAME) {
				if (column == name_length && c == '=')
					where = IN_VALUE;
				else if (column < name_length && c == name[column])
					column++;
				else
					where = SKIPPING;
			}
		}
	}
done:
	close(fd);
	value[stored] = '\0';
	return where == IN_VALUE;
}

static size_t clamp_heap_bytes(uint64_t bytes)
{
	if (bytes < KHEAP_MALLOC_MIN_HEAP_BYTES)
		bytes = KHEAP_MALLOC_MIN_HEAP_BYTES;
	if (bytes > KHEAP_MALLOC_MAX_HEAP_BYTES)
		bytes = KHEAP_MALLOC_MAX_HEAP_BYTES;
	return (size_t)bytes & ~(kheap_malloc_page_bytes - 1);
}

/* "<digits>[K|M|G]", binary units; anything else gives the default. */
static size_t heap_bytes_from(const char *text)
{
	uint64_t value = 0;
	unsigned int shift = 0;
	const char *c = text;

	if (text == NULL || *text < '0' || *text > '9')
		return KHEAP_MALLOC_DEFAULT_HEAP_BYTES;
	for (; *c >= '0' && *c <= '9'; c++) {
		if (__builtin_mul_overflow(value, 10, &value) ||
		    __builtin_add_overflow(value, (uint64_t)(*c - '0'), &value))
			return KHEAP_MALLOC_MAX_HEAP_BYTES;
	}
	switch (*c) {
	case '\0':
		break;
	case 'k':
	case 'K':
		shift = 10;
		break;
	case 'm':
	case 'M':
		shift = 20;
		break;
	case 'g':
	case 'G':
		shift = 30;
		break;
	default:
		return KHEAP_MALLOC_DEFAULT_HEAP_BYTES;
	}
	if (shift != 0 && c[1] != '\0')
		return KHEAP_MALLOC_DEFAULT_HEAP_BYTES;
	if (value > (UINT64_MAX >> shift))
		return KHEAP_MALLOC_MAX_HEAP_BYTES;
	return clamp_heap_bytes(value << shift);
}

static void *reserve_region(size_t *bytes)
{
	for (size_t want = *bytes; want >= KHEAP_MALLOC_MIN_HEAP_BYTES;
	     want = clamp_heap_bytes(want / 2)) {
		void *region = mmap(NULL, want, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

		if (region != MAP_FAILED) {
			*bytes = want;
			return region;
		}
		if (want == KHEAP_MALLOC_MIN_HEAP_BYTES)
			break;
	}
	return NULL;
}

static void fork_prepare(void)
{
	if (kheap_malloc_ready_heap != NULL)
		kheap_fork_prepare(kheap_malloc_ready_heap);
	kheap_huge_fork_prepare();
}

static void fork_parent(void)
{
	kheap_huge_fork_release();
	if (kheap_malloc_ready_heap != NULL)
		kheap_fork_parent(kheap_malloc_ready_heap);
}

static void fork_child(void)
{
	kheap_huge_fork_release();
	if (kheap_malloc_ready_heap != NULL)
		kheap_fork_child(kheap_malloc_ready_heap);
}

static void set_up(void)
{
	const struct k_heap_config config = {.cache_percent = KHEAP_MALLOC_CACHE_PERCENT};
	long page = sysconf(_SC_PAGESIZE);
	char setting[64];
	struct rlimit limit;
	size_t bytes = KHEAP_MALLOC_DEFAULT_HEAP_BYTES;
	void *region;

	if (page > 0 && (page & (page - 1)) == 0)
		kheap_malloc_page_bytes = (size_t)page;
	if (read_setting("KHEAP_MALLOC_STATS", report_path, sizeof(report_path)) &&
	    report_path[0] != '\0' && strcmp(report_path, "0") != 0) {
		report_at_exit = true;
		if (report_path[0] != '/')
			report_path[0] = '\0';
	}
	if (read_setting("KHEAP_MALLOC_HEAP_SIZE", setting, sizeof(setting)))
		bytes = heap_bytes_from(setting);
	/* Under an address-space limit, leave three quarters to the program. */
	if (getrlimit(RLIMIT_AS, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY &&
	    bytes > limit.rlim_cur / 4)
		bytes = clamp_heap_bytes(limit.rlim_cur / 4);
	region = reserve_region(&bytes);
	if (region != NULL && k_heap_init_config(&malloc_heap, region, bytes, &config) != 0) {
		munmap(region, bytes);
		region = NULL;
	}
	if (region != NULL) {
		kheap_malloc_region_start = (uintptr_t)region;
		kheap_malloc_region_bytes = bytes;
	}
	/* Registered before publishing, so no fork can copy a heap in use
	 * without the handlers; registered this early, they run last among
	 * prepare handlers, after any other handler that may still allocate.
	 */
	pthread_atfork(fork_prepare, fork_parent, fork_child);
	if (region != NULL)
		__atomic_store_n(&kheap_malloc_ready_heap, &malloc_heap, __ATOMIC_RELEASE);
}

struct k_heap *kheap_malloc_heap_slow(void)
{
	unsigned int state = SETUP_UNSET;

	if (__atomic_compare_exchange_n(&setup_state, &state, SETUP_BUSY, false, __ATOMIC_ACQUIRE,
					__ATOMIC_ACQUIRE)) {
		int saved = errno;

		__atomic_store_n(&setup_tid, gettid(), __ATOMIC_RELAXED);
		set_up();
		errno = saved;
		__atomic_store_n(&setup_state, SETUP_DONE, __ATOMIC_RELEASE);
		return kheap_malloc_ready_heap;
	}
	while (state == SETUP_BUSY) {
		if (__atomic_load_n(&setup_tid, __ATOMIC_RELAXED) == gettid())
			return NULL;
		sched_yield();
		state = __atomic_load_n(&setup_state, __ATOMIC_ACQUIRE);
	}
	return __atomic_load_n(&kheap_malloc_ready_heap, __ATOMIC_ACQUIRE);
}

struct k_heap *kheap_malloc_heap(void)
{
	return kheap_malloc_heap_get();
}

int kheap_malloc_stats_get(struct kheap_malloc_stats *stats)
{
	struct k_heap *h = kheap_malloc_heap_get();

	if (stats == NULL)
		return -EINVAL;
	memset(stats, 0, sizeof(*stats));
	if (h != NULL) {
		struct sys_memory_stats heap_stats;

		if (k_heap_runtime_stats_get(h, &heap_stats) == 0) {
			stats->heap_bytes = kheap_malloc_region_bytes;
			stats->heap_allocated_bytes = heap_stats.allocated_bytes;
			stats->heap_cached_bytes = heap_stats.cached_bytes;
			stats->heap_free_bytes = heap_stats.free_bytes;
			stats->heap_max_allocated_bytes = heap_stats.max_allocated_bytes;
		}
	}
	kheap_huge_stats(stats);
	stats->released_bytes = __atomic_load_n(&kheap_malloc_released_bytes, __ATOMIC_RELAXED);
	return 0;
}

/*
 * KHEAP_MALLOC_STATS set and not "0": one line at exit, on stderr, or
 * appended to the file it names when it is an absolute path (for programs
 * that close stderr before exiting, as coreutils do).
 */
__attribute__((destructor)) static void report_stats_at_exit(void)
{
	struct kheap_malloc_stats stats;
	struct k_heap_counters counters = {0};
	char line[512];
	int length, fd;

	if (!report_at_exit || kheap_malloc_stats_get(&stats) != 0)
		return;
	if (kheap_malloc_ready_heap != NULL)
		k_heap_counters_get(kheap_malloc_ready_heap, &counters);
	length = snprintf(line, sizeof(line),
			  "kheap_malloc: pid %ld: region %zu MiB; heap in use %zu B, cached %zu B, "
			  "peak %zu B; cache hits %llu, misses %llu; mapped blocks %zu live "
			  "(%zu B), %llu in total; released %llu B\n",
			  (long)getpid(), stats.heap_bytes >> 20, stats.heap_allocated_bytes,
			  stats.heap_cached_bytes, stats.heap_max_allocated_bytes,
			  (unsigned long long)counters.cache_hits,
			  (unsigned long long)counters.cache_misses, stats.mapped_blocks,
			  stats.mapped_bytes, (unsigned long long)stats.mapped_total,
			  (unsigned long long)stats.released_bytes);
	if (length <= 0)
		return;
	if ((size_t)length >= sizeof(line))
		length = (int)sizeof(line) - 1;
	if (report_path[0] == '\0') {
		(void)!write(STDERR_FILENO, line, (size_t)length);
		return;
	}
	fd = open(report_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd >= 0) {
		(void)!write(fd, line, (size_t)length);
		close(fd);
	}
}
