/*
 * libkheap_malloc: the C allocation API (malloc, free, calloc, realloc,
 * reallocarray, memalign, posix_memalign, aligned_alloc, valloc, pvalloc,
 * malloc_usable_size) on top of one k_heap, for LD_PRELOAD or for linking
 * into a program directly. This header adds what a program linking it
 * directly (or a test) may also want: the limits and statistics.
 *
 * Where memory comes from. At the first call the process reserves one
 * region of address space (KHEAP_MALLOC_DEFAULT_HEAP_BYTES, or the size in
 * the environment variable KHEAP_MALLOC_HEAP_SIZE: a byte count with an
 * optional K, M or G suffix, clamped to the limits below; at most a quarter
 * of an address-space limit; if the system refuses the reservation, halves
 * of it are tried down to the minimum). The region is mapped without
 * reserving swap, so pages cost memory only once touched. Requests below
 * KHEAP_MALLOC_MMAP_THRESHOLD are served by a k_heap in that region, with
 * its per-CPU caches; larger ones, and alignments that large, get a mapping
 * of their own, returned to the system by free(). Freeing a heap block of
 * at least KHEAP_MALLOC_RELEASE_BYTES gives its whole pages back (madvise
 * MADV_DONTNEED) before the block rejoins the heap.
 *
 * Start-up. The first call sets everything up without allocating, so it
 * may come from anywhere: ld.so, libc's start-up, a constructor, a
 * preinit_array function. No symbol is looked up (no dlsym): the library
 * defines the whole API itself and must be loaded at start-up (preloaded or
 * linked), never dlopen()ed. Every pointer glibc later frees was allocated
 * here (ld.so's own start-up allocations are never passed to free), so
 * there is no exception for "glibc's pointers" in the misuse checks below.
 *
 * Semantics (C11 and POSIX, with glibc's choices where those leave room):
 *   - every pointer is aligned to alignof(max_align_t);
 *   - malloc(0), calloc(0, n), aligned_alloc(a, 0) and friends return a
 *     unique pointer that must be freed, as glibc's do;
 *   - realloc(p, 0) with p != NULL frees p and returns NULL without touching
 *     errno (glibc's behaviour; C23 makes it undefined). realloc(NULL, n) is
 *     malloc(n); reallocarray(p, 0, n) is realloc(p, 0);
 *   - failure returns NULL with errno ENOMEM, never aborts; a size or count
 *     product that overflows, or exceeds PTRDIFF_MAX, is such a failure;
 *   - posix_memalign returns EINVAL for an alignment that is not a power of
 *     two multiple of sizeof(void *), ENOMEM when out of memory, and leaves
 *     errno and *memptr alone on failure; aligned_alloc sets EINVAL for an
 *     alignment that is not a power of two; memalign, like glibc's, rounds
 *     such an alignment up to the next power of two;
 *   - free(NULL) is a no-op, and free never changes errno.
 *
 * Misuse. A pointer that this allocator did not hand out (or no longer
 * holds), given to free, realloc or malloc_usable_size, reaches the kheap
 * fault handler (<kheap/fault.h>): by default one line on stderr and
 * abort(). If an installed handler returns, free does nothing, realloc
 * returns NULL with errno EINVAL and malloc_usable_size returns 0.
 *
 * Statistics: KHEAP_MALLOC_STATS=1 in the environment prints one line of
 * them on stderr at exit; an absolute path instead appends it to that file.
 *
 * Concurrency: every call is thread-safe, and none waits for another
 * thread to free memory (out of memory is an immediate NULL). Calls are not
 * async-signal-safe (as with glibc): a signal handler that allocates while
 * the thread it interrupted is inside an allocation may deadlock. fork() is
 * safe: pthread_atfork handlers take every allocator lock around it, so the
 * child can allocate, and threads that exit lose nothing (the caches belong
 * to CPUs, not threads).
 */
#ifndef KHEAP_MALLOC_KHEAP_MALLOC_H
#define KHEAP_MALLOC_KHEAP_MALLOC_H

#include <stddef.h>
#include <stdint.h>

#include <kheap/k_heap.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Requests (or alignments) of at least this many bytes get their own
 * mapping; build-time setting (-DKHEAP_MALLOC_MMAP_THRESHOLD=bytes).
 */
#ifndef KHEAP_MALLOC_MMAP_THRESHOLD
#define KHEAP_MALLOC_MMAP_THRESHOLD (1024u * 1024u)
#endif

/* Freed heap blocks of at least this many usable bytes give their pages
 * back; build-time setting (-DKHEAP_MALLOC_RELEASE_BYTES=bytes).
 */
#ifndef KHEAP_MALLOC_RELEASE_BYTES
#define KHEAP_MALLOC_RELEASE_BYTES (256u * 1024u)
#endif

/* Region sizes: the default, and the bounds KHEAP_MALLOC_HEAP_SIZE is held to.
 * The maximum is the largest region a k_heap with 8-byte headers can
 * describe (8 GiB), less one page.
 */
#if UINTPTR_MAX > 0xffffffffu
#define KHEAP_MALLOC_DEFAULT_HEAP_BYTES ((size_t)4 << 30)
#define KHEAP_MALLOC_MAX_HEAP_BYTES	(((size_t)8 << 30) - 65536u)
#else
#define KHEAP_MALLOC_DEFAULT_HEAP_BYTES ((size_t)512 << 20)
#define KHEAP_MALLOC_MAX_HEAP_BYTES	((size_t)2 << 30)
#endif
#define KHEAP_MALLOC_MIN_HEAP_BYTES ((size_t)16 << 20)

struct kheap_malloc_stats {
	/* Size of the reserved region (0 if it could not be reserved). */
	size_t heap_bytes;
	/* The heap's k_heap statistics (see struct sys_memory_stats). */
	size_t heap_allocated_bytes;
	size_t heap_cached_bytes;
	size_t heap_free_bytes;
	size_t heap_max_allocated_bytes;
	/* Mapped blocks alive now, their bytes, and all ever mapped. */
	size_t mapped_blocks;
	size_t mapped_bytes;
	uint64_t mapped_total;
	/* Bytes handed back to the system by freeing large heap blocks. */
	uint64_t released_bytes;
};

/* The heap behind malloc (set up on first use); NULL if it is unavailable. */
struct k_heap *kheap_malloc_heap(void);

/* Fills `stats`; 0, or -EINVAL for NULL. Takes the heap's locks briefly. */
int kheap_malloc_stats_get(struct kheap_malloc_stats *stats);

#ifdef __cplusplus
}
#endif

#endif
