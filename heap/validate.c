/*
 * The full consistency walk behind sys_heap_validate().
 *
 * Checks exactly the invariants listed in heap/chunk.h (I1..I5) and reports
 * the first one that fails. It only reads the heap; the caller guarantees
 * nobody changes it meanwhile (a k_heap quiesces its caches and holds its
 * lock; see k_heap_validate_owned).
 */
#include "heap/heap_internal.h"
#include "heap/k_heap_internal.h"

static bool walk_chunks(const struct z_heap *h, size_t *free_chunks, size_t *free_bytes,
			size_t *used_bytes, struct z_heap_walk_totals *totals, const char **why)
{
	chunkid_t c = first_block_chunk(h);
	bool left_free = false;

	if (chunk_flags(h, 0) != CHUNK_USED || left_size(h, 0) != 0 || c == 0 ||
	    c >= h->end_chunk) {
		*why = "metadata chunk header damaged";
		return false;
	}
	while (c < h->end_chunk) {
		uint32_t size = chunk_size(h, c);
		bool used = chunk_used(h, c);

		if (size == 0 || size > h->end_chunk - c) {
			*why = "chunk size runs past the heap end (I1)";
			return false;
		}
		if (left_size(h, c + size) != size) {
			*why = "neighbour's left size does not match chunk size (I2)";
			return false;
		}
		if (!used && left_free) {
			*why = "two adjacent free chunks (I3)";
			return false;
		}
		if (chunk_cached(h, c) && !used) {
			*why = "chunk is cached but not in use (I4)";
			return false;
		}
		if (used && c != h->owner_control) {
			*used_bytes += chunksz_to_bytes(h, size);
			if (chunk_cached(h, c)) {
				totals->cached_chunks++;
				totals->cached_bytes += chunksz_to_bytes(h, size);
			}
		} else if (!used) {
			if (size < min_chunk_size(h)) {
				*why = "free chunk below the minimum size (I4)";
				return false;
			}
			(*free_chunks)++;
			*free_bytes += chunksz_to_bytes(h, size);
		}
		left_free = !used;
		c += size;
	}
	if (c != h->end_chunk || chunk_flags(h, c) != CHUNK_USED || chunk_size(h, c) != 1) {
		*why = "sentinel chunk damaged (I1)";
		return false;
	}
	return true;
}

static bool walk_free_lists(const struct z_heap *h, size_t free_chunks, const char **why)
{
	size_t listed = 0;

	for (uint32_t b = 0; b < 32; b++) {
		bool marked = (h->avail_buckets >> b & 1u) != 0;
		chunkid_t head = b < h->bucket_count ? h->buckets[b] : 0;
		chunkid_t c = head, next;

		if (marked != (head != 0)) {
			*why = "bucket bitmap disagrees with bucket list (I4)";
			return false;
		}
		if (head == 0)
			continue;
		do {
			if (c < first_block_chunk(h) || c >= h->end_chunk || chunk_used(h, c) ||
			    bucket_index(chunk_size(h, c)) != b) {
				*why = "free list holds a chunk that is used, outside the heap, or "
				       "in the wrong bucket (I4)";
				return false;
			}
			next = next_free_chunk(h, c);
			if (next < first_block_chunk(h) || next >= h->end_chunk ||
			    prev_free_chunk(h, next) != c) {
				*why = "free list links point outside the heap or are not "
				       "symmetric (I4)";
				return false;
			}
			if (++listed > free_chunks) {
				*why = "free lists hold more chunks than the heap has free (I4)";
				return false;
			}
			c = next;
		} while (c != head);
	}
	if (listed != free_chunks) {
		*why = "a free chunk is missing from the free lists (I4)";
		return false;
	}
	return true;
}

bool z_heap_check_invariants(const struct z_heap *h, struct z_heap_walk_totals *totals,
			     const char **why)
{
	size_t free_chunks = 0, free_bytes = 0, used_bytes = 0;

	totals->cached_chunks = 0;
	totals->cached_bytes = 0;
	if (h->magic != Z_HEAP_MAGIC) {
		*why = "heap magic damaged";
		return false;
	}
	if (!walk_chunks(h, &free_chunks, &free_bytes, &used_bytes, totals, why))
		return false;
	if (!walk_free_lists(h, free_chunks, why))
		return false;
	if (free_bytes != h->free_bytes || used_bytes != h->allocated_bytes ||
	    h->allocated_bytes > h->max_allocated_bytes) {
		*why = "stats counters disagree with the heap walk (I5)";
		return false;
	}
	return true;
}

bool sys_heap_validate(struct sys_heap *heap)
{
	struct z_heap *h = heap_of(heap);
	struct z_heap_walk_totals totals;
	const char *why;

	if (h == NULL) {
		kheap_raise_fault(KHEAP_FAULT_BAD_HEAP, heap, NULL, "heap is not initialised");
		return false;
	}
	if (h->owner_control != 0)
		return k_heap_validate_owned(heap);
	if (!z_heap_check_invariants(h, &totals, &why)) {
		kheap_raise_fault(KHEAP_FAULT_CORRUPT_HEAP, heap, NULL, why);
		return false;
	}
	if (totals.cached_chunks != 0) {
		kheap_raise_fault(KHEAP_FAULT_CORRUPT_HEAP, heap, NULL,
				  "a heap without caches has chunks marked cached");
		return false;
	}
	return true;
}
