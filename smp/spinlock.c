/*
 * The contended path of kheap_spin_lock: spin politely, then yield.
 * See smp/spinlock.h for why the yield is there.
 */
#include <sched.h>

#include "smp/spinlock.h"

void kheap_spin_lock_contended(kheap_spinlock_t *lock)
{
	ck_backoff_t backoff = KHEAP_SPIN_FIRST_BACKOFF;
	unsigned int rounds = 0;

	for (;;) {
		while (kheap_spin_is_locked(lock)) {
			if (rounds < KHEAP_SPIN_LIMIT) {
				ck_backoff_eb(&backoff);
				rounds++;
			} else {
				sched_yield();
			}
		}
		if (kheap_spin_trylock(lock))
			return;
	}
}
