/*
 * Runtime statistics (sys_heap_runtime_stats_get / _reset_max).
 *
 * The sys_heap counters see blocks parked in per-CPU caches as allocated;
 * for a heap owned by a k_heap the cached amount is read from the caches'
 * per-CPU counters and moved from allocated_bytes to cached_bytes, so
 * allocated_bytes always means "held by users".
 */
#include <errno.h>

#include "heap/heap_internal.h"
#include "heap/k_heap_internal.h"

int sys_heap_runtime_stats_get(struct sys_heap *heap, struct sys_memory_stats *stats)
{
	struct z_heap *h = heap_of(heap);

	if (h == NULL || stats == NULL)
		return -EINVAL;
	if (h->owner_control != 0)
		return k_heap_stats_owned(heap, stats);
	stats->free_bytes = h->free_bytes;
	stats->allocated_bytes = h->allocated_bytes;
	stats->max_allocated_bytes = h->max_allocated_bytes;
	stats->cached_bytes = 0;
	return 0;
}

int sys_heap_runtime_stats_reset_max(struct sys_heap *heap)
{
	struct z_heap *h = heap_of(heap);

	if (h == NULL)
		return -EINVAL;
	if (h->owner_control != 0)
		return k_heap_stats_reset_max_owned(heap);
	h->max_allocated_bytes = h->allocated_bytes;
	return 0;
}
