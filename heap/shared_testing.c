/*
 * Test hooks for heaps in shared memory (heap/shared_testing.h): each leaves
 * the calling process holding a lock of the heap, as a process killed at
 * that point would, so tests can kill it there.
 */
#include "heap/shared_testing.h"

#include "heap/k_heap_internal.h"

void kheap_testing_hold_heap_lock(struct k_heap *h)
{
	kheap_heap_lock(h->control);
}

void kheap_testing_hold_heap_lock_mid_update(struct k_heap *h)
{
	struct k_heap_control *ctl = h->control;

	if (!kheap_heap_lock(ctl))
		return;
	/* z_heap_free_chunk updates the free lists, then the byte counts; a
	 * process dying between the two leaves the counts short.
	 */
	control_heap(ctl)->free_bytes -= CHUNK_UNIT;
}

unsigned int kheap_testing_cache_count(struct k_heap *h)
{
	return h->control->cpu_count;
}
