/*
 * heapstress failure log: every problem the run finds, from any thread.
 *
 * The first failure sets `failed` and calls the stop hook once, so the run
 * winds down instead of piling errors on a broken heap. A failure that
 * means the heap's metadata can no longer be trusted (a heap fault, a failed
 * validation, a pointer outside the region) also sets `heap_suspect`: the
 * run then stops touching the heap (no cleanup frees, no heap walk).
 * Messages are kept in order, up to HS_MAX_FAILURES; later ones are counted.
 * hs_fail is safe from any thread, including inside the heap's fault
 * handler; it never calls into the heap.
 */
#ifndef HEAPSTRESS_FAILURES_H
#define HEAPSTRESS_FAILURES_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HS_MAX_FAILURES 16
#define HS_FAILURE_LEN	320

struct hs_failures {
	pthread_mutex_t lock;
	char messages[HS_MAX_FAILURES][HS_FAILURE_LEN];
	size_t count;
	uint64_t dropped;
	atomic_bool failed;
	atomic_bool heap_suspect;
	_Atomic uint64_t faults;
	uint64_t start_ns;
	void (*on_first_failure)(void *arg);
	void *hook_arg;
};

void hs_failures_init(struct hs_failures *failures, void (*on_first_failure)(void *arg),
		      void *hook_arg);
void hs_failures_destroy(struct hs_failures *failures);

/* Marks when the run started, for the "t=..." stamp on each message. */
void hs_failures_start_clock(struct hs_failures *failures, uint64_t start_ns);

/* Records one failure; `heap_suspect` says the heap's metadata is untrustworthy. */
void hs_fail(struct hs_failures *failures, bool heap_suspect, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline bool hs_failed(struct hs_failures *failures)
{
	return atomic_load_explicit(&failures->failed, memory_order_relaxed);
}

static inline bool hs_heap_suspect(struct hs_failures *failures)
{
	return atomic_load_explicit(&failures->heap_suspect, memory_order_acquire);
}

#endif
