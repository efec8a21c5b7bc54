/*
 * heapstress failure log: a mutex-protected list of messages.
 *
 * The mutex is never held across a call into the heap, so recording a
 * failure from inside the heap's fault handler (which may run with heap
 * locks held) cannot deadlock.
 */
#include "failures.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "hist.h"

void hs_failures_init(struct hs_failures *failures, void (*on_first_failure)(void *arg),
		      void *hook_arg)
{
	memset(failures, 0, sizeof(*failures));
	pthread_mutex_init(&failures->lock, NULL);
	atomic_init(&failures->failed, false);
	atomic_init(&failures->heap_suspect, false);
	atomic_init(&failures->faults, 0);
	failures->start_ns = hs_now_ns();
	failures->on_first_failure = on_first_failure;
	failures->hook_arg = hook_arg;
}

void hs_failures_destroy(struct hs_failures *failures)
{
	pthread_mutex_destroy(&failures->lock);
}

void hs_failures_start_clock(struct hs_failures *failures, uint64_t start_ns)
{
	pthread_mutex_lock(&failures->lock);
	failures->start_ns = start_ns;
	pthread_mutex_unlock(&failures->lock);
}

void hs_fail(struct hs_failures *failures, bool heap_suspect, const char *fmt, ...)
{
	char text[HS_FAILURE_LEN - 16];
	bool first;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (heap_suspect) {
		atomic_store_explicit(&failures->heap_suspect, true, memory_order_release);
	}
	pthread_mutex_lock(&failures->lock);
	first = failures->count == 0 && failures->dropped == 0;
	if (failures->count < HS_MAX_FAILURES) {
		snprintf(failures->messages[failures->count], HS_FAILURE_LEN, "t=%.3fs %s",
			 (double)(hs_now_ns() - failures->start_ns) / 1e9, text);
		failures->count++;
	} else {
		failures->dropped++;
	}
	atomic_store_explicit(&failures->failed, true, memory_order_relaxed);
	pthread_mutex_unlock(&failures->lock);
	if (first && failures->on_first_failure != NULL) {
		failures->on_first_failure(failures->hook_arg);
	}
}
