/*
 * The heap spinlock: CK's fetch-and-store lock with CK's exponential backoff,
 * yielding the CPU after a bounded spin.
 *
 * Why yield: in user space the holder can be preempted. A pure spinner would
 * then burn its whole time slice waiting for a thread that is not running;
 * with more threads than cores (the normal case under heapstress) that turns
 * a nanosecond critical section into milliseconds. After KHEAP_SPIN_LIMIT
 * short backoff rounds the waiter calls sched_yield() between attempts.
 *
 * Acquire/release: lock() is an acquire and unlock() a release (CK's
 * fas lock issues the fences for the target's memory model), so everything
 * written inside one critical section is visible to the next holder.
 */
#ifndef KHEAP_SMP_SPINLOCK_H
#define KHEAP_SMP_SPINLOCK_H

#include <stdbool.h>

/* Only the fas lock: <ck_spinlock.h> pulls in lock types that do not compile
 * as C++, and tests include this header from C++.
 */
/* CK's default backoff ceiling (2^20 pause loops per round) suits kernels,
 * where a lock holder is never descheduled. Here it would spin for tens of
 * milliseconds behind a preempted holder before yielding, so each round is
 * capped at about a microsecond.
 */
#ifndef CK_BACKOFF_CEILING
#define CK_BACKOFF_CEILING ((1u << 10) - 1)
#endif
#include <ck_backoff.h>
#include <spinlock/fas.h>

#include "smp/atomic.h"

typedef ck_spinlock_fas_t kheap_spinlock_t;

/* Backoff rounds before the waiter starts yielding: about 7000 pause loops,
 * a few microseconds, longer than any heap critical section.
 */
#define KHEAP_SPIN_LIMIT	 10
#define KHEAP_SPIN_FIRST_BACKOFF 64u

void kheap_spin_lock_contended(kheap_spinlock_t *lock);

#ifdef KHEAP_TSAN
/* Same lock word and protocol, on builtins TSan can see (smp/atomic.h). */
static inline bool kheap_spin_trylock(kheap_spinlock_t *lock)
{
	return __atomic_exchange_n(&lock->value, 1u, __ATOMIC_ACQUIRE) == 0;
}

static inline bool kheap_spin_is_locked(kheap_spinlock_t *lock)
{
	return __atomic_load_n(&lock->value, __ATOMIC_RELAXED) != 0;
}

static inline void kheap_spin_unlock(kheap_spinlock_t *lock)
{
	__atomic_store_n(&lock->value, 0u, __ATOMIC_RELEASE);
}
#else
static inline bool kheap_spin_trylock(kheap_spinlock_t *lock)
{
	return ck_spinlock_fas_trylock(lock);
}

static inline bool kheap_spin_is_locked(kheap_spinlock_t *lock)
{
	return ck_spinlock_fas_locked(lock);
}

static inline void kheap_spin_unlock(kheap_spinlock_t *lock)
{
	ck_spinlock_fas_unlock(lock);
}
#endif

static inline void kheap_spin_lock(kheap_spinlock_t *lock)
{
	if (__builtin_expect(!kheap_spin_trylock(lock), 0))
		kheap_spin_lock_contended(lock);
}

static inline void kheap_spin_init(kheap_spinlock_t *lock)
{
	ck_spinlock_fas_init(lock);
}

#endif
