/*
 * Chunk layout of a sys_heap region, and the only code that touches header
 * bits. Everything else calls the accessors below.
 *
 * Units. The region is cut into 8-byte chunk units, numbered from the chunk
 * base. A chunk id is the unit number of a chunk's first unit; every id and
 * size stored in the region is in units, never a pointer, so a region may be
 * mapped at a different address in each process.
 *
 * The chunk base is placed so that base + header_bytes is 8-byte aligned:
 * user memory, which starts right after a header, is therefore always 8-byte
 * aligned in both header formats.
 *
 * Header of every chunk (two fields; 32-bit each in the big format, 16-bit
 * each in the small one, so a header is 8 or 4 bytes):
 *   [0] LEFT_SIZE   size of the chunk to the left, in units
 *   [1] SIZE_FLAGS  size << 2 | CACHED << 1 | USED
 * LEFT_SIZE comes first on purpose: a block that writes past its end hits
 * the next header's LEFT_SIZE first, and free() checks that field against
 * the block's own size, so the common overrun is caught in O(1).
 *
 * A free chunk also keeps its free-list links in its first body bytes:
 *   [2] FREE_PREV, [3] FREE_NEXT   neighbours in its bucket's circular list
 * hence the minimum chunk: 2 units (big) or 1 unit (small).
 *
 * Region map, chunk ids in [0, end_chunk]:
 *   chunk 0           metadata; its body is struct z_heap (always USED), so
 *                     chunk c's memory is (uint8_t *)h + c * CHUNK_UNIT
 *   chunks 1..end-1   blocks, USED or free, tiling the space exactly
 *   chunk end_chunk   a one-unit sentinel (always USED), header only
 * Metadata and sentinel are USED so merging never needs a bounds check.
 *
 * Invariants (checked by sys_heap_validate):
 *   I1 chunks tile [0, end_chunk]: c + size(c) is the next chunk's id;
 *   I2 left_size(right(c)) == size(c) for every chunk but the sentinel;
 *   I3 no two free chunks are adjacent (merging is eager);
 *   I4 a chunk is free iff it is in exactly one bucket list, the one for
 *      floor(log2(size)); bit b of avail_buckets is set iff list b is
 *      non-empty; CACHED implies USED;
 *   I5 free_bytes is the sum of (size * 8 - header) over free chunks and
 *      allocated_bytes the same sum over USED blocks (cached included).
 */
#ifndef KHEAP_HEAP_CHUNK_H
#define KHEAP_HEAP_CHUNK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kheap/sys_heap.h>

#include "smp/atomic.h"

#define CHUNK_UNIT 8u

/* Identifies a formatted region ("kHeP"), for attach and foreign checks. */
#define Z_HEAP_MAGIC 0x6b486550u

/* Largest chunk count each format can describe (size is 30 or 14 bits). */
#define Z_HEAP_BIG_MAX_UNITS   ((1u << 30) - 1)
#define Z_HEAP_SMALL_MAX_UNITS ((1u << 14) - 1)

/* Chunks of the exact bucket examined before moving to a larger bucket. */
#define Z_HEAP_BUCKET_TRIES 3

typedef uint32_t chunkid_t;

enum chunk_field {
	LEFT_SIZE,
	SIZE_FLAGS,
	FREE_PREV,
	FREE_NEXT,
};

#define CHUNK_USED   1u
#define CHUNK_CACHED 2u
#define CHUNK_FLAGS  3u

struct z_heap {
	uint32_t magic;
	chunkid_t end_chunk;
	uint32_t avail_buckets;
	uint32_t header_bytes;
	/* An enum sys_heap_hardening; see heap/hardening.c. */
	uint32_t hardening;
	/* Chunk id of the owning k_heap's control block, 0 for a plain heap. */
	chunkid_t owner_control;
	uint32_t bucket_count;
	size_t free_bytes;
	size_t allocated_bytes;
	size_t max_allocated_bytes;
	/* Head chunk of each bucket's circular free list, 0 when empty. */
	chunkid_t buckets[];
};

static inline bool big_headers(const struct z_heap *h)
{
	return h->header_bytes == 8;
}

static inline uint8_t *chunk_base(const struct z_heap *h)
{
	return (uint8_t *)h - h->header_bytes;
}

static inline void *chunk_address(const struct z_heap *h, chunkid_t c)
{
	return chunk_base(h) + (size_t)c * CHUNK_UNIT;
}

/*
 * Header words are read and written as relaxed atomics: a CPU cache flips
 * the CACHED flag of a block under its own lock while the heap-lock holder
 * may be reading that block's header as a neighbour. Only the flag changes,
 * never the size or USED, so a relaxed access is all that is needed.
 */
static inline uint32_t chunk_field(const struct z_heap *h, chunkid_t c, enum chunk_field f)
{
	void *p = chunk_address(h, c);

	if (big_headers(h))
		return kheap_load_relaxed_32((const uint32_t *)p + f);
	return kheap_load_relaxed_16((const uint16_t *)p + f);
}

static inline void chunk_set_field(struct z_heap *h, chunkid_t c, enum chunk_field f, uint32_t v)
{
	void *p = chunk_address(h, c);

	if (big_headers(h))
		kheap_store_relaxed_32((uint32_t *)p + f, v);
	else
		kheap_store_relaxed_16((uint16_t *)p + f, (uint16_t)v);
}

static inline uint32_t chunk_size(const struct z_heap *h, chunkid_t c)
{
	return chunk_field(h, c, SIZE_FLAGS) >> 2;
}

static inline bool chunk_used(const struct z_heap *h, chunkid_t c)
{
	return (chunk_field(h, c, SIZE_FLAGS) & CHUNK_USED) != 0;
}

static inline bool chunk_cached(const struct z_heap *h, chunkid_t c)
{
	return (chunk_field(h, c, SIZE_FLAGS) & CHUNK_CACHED) != 0;
}

static inline uint32_t chunk_flags(const struct z_heap *h, chunkid_t c)
{
	return chunk_field(h, c, SIZE_FLAGS) & CHUNK_FLAGS;
}

/* Sets size and flags together; the flags are CHUNK_USED / CHUNK_CACHED. */
static inline void set_chunk_header(struct z_heap *h, chunkid_t c, uint32_t size, uint32_t flags)
{
	chunk_set_field(h, c, SIZE_FLAGS, size << 2 | flags);
}

static inline void set_chunk_size(struct z_heap *h, chunkid_t c, uint32_t size)
{
	set_chunk_header(h, c, size, chunk_flags(h, c));
}

static inline void set_chunk_flags(struct z_heap *h, chunkid_t c, uint32_t flags)
{
	set_chunk_header(h, c, chunk_size(h, c), flags);
}

static inline uint32_t left_size(const struct z_heap *h, chunkid_t c)
{
	return chunk_field(h, c, LEFT_SIZE);
}

static inline void set_left_size(struct z_heap *h, chunkid_t c, uint32_t size)
{
	chunk_set_field(h, c, LEFT_SIZE, size);
}

static inline chunkid_t left_chunk(const struct z_heap *h, chunkid_t c)
{
	return c - left_size(h, c);
}

static inline chunkid_t right_chunk(const struct z_heap *h, chunkid_t c)
{
	return c + chunk_size(h, c);
}

static inline chunkid_t prev_free_chunk(const struct z_heap *h, chunkid_t c)
{
	return chunk_field(h, c, FREE_PREV);
}

static inline chunkid_t next_free_chunk(const struct z_heap *h, chunkid_t c)
{
	return chunk_field(h, c, FREE_NEXT);
}

static inline void set_prev_free_chunk(struct z_heap *h, chunkid_t c, chunkid_t prev)
{
	chunk_set_field(h, c, FREE_PREV, prev);
}

static inline void set_next_free_chunk(struct z_heap *h, chunkid_t c, chunkid_t next)
{
	chunk_set_field(h, c, FREE_NEXT, next);
}

static inline void *chunk_mem(const struct z_heap *h, chunkid_t c)
{
	return (uint8_t *)chunk_address(h, c) + h->header_bytes;
}

/*
 * Header fields seen from a block's memory, for callers that know the header
 * width (4 or 8) as a constant: the header sits right before the memory, so
 * these take no z_heap load and no width branch once inlined. They exist for
 * the cache hit paths, which pick the width once per call.
 */
static inline uint32_t mem_header_field(const void *mem, uint32_t header_bytes, enum chunk_field f)
{
	if (header_bytes == 8)
		return kheap_load_relaxed_32((const uint32_t *)mem - 2 + f);
	return kheap_load_relaxed_16((const uint16_t *)mem - 2 + f);
}

static inline void mem_set_header_field(void *mem, uint32_t header_bytes, enum chunk_field f,
					uint32_t v)
{
	if (header_bytes == 8)
		kheap_store_relaxed_32((uint32_t *)mem - 2 + f, v);
	else
		kheap_store_relaxed_16((uint16_t *)mem - 2 + f, (uint16_t)v);
}

static inline chunkid_t mem_to_chunk(const struct z_heap *h, const void *mem)
{
	return (chunkid_t)(((const uint8_t *)mem - h->header_bytes - chunk_base(h)) / CHUNK_UNIT);
}

static inline uint32_t min_chunk_size(const struct z_heap *h)
{
	return big_headers(h) ? 2 : 1;
}

/* Usable bytes of a chunk of `units` units. */
static inline size_t chunksz_to_bytes(const struct z_heap *h, uint32_t units)
{
	return (size_t)units * CHUNK_UNIT - h->header_bytes;
}

/* Units needed for `bytes`; the caller has bounded bytes by the heap size. */
static inline uint32_t bytes_to_chunksz(const struct z_heap *h, size_t bytes)
{
	uint32_t units = (uint32_t)((bytes + h->header_bytes + CHUNK_UNIT - 1) / CHUNK_UNIT);

	return units < min_chunk_size(h) ? min_chunk_size(h) : units;
}

static inline unsigned int bucket_index(uint32_t units)
{
	return 31u - (unsigned int)__builtin_clz(units);
}

/* The first block chunk (right of the metadata chunk). */
static inline chunkid_t first_block_chunk(const struct z_heap *h)
{
	return chunk_size(h, 0);
}

/* Largest request any heap of this format could ever satisfy; bigger
 * requests are refused before any unit arithmetic can overflow.
 */
static inline size_t max_request_bytes(const struct z_heap *h)
{
	return (size_t)h->end_chunk * CHUNK_UNIT;
}

/* Returns the heap's z_heap, or NULL when it was never (or not) initialised. */
static inline struct z_heap *heap_of(struct sys_heap *heap)
{
	return heap == NULL ? NULL : heap->heap;
}

#endif
