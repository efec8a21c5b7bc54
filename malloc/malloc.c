/*
 * The C allocation API on one k_heap (semantics in kheap_malloc.h).
 *
 * Alignment. k_heap returns 8-byte aligned blocks (an 8-byte header before
 * 8-byte chunk units); malloc must return alignof(max_align_t), 16 on
 * x86-64 and AArch64. Every heap request therefore asks for SHIFT_ROOM (8)
 * more bytes, and when the block p the heap returns is not 16-aligned the
 * user gets p + 8 instead, with a shift tag in the 8 bytes before it:
 *
 *   unshifted   [header: LEFT_SIZE | SIZE_FLAGS][user data ...]
 *                                                ^ p == q
 *   shifted     [header][TAG_LEFT | TAG_FLAGS][user data ...]
 *                        ^ p                   ^ q = p + 8
 *
 * free(q) reads the two words before q. For an unshifted block they are
 * the block's own header, whose SIZE_FLAGS has USED set; TAG_FLAGS has
 * USED clear and CACHED set, a combination no header ever holds (chunk.h,
 * invariant I4), and a value above any chunk id or CPU number, so neither a
 * header nor the links k_heap writes into a freed block can look like a
 * tag. The SIZE_FLAGS word of a block its owner holds never changes under
 * it; its LEFT_SIZE word may (a neighbour merging), so SIZE_FLAGS is read
 * first and decides. A pointer malloc returned is 16-aligned and at least
 * two units past the region's start, so the words before it are always
 * inside the region; anything else is reported as misuse before any read.
 *
 * Large heap blocks. On free, a block with at least
 * KHEAP_MALLOC_RELEASE_BYTES usable gives the whole pages inside it back
 * (MADV_DONTNEED) before k_heap_free: the block is still the caller's, so
 * no one else can be writing there, and k_heap only writes the block's
 * first bytes and headers, which the page rounding leaves out. Its size is
 * first peeked from the header (one load, no lock; a block's own header is
 * stable while its owner holds it) and then confirmed with
 * k_heap_usable_size, which validates the pointer, so a bad pointer can
 * never make us discard someone else's pages.
 *
 * Thresholds (KHEAP_MALLOC_RELEASE_BYTES = 256 KiB, KHEAP_MALLOC_MMAP_THRESHOLD
 * = 1 MiB), measured on the project's 2-core x86-64 VM (Debian 12, glibc
 * 2.36, transparent huge pages "always"). First the mechanisms, with
 * `bazel run -c opt //tests/malloc:malloc_threshold_bench -- 2 3`: two
 * threads each repeat get a block, write every page, give it back; best of
 * three, microseconds per cycle:
 *
 *   block     kept in the heap   + MADV_DONTNEED   + MADV_FREE   own mmap
 *   64 KiB          0.14               65               6.8          154
 *   256 KiB         0.38              237              16            264
 *   1 MiB           1.3               900              37           1051
 *   4 MiB           5.0              4226             193           4448
 *   64 MiB         96               80430            9611          82823
 *
 * Giving pages back costs the same by madvise as by munmap: refaulting
 * them dominates (about 4 us a page here), on every reuse. MADV_FREE is
 * cheaper but leaves the pages counted as the process's until the kernel
 * runs short, so it does not make a program's footprint shrink.
 *
 * Then whole programs, elapsed seconds and peak RSS in MiB, best of five
 * interleaved runs each: glibc; release 256 KiB and mmap 1 MiB (chosen);
 * both at 1 MiB; both at 32 MiB (nothing released below 32 MiB):
 *
 *   program                           glibc     chosen    1 MiB     32 MiB
 *   python3 json, 150k records        4.00 351  3.83 351  3.06 376  4.19 375
 *   python3 sqlite3, 300k rows        0.63 36   0.67 36   0.66 36   0.71 36
 *   sort -S 100M, 1M lines            1.04 83   0.97 83   0.95 83   0.84 83
 *   gcc -O2 -c, a 40-line file        0.10 32   0.08 33   0.12 33   0.11 33
 *   malloc_threads 24 3 2000          0.29 93   0.38 49   0.47 47   0.48 59
 *   churn: 8 threads x 20k ops, 3%
 *     of blocks 0.5-2.5 MiB           1.53 126  4.03 94   3.92 98   1.59 177
 *
 * Real programs do not tell the settings apart within this shared
 * machine's noise; the chosen one has the smallest peaks. What it costs
 * shows only in a program that keeps allocating and freeing blocks of
 * 256 KiB and more (the churn line): every cycle refaults the pages. glibc
 * avoids that by raising its mmap threshold after such a free and keeping
 * the memory from then on (its peak there is a third higher); we prefer
 * to give large blocks back, as a heap shared by long-running programs
 * should, and leave the trade-off to the build-time settings.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "heap/chunk.h"
#include "heap/k_heap_internal.h"
#include "malloc/malloc_internal.h"

#define MALLOC_ALIGN ((size_t)alignof(max_align_t))
#define SHIFT_ROOM   (MALLOC_ALIGN - CHUNK_UNIT)

_Static_assert(MALLOC_ALIGN == CHUNK_UNIT || MALLOC_ALIGN == 2 * CHUNK_UNIT,
	       "the shift tag assumes max_align_t needs one or two chunk units");

#define TAG_LEFT  0x6b6d616cu
#define TAG_FLAGS 0xa110c8e2u

_Static_assert((TAG_FLAGS & CHUNK_USED) == 0 && (TAG_FLAGS & CHUNK_CACHED) != 0,
	       "a tag must be a header no chunk can have: CACHED without USED");
_Static_assert(TAG_FLAGS > Z_HEAP_BIG_MAX_UNITS && TAG_FLAGS > KHEAP_MAX_CPUS,
	       "a tag must not look like a chunk id or a CPU number");

/* Tails shorter than this stay with the block when realloc shrinks it. */
#define SHRINK_MIN_BYTES 256

uint64_t kheap_malloc_released_bytes;

static void report(enum kheap_fault fault, const void *q, const char *detail)
{
	kheap_raise_fault(fault, kheap_malloc_ready_heap, q, detail);
}

static void report_not_ours(const void *q)
{
	report(KHEAP_FAULT_FOREIGN_POINTER, q,
	       "pointer was not returned by malloc, or was already freed");
}

/* Could `q` (inside the region) be a pointer malloc returned? */
static inline bool plausible(const void *q)
{
	return ((uintptr_t)q & (MALLOC_ALIGN - 1)) == 0 &&
	       (uintptr_t)q - kheap_malloc_region_start >= 2 * MALLOC_ALIGN;
}

static void report_implausible(const void *q)
{
	report(KHEAP_FAULT_INTERIOR_POINTER, q,
	       "pointer is not aligned as every pointer malloc returns is");
}

static inline void *tag_if_unaligned(uint8_t *p)
{
	uint32_t *words;

	if (SHIFT_ROOM == 0 || ((uintptr_t)p & (MALLOC_ALIGN - 1)) == 0)
		return p;
	words = (uint32_t *)(p + SHIFT_ROOM);
	__atomic_store_n(&words[-2], TAG_LEFT, __ATOMIC_RELAXED);
	__atomic_store_n(&words[-1], TAG_FLAGS, __ATOMIC_RELAXED);
	return p + SHIFT_ROOM;
}

/* The heap block behind user pointer `q` (a plausible one). */
static inline uint8_t *block_of(void *q)
{
	const uint32_t *words = q;

	if (SHIFT_ROOM != 0 && __atomic_load_n(&words[-1], __ATOMIC_RELAXED) == TAG_FLAGS &&
	    __atomic_load_n(&words[-2], __ATOMIC_RELAXED) == TAG_LEFT)
		return (uint8_t *)q - SHIFT_ROOM;
	return q;
}

static void *heap_alloc(size_t bytes)
{
	struct k_heap *h = kheap_malloc_heap_get();
	uint8_t *p;

	if (__builtin_expect(h == NULL, 0))
		return NULL;
	p = k_heap_alloc(h, bytes + SHIFT_ROOM == 0 ? 1 : bytes + SHIFT_ROOM, K_NO_WAIT);
	if (__builtin_expect(p == NULL, 0))
		return NULL;
	return tag_if_unaligned(p);
}

/* Any size; NULL (errno untouched) on failure. Sets *fresh for a new
 * mapping, whose pages are known to be zero.
 */
static void *alloc_any(size_t bytes, bool *fresh)
{
	*fresh = false;
	if (__builtin_expect(bytes < KHEAP_MALLOC_MMAP_THRESHOLD, 1))
		return heap_alloc(bytes);
	/* Set-up first: it reads the page size that mappings are cut to. */
	(void)kheap_malloc_heap_get();
	*fresh = true;
	return kheap_huge_alloc(bytes, 0);
}

/*
 * Gives back the whole pages inside heap block p of `usable` bytes, before
 * it is freed.
 */
static void release_pages(uint8_t *p, size_t usable)
{
	size_t mask = kheap_malloc_page_bytes - 1;
	uintptr_t first = ((uintptr_t)p + mask) & ~(uintptr_t)mask;
	uintptr_t last = ((uintptr_t)p + usable) & ~(uintptr_t)mask;
	int saved = errno;

	if (last > first && madvise((void *)first, last - first, MADV_DONTNEED) == 0)
		__atomic_fetch_add(&kheap_malloc_released_bytes, (uint64_t)(last - first),
				   __ATOMIC_RELAXED);
	errno = saved;
}

static inline bool peeks_large(struct k_heap *h, const uint8_t *p)
{
	const struct z_heap *z = h->heap.heap;

	return chunksz_to_bytes(z, chunk_size(z, mem_to_chunk(z, p))) >= KHEAP_MALLOC_RELEASE_BYTES;
}

static void heap_free(void *q)
{
	struct k_heap *h = kheap_malloc_ready_heap;
	uint8_t *p;

	if (__builtin_expect(h == NULL || !plausible(q), 0)) {
		report_implausible(q);
		return;
	}
	p = block_of(q);
	if (__builtin_expect(peeks_large(h, p), 0)) {
		size_t usable = k_heap_usable_size(h, p);

		if (usable == 0)
			return;
		release_pages(p, usable);
	}
	k_heap_free(h, p);
}

static void outside_free(void *q)
{
	int saved = errno;

	if (!kheap_huge_free(q))
		report_not_ours(q);
	errno = saved;
}

void free(void *q)
{
	if (q == NULL)
		return;
	if (__builtin_expect(kheap_malloc_in_region(q), 1))
		heap_free(q);
	else
		outside_free(q);
}

void *malloc(size_t bytes)
{
	bool fresh;
	void *p = alloc_any(bytes, &fresh);

	if (__builtin_expect(p == NULL, 0))
		errno = ENOMEM;
	return p;
}

void *calloc(size_t count, size_t size)
{
	size_t bytes;
	bool fresh;
	void *p;

	if (__builtin_mul_overflow(count, size, &bytes)) {
		errno = ENOMEM;
		return NULL;
	}
	p = alloc_any(bytes, &fresh);
	if (__builtin_expect(p == NULL, 0))
		errno = ENOMEM;
	else if (!fresh)
		memset(p, 0, bytes);
	return p;
}

/* A heap block moved by k_heap_realloc to r, its data at r + old_shift:
 * realign it and return the user pointer.
 */
static void *realign_moved(uint8_t *r, size_t old_shift, size_t data_bytes)
{
	size_t new_shift = ((uintptr_t)r & (MALLOC_ALIGN - 1)) == 0 ? 0 : SHIFT_ROOM;

	if (new_shift != old_shift)
		memmove(r + new_shift, r + old_shift, data_bytes);
	return tag_if_unaligned(r);
}

static void *heap_realloc(void *q, size_t bytes)
{
	struct k_heap *h = kheap_malloc_ready_heap;
	size_t usable, available, shift;
	uint8_t *p, *r;

	if (h == NULL || !plausible(q)) {
		report_implausible(q);
		errno = EINVAL;
		return NULL;
	}
	p = block_of(q);
	shift = (size_t)((uint8_t *)q - p);
	usable = k_heap_usable_size(h, p);
	if (usable == 0) {
		errno = EINVAL;
		return NULL;
	}
	available = usable - shift;
	if (bytes >= KHEAP_MALLOC_MMAP_THRESHOLD) {
		r = kheap_huge_alloc(bytes, 0);
		if (r == NULL)
			return NULL;
		memcpy(r, q, available);
		if (usable >= KHEAP_MALLOC_RELEASE_BYTES)
			release_pages(p, usable);
		k_heap_free(h, p);
		return r;
	}
	if (bytes <= available && available - bytes < SHRINK_MIN_BYTES)
		return q;
	/* Grow (in place when the right neighbour is free), or shrink in
	 * place; SHIFT_ROOM more, so a moved block can be realigned.
	 */
	r = k_heap_realloc(h, p, bytes + SHIFT_ROOM, K_NO_WAIT);
	if (r == p)
		return q;
	if (r == NULL) {
		if (bytes <= available)
			return q;
		errno = ENOMEM;
		return NULL;
	}
	return realign_moved(r, shift, available < bytes ? available : bytes);
}

static void *outside_realloc(void *q, size_t bytes)
{
	size_t length;
	bool found;
	void *r;

	if (bytes >= KHEAP_MALLOC_MMAP_THRESHOLD) {
		r = kheap_huge_resize(q, bytes, &found);
		if (r == NULL && !found) {
			report_not_ours(q);
			errno = EINVAL;
		}
		return r;
	}
	length = kheap_huge_usable_size(q);
	if (length == 0) {
		report_not_ours(q);
		errno = EINVAL;
		return NULL;
	}
	r = heap_alloc(bytes);
	if (r == NULL) {
		/* No heap room: keep the mapping, shrunk. */
		r = kheap_huge_resize(q, bytes, &found);
		if (r == NULL)
			errno = ENOMEM;
		return r;
	}
	memcpy(r, q, bytes);
	kheap_huge_free(q);
	return r;
}

void *realloc(void *q, size_t bytes)
{
	bool fresh;
	void *r;

	if (q == NULL) {
		r = alloc_any(bytes, &fresh);
		if (r == NULL)
			errno = ENOMEM;
		return r;
	}
	if (bytes == 0) {
		free(q);
		return NULL;
	}
	if (kheap_malloc_in_region(q))
		return heap_realloc(q, bytes);
	return outside_realloc(q, bytes);
}

void *reallocarray(void *q, size_t count, size_t size)
{
	size_t bytes;

	if (__builtin_mul_overflow(count, size, &bytes)) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(q, bytes);
}

/* `align` is a power of two. NULL (errno untouched) on failure. */
static void *aligned_any(size_t align, size_t bytes)
{
	struct k_heap *h;
	bool fresh;

	if (align <= MALLOC_ALIGN)
		return alloc_any(bytes, &fresh);
	h = kheap_malloc_heap_get();
	if (bytes < KHEAP_MALLOC_MMAP_THRESHOLD && align < KHEAP_MALLOC_MMAP_THRESHOLD)
		return h == NULL
			   ? NULL
			   : k_heap_aligned_alloc(h, align, bytes == 0 ? 1 : bytes, K_NO_WAIT);
	return kheap_huge_alloc(bytes == 0 ? 1 : bytes, align);
}

static bool power_of_two(size_t n)
{
	return n != 0 && (n & (n - 1)) == 0;
}

int posix_memalign(void **memptr, size_t align, size_t bytes)
{
	int saved = errno;
	void *p;

	if (!power_of_two(align) || align < sizeof(void *))
		return EINVAL;
	p = aligned_any(align, bytes);
	errno = saved;
	if (p == NULL)
		return ENOMEM;
	*memptr = p;
	return 0;
}

void *aligned_alloc(size_t align, size_t bytes)
{
	void *p;

	if (!power_of_two(align)) {
		errno = EINVAL;
		return NULL;
	}
	p = aligned_any(align, bytes);
	if (p == NULL)
		errno = ENOMEM;
	return p;
}

void *memalign(size_t align, size_t bytes)
{
	size_t rounded = MALLOC_ALIGN;
	void *p;

	if (align > SIZE_MAX / 2 + 1) {
		errno = EINVAL;
		return NULL;
	}
	while (rounded < align)
		rounded <<= 1;
	p = aligned_any(rounded, bytes);
	if (p == NULL)
		errno = ENOMEM;
	return p;
}

void *valloc(size_t bytes)
{
	void *p;

	kheap_malloc_heap_get();
	p = aligned_any(kheap_malloc_page_bytes, bytes);
	if (p == NULL)
		errno = ENOMEM;
	return p;
}

void *pvalloc(size_t bytes)
{
	size_t rounded;
	void *p = NULL;

	kheap_malloc_heap_get();
	if (kheap_malloc_page_round(bytes, &rounded))
		p = aligned_any(kheap_malloc_page_bytes, rounded);
	if (p == NULL)
		errno = ENOMEM;
	return p;
}

size_t malloc_usable_size(void *q)
{
	struct k_heap *h = kheap_malloc_ready_heap;
	size_t usable, length;
	uint8_t *p;

	if (q == NULL)
		return 0;
	if (!kheap_malloc_in_region(q)) {
		length = kheap_huge_usable_size(q);
		if (length == 0)
			report_not_ours(q);
		return length;
	}
	if (h == NULL || !plausible(q)) {
		report_implausible(q);
		return 0;
	}
	p = block_of(q);
	usable = k_heap_usable_size(h, p);
	return usable == 0 ? 0 : usable - (size_t)((uint8_t *)q - p);
}
