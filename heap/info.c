/*
 * sys_heap_print_info: a human-readable summary of a heap on stdout.
 *
 * Prints, per occupied bucket, how many free chunks it holds and the largest
 * one, then the totals and the stats counters; with dump_chunks, one line per
 * chunk in address order. Only reads the heap: callers serialise as for any
 * other sys_heap call (for a k_heap, hold no expectations of exactness while
 * other threads run).
 */
#include <stdio.h>

#include "heap/heap_internal.h"

void sys_heap_print_info(struct sys_heap *heap, bool dump_chunks)
{
	struct z_heap *h = heap_of(heap);
	struct sys_memory_stats stats;
	size_t free_total = 0, free_chunks = 0;

	if (h == NULL) {
		printf("heap %p: not initialised\n", (void *)heap);
		return;
	}
	printf("heap %p: %u chunk units of %u bytes, %u-byte headers, %u buckets\n", (void *)heap,
	       (unsigned int)h->end_chunk + 1, CHUNK_UNIT, (unsigned int)h->header_bytes,
	       (unsigned int)h->bucket_count);
	printf("  bucket  chunks  largest(units)  free bytes\n");
	for (uint32_t b = 0; b < h->bucket_count; b++) {
		chunkid_t head = h->buckets[b], c = head;
		size_t count = 0, bytes = 0;
		uint32_t largest = 0;

		if (head == 0)
			continue;
		do {
			uint32_t size = chunk_size(h, c);

			count++;
			bytes += chunksz_to_bytes(h, size);
			if (size > largest)
				largest = size;
			c = next_free_chunk(h, c);
		} while (c != head && c > 0 && c < h->end_chunk && count <= h->end_chunk);
		printf("  %6u  %6zu  %14u  %10zu\n", (unsigned int)b, count, (unsigned int)largest,
		       bytes);
		free_total += bytes;
		free_chunks += count;
	}
	sys_heap_runtime_stats_get(heap, &stats);
	printf("  %zu free bytes in %zu chunks; allocated %zu, cached %zu, max allocated %zu\n",
	       free_total, free_chunks, stats.allocated_bytes, stats.cached_bytes,
	       stats.max_allocated_bytes);

	if (!dump_chunks)
		return;
	for (chunkid_t c = 0; c <= h->end_chunk;) {
		uint32_t size = chunk_size(h, c);
		const char *state = c == 0		 ? "metadata"
				    : c == h->end_chunk	 ? "sentinel"
				    : chunk_cached(h, c) ? "cached"
				    : chunk_used(h, c)	 ? "used"
							 : "free";

		printf("  chunk %8u  units %8u  left %8u  %s\n", (unsigned int)c,
		       (unsigned int)size, (unsigned int)left_size(h, c), state);
		if (size == 0 || c == h->end_chunk)
			break;
		c += size;
	}
}
