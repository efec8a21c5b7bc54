/*
 * A FIFO wait queue with direct hand-off, on futexes.
 *
 * Each sleeping thread owns a struct kheap_waiter (on its own stack, or in a
 * shared heap's table) with a futex word. The queue itself is a doubly
 * linked list protected by the caller's lock (the heap lock); this file
 * never takes a lock.
 *
 * Protocol (no lost wake-up): a waiter is enqueued with state WAITING under
 * the heap lock in the same critical section in which its last attempt to
 * allocate failed. Whoever later frees memory does so under that lock, so it
 * finds the waiter queued, hands it a block, dequeues it and stores SERVED
 * (a release) before waking it. The waiter's futex wait only sleeps while the
 * word still reads WAITING, so a wake that comes before the sleep is never
 * lost; on any return it re-reads the word with acquire ordering, which pairs
 * with the release above and makes `result` visible.
 *
 * A served waiter may return and reuse its stack before the waker's
 * futex_wake() runs; waking a futex address nobody waits on is harmless, and
 * every wait here re-checks its word, so a stray wake is only a retry.
 */
#ifndef KHEAP_SMP_WAITQ_H
#define KHEAP_SMP_WAITQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

enum kheap_waiter_state {
	KHEAP_WAITER_WAITING = 0,
	KHEAP_WAITER_SERVED = 1,
};

/*
 * How a queue names its waiters: a waiter's address minus the queue's base,
 * 0 meaning none. A private queue uses base 0, so a reference is simply the
 * address of a waiter on some thread's stack; a queue in shared memory uses
 * the start of the region in the calling process, so every process reads the
 * same references however the region is mapped.
 */
typedef uint64_t kheap_waiter_ref;

struct kheap_waiter {
	kheap_waiter_ref next;
	kheap_waiter_ref prev;
	/* What the waiter needs; read by the server under the heap lock. */
	uint64_t bytes;
	uint64_t align;
	/* Who waits (a shared heap's owner tag, else 0); the server allocates
	 * on its behalf.
	 */
	uint32_t owner_tag;
	/* Written by the server before state becomes SERVED: the chunk id of
	 * the block handed over.
	 */
	uint32_t result;
	/* The futex word: WAITING, then SERVED exactly once. */
	uint32_t state;
	/* Free for the owner of the waiter record (a shared heap's table). */
	uint32_t in_use;
};

struct kheap_waitq {
	kheap_waiter_ref head;
	kheap_waiter_ref tail;
};

static inline struct kheap_waiter *kheap_waiter_at(uintptr_t base, kheap_waiter_ref ref)
{
	return ref == 0 ? NULL : (struct kheap_waiter *)(base + (uintptr_t)ref);
}

static inline kheap_waiter_ref kheap_waiter_ref_of(uintptr_t base, const struct kheap_waiter *w)
{
	return (kheap_waiter_ref)((uintptr_t)w - base);
}

void kheap_waitq_append(struct kheap_waitq *q, uintptr_t base, struct kheap_waiter *w);
void kheap_waitq_remove(struct kheap_waitq *q, uintptr_t base, struct kheap_waiter *w);

/* Under the lock: records `result`, dequeues `w` and marks it SERVED. The
 * caller must call kheap_waiter_wake(&w->state) after dropping the lock.
 */
void kheap_waiter_serve(struct kheap_waitq *q, uintptr_t base, struct kheap_waiter *w,
			uint32_t result);

/*
 * Sleeps while w->state reads WAITING, until `deadline` (absolute
 * CLOCK_MONOTONIC; NULL = forever). Returns true once SERVED is observed,
 * false when the deadline passed first. Retries EINTR and spurious wakes.
 * A cancellation point while it sleeps (and only then): callers install a
 * cleanup handler that takes the waiter out of its queue.
 */
bool kheap_waiter_sleep(struct kheap_waiter *w, const struct timespec *deadline,
			bool process_shared);

/* Wakes the thread sleeping on a served waiter's state word. A waiter in
 * memory other processes map must be slept on and woken process_shared.
 */
void kheap_waiter_wake(uint32_t *state, bool process_shared);

/* Absolute CLOCK_MONOTONIC deadline `ns` from now (saturating). */
void kheap_deadline_after(struct timespec *deadline, int64_t ns);

#endif
