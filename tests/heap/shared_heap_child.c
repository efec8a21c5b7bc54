/*
 * One process of the shared-heap tests (shared_heap_test.cc starts it with
 * fork and exec): it maps the heap's memfd at an address of its own, attaches
 * to the heap, and then runs the commands the test sends.
 *
 * Usage: shared_heap_child MEMFD BYTES SOCKET AVOID_ADDRESS INDEX
 *   MEMFD and SOCKET are inherited descriptors; BYTES is the size to map.
 *   The mapping is placed inside a PROT_NONE reservation of a fixed size,
 *   (INDEX modulo MAPPING_SLOTS) + 1 steps of 64 KiB into it, and one more
 *   step along if that is AVOID_ADDRESS (the test's own address), so it
 *   differs from the test's and, when every process gets the same layout
 *   (no ASLR, or an emulator), from the other children's.
 *
 * Protocol: one command per line on SOCKET, exactly one reply line per
 * command, in order. The first line the child writes, before any command, is
 *   ready RC ADDRESS TAG
 * with k_heap_attach's return code, the mapping's address and the owner tag.
 * Offsets are from the region's start, in decimal; "OFF:USABLE" pairs give a
 * block's offset and usable size. Every block the child allocates is filled
 * with shared_heap_fill under its owner tag, and every block it frees is
 * first checked against the owner tag the heap reports for it.
 *
 *   alloc N SIZE       up to N blocks without waiting -> ok OFF:USABLE...
 *   fill SIZE          SIZE-byte blocks until refused, then 8-byte ones; the
 *                      child keeps them              -> ok COUNT
 *   freeheld N         frees the first N kept blocks -> ok FREED
 *   free OFF...        checks and frees these blocks -> ok | err WHY
 *   wait_alloc SIZE MS one k_heap_alloc with a timeout of MS ms (-1: forever)
 *                      -> ok OFF:USABLE MICROS | null MICROS
 *   validate           -> ok VALID FREE ALLOCATED MAX CACHED
 *   pin CPU            pins the command thread      -> ok
 *   churn THREADS ITERATIONS SEED KEEP OFF...
 *                      THREADS threads, spread over the allowed CPUs, each
 *                      allocating, reallocating and freeing blocks of its own
 *                      and freeing its share of the listed blocks as it goes;
 *                      each keeps up to KEEP blocks -> ok OPS OFF... | err WHY
 *   hold heap | mid_update | mid_alloc | cache CPU | mid_pop CPU
 *                      takes the lock with a hook of heap/shared_testing.h,
 *                      replies "held" (or "err empty") and waits to be killed
 *   faults             faults since the last call   -> ok COUNT LAST_KIND
 *   detach             -> ok RC (the process stays)
 *   exit               detaches if attached         -> ok RC, then exits 0
 * A command the child cannot run gets "err WHY". End of input (the test
 * died) makes it exit with status 3 without detaching.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <kheap/kheap.h>

#include "heap/shared_testing.h"
#include "tests/heap/shared_heap_pattern.h"

#define MAPPING_STEP	  (64u * 1024u)
#define MAPPING_SLOTS	  16u
#define CHURN_MAX_THREADS 16u
#define CHURN_MAX_LIVE	  48u

static struct k_heap heap;
static uint8_t *region;
static size_t region_bytes;
static uint32_t owner_tag;
static bool attached;
static atomic_uint next_serial;

static atomic_uint fault_count;
static atomic_int last_fault;

static void record_fault(enum kheap_fault fault, const void *faulting_heap, const void *ptr,
			 const char *detail)
{
	(void)faulting_heap;
	(void)ptr;
	(void)detail;
	atomic_store(&last_fault, (int)fault);
	atomic_fetch_add(&fault_count, 1);
}

static void die(const char *what)
{
	fprintf(stderr, "shared_heap_child: %s\n", what);
	exit(2);
}

/* ---- text in and out ---- */

struct text {
	char *chars;
	size_t len;
	size_t cap;
};

static void text_reserve(struct text *t, size_t more)
{
	if (t->len + more + 1 <= t->cap)
		return;
	while (t->len + more + 1 > t->cap)
		t->cap = t->cap != 0 ? 2 * t->cap : 256;
	t->chars = realloc(t->chars, t->cap);
	if (t->chars == NULL)
		die("out of memory");
}

__attribute__((format(printf, 2, 3))) static void text_add(struct text *t, const char *fmt, ...)
{
	va_list args;
	int n;

	va_start(args, fmt);
	n = vsnprintf(NULL, 0, fmt, args);
	va_end(args);
	if (n < 0)
		die("bad reply format");
	text_reserve(t, (size_t)n);
	va_start(args, fmt);
	vsnprintf(t->chars + t->len, (size_t)n + 1, fmt, args);
	va_end(args);
	t->len += (size_t)n;
}

static int reply_fd = -1;

/* Sends `t` as one line and empties it. */
static void send_reply(struct text *t)
{
	size_t sent = 0;

	text_reserve(t, 1);
	t->chars[t->len++] = '\n';
	while (sent < t->len) {
		ssize_t n = write(reply_fd, t->chars + sent, t->len - sent);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			exit(3);
		sent += (size_t)n;
	}
	t->len = 0;
}

struct line_reader {
	int fd;
	struct text buffer;
	size_t consumed;
};

/* The next line without its newline, or NULL at end of input. */
static char *read_line(struct line_reader *r)
{
	struct text *b = &r->buffer;

	if (r->consumed != 0) {
		memmove(b->chars, b->chars + r->consumed, b->len - r->consumed);
		b->len -= r->consumed;
		r->consumed = 0;
	}
	for (;;) {
		char *newline = b->len != 0 ? memchr(b->chars, '\n', b->len) : NULL;
		ssize_t n;

		if (newline != NULL) {
			*newline = '\0';
			r->consumed = (size_t)(newline - b->chars) + 1;
			return b->chars;
		}
		text_reserve(b, 4096);
		n = read(r->fd, b->chars + b->len, 4096);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return NULL;
		b->len += (size_t)n;
	}
}

struct words {
	char **items;
	size_t count;
	size_t cap;
};

static void split_words(char *line, struct words *w)
{
	char *save = NULL;

	w->count = 0;
	for (char *word = strtok_r(line, " ", &save); word != NULL;
	     word = strtok_r(NULL, " ", &save)) {
		if (w->count == w->cap) {
			w->cap = w->cap != 0 ? 2 * w->cap : 16;
			w->items = realloc(w->items, w->cap * sizeof(*w->items));
			if (w->items == NULL)
				die("out of memory");
		}
		w->items[w->count++] = word;
	}
}

static bool parse_u64(const char *word, uint64_t *out)
{
	char *end = NULL;

	errno = 0;
	*out = strtoull(word, &end, 0);
	return errno == 0 && end != word && *end == '\0';
}

static bool parse_i64(const char *word, int64_t *out)
{
	char *end = NULL;

	errno = 0;
	*out = strtoll(word, &end, 0);
	return errno == 0 && end != word && *end == '\0';
}

/* ---- blocks ---- */

static size_t offset_of(const void *mem)
{
	return (size_t)((const uint8_t *)mem - region);
}

static bool offset_to_block(const char *word, void **mem)
{
	uint64_t offset;

	if (!parse_u64(word, &offset) || offset >= region_bytes)
		return false;
	*mem = region + offset;
	return true;
}

static void fill_block(void *mem)
{
	shared_heap_fill(mem, k_heap_usable_size(&heap, mem), owner_tag,
			 atomic_fetch_add(&next_serial, 1));
}

/* Checks the block against its owner's pattern and frees it; on a mismatch
 * writes why to `why` and leaves the block alone.
 */
static bool check_and_free(void *mem, char *why, size_t why_bytes)
{
	uint32_t owner = k_heap_block_owner(&heap, mem);
	size_t usable = k_heap_usable_size(&heap, mem);

	if (owner == 0) {
		snprintf(why, why_bytes, "block at offset %zu has no owner", offset_of(mem));
		return false;
	}
	if (!shared_heap_check(mem, usable, owner)) {
		snprintf(why, why_bytes,
			 "block at offset %zu (owner %" PRIu32 ", %zu bytes) lost its pattern",
			 offset_of(mem), owner, usable);
		return false;
	}
	k_heap_free(&heap, mem);
	return true;
}

static struct {
	void **blocks;
	size_t count;
	size_t cap;
} kept;

static void keep_block(void *mem)
{
	if (kept.count == kept.cap) {
		kept.cap = kept.cap != 0 ? 2 * kept.cap : 256;
		kept.blocks = realloc(kept.blocks, kept.cap * sizeof(*kept.blocks));
		if (kept.blocks == NULL)
			die("out of memory");
	}
	kept.blocks[kept.count++] = mem;
}

static uint64_t monotonic_micros(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u;
}

/* ---- churn ---- */

struct churn_job {
	unsigned long iterations;
	uint64_t seed;
	size_t keep;
	void **foreign;
	size_t foreign_count;
	atomic_size_t next_foreign;
	int cpus[CPU_SETSIZE];
	size_t cpu_count;
	atomic_bool failed;
	pthread_mutex_t error_lock;
	char error[256];
};

struct churn_worker {
	struct churn_job *job;
	pthread_t thread;
	unsigned int index;
	unsigned long ops;
	size_t kept[CHURN_MAX_LIVE];
	size_t kept_count;
};

struct live_block {
	void *mem;
	size_t usable;
};

__attribute__((format(printf, 2, 3))) static void churn_fail(struct churn_job *job, const char *fmt,
							     ...)
{
	va_list args;

	pthread_mutex_lock(&job->error_lock);
	if (!atomic_load(&job->failed)) {
		va_start(args, fmt);
		vsnprintf(job->error, sizeof(job->error), fmt, args);
		va_end(args);
		atomic_store(&job->failed, true);
	}
	pthread_mutex_unlock(&job->error_lock);
}

static uint64_t next_random(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static size_t churn_size(uint64_t *rng)
{
	uint64_t r = next_random(rng);

	if (r % 10 < 7)
		return 16 + (size_t)((r >> 8) % 240);
	return 256 + (size_t)((r >> 8) % 1793);
}

/* Frees the next listed foreign block, if any is left; false on a failure. */
static bool free_next_foreign(struct churn_job *job, bool *none_left)
{
	size_t i = atomic_fetch_add(&job->next_foreign, 1);
	char why[160];

	*none_left = i >= job->foreign_count;
	if (*none_left)
		return true;
	if (!check_and_free(job->foreign[i], why, sizeof(why))) {
		churn_fail(job, "%s", why);
		return false;
	}
	return true;
}

static bool churn_alloc(struct churn_job *job, uint64_t *rng, struct live_block *block)
{
	size_t bytes = churn_size(rng);
	uint64_t kind = next_random(rng) % 100;
	void *mem;

	if (kind < 70) {
		mem = k_heap_alloc(&heap, bytes, K_NO_WAIT);
	} else if (kind < 85) {
		size_t align = (size_t)8 << (next_random(rng) % 6);

		mem = k_heap_aligned_alloc(&heap, align, bytes, K_NO_WAIT);
		if (mem != NULL && (uintptr_t)mem % align != 0) {
			churn_fail(job, "aligned alloc of %zu bytes at %zu is not %zu-aligned",
				   bytes, offset_of(mem), align);
			return false;
		}
	} else {
		size_t count = 1 + (size_t)(next_random(rng) % 4);
		size_t each = (bytes + count - 1) / count;
		const uint8_t *p;

		mem = k_heap_calloc(&heap, count, each, K_NO_WAIT);
		p = mem;
		for (size_t i = 0; mem != NULL && i < count * each; i++) {
			if (p[i] != 0) {
				churn_fail(job, "calloc block at %zu is not zeroed at byte %zu",
					   offset_of(mem), i);
				return false;
			}
		}
	}
	if (mem == NULL) {
		churn_fail(job, "allocation of %zu bytes (kind %" PRIu64 ") failed", bytes, kind);
		return false;
	}
	fill_block(mem);
	block->mem = mem;
	block->usable = k_heap_usable_size(&heap, mem);
	return true;
}

static bool churn_free(struct churn_job *job, struct live_block *block)
{
	uint32_t owner = k_heap_block_owner(&heap, block->mem);
	char why[160];

	if (owner != owner_tag) {
		churn_fail(job, "own block at %zu reports owner %" PRIu32 ", not %" PRIu32,
			   offset_of(block->mem), owner, owner_tag);
		return false;
	}
	if (!check_and_free(block->mem, why, sizeof(why))) {
		churn_fail(job, "%s", why);
		return false;
	}
	return true;
}

static bool churn_realloc(struct churn_job *job, uint64_t *rng, struct live_block *block)
{
	size_t bytes = churn_size(rng);
	void *mem = k_heap_realloc(&heap, block->mem, bytes, K_NO_WAIT);
	size_t usable;

	if (mem == NULL) {
		churn_fail(job, "realloc of %zu to %zu bytes failed", offset_of(block->mem), bytes);
		return false;
	}
	usable = k_heap_usable_size(&heap, mem);
	if (!shared_heap_check(mem, usable < block->usable ? usable : block->usable, owner_tag)) {
		churn_fail(job, "realloc from %zu to %zu lost the kept prefix",
			   offset_of(block->mem), offset_of(mem));
		return false;
	}
	fill_block(mem);
	block->mem = mem;
	block->usable = usable;
	return true;
}

static void pin_thread_to(int cpu)
{
	cpu_set_t one;

	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	if (pthread_setaffinity_np(pthread_self(), sizeof(one), &one) != 0)
		die("cannot pin a churn thread");
}

static void *churn_thread(void *arg)
{
	struct churn_worker *w = arg;
	struct churn_job *job = w->job;
	struct live_block live[CHURN_MAX_LIVE];
	size_t live_count = 0;
	uint64_t rng = job->seed ^ (0x2545f4914f6cdd1dull * (w->index + 1));
	bool none_left = false;

	pin_thread_to(job->cpus[w->index % job->cpu_count]);
	for (unsigned long i = 0; i < job->iterations && !atomic_load(&job->failed); i++) {
		uint64_t choice = next_random(&rng) % 100;
		bool ok;

		if (i % 4 == 0 && !free_next_foreign(job, &none_left))
			break;
		if (live_count == 0 || (live_count < CHURN_MAX_LIVE && choice < 50)) {
			ok = churn_alloc(job, &rng, &live[live_count]);
			live_count += ok;
		} else {
			size_t victim = (size_t)(next_random(&rng) % live_count);

			if (choice < 85) {
				ok = churn_free(job, &live[victim]);
				if (ok)
					live[victim] = live[--live_count];
			} else {
				ok = churn_realloc(job, &rng, &live[victim]);
			}
		}
		if (!ok)
			break;
		w->ops++;
	}
	while (!none_left && !atomic_load(&job->failed) && free_next_foreign(job, &none_left))
		w->ops++;
	while (live_count > job->keep && !atomic_load(&job->failed)) {
		if (!churn_free(job, &live[--live_count]))
			break;
	}
	for (size_t i = 0; i < live_count && i < job->keep; i++)
		w->kept[w->kept_count++] = offset_of(live[i].mem);
	return NULL;
}

static void allowed_cpus(struct churn_job *job)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		die("sched_getaffinity failed");
	job->cpu_count = 0;
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (CPU_ISSET(cpu, &set))
			job->cpus[job->cpu_count++] = cpu;
	}
}

static void cmd_churn(const struct words *w, struct text *out)
{
	static struct churn_job job;
	static struct churn_worker workers[CHURN_MAX_THREADS];
	uint64_t threads, iterations, seed, keep;
	unsigned long total_ops = 0;

	if (w->count < 5 || !parse_u64(w->items[1], &threads) || threads == 0 ||
	    threads > CHURN_MAX_THREADS || !parse_u64(w->items[2], &iterations) ||
	    !parse_u64(w->items[3], &seed) || !parse_u64(w->items[4], &keep) ||
	    keep > CHURN_MAX_LIVE) {
		text_add(out, "err usage: churn THREADS ITERATIONS SEED KEEP OFF...");
		return;
	}
	memset(&job, 0, sizeof(job));
	pthread_mutex_init(&job.error_lock, NULL);
	job.iterations = (unsigned long)iterations;
	job.seed = seed;
	job.keep = (size_t)keep;
	job.foreign_count = w->count - 5;
	job.foreign = calloc(job.foreign_count + 1, sizeof(*job.foreign));
	if (job.foreign == NULL)
		die("out of memory");
	for (size_t i = 0; i < job.foreign_count; i++) {
		if (!offset_to_block(w->items[5 + i], &job.foreign[i])) {
			text_add(out, "err bad offset %s", w->items[5 + i]);
			free(job.foreign);
			return;
		}
	}
	allowed_cpus(&job);
	for (unsigned int t = 0; t < threads; t++) {
		memset(&workers[t], 0, sizeof(workers[t]));
		workers[t].job = &job;
		workers[t].index = t;
		if (pthread_create(&workers[t].thread, NULL, churn_thread, &workers[t]) != 0)
			die("pthread_create failed");
	}
	for (unsigned int t = 0; t < threads; t++) {
		pthread_join(workers[t].thread, NULL);
		total_ops += workers[t].ops;
	}
	free(job.foreign);
	if (atomic_load(&job.failed)) {
		text_add(out, "err %s", job.error);
		return;
	}
	text_add(out, "ok %lu", total_ops);
	for (unsigned int t = 0; t < threads; t++) {
		for (size_t i = 0; i < workers[t].kept_count; i++)
			text_add(out, " %zu", workers[t].kept[i]);
	}
}

/* ---- the other commands ---- */

static void cmd_alloc(const struct words *w, struct text *out)
{
	uint64_t count, bytes;

	if (w->count != 3 || !parse_u64(w->items[1], &count) || !parse_u64(w->items[2], &bytes) ||
	    bytes < SHARED_HEAP_STAMP_BYTES) {
		text_add(out, "err usage: alloc N SIZE (SIZE >= %u)", SHARED_HEAP_STAMP_BYTES);
		return;
	}
	text_add(out, "ok");
	for (uint64_t i = 0; i < count; i++) {
		void *mem = k_heap_alloc(&heap, (size_t)bytes, K_NO_WAIT);

		if (mem == NULL)
			break;
		fill_block(mem);
		text_add(out, " %zu:%zu", offset_of(mem), k_heap_usable_size(&heap, mem));
	}
}

static size_t keep_until_refused(size_t bytes)
{
	size_t count = 0;
	void *mem;

	while ((mem = k_heap_alloc(&heap, bytes, K_NO_WAIT)) != NULL) {
		fill_block(mem);
		keep_block(mem);
		count++;
	}
	return count;
}

static void cmd_fill(const struct words *w, struct text *out)
{
	uint64_t bytes;
	size_t count;

	if (w->count != 2 || !parse_u64(w->items[1], &bytes) || bytes < SHARED_HEAP_STAMP_BYTES) {
		text_add(out, "err usage: fill SIZE");
		return;
	}
	count = keep_until_refused((size_t)bytes);
	count += keep_until_refused(SHARED_HEAP_STAMP_BYTES);
	text_add(out, "ok %zu", count);
}

static void cmd_freeheld(const struct words *w, struct text *out)
{
	uint64_t count;
	size_t freed = 0;
	char why[160];

	if (w->count != 2 || !parse_u64(w->items[1], &count)) {
		text_add(out, "err usage: freeheld N");
		return;
	}
	while (freed < count && freed < kept.count) {
		if (!check_and_free(kept.blocks[freed], why, sizeof(why))) {
			text_add(out, "err %s", why);
			return;
		}
		freed++;
	}
	memmove(kept.blocks, kept.blocks + freed, (kept.count - freed) * sizeof(*kept.blocks));
	kept.count -= freed;
	text_add(out, "ok %zu", freed);
}

static void cmd_free(const struct words *w, struct text *out)
{
	char why[160];

	for (size_t i = 1; i < w->count; i++) {
		void *mem;

		if (!offset_to_block(w->items[i], &mem)) {
			text_add(out, "err bad offset %s", w->items[i]);
			return;
		}
		if (!check_and_free(mem, why, sizeof(why))) {
			text_add(out, "err %s", why);
			return;
		}
	}
	text_add(out, "ok");
}

static void cmd_wait_alloc(const struct words *w, struct text *out)
{
	uint64_t bytes, started;
	int64_t millis;
	void *mem;

	if (w->count != 3 || !parse_u64(w->items[1], &bytes) || !parse_i64(w->items[2], &millis) ||
	    bytes < SHARED_HEAP_STAMP_BYTES) {
		text_add(out, "err usage: wait_alloc SIZE MS");
		return;
	}
	started = monotonic_micros();
	mem = k_heap_alloc(&heap, (size_t)bytes, millis < 0 ? K_FOREVER : K_MSEC(millis));
	if (mem == NULL) {
		text_add(out, "null %" PRIu64, monotonic_micros() - started);
		return;
	}
	fill_block(mem);
	text_add(out, "ok %zu:%zu %" PRIu64, offset_of(mem), k_heap_usable_size(&heap, mem),
		 monotonic_micros() - started);
}

static void cmd_validate(struct text *out)
{
	struct sys_memory_stats stats;
	bool valid = sys_heap_validate(&heap.heap);
	int rc = k_heap_runtime_stats_get(&heap, &stats);

	if (rc != 0) {
		text_add(out, "err stats returned %d", rc);
		return;
	}
	text_add(out, "ok %d %zu %zu %zu %zu", valid, stats.free_bytes, stats.allocated_bytes,
		 stats.max_allocated_bytes, stats.cached_bytes);
}

static void cmd_pin(const struct words *w, struct text *out)
{
	uint64_t cpu;
	cpu_set_t one;

	if (w->count != 2 || !parse_u64(w->items[1], &cpu) || cpu >= CPU_SETSIZE) {
		text_add(out, "err usage: pin CPU");
		return;
	}
	CPU_ZERO(&one);
	CPU_SET((int)cpu, &one);
	if (sched_setaffinity(0, sizeof(one), &one) != 0) {
		text_add(out, "err sched_setaffinity: %s", strerror(errno));
		return;
	}
	text_add(out, "ok");
}

/* Takes a lock as the command asks and never returns once it holds it. */
static void cmd_hold(const struct words *w, struct text *out)
{
	uint64_t cpu = 0;
	bool with_cpu = w->count == 3 && parse_u64(w->items[2], &cpu);
	const char *what = w->count >= 2 ? w->items[1] : "";

	if (strcmp(what, "heap") == 0 && w->count == 2) {
		kheap_testing_hold_heap_lock(&heap);
	} else if (strcmp(what, "mid_update") == 0 && w->count == 2) {
		kheap_testing_hold_heap_lock_mid_update(&heap);
	} else if (strcmp(what, "mid_alloc") == 0 && w->count == 2) {
		kheap_testing_hold_heap_lock_mid_alloc(&heap);
	} else if (strcmp(what, "cache") == 0 && with_cpu) {
		kheap_testing_hold_cache_lock(&heap, (unsigned int)cpu);
	} else if (strcmp(what, "mid_pop") == 0 && with_cpu) {
		if (!kheap_testing_hold_cache_lock_mid_pop(&heap, (unsigned int)cpu)) {
			text_add(out, "err empty");
			return;
		}
	} else {
		text_add(out,
			 "err usage: hold heap | mid_update | mid_alloc | cache CPU | mid_pop CPU");
		return;
	}
	text_add(out, "held");
	send_reply(out);
	for (;;)
		pause();
}

static void run_command(const struct words *w, struct text *out)
{
	const char *name = w->count != 0 ? w->items[0] : "";

	if (strcmp(name, "faults") == 0) {
		int last = atomic_load(&last_fault);

		text_add(out, "ok %u %d", atomic_exchange(&fault_count, 0), last);
	} else if (strcmp(name, "exit") == 0) {
		text_add(out, "ok %d", attached ? k_heap_detach(&heap) : 0);
		send_reply(out);
		exit(0);
	} else if (!attached) {
		text_add(out, "err not attached");
	} else if (strcmp(name, "alloc") == 0) {
		cmd_alloc(w, out);
	} else if (strcmp(name, "fill") == 0) {
		cmd_fill(w, out);
	} else if (strcmp(name, "freeheld") == 0) {
		cmd_freeheld(w, out);
	} else if (strcmp(name, "free") == 0) {
		cmd_free(w, out);
	} else if (strcmp(name, "wait_alloc") == 0) {
		cmd_wait_alloc(w, out);
	} else if (strcmp(name, "validate") == 0) {
		cmd_validate(out);
	} else if (strcmp(name, "pin") == 0) {
		cmd_pin(w, out);
	} else if (strcmp(name, "churn") == 0) {
		cmd_churn(w, out);
	} else if (strcmp(name, "hold") == 0) {
		cmd_hold(w, out);
	} else if (strcmp(name, "detach") == 0) {
		int rc = k_heap_detach(&heap);

		attached = rc != 0;
		text_add(out, "ok %d", rc);
	} else {
		text_add(out, "err unknown command '%s'", name);
	}
}

/* Maps the memfd inside a reservation, away from `avoid` (see the top). */
static uint8_t *map_region(int memfd, size_t bytes, uintptr_t avoid, unsigned int index)
{
	size_t reserved = bytes + (MAPPING_SLOTS + 2) * (size_t)MAPPING_STEP;
	uint8_t *reservation =
	    mmap(NULL, reserved, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uint8_t *at;
	void *mapped;

	if (reservation == MAP_FAILED)
		die("cannot reserve address space");
	at = reservation + (index % MAPPING_SLOTS + 1) * (size_t)MAPPING_STEP;
	if ((uintptr_t)at == avoid)
		at += MAPPING_STEP;
	mapped = mmap(at, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, memfd, 0);
	if (mapped != at)
		die("cannot map the heap's memfd");
	return at;
}

int main(int argc, char **argv)
{
	uint64_t memfd, bytes, socket_fd, avoid, index;
	struct line_reader commands = {0};
	struct text out = {0};
	struct words words = {0};
	int rc;
	char *line;

	if (argc != 6 || !parse_u64(argv[1], &memfd) || !parse_u64(argv[2], &bytes) ||
	    !parse_u64(argv[3], &socket_fd) || !parse_u64(argv[4], &avoid) ||
	    !parse_u64(argv[5], &index) || index > 1024) {
		fprintf(stderr, "usage: %s MEMFD BYTES SOCKET AVOID_ADDRESS INDEX\n", argv[0]);
		return 2;
	}
	kheap_set_fault_handler(record_fault);
	region_bytes = (size_t)bytes;
	region = map_region((int)memfd, region_bytes, (uintptr_t)avoid, (unsigned int)index);
	reply_fd = (int)socket_fd;
	commands.fd = (int)socket_fd;

	rc = k_heap_attach(&heap, region, region_bytes);
	attached = rc == 0;
	owner_tag = attached ? k_heap_owner_tag(&heap) : 0;
	text_add(&out, "ready %d 0x%" PRIxPTR " %" PRIu32, rc, (uintptr_t)region, owner_tag);
	send_reply(&out);

	while ((line = read_line(&commands)) != NULL) {
		split_words(line, &words);
		run_command(&words, &out);
		send_reply(&out);
	}
	return 3;
}
