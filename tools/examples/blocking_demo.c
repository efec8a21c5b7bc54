/*
 * blocking_demo: threads blocking in k_heap_alloc() on a small shared heap.
 *
 * The main thread plays the producer: it takes every byte of a small
 * K_HEAP_DEFINE'd heap, as equal slabs plus smaller fillers. Four consumers
 * then arrive one after the other and block:
 *   A wants 1200 bytes and waits forever,
 *   B wants 1200 bytes and gives up after 250 ms,
 *   C wants 1200 bytes and waits forever,
 *   D wants  200 bytes and waits forever.
 * The producer frees its slabs one at a time, every 100 ms, in address order
 * so that neighbouring slabs merge into bigger free chunks.
 *
 * What the heap promises, and what this program checks before exiting 0:
 * - D's small request fits after the first free and is served then, not held
 *   back behind the big requests that arrived before it;
 * - A is served before C, which asked for the same size later;
 * - B cannot be served before its deadline (at most two slabs are free by
 *   then, and A is ahead of it), so it gets NULL after at least 250 ms;
 * - once everything is freed, the heap is empty and passes validation.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <zephyr/kernel.h>

#define HEAP_BYTES	    16384
#define SLAB_BYTES	    512
#define MAX_BLOCKS	    128
#define FREE_INTERVAL_MS    100
#define ARRIVAL_LIMIT_MS    2000
#define COMPLETION_LIMIT_MS 2000

K_HEAP_DEFINE(demo_heap, HEAP_BYTES);

struct consumer {
	const char *name;
	size_t bytes;
	k_timeout_t timeout;
	const char *timeout_text;
	pthread_t thread;
	void *block;
	int64_t waited_ms;
	/* 1 for the first consumer served, 2 for the next...; 0 if none. */
	int served_rank;
};

static struct consumer consumers[] = {
    {.name = "A", .bytes = 1200, .timeout_text = "K_FOREVER"},
    {.name = "B", .bytes = 1200, .timeout_text = "K_MSEC(250)"},
    {.name = "C", .bytes = 1200, .timeout_text = "K_FOREVER"},
    {.name = "D", .bytes = 200, .timeout_text = "K_FOREVER"},
};

#define CONSUMER_COUNT	  ((int)(sizeof(consumers) / sizeof(consumers[0])))
#define TIMED_CONSUMER_MS 250

static int64_t start_ns;
static atomic_int next_rank;

/* Counts consumers whose k_heap_alloc() has returned, under returned_lock. */
static pthread_mutex_t returned_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t returned_cond;
static int returned_count;

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&log_lock);
	printf("t=%4lld ms  ", (long long)((now_ns() - start_ns) / 1000000));
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	pthread_mutex_unlock(&log_lock);
}

static int returned_consumers(void)
{
	int n;

	pthread_mutex_lock(&returned_lock);
	n = returned_count;
	pthread_mutex_unlock(&returned_lock);
	return n;
}

static void *consumer_main(void *arg)
{
	struct consumer *c = arg;
	int64_t begin = now_ns();

	say("%s waits for %zu bytes (%s)", c->name, c->bytes, c->timeout_text);
	c->block = k_heap_alloc(&demo_heap, c->bytes, c->timeout);
	c->waited_ms = (now_ns() - begin) / 1000000;
	if (c->block != NULL) {
		c->served_rank = atomic_fetch_add(&next_rank, 1) + 1;
		say("%s got %zu bytes after %lld ms (served #%d)", c->name, c->bytes,
		    (long long)c->waited_ms, c->served_rank);
	} else {
		say("%s gave up after %lld ms: k_heap_alloc returned NULL", c->name,
		    (long long)c->waited_ms);
	}

	pthread_mutex_lock(&returned_lock);
	returned_count++;
	pthread_cond_broadcast(&returned_cond);
	pthread_mutex_unlock(&returned_lock);
	return NULL;
}

/*
 * Consumers must queue in the order A, B, C, D, so each is started only once
 * the previous one is blocked inside the heap (or has already returned).
 */
static bool wait_until_blocked(int started)
{
	int64_t limit = now_ns() + (int64_t)ARRIVAL_LIMIT_MS * 1000000;

	while ((int)k_heap_waiter_count(&demo_heap) + returned_consumers() < started) {
		if (now_ns() > limit) {
			return false;
		}
		sleep_ms(1);
	}
	return true;
}

static bool wait_for_all_consumers(void)
{
	struct timespec limit;
	int err = 0;

	clock_gettime(CLOCK_MONOTONIC, &limit);
	limit.tv_sec += COMPLETION_LIMIT_MS / 1000;
	pthread_mutex_lock(&returned_lock);
	while (returned_count < CONSUMER_COUNT && err != ETIMEDOUT) {
		err = pthread_cond_timedwait(&returned_cond, &returned_lock, &limit);
	}
	pthread_mutex_unlock(&returned_lock);
	return err != ETIMEDOUT;
}

static int compare_addresses(const void *a, const void *b)
{
	void *const *slot_a = a;
	void *const *slot_b = b;
	uintptr_t pa = (uintptr_t)*slot_a;
	uintptr_t pb = (uintptr_t)*slot_b;

	return (pa > pb) - (pa < pb);
}

static int take_whole_heap(void **slabs, int *slab_count, void **fillers, int *filler_count)
{
	size_t size;
	void *p;

	*slab_count = 0;
	while (*slab_count < MAX_BLOCKS &&
	       (p = k_heap_alloc(&demo_heap, SLAB_BYTES, K_NO_WAIT)) != NULL) {
		slabs[(*slab_count)++] = p;
	}
	*filler_count = 0;
	for (size = SLAB_BYTES / 2; size >= 8; size /= 2) {
		while (*filler_count < MAX_BLOCKS &&
		       (p = k_heap_alloc(&demo_heap, size, K_NO_WAIT)) != NULL) {
			fillers[(*filler_count)++] = p;
		}
	}
	if (*slab_count < 8 || *slab_count == MAX_BLOCKS || *filler_count == MAX_BLOCKS) {
		fprintf(stderr,
			"blocking_demo: FAILED: took %d slabs and %d fillers from a %d-byte heap\n",
			*slab_count, *filler_count, HEAP_BYTES);
		return -1;
	}
	qsort(slabs, (size_t)*slab_count, sizeof(slabs[0]), compare_addresses);
	return 0;
}

static bool check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "blocking_demo: FAILED: %s\n", what);
	}
	return ok;
}

static bool check_outcome(void)
{
	const struct consumer *a = &consumers[0], *b = &consumers[1], *c = &consumers[2],
			      *d = &consumers[3];
	bool ok = true;

	ok &= check(a->block != NULL && c->block != NULL && d->block != NULL,
		    "every K_FOREVER consumer is eventually served");
	ok &= check(b->block == NULL, "B, queued behind A, finds nothing before its deadline");
	ok &= check(b->waited_ms >= TIMED_CONSUMER_MS, "B waits its whole timeout before NULL");
	ok &= check(d->served_rank < a->served_rank,
		    "D's small request is not held back behind A's big one");
	ok &= check(a->served_rank < c->served_rank, "A, who came first, is served before C");
	return ok;
}

static bool release_everything(void **slabs, int slab_count, int slabs_freed, void **fillers,
			       int filler_count)
{
	struct sys_memory_stats stats;
	struct k_heap_counters counters;
	bool ok = true;
	int i;

	for (i = 0; i < CONSUMER_COUNT; i++) {
		k_heap_free(&demo_heap, consumers[i].block);
	}
	for (i = slabs_freed; i < slab_count; i++) {
		k_heap_free(&demo_heap, slabs[i]);
	}
	for (i = 0; i < filler_count; i++) {
		k_heap_free(&demo_heap, fillers[i]);
	}

	ok &= check(k_heap_runtime_stats_get(&demo_heap, &stats) == 0, "stats are readable");
	ok &= check(stats.allocated_bytes == 0, "nothing is allocated after every block is freed");
	ok &= check(sys_heap_validate(&demo_heap.heap), "the heap validates at the end");
	ok &= check(k_heap_counters_get(&demo_heap, &counters) == 0, "counters are readable");
	printf("heap at the end: %zu bytes free, %zu cached, %zu allocated (peak %zu)\n",
	       stats.free_bytes, stats.cached_bytes, stats.allocated_bytes,
	       stats.max_allocated_bytes);
	printf("counters: %llu waits, %llu handoffs, %llu timeouts\n",
	       (unsigned long long)counters.waits, (unsigned long long)counters.handoffs,
	       (unsigned long long)counters.timeouts);
	return ok;
}

int main(void)
{
	static void *slabs[MAX_BLOCKS];
	static void *fillers[MAX_BLOCKS];
	struct sys_memory_stats stats;
	pthread_condattr_t cond_attr;
	int slab_count, filler_count, slabs_freed, i;
	bool ok;

	start_ns = now_ns();
	consumers[0].timeout = K_FOREVER;
	consumers[1].timeout = K_MSEC(TIMED_CONSUMER_MS);
	consumers[2].timeout = K_FOREVER;
	consumers[3].timeout = K_FOREVER;

	pthread_condattr_init(&cond_attr);
	pthread_condattr_setclock(&cond_attr, CLOCK_MONOTONIC);
	pthread_cond_init(&returned_cond, &cond_attr);

	if (take_whole_heap(slabs, &slab_count, fillers, &filler_count) != 0) {
		return EXIT_FAILURE;
	}
	k_heap_runtime_stats_get(&demo_heap, &stats);
	say("producer holds %d slabs of %d bytes and %d fillers; %zu of %d bytes left free",
	    slab_count, SLAB_BYTES, filler_count, stats.free_bytes, HEAP_BYTES);

	for (i = 0; i < CONSUMER_COUNT; i++) {
		if (pthread_create(&consumers[i].thread, NULL, consumer_main, &consumers[i]) != 0) {
			fprintf(stderr, "blocking_demo: FAILED: cannot start consumer %s\n",
				consumers[i].name);
			return EXIT_FAILURE;
		}
		if (!wait_until_blocked(i + 1)) {
			fprintf(stderr, "blocking_demo: FAILED: consumer %s never blocked\n",
				consumers[i].name);
			return EXIT_FAILURE;
		}
	}

	for (slabs_freed = 0; slabs_freed < slab_count; slabs_freed++) {
		sleep_ms(FREE_INTERVAL_MS);
		if (returned_consumers() == CONSUMER_COUNT) {
			break;
		}
		say("producer frees slab %d", slabs_freed);
		k_heap_free(&demo_heap, slabs[slabs_freed]);
	}
	if (!wait_for_all_consumers()) {
		fprintf(stderr,
			"blocking_demo: FAILED: consumers still blocked after %d of %d slabs were "
			"freed\n",
			slabs_freed, slab_count);
		return EXIT_FAILURE;
	}
	for (i = 0; i < CONSUMER_COUNT; i++) {
		pthread_join(consumers[i].thread, NULL);
	}

	printf("served in order:");
	for (i = 1; i <= CONSUMER_COUNT; i++) {
		int j;

		for (j = 0; j < CONSUMER_COUNT; j++) {
			if (consumers[j].served_rank == i) {
				printf(" %s", consumers[j].name);
			}
		}
	}
	printf("; timed out:");
	for (i = 0; i < CONSUMER_COUNT; i++) {
		if (consumers[i].block == NULL) {
			printf(" %s", consumers[i].name);
		}
	}
	printf("\n");

	ok = check_outcome();
	ok &= release_everything(slabs, slab_count, slabs_freed, fillers, filler_count);
	if (!ok) {
		return EXIT_FAILURE;
	}
	printf("blocking_demo: ok\n");
	return EXIT_SUCCESS;
}
