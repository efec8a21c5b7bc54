/*
 * Interfaces between the files of heap/: the sys_heap core that k_heap builds
 * on, fault raising, and the validation walk.
 *
 * Nothing here locks. Callers of the z_heap_* functions hold whatever
 * serialises the heap (k_heap's spinlock, or single-threaded use).
 */
#ifndef KHEAP_HEAP_HEAP_INTERNAL_H
#define KHEAP_HEAP_HEAP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <kheap/fault.h>
#include <kheap/sys_heap.h>

#include "heap/chunk.h"

#ifndef KHEAP_DEFAULT_HARDENING
#define KHEAP_DEFAULT_HARDENING SYS_HEAP_HARDENING_BASIC
#endif

/* Bytes of the FULL-level trailer after each block (hardening.c). */
#define Z_HEAP_TRAILER_BYTES 8u

static inline bool z_heap_has_trailers(const struct z_heap *h)
{
	return h->hardening >= SYS_HEAP_HARDENING_FULL;
}

/* Units a request of `bytes` occupies at this heap's hardening level. */
static inline uint32_t z_heap_request_units(const struct z_heap *h, size_t bytes)
{
	return bytes_to_chunksz(h, bytes + (z_heap_has_trailers(h) ? Z_HEAP_TRAILER_BYTES : 0));
}

/* Largest request the heap could describe, trailer included. */
static inline size_t z_heap_max_request(const struct z_heap *h)
{
	return max_request_bytes(h) - Z_HEAP_TRAILER_BYTES;
}

void z_heap_write_trailer(struct z_heap *h, chunkid_t c, size_t bytes);
bool z_heap_trailer_intact(const struct z_heap *h, chunkid_t c, size_t *requested);
/* The owner tag in an intact trailer (shared heaps), 0 when there is none. */
uint32_t z_heap_trailer_tag(const struct z_heap *h, chunkid_t c);
/* Records an owner tag in the intact trailer of chunk c. */
void z_heap_set_trailer_tag(struct z_heap *h, chunkid_t c, uint32_t tag);
void z_heap_poison(struct z_heap *h, chunkid_t c);
/* Poisons chunk c's body past its first `skip` bytes (a cached block's links). */
void z_heap_poison_from(struct z_heap *h, chunkid_t c, size_t skip);
bool z_heap_poison_intact(const struct z_heap *h, chunkid_t c, size_t skip);
/* Raises KHEAP_FAULT_CORRUPT_HEAP if any invariant is broken (EXTREME). */
void z_heap_extreme_check(const struct z_heap *h);

/* Bytes the user of a live block may use: the requested size when the heap
 * keeps trailers, else the chunk's usable size.
 */
static inline size_t z_heap_block_bytes(const struct z_heap *h, chunkid_t c)
{
	size_t requested;

	if (z_heap_has_trailers(h) && z_heap_trailer_intact(h, c, &requested))
		return requested;
	return chunksz_to_bytes(h, chunk_size(h, c));
}

/* Reports a fault through the installed handler (fault.c). */
void kheap_raise_fault(enum kheap_fault fault, const void *heap, const void *ptr,
		       const char *detail);

/*
 * Checks that `mem` is the start of a live (USED, not CACHED) block of `h`
 * in O(1). Returns 0 and sets *chunk, or the fault and sets *detail.
 * Needs the heap lock: it also checks the left neighbour, which others may
 * be splitting or merging.
 */
enum kheap_fault z_heap_check_block(const struct z_heap *h, const void *mem, chunkid_t *chunk,
				    const char **detail);

/*
 * The part of z_heap_check_block that is safe without the heap lock for a
 * block the caller owns: every field it reads (the block's header and the
 * next header's left size) changes only when the block itself does.
 */
static inline enum kheap_fault z_heap_check_owned_block(const struct z_heap *h, const void *mem,
							chunkid_t *chunk, const char **detail)
{
	const uint8_t *p = mem;
	const uint8_t *lowest = chunk_mem(h, first_block_chunk(h));
	const uint8_t *beyond = chunk_mem(h, h->end_chunk);
	chunkid_t c;
	uint32_t size;

	if (p < lowest || p >= beyond) {
		*detail = "pointer is not inside this heap";
		return KHEAP_FAULT_FOREIGN_POINTER;
	}
	if ((size_t)(p - h->header_bytes - chunk_base(h)) % CHUNK_UNIT != 0) {
		*detail = "pointer is not at the start of a block";
		return KHEAP_FAULT_INTERIOR_POINTER;
	}
	c = mem_to_chunk(h, mem);
	if (__builtin_expect(h->hardening == SYS_HEAP_HARDENING_NONE, 0)) {
		*chunk = c;
		return 0;
	}
	size = chunk_size(h, c);
	if (size == 0 || size > h->end_chunk - c) {
		*detail = "no block header at pointer (interior pointer, or header overwritten)";
		return KHEAP_FAULT_INTERIOR_POINTER;
	}
	if (!chunk_used(h, c)) {
		*detail = "block is already free";
		return KHEAP_FAULT_DOUBLE_FREE;
	}
	if (chunk_cached(h, c)) {
		*detail = "block is already free (parked in a per-CPU cache)";
		return KHEAP_FAULT_DOUBLE_FREE;
	}
	if (left_size(h, c + size) != size) {
		*detail =
		    "the header after this block was overwritten (write past the block's end?)";
		return KHEAP_FAULT_HEADER_OVERWRITTEN;
	}
	if (z_heap_has_trailers(h) && !z_heap_trailer_intact(h, c, NULL)) {
		*detail = "the block was written past the size it was allocated with";
		return KHEAP_FAULT_HEADER_OVERWRITTEN;
	}
	*chunk = c;
	return 0;
}

/* As z_heap_check_block, but the block must be CACHED (it sits in a cache). */
enum kheap_fault z_heap_check_cached_block(const struct z_heap *h, chunkid_t c,
					   const char **detail);

/* Core operations on a formatted heap; see sys_heap.h for semantics. */
void *z_heap_alloc(struct z_heap *h, size_t bytes);
void *z_heap_aligned_alloc(struct z_heap *h, size_t align, size_t bytes);
/*
 * As z_heap_aligned_alloc, but it examines every free chunk of the request's
 * size bucket, not Z_HEAP_BUCKET_TRIES of them: it fails only when no free
 * chunk is large enough (with the worst-case padding for `align`). Its time
 * grows with that bucket's length, so it serves callers that would
 * otherwise sleep while a block that fits lies free.
 */
void *z_heap_aligned_alloc_any_fit(struct z_heap *h, size_t align, size_t bytes);
/* Frees a chunk that z_heap_check_block accepted. */
void z_heap_free_chunk(struct z_heap *h, chunkid_t c);
/* Resizes a chunk that z_heap_check_block accepted; NULL leaves it intact. */
void *z_heap_realloc_chunk(struct z_heap *h, chunkid_t c, size_t align, size_t bytes);

/*
 * Frees, in one walk, every USED chunk (cached ones included) for which
 * `match` is true; returns how many, and adds their bytes to *bytes (if not
 * NULL). `match` sees each chunk before anything near it changes.
 */
size_t z_heap_free_where(struct z_heap *h, bool (*match)(struct z_heap *h, chunkid_t c, void *arg),
			 void *arg, size_t *bytes);

/* Rebuilds lists, bitmap and counters from the chunk headers (sys_heap.c). */
bool z_heap_rebuild(struct z_heap *h, const char **why);

/* Usable bytes of the largest free chunk (the largest possible request). */
size_t z_heap_largest_free_bytes(const struct z_heap *h);

/* Allocates one chunk of exactly `units` units, or returns 0. */
chunkid_t z_heap_alloc_exact(struct z_heap *h, uint32_t units);

/* Marks a USED chunk as parked in a cache, or takes it back for a user. */
static inline void z_heap_mark_cached(struct z_heap *h, chunkid_t c)
{
	set_chunk_flags(h, c, CHUNK_USED | CHUNK_CACHED);
}

static inline void z_heap_mark_uncached(struct z_heap *h, chunkid_t c)
{
	set_chunk_flags(h, c, CHUNK_USED);
}

/* Totals gathered by the validation walk. */
struct z_heap_walk_totals {
	size_t cached_chunks;
	size_t cached_bytes;
};

/*
 * Checks invariants I1..I5 of chunk.h over the whole heap. Returns true, or
 * false with *why naming the first broken invariant.
 */
bool z_heap_check_invariants(const struct z_heap *h, struct z_heap_walk_totals *totals,
			     const char **why);

/* Public formatter with a forced header width (see heap_testing.h). */
int z_heap_format(struct sys_heap *heap, void *mem, size_t bytes, int force_small);

#endif
