/*
 * The sys_heap core: formatting, allocation, free, realloc, and the O(1)
 * block check every free goes through.
 *
 * Freestanding: no locks, no system calls, no malloc. The only outside call
 * is kheap_raise_fault() for misuse. Layout and invariants: heap/chunk.h.
 *
 * Free chunks live in log2 buckets (bucket b holds sizes [2^b, 2^(b+1))) as
 * circular doubly linked lists. Allocation examines at most
 * Z_HEAP_BUCKET_TRIES chunks of the request's own bucket, rotating the list
 * head past each miss so the next search starts elsewhere, then takes the
 * head of the smallest non-empty larger bucket (every chunk there fits).
 * The *_any_fit variants examine the whole of the request's bucket instead,
 * so they fail only when no free chunk fits; k_heap uses them for callers
 * that would otherwise sleep.
 * Splits happen at once; frees merge with both neighbours at once.
 */
#include <errno.h>
#include <string.h>

#include "heap/heap_internal.h"
#include "heap/heap_testing.h"

/* For find_free_chunk: examine every chunk of the request's bucket. */
#define Z_HEAP_WHOLE_BUCKET UINT32_MAX

/* Whether chunk c's header agrees with both neighbours' headers. */
static bool fits_between_neighbours(const struct z_heap *h, chunkid_t c)
{
	uint32_t size = chunk_size(h, c);
	chunkid_t left;

	if (size < min_chunk_size(h) || size > h->end_chunk - c || left_size(h, c + size) != size ||
	    left_size(h, c) == 0 || left_size(h, c) > c)
		return false;
	left = left_chunk(h, c);
	return chunk_size(h, left) == c - left;
}

/* Whether chunk c has every mark of a chunk in the free lists. */
static bool looks_like_free_chunk(const struct z_heap *h, chunkid_t c)
{
	chunkid_t prev, next;

	if (c < first_block_chunk(h) || c >= h->end_chunk || chunk_flags(h, c) != 0 ||
	    !fits_between_neighbours(h, c))
		return false;
	prev = prev_free_chunk(h, c);
	next = next_free_chunk(h, c);
	if (prev < first_block_chunk(h) || prev >= h->end_chunk || next < first_block_chunk(h) ||
	    next >= h->end_chunk)
		return false;
	return next_free_chunk(h, prev) == c && prev_free_chunk(h, next) == c;
}

static void free_list_remove(struct z_heap *h, chunkid_t c)
{
	unsigned int b = bucket_index(chunk_size(h, c));
	chunkid_t next = next_free_chunk(h, c);

	if (next == c) {
		h->buckets[b] = 0;
		h->avail_buckets &= ~(1u << b);
	} else {
		chunkid_t prev = prev_free_chunk(h, c);

		set_next_free_chunk(h, prev, next);
		set_prev_free_chunk(h, next, prev);
		h->buckets[b] = next;
	}
	h->free_bytes -= chunksz_to_bytes(h, chunk_size(h, c));
}

static void free_list_add(struct z_heap *h, chunkid_t c)
{
	unsigned int b = bucket_index(chunk_size(h, c));
	chunkid_t head = h->buckets[b];

	if (head == 0) {
		h->buckets[b] = c;
		h->avail_buckets |= 1u << b;
		set_prev_free_chunk(h, c, c);
		set_next_free_chunk(h, c, c);
	} else {
		chunkid_t tail = prev_free_chunk(h, head);

		set_prev_free_chunk(h, c, tail);
		set_next_free_chunk(h, c, head);
		set_next_free_chunk(h, tail, c);
		set_prev_free_chunk(h, head, c);
	}
	h->free_bytes += chunksz_to_bytes(h, chunk_size(h, c));
}

/* Cuts chunk `left` in two at `right`; both keep the left chunk's flags. */
static void split_chunk(struct z_heap *h, chunkid_t left, chunkid_t right)
{
	uint32_t total = chunk_size(h, left);
	uint32_t left_units = right - left;
	uint32_t right_units = total - left_units;

	set_chunk_size(h, left, left_units);
	set_chunk_header(h, right, right_units, chunk_flags(h, left));
	set_left_size(h, right, left_units);
	set_left_size(h, right + right_units, right_units);
}

/* Absorbs chunk `right` into its left neighbour `left`. */
static void merge_chunks(struct z_heap *h, chunkid_t left, chunkid_t right)
{
	uint32_t total = chunk_size(h, left) + chunk_size(h, right);

	set_chunk_size(h, left, total);
	set_left_size(h, left + total, total);
}

/* Returns an unused chunk to the free lists, merging with free neighbours. */
/* MODERATE and above: a free neighbour is checked before it is unlinked and
 * merged; a damaged one is left alone (and reported) rather than followed.
 */
static bool mergeable(struct z_heap *h, chunkid_t neighbour)
{
	if (chunk_used(h, neighbour))
		return false;
	if (h->hardening < SYS_HEAP_HARDENING_MODERATE || looks_like_free_chunk(h, neighbour))
		return true;
	kheap_raise_fault(KHEAP_FAULT_CORRUPT_HEAP, NULL, chunk_mem(h, neighbour),
			  "a free neighbour's header or links were overwritten; not merging");
	return false;
}

static void release_chunk(struct z_heap *h, chunkid_t c)
{
	chunkid_t right = right_chunk(h, c);
	chunkid_t left = left_chunk(h, c);

	if (mergeable(h, right)) {
		free_list_remove(h, right);
		merge_chunks(h, c, right);
	}
	if (mergeable(h, left)) {
		free_list_remove(h, left);
		merge_chunks(h, left, c);
		c = left;
	}
	free_list_add(h, c);
}

/* Splits the tail beyond `units` off a USED chunk and frees it, if it is
 * large enough to stand as a chunk of its own.
 */
static void trim_chunk(struct z_heap *h, chunkid_t c, uint32_t units)
{
	chunkid_t tail = c + units;

	if (chunk_size(h, c) - units < min_chunk_size(h))
		return;
	split_chunk(h, c, tail);
	set_chunk_flags(h, tail, 0);
	release_chunk(h, tail);
}

/*
 * A free chunk about to be split or handed out failed its O(1) check: an
 * overrun from the block before it reached its header, or its links were
 * overwritten after a use-after-free. Nothing in that bucket's list can be
 * trusted, so the whole list is abandoned (leaked) rather than followed,
 * and the request fails.
 */
static chunkid_t quarantine_bucket(struct z_heap *h, unsigned int b, chunkid_t c)
{
	bool inside = c >= first_block_chunk(h) && c < h->end_chunk;

	h->buckets[b] = 0;
	h->avail_buckets &= ~(1u << b);
	kheap_raise_fault(KHEAP_FAULT_CORRUPT_HEAP, NULL, inside ? chunk_mem(h, c) : NULL,
			  "a free chunk's header or links were overwritten (write past the block "
			  "before it, or use after free); its size class is abandoned");
	return 0;
}

/*
 * Examines at most `tries` chunks of the request's bucket before the larger
 * ones; Z_HEAP_WHOLE_BUCKET asks for all of them. Even then the walk stops
 * after as many chunks as the bucket could hold in this heap: every chunk it
 * visits must agree with both its links, but the walk's length must not rest
 * on those checks alone.
 */
static chunkid_t find_free_chunk(struct z_heap *h, uint32_t units, uint32_t tries)
{
	unsigned int b = bucket_index(units);
	uint32_t larger;

	if (tries == Z_HEAP_WHOLE_BUCKET)
		tries = (h->end_chunk >> b) + 1;
	if (b < h->bucket_count && h->buckets[b] != 0) {
		chunkid_t first = h->buckets[b];
		chunkid_t c = first;

		for (uint32_t tried = 0; tried < tries; tried++) {
			if (!looks_like_free_chunk(h, c))
				return quarantine_bucket(h, b, c);
			if (chunk_size(h, c) >= units) {
				free_list_remove(h, c);
				return c;
			}
			c = next_free_chunk(h, c);
			h->buckets[b] = c;
			if (c == first)
				break;
		}
	}
	larger = b + 1 >= 32 ? 0 : h->avail_buckets & ~((1u << (b + 1)) - 1);
	if (larger != 0) {
		unsigned int larger_bucket = (unsigned int)__builtin_ctz(larger);
		chunkid_t c = h->buckets[larger_bucket];

		if (!looks_like_free_chunk(h, c))
			return quarantine_bucket(h, larger_bucket, c);
		free_list_remove(h, c);
		return c;
	}
	return 0;
}

static void note_allocated(struct z_heap *h, chunkid_t c)
{
	h->allocated_bytes += chunksz_to_bytes(h, chunk_size(h, c));
	if (h->allocated_bytes > h->max_allocated_bytes)
		h->max_allocated_bytes = h->allocated_bytes;
}

static chunkid_t alloc_units(struct z_heap *h, uint32_t units, uint32_t tries)
{
	chunkid_t c = find_free_chunk(h, units, tries);

	if (c == 0)
		return 0;
	set_chunk_flags(h, c, CHUNK_USED);
	trim_chunk(h, c, units);
	note_allocated(h, c);
	return c;
}

chunkid_t z_heap_alloc_exact(struct z_heap *h, uint32_t units)
{
	return alloc_units(h, units, Z_HEAP_BUCKET_TRIES);
}

/* Finishes an allocation of `bytes` in chunk c at the heap's hardening. */
static void *hand_out(struct z_heap *h, chunkid_t c, size_t bytes)
{
	if (z_heap_has_trailers(h))
		z_heap_write_trailer(h, c, bytes);
	if (h->hardening == SYS_HEAP_HARDENING_EXTREME)
		z_heap_extreme_check(h);
	return chunk_mem(h, c);
}

static void *alloc_bytes(struct z_heap *h, size_t bytes, uint32_t tries)
{
	chunkid_t c;

	if (bytes == 0 || bytes > z_heap_max_request(h))
		return NULL;
	c = alloc_units(h, z_heap_request_units(h, bytes), tries);
	return c == 0 ? NULL : hand_out(h, c, bytes);
}

static void *aligned_alloc_bytes(struct z_heap *h, size_t align, size_t bytes, uint32_t tries)
{
	uint32_t body, align_units, padded;
	chunkid_t start, c;
	uintptr_t mem;

	if ((align & (align - 1)) != 0)
		return NULL;
	if (align <= CHUNK_UNIT)
		return alloc_bytes(h, bytes, tries);
	if (bytes == 0 || bytes > z_heap_max_request(h) || align > max_request_bytes(h))
		return NULL;

	/* An aligned start lies within align - 8 bytes of any chunk's memory;
	 * when the prefix before it would be too small to stand as a free
	 * chunk, the next aligned start (one `align` further) is used, so the
	 * worst case pads by align/8 + min_chunk_size - 1 units.
	 */
	body = z_heap_request_units(h, bytes);
	align_units = (uint32_t)(align / CHUNK_UNIT);
	padded = body + align_units + min_chunk_size(h) - 1;
	start = find_free_chunk(h, padded, tries);
	if (start == 0)
		return NULL;

	mem = ((uintptr_t)chunk_mem(h, start) + align - 1) & ~(uintptr_t)(align - 1);
	c = mem_to_chunk(h, (void *)mem);
	if (c != start && c - start < min_chunk_size(h))
		c += align_units;

	if (c != start) {
		split_chunk(h, start, c);
		free_list_add(h, start);
	}
	set_chunk_flags(h, c, CHUNK_USED);
	trim_chunk(h, c, body);
	note_allocated(h, c);
	return hand_out(h, c, bytes);
}

void *z_heap_alloc(struct z_heap *h, size_t bytes)
{
	return alloc_bytes(h, bytes, Z_HEAP_BUCKET_TRIES);
}

void *z_heap_aligned_alloc(struct z_heap *h, size_t align, size_t bytes)
{
	return aligned_alloc_bytes(h, align, bytes, Z_HEAP_BUCKET_TRIES);
}

void *z_heap_aligned_alloc_any_fit(struct z_heap *h, size_t align, size_t bytes)
{
	return aligned_alloc_bytes(h, align, bytes, Z_HEAP_WHOLE_BUCKET);
}

void z_heap_free_chunk(struct z_heap *h, chunkid_t c)
{
	h->allocated_bytes -= chunksz_to_bytes(h, chunk_size(h, c));
	if (z_heap_has_trailers(h))
		z_heap_poison(h, c);
	set_chunk_flags(h, c, 0);
	release_chunk(h, c);
	if (h->hardening == SYS_HEAP_HARDENING_EXTREME)
		z_heap_extreme_check(h);
}

/*
 * Rebuilds everything in the heap that follows from the chunk headers: the
 * left sizes, the free lists, the bucket bitmap and the byte counters, and
 * merges free neighbours. Used after a process died holding a shared heap's
 * lock: any single update it left half done (a split, a merge, a list
 * unlink, a counter) is either completed or undone here. It cannot repair
 * a size field that was half written; that fails the walk, and the function
 * returns false with *why set, having changed nothing.
 */
bool z_heap_rebuild(struct z_heap *h, const char **why)
{
	chunkid_t c;

	if (h->magic != Z_HEAP_MAGIC) {
		*why = "heap magic damaged";
		return false;
	}
	for (c = 0; c < h->end_chunk; c += chunk_size(h, c)) {
		uint32_t size = chunk_size(h, c);
		uint32_t flags = chunk_flags(h, c);

		if (size == 0 || size > h->end_chunk - c ||
		    (!(flags & CHUNK_USED) && (flags != 0 || size < min_chunk_size(h) || c == 0))) {
			*why = "a chunk header cannot be read back (a size was half written)";
			return false;
		}
	}
	if (c != h->end_chunk || !chunk_used(h, c)) {
		*why = "the chunks no longer tile the heap";
		return false;
	}
	for (c = 0; c < h->end_chunk; c += chunk_size(h, c)) {
		chunkid_t right = right_chunk(h, c);

		while (!chunk_used(h, c) && !chunk_used(h, right)) {
			merge_chunks(h, c, right);
			right = right_chunk(h, c);
		}
		set_left_size(h, right, chunk_size(h, c));
	}
	memset(h->buckets, 0, h->bucket_count * sizeof(h->buckets[0]));
	h->avail_buckets = 0;
	h->free_bytes = 0;
	h->allocated_bytes = 0;
	for (c = first_block_chunk(h); c < h->end_chunk; c += chunk_size(h, c)) {
		if (!chunk_used(h, c))
			free_list_add(h, c);
		else if (c != h->owner_control)
			h->allocated_bytes += chunksz_to_bytes(h, chunk_size(h, c));
	}
	if (h->max_allocated_bytes < h->allocated_bytes)
		h->max_allocated_bytes = h->allocated_bytes;
	return true;
}

size_t z_heap_free_where(struct z_heap *h, bool (*match)(struct z_heap *h, chunkid_t c, void *arg),
			 void *arg, size_t *bytes)
{
	size_t freed = 0;

	for (chunkid_t c = first_block_chunk(h); c < h->end_chunk;) {
		chunkid_t left = left_chunk(h, c);
		bool merges_left = !chunk_used(h, left);

		if (!chunk_used(h, c) || !match(h, c, arg)) {
			c += chunk_size(h, c);
			continue;
		}
		freed++;
		if (bytes != NULL)
			*bytes += chunksz_to_bytes(h, chunk_size(h, c));
		if (chunk_cached(h, c))
			z_heap_mark_uncached(h, c);
		z_heap_free_chunk(h, c);
		/* c merged with its free neighbours: go on after the chunk that
		 * holds it now.
		 */
		c = merges_left ? left : c;
		c += chunk_size(h, c);
	}
	return freed;
}

size_t z_heap_largest_free_bytes(const struct z_heap *h)
{
	uint32_t largest = 0;

	if (h->avail_buckets != 0) {
		unsigned int top = 31u - (unsigned int)__builtin_clz(h->avail_buckets);
		chunkid_t head = h->buckets[top], c = head;

		do {
			if (chunk_size(h, c) > largest)
				largest = chunk_size(h, c);
			c = next_free_chunk(h, c);
		} while (c != head);
	}
	return largest == 0 ? 0 : chunksz_to_bytes(h, largest);
}

void *z_heap_realloc_chunk(struct z_heap *h, chunkid_t c, size_t align, size_t bytes)
{
	void *old_mem = chunk_mem(h, c);
	uint32_t units, have;
	chunkid_t right;
	void *moved;

	if ((align & (align - 1)) != 0 || bytes > z_heap_max_request(h))
		return NULL;
	if (align > CHUNK_UNIT && ((uintptr_t)old_mem & (align - 1)) != 0)
		goto move;

	units = z_heap_request_units(h, bytes);
	have = chunk_size(h, c);
	if (units <= have) {
		h->allocated_bytes -= chunksz_to_bytes(h, have);
		trim_chunk(h, c, units);
		note_allocated(h, c);
		return hand_out(h, c, bytes);
	}
	right = c + have;
	if (!chunk_used(h, right) && have + chunk_size(h, right) >= units) {
		h->allocated_bytes -= chunksz_to_bytes(h, have);
		free_list_remove(h, right);
		merge_chunks(h, c, right);
		trim_chunk(h, c, units);
		note_allocated(h, c);
		return hand_out(h, c, bytes);
	}

move:
	moved = z_heap_aligned_alloc(h, align, bytes);
	if (moved == NULL)
		return NULL;
	{
		size_t keep = z_heap_block_bytes(h, c);

		memcpy(moved, old_mem, keep < bytes ? keep : bytes);
	}
	z_heap_free_chunk(h, c);
	return moved;
}

enum kheap_fault z_heap_check_block(const struct z_heap *h, const void *mem, chunkid_t *chunk,
				    const char **detail)
{
	enum kheap_fault fault = z_heap_check_owned_block(h, mem, chunk, detail);
	chunkid_t c, left;

	/* "Already free" is only believed when a free (or cached) chunk really
	 * starts here; stale bytes inside a live block, such as old free-list
	 * links, can look like a header without the USED bit.
	 */
	if (fault == KHEAP_FAULT_DOUBLE_FREE) {
		c = mem_to_chunk(h, mem);
		if (looks_like_free_chunk(h, c) ||
		    (chunk_flags(h, c) == (CHUNK_USED | CHUNK_CACHED) &&
		     fits_between_neighbours(h, c)))
			return fault;
		*detail = "no live block at pointer (interior pointer, a block freed twice after "
			  "merging, or an overwritten header)";
		return KHEAP_FAULT_INTERIOR_POINTER;
	}
	if (fault != 0 || h->hardening == SYS_HEAP_HARDENING_NONE)
		return fault;
	c = *chunk;
	left = left_size(h, c) <= c ? left_chunk(h, c) : c;
	if (left == c || chunk_size(h, left) != c - left) {
		*detail = "no block header at pointer (interior pointer, or header overwritten)";
		return KHEAP_FAULT_INTERIOR_POINTER;
	}
	return 0;
}

enum kheap_fault z_heap_check_cached_block(const struct z_heap *h, chunkid_t c, const char **detail)
{
	if (c < first_block_chunk(h) || c >= h->end_chunk) {
		*detail = "per-CPU cache holds a chunk id outside the heap (use after free?)";
		return KHEAP_FAULT_CORRUPT_HEAP;
	}
	if (chunk_flags(h, c) != (CHUNK_USED | CHUNK_CACHED) ||
	    chunk_size(h, c) > h->end_chunk - c ||
	    left_size(h, right_chunk(h, c)) != chunk_size(h, c)) {
		*detail = "cached block's header changed while it was free (use after free?)";
		return KHEAP_FAULT_CORRUPT_HEAP;
	}
	return 0;
}

int z_heap_format(struct sys_heap *heap, void *mem, size_t bytes, int force_small)
{
	uintptr_t start = (uintptr_t)mem, end, base;
	uint32_t header_bytes, meta_units, bucket_count, end_chunk;
	size_t units;
	struct z_heap *h;

	if (heap == NULL)
		return -EINVAL;
	heap->heap = NULL;
	heap->init_mem = mem;
	heap->init_bytes = bytes;
	if (mem == NULL || bytes > UINTPTR_MAX - start)
		return -EINVAL;
	end = start + bytes;

	/* Choose the format on the unit count the region would have with the
	 * smaller header; the big format needs at most one unit more.
	 */
	units = bytes / CHUNK_UNIT;
	if (force_small > 0)
		header_bytes = 4;
	else if (force_small < 0)
		header_bytes = 8;
	else
		header_bytes = (sizeof(void *) == 4 && units <= Z_HEAP_SMALL_MAX_UNITS) ? 4 : 8;

	base =
	    ((start + header_bytes + CHUNK_UNIT - 1) & ~(uintptr_t)(CHUNK_UNIT - 1)) - header_bytes;
	if (base >= end)
		return -EINVAL;
	units = (end - base) / CHUNK_UNIT;
	if (header_bytes == 4 && units > Z_HEAP_SMALL_MAX_UNITS)
		return -EINVAL;
	if (units > (size_t)Z_HEAP_BIG_MAX_UNITS + 1)
		return -E2BIG;
	if (units < 4)
		return -EINVAL;

	end_chunk = (uint32_t)units - 1;
	bucket_count = bucket_index(end_chunk) + 1;
	meta_units = (uint32_t)((header_bytes + sizeof(struct z_heap) +
				 bucket_count * sizeof(chunkid_t) + CHUNK_UNIT - 1) /
				CHUNK_UNIT);
	/* Metadata, one minimal block, and the sentinel must all fit. */
	if ((size_t)meta_units + (header_bytes == 8 ? 2 : 1) + 1 > units)
		return -EINVAL;

	h = (struct z_heap *)(base + header_bytes);
	memset(h, 0, sizeof(*h) + bucket_count * sizeof(chunkid_t));
	h->magic = Z_HEAP_MAGIC;
	h->end_chunk = end_chunk;
	h->header_bytes = header_bytes;
	h->hardening = KHEAP_DEFAULT_HARDENING;
	h->bucket_count = bucket_count;

	set_left_size(h, 0, 0);
	set_chunk_header(h, 0, meta_units, CHUNK_USED);
	set_left_size(h, meta_units, meta_units);
	set_chunk_header(h, meta_units, end_chunk - meta_units, 0);
	set_left_size(h, end_chunk, end_chunk - meta_units);
	set_chunk_header(h, end_chunk, 1, CHUNK_USED);
	free_list_add(h, meta_units);

	heap->heap = h;
	return 0;
}

int sys_heap_init(struct sys_heap *heap, void *mem, size_t bytes)
{
	return z_heap_format(heap, mem, bytes, 0);
}

int z_heap_init_with_headers(struct sys_heap *heap, void *mem, size_t bytes,
			     enum z_heap_header_width width)
{
	int force = width == Z_HEAP_HEADER_SMALL ? 1 : width == Z_HEAP_HEADER_BIG ? -1 : 0;

	return z_heap_format(heap, mem, bytes, force);
}

size_t z_heap_header_bytes(const struct sys_heap *heap)
{
	return heap->heap->header_bytes;
}

void *sys_heap_alloc(struct sys_heap *heap, size_t bytes)
{
	struct z_heap *h = heap_of(heap);

	return h == NULL ? NULL : z_heap_alloc(h, bytes);
}

void *sys_heap_aligned_alloc(struct sys_heap *heap, size_t align, size_t bytes)
{
	struct z_heap *h = heap_of(heap);

	return h == NULL ? NULL : z_heap_aligned_alloc(h, align, bytes);
}

void *sys_heap_noalign_alloc(struct sys_heap *heap, size_t align, size_t bytes)
{
	(void)align;
	return sys_heap_alloc(heap, bytes);
}

/* Checks `mem` for a public entry point; reports and returns false on misuse. */
static bool checked_chunk(struct sys_heap *heap, void *mem, chunkid_t *c)
{
	struct z_heap *h = heap_of(heap);
	const char *detail;
	enum kheap_fault fault;

	if (h == NULL) {
		kheap_raise_fault(KHEAP_FAULT_BAD_HEAP, heap, mem, "heap is not initialised");
		return false;
	}
	fault = z_heap_check_block(h, mem, c, &detail);
	if (fault != 0) {
		kheap_raise_fault(fault, heap, mem, detail);
		return false;
	}
	return true;
}

void sys_heap_free(struct sys_heap *heap, void *mem)
{
	chunkid_t c;

	if (mem == NULL)
		return;
	if (checked_chunk(heap, mem, &c))
		z_heap_free_chunk(heap->heap, c);
}

void *sys_heap_aligned_realloc(struct sys_heap *heap, void *ptr, size_t align, size_t bytes)
{
	chunkid_t c;

	if ((align & (align - 1)) != 0)
		return NULL;
	if (ptr == NULL)
		return sys_heap_aligned_alloc(heap, align, bytes);
	if (bytes == 0) {
		sys_heap_free(heap, ptr);
		return NULL;
	}
	if (!checked_chunk(heap, ptr, &c))
		return NULL;
	return z_heap_realloc_chunk(heap->heap, c, align, bytes);
}

size_t sys_heap_usable_size(struct sys_heap *heap, void *mem)
{
	chunkid_t c;

	if (mem == NULL || !checked_chunk(heap, mem, &c))
		return 0;
	return z_heap_block_bytes(heap->heap, c);
}
