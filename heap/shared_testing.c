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

/* The head of the largest non-empty bucket, or 0. */
static chunkid_t some_free_chunk(struct z_heap *z)
{
	if (z->avail_buckets == 0)
		return 0;
	return z->buckets[31 - __builtin_clz(z->avail_buckets)];
}

void kheap_testing_hold_heap_lock_mid_update(struct k_heap *h)
{
	struct k_heap_control *ctl = h->control;
	struct z_heap *z = control_heap(ctl);
	chunkid_t c;

	if (!kheap_heap_lock(ctl))
		return;
	c = some_free_chunk(z);
	if (c != 0)
		set_chunk_size(z, c, z->end_chunk + 1);
}

void kheap_testing_hold_heap_lock_mid_alloc(struct k_heap *h)
{
	struct k_heap_control *ctl = h->control;
	struct z_heap *z = control_heap(ctl);
	unsigned int b;
	chunkid_t c;

	if (!kheap_heap_lock(ctl))
		return;
	c = some_free_chunk(z);
	if (c == 0)
		return;
	/* find_free_chunk's unlink, done by hand up to the counter update. */
	b = 31 - (unsigned int)__builtin_clz(z->avail_buckets);
	if (next_free_chunk(z, c) == c) {
		z->buckets[b] = 0;
		z->avail_buckets &= ~(1u << b);
	} else {
		chunkid_t prev = prev_free_chunk(z, c), next = next_free_chunk(z, c);

		set_next_free_chunk(z, prev, next);
		set_prev_free_chunk(z, next, prev);
		z->buckets[b] = next;
	}
	set_chunk_flags(z, c, CHUNK_USED);
	z_heap_write_trailer(z, c, 16);
}

unsigned int kheap_testing_cache_count(struct k_heap *h)
{
	return h->control->cpu_count;
}

void kheap_testing_hold_cache_lock(struct k_heap *h, unsigned int cpu)
{
	kheap_cache_lock_shared_slot(h->control, cpu, true);
}

bool kheap_testing_hold_cache_lock_mid_pop(struct k_heap *h, unsigned int cpu)
{
	struct k_heap_control *ctl = h->control;
	struct kheap_cpu_cache *cache = &ctl->cpus[cpu];
	struct z_heap *z = control_heap(ctl);

	if (!kheap_cache_lock_shared_slot(ctl, cpu, true))
		return false;
	for (uint32_t units = ctl->min_class_units; units <= ctl->max_class_units; units++) {
		struct kheap_cache_class *cls = &cache->classes[units];
		chunkid_t c = cls->head;

		if (c == 0)
			continue;
		/* alloc_locked's unlink, stopped before the block is handed out. */
		cls->head = ((uint32_t *)chunk_mem(z, c))[0];
		cls->count--;
		return true;
	}
	return false;
}
