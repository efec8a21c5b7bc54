/*
 * sys_heap: Zephyr's single-threaded chunk allocator, with Zephyr's API.
 *
 * A sys_heap formats a caller-provided region. It takes no locks, makes no
 * system calls and never calls malloc: callers serialise access themselves
 * (k_heap does so with a spinlock). No function here blocks. Concurrent calls
 * on the same heap are undefined; calls on different heaps are independent.
 *
 * Layout contract (see heap/chunk.h for the full picture): memory is managed
 * in 8-byte chunk units; each block has a header of 8 bytes, or 4 bytes on
 * 32-bit targets for heaps under 16384 units (128 KiB). Free chunks sit in
 * log2-sized buckets tracked by a bitmap. Allocation searches the exact
 * bucket a bounded number of times, then takes the smallest larger bucket;
 * chunks are split immediately and merged on both sides at free.
 *
 * Returned memory is always 8-byte aligned. All metadata inside the region
 * is stored as offsets from the region's base, so a region may be mapped at
 * different addresses.
 *
 * Stricter than Zephyr: sys_heap_init reports refusal by its return value
 * (Zephyr asserts), every misuse is checked in every build, and bad sizes or
 * alignments return NULL without touching the heap.
 */
#ifndef KHEAP_SYS_HEAP_H
#define KHEAP_SYS_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct z_heap;

struct sys_heap {
	/* The formatted heap inside the region; NULL until init succeeds. */
	struct z_heap *heap;
	/* The region as given to sys_heap_init (or a static definer). */
	void *init_mem;
	size_t init_bytes;
};

struct sys_memory_stats {
	/* Bytes in free chunks of the global heap (headers excluded). */
	size_t free_bytes;
	/* Bytes held by users: each block's chunk less its header, which is
	 * its usable size below hardening FULL; from FULL up it also counts
	 * the trailer and the padding before it, so it is then more than the
	 * sum of usable sizes (which are the requested sizes). Blocks parked
	 * in a k_heap's per-CPU caches are not counted here but in
	 * cached_bytes.
	 */
	size_t allocated_bytes;
	/* High-water mark of bytes taken out of the free lists (user-held plus
	 * cached) since init or the last reset.
	 */
	size_t max_allocated_bytes;
	/* Bytes parked in per-CPU caches (0 for a plain sys_heap). */
	size_t cached_bytes;
};

struct z_heap_stress_result {
	uint32_t total_allocs;
	uint32_t successful_allocs;
	uint32_t total_frees;
	uint64_t accumulated_in_use_bytes;
};

/*
 * Formats `bytes` of memory at `mem` as an empty heap. Returns 0, or
 * -EINVAL when `heap` or `mem` is NULL or the region cannot hold the heap's
 * own metadata plus one minimal block, or -E2BIG when the region exceeds the
 * largest heap the chunk format can describe (8 GiB with 8-byte headers).
 * On failure the heap is left unusable: every allocation returns NULL, and
 * a free, realloc or usable_size of a pointer reaches the fault handler as
 * KHEAP_FAULT_BAD_HEAP.
 */
int sys_heap_init(struct sys_heap *heap, void *mem, size_t bytes);

/* Returns a block of at least `bytes`, or NULL (also for bytes == 0). */
void *sys_heap_alloc(struct sys_heap *heap, size_t bytes);

/*
 * As sys_heap_alloc with the result aligned to `align`, a power of two
 * (0 means no requirement). NULL when align is not a power of two.
 */
void *sys_heap_aligned_alloc(struct sys_heap *heap, size_t align, size_t bytes);

/* Allocation where `align` is ignored; kept for Zephyr API parity. */
void *sys_heap_noalign_alloc(struct sys_heap *heap, size_t align, size_t bytes);

/* Frees a block; NULL is a no-op. Misuse reaches the fault handler. */
void sys_heap_free(struct sys_heap *heap, void *mem);

/*
 * Resizes `ptr` to `bytes` with alignment `align` (0 = none). NULL ptr
 * allocates; bytes == 0 frees and returns NULL. Shrinks and grows in place
 * when it can; otherwise moves. The block stays in place only if `ptr`
 * already has `align`. On failure returns NULL and `ptr` is untouched.
 */
void *sys_heap_aligned_realloc(struct sys_heap *heap, void *ptr, size_t align, size_t bytes);

#define sys_heap_realloc(heap, ptr, bytes) sys_heap_aligned_realloc(heap, ptr, 0, bytes)

/* Bytes usable at `mem` (at least what was asked for). 0 for NULL; a
 * pointer that is not a live block reaches the fault handler and gives 0.
 */
size_t sys_heap_usable_size(struct sys_heap *heap, void *mem);

/*
 * Walks the whole heap and cross-checks every invariant: chunk sizes and
 * neighbour links, free-list membership and links, the bucket bitmap, and
 * the stats counters. Returns true when all hold. On a heap owned by a
 * k_heap it first quiesces the per-CPU caches (taking every cache lock and
 * the heap lock) and also checks each cached block, so it never reads a heap
 * another core is changing. A failure is also reported to the fault handler
 * as KHEAP_FAULT_CORRUPT_HEAP with the first broken invariant.
 */
bool sys_heap_validate(struct sys_heap *heap);

/*
 * Runs `op_count` random operations through alloc_fn/free_fn, keeping use
 * near `target_percent` of `total_bytes`, with power-law request sizes.
 * `scratch_mem` records live blocks (16 bytes each on 64-bit). Each block is
 * filled with a pattern that is checked before it is freed; a mismatch is
 * reported as KHEAP_FAULT_CORRUPT_HEAP. Blocks still live after the last
 * operation are checked and freed too, outside the counts, so the heap ends
 * as it started. accumulated_in_use_bytes sums, after every operation, the
 * requested bytes of the blocks then live. Uses a fixed default seed.
 */
void sys_heap_stress(void *(*alloc_fn)(void *arg, size_t bytes),
		     void (*free_fn)(void *arg, void *p), void *arg, size_t total_bytes,
		     uint32_t op_count, void *scratch_mem, size_t scratch_bytes, int target_percent,
		     struct z_heap_stress_result *result);

/* sys_heap_stress with an explicit seed; the same seed replays the same run. */
void sys_heap_stress_seeded(void *(*alloc_fn)(void *arg, size_t bytes),
			    void (*free_fn)(void *arg, void *p), void *arg, size_t total_bytes,
			    uint32_t op_count, void *scratch_mem, size_t scratch_bytes,
			    int target_percent, uint64_t seed, struct z_heap_stress_result *result);

/* Prints bucket occupancy and totals to stdout; with dump_chunks, every chunk. */
void sys_heap_print_info(struct sys_heap *heap, bool dump_chunks);

/*
 * How much checking a heap does, cheapest first. Each level includes the
 * ones before it.
 *   NONE      a freed pointer must lie inside the heap at a chunk boundary;
 *             nothing else is checked (misuse can corrupt the heap).
 *   BASIC     the default: O(1) checks of the block's header and the next
 *             header at every free and realloc (double free, interior
 *             pointer, overrun into the next header), and of every free
 *             chunk before it is split or handed out.
 *   MODERATE  also checks a free neighbour's header and links before
 *             merging with it at free.
 *   FULL      also a trailer after each block that records its requested
 *             size and is checked at free (any write past the requested size
 *             is caught, not only one that reaches the next header); freed
 *             memory is filled with 0xdb, and a block reused from a per-CPU
 *             cache must still hold that fill (a write after free is caught).
 *             usable_size then reports the requested size. Costs 8 bytes per
 *             block and a fill of every freed block.
 *   EXTREME   also validates the whole heap after every operation, and
 *             turns a k_heap's per-CPU caches off.
 * The build-time default is KHEAP_DEFAULT_HARDENING (BASIC).
 */
enum sys_heap_hardening {
	SYS_HEAP_HARDENING_NONE,
	SYS_HEAP_HARDENING_BASIC,
	SYS_HEAP_HARDENING_MODERATE,
	SYS_HEAP_HARDENING_FULL,
	SYS_HEAP_HARDENING_EXTREME,
};

/*
 * Sets the hardening level of a heap that holds no blocks. Returns 0,
 * -EBUSY while blocks are allocated (the level decides their layout), or
 * -EINVAL for an unknown level or an uninitialised heap. On a k_heap's inner
 * heap this acts as k_heap_set_hardening.
 */
int sys_heap_set_hardening(struct sys_heap *heap, enum sys_heap_hardening level);

/* The heap's hardening level (NONE for an uninitialised heap). */
enum sys_heap_hardening sys_heap_get_hardening(struct sys_heap *heap);

/* Fills `stats`. Returns 0, or -EINVAL for a NULL or uninitialised heap. */
int sys_heap_runtime_stats_get(struct sys_heap *heap, struct sys_memory_stats *stats);

/* Sets max_allocated_bytes to the current allocated amount. 0 or -EINVAL. */
int sys_heap_runtime_stats_reset_max(struct sys_heap *heap);

#ifdef __cplusplus
}
#endif

#endif
