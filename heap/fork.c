/*
 * Fork support for a k_heap that the child process keeps using.
 *
 * A child starts with only the thread that called fork(); every lock that
 * another thread held at that instant would stay held in the child forever,
 * and whatever that thread was changing would stay half-changed. A process
 * that allocates from a k_heap on both sides of fork() therefore calls these
 * from pthread_atfork handlers: prepare takes every lock a heap operation can
 * take, so fork() copies the heap between operations, and parent/child
 * release them again in each process.
 *
 * The heap must be initialised (READY) and must not be torn down while the
 * handlers are installed. What prepare takes, in the documented lock order
 * (k_heap_internal.h):
 *   1. liburcu-bp's registry and grace-period locks (urcu_bp_before_fork),
 *      which also blocks every signal in the forking thread until the
 *      matching after-fork call, so no handler can run while it holds the
 *      spinlocks below. No heap lock holder ever waits for these locks:
 *      urcu-bp registers a thread (taking them) only on entry to a slow
 *      path, before any heap lock.
 *   2. every process-wide slot lock, ascending, all KHEAP_MAX_CPUS of them:
 *      a fast path trylocks its slot before it checks whether the heap has
 *      a cache for that slot, so a slot past cpu_count can be held too;
 *   3. the heap lock.
 * The child's after-fork also drops the urcu-bp registry entries of threads
 * that do not exist in the child.
 *
 * Not covered: a thread asleep in a blocking k_heap_alloc at fork time stays
 * queued in the child's copy of the wait queue; a later free in the child
 * serves it a block that nobody receives (a leak, never a corruption).
 * Callers must not hold any of these locks around fork(), which is the case
 * for any code outside an allocator call.
 */
/* liburcu's Arm headers use clock_gettime, which -std=c11 hides. */
#define _POSIX_C_SOURCE 200809L
#include <urcu/urcu-bp.h>

#include "heap/k_heap_internal.h"

void kheap_fork_prepare(struct k_heap *h)
{
	urcu_bp_before_fork();
	for (uint32_t slot = 0; slot < KHEAP_MAX_CPUS; slot++)
		kheap_spin_lock(kheap_slot_lock(slot));
	kheap_spin_lock(&h->control->lock);
}

static void release_fork_locks(struct k_heap *h)
{
	kheap_spin_unlock(&h->control->lock);
	for (uint32_t slot = KHEAP_MAX_CPUS; slot-- > 0;)
		kheap_spin_unlock(kheap_slot_lock(slot));
}

void kheap_fork_parent(struct k_heap *h)
{
	release_fork_locks(h);
	urcu_bp_after_fork_parent();
}

void kheap_fork_child(struct k_heap *h)
{
	release_fork_locks(h);
	urcu_bp_after_fork_child();
}
