/*
 * Interfaces between the files of the malloc replacement: the process heap
 * (heap.c), the blocks mapped on their own (huge.c) and the C API (malloc.c).
 *
 * Two homes for a block:
 *   the heap   one k_heap over a region reserved once, at the first call;
 *              every request below KHEAP_MALLOC_MMAP_THRESHOLD lives here;
 *   a mapping  a request at or above the threshold (or with an alignment
 *              that large) gets a private mapping of its own, registered in
 *              a table so that free() can tell it from a foreign pointer.
 * A pointer is classified by address alone: inside the region, it is a heap
 * block; outside, it must be in the mapping table or it is not ours.
 *
 * Invariants:
 *   - the region's bounds are written once, before the heap is published as
 *     ready (a release store), and never change afterwards;
 *   - no lock of this layer is held while calling into the heap, and no
 *     heap call is made while holding one, so the fork handlers may take
 *     them in any order (they take the heap's first: it blocks signals).
 */
#ifndef KHEAP_MALLOC_MALLOC_INTERNAL_H
#define KHEAP_MALLOC_MALLOC_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kheap/k_heap.h>

#include "malloc/kheap_malloc.h"

/* The heap, once heap.c has set it up; NULL when the region could not be
 * reserved (then only mapped blocks are served).
 */
extern struct k_heap *kheap_malloc_ready_heap;

/* The region's bounds; both 0 until the heap is ready. */
extern uintptr_t kheap_malloc_region_start;
extern size_t kheap_malloc_region_bytes;

/* Bytes handed back by freeing large heap blocks (malloc.c). */
extern uint64_t kheap_malloc_released_bytes;

/* The page size, read at set-up (before that, the smallest Linux page). */
extern size_t kheap_malloc_page_bytes;

/* Sets up the heap on the first call; returns it, or NULL if unavailable. */
struct k_heap *kheap_malloc_heap_slow(void);

static inline struct k_heap *kheap_malloc_heap_get(void)
{
	struct k_heap *h = __atomic_load_n(&kheap_malloc_ready_heap, __ATOMIC_ACQUIRE);

	if (__builtin_expect(h != NULL, 1))
		return h;
	return kheap_malloc_heap_slow();
}

static inline bool kheap_malloc_in_region(const void *p)
{
	return (uintptr_t)p - kheap_malloc_region_start < kheap_malloc_region_bytes;
}

/*
 * Mapped blocks (huge.c). The user pointer is always the start of its own
 * page-aligned mapping; the table maps it to the mapping's length.
 */
void *kheap_huge_alloc(size_t bytes, size_t align);
/* Unmaps `p` and returns true, or returns false if `p` is not a mapped block. */
bool kheap_huge_free(void *p);
/* The mapping's length, or 0 if `p` is not a mapped block. */
size_t kheap_huge_usable_size(const void *p);
/*
 * Resizes mapped block `p` to at least `bytes` with mremap (moving it if
 * needed). Returns the block, or NULL with *found telling whether `p` was a
 * mapped block at all; on NULL a found block is untouched.
 */
void *kheap_huge_resize(void *p, size_t bytes, bool *found);
void kheap_huge_stats(struct kheap_malloc_stats *stats);
void kheap_huge_fork_prepare(void);
void kheap_huge_fork_release(void);

/* Adds `bytes` rounded up to whole pages; false on overflow. */
static inline bool kheap_malloc_page_round(size_t bytes, size_t *rounded)
{
	size_t mask = kheap_malloc_page_bytes - 1;

	if (__builtin_add_overflow(bytes, mask, rounded))
		return false;
	*rounded &= ~mask;
	return true;
}

#endif
