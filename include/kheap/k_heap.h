/*
 * k_heap: a thread-safe heap with blocking allocation, Zephyr's API.
 *
 * Path of an allocation: a small request (up to KHEAP_CACHE_MAX_BYTES) is
 * served from the current CPU's cache for its size class; a miss refills a
 * batch from the global sys_heap under the heap's spinlock (a single block,
 * and frees skip the caches, while more than half the heap is in use, so
 * parked blocks never fragment a filling heap); if the global
 * heap cannot serve, every CPU's cache is drained back and the request
 * retried; if that fails and the timeout allows, the caller sleeps in FIFO
 * order until a free can serve it or its absolute deadline passes.
 *
 * Stricter than Zephyr:
 * - init returns an error code (Zephyr's returns void and asserts);
 * - waiters are served in arrival order by the freeing thread, which hands
 *   each one its block directly and wakes only that waiter: no thundering
 *   herd, and a request that does not fit yet does not hold back smaller
 *   requests queued behind it;
 * - realloc that shrinks or moves also serves waiters;
 * - misuse (double free, foreign or interior pointer, overrun header) is
 *   detected in every build and reported to the fault handler (fault.h).
 *
 * Concurrency contract, for every function below unless it says otherwise:
 * callable from any thread, concurrently, on the same heap. Functions taking
 * a k_timeout_t block only when the timeout is not K_NO_WAIT; all others
 * never sleep (they may spin briefly on the heap lock). Memory returned by an
 * allocation happens-after the free that released it, whichever thread freed
 * it. They are not async-signal-safe.
 */
#ifndef KHEAP_K_HEAP_H
#define KHEAP_K_HEAP_H

#include <stddef.h>
#include <stdint.h>

#include <kheap/fault.h>
#include <kheap/sys_heap.h>
#include <kheap/timeout.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Requests up to this many bytes may be served by the per-CPU caches. */
#define KHEAP_CACHE_MAX_BYTES 1024

/* Default bound on cached memory, as a percentage of the heap's size. */
#define KHEAP_DEFAULT_CACHE_PERCENT 6

struct k_heap_control;

struct k_heap {
	/* The global heap; Zephyr code reads this member directly. */
	struct sys_heap heap;
	/* Lazy-initialisation state of a statically defined heap. */
	unsigned int init_state;
	/* Cache bound in percent of the heap, applied at (lazy) init. */
	unsigned int cache_percent;
	/* Lock, wait queue and caches; they live inside the heap's region. */
	struct k_heap_control *control;
};

struct k_heap_config {
	/* Upper bound on memory parked in per-CPU caches, as a percentage of
	 * the heap (0 disables the caches). Caches are also disabled when the
	 * heap is too small for them to pay.
	 */
	unsigned int cache_percent;
};

/* Event counters, summed over CPUs; for reports and tests. */
struct k_heap_counters {
	uint64_t cache_hits;
	uint64_t cache_misses;
	uint64_t refills;
	uint64_t flushes;
	uint64_t drains;
	uint64_t waits;
	uint64_t handoffs;
	uint64_t timeouts;
};

#define KHEAP_STATIC_INITIALIZER(region, bytes, percent)                                           \
	{                                                                                          \
		{NULL, (region), (bytes)}, 0, (percent), NULL                                      \
	}

/*
 * Defines `struct k_heap name` over a static region of `bytes`. It needs no
 * init call: the first operation initialises it (once, thread-safely).
 */
#define K_HEAP_DEFINE(name, bytes)                                                                 \
	static char kheap_region_##name[(bytes)] __attribute__((aligned(64)));                     \
	struct k_heap name =                                                                       \
	    KHEAP_STATIC_INITIALIZER(kheap_region_##name, (bytes), KHEAP_DEFAULT_CACHE_PERCENT)

/* As K_HEAP_DEFINE, with the per-CPU caches disabled. */
#define K_HEAP_DEFINE_NOCACHE(name, bytes)                                                         \
	static char kheap_region_##name[(bytes)] __attribute__((aligned(64)));                     \
	struct k_heap name = KHEAP_STATIC_INITIALIZER(kheap_region_##name, (bytes), 0)

/*
 * Formats `bytes` at `mem` as a k_heap with default settings. Returns 0,
 * -EINVAL when an argument is NULL or the region is too small for the heap's
 * metadata, or -E2BIG when it is too large. Not thread-safe against other
 * calls on the same heap (nobody may use it until init returns).
 */
int k_heap_init(struct k_heap *h, void *mem, size_t bytes);

/* As k_heap_init with explicit settings (NULL means defaults). */
int k_heap_init_config(struct k_heap *h, void *mem, size_t bytes,
		       const struct k_heap_config *config);

/*
 * Tears the heap down so its region may be reused. Returns 0, or -EBUSY
 * (heap unchanged) while users hold blocks or threads wait on it. After a
 * successful deinit every operation on the heap reaches the fault handler
 * (KHEAP_FAULT_BAD_HEAP) until it is initialised again. The caller must
 * ensure no thread starts a new operation on the heap concurrently; threads
 * still finishing an operation inside a per-CPU cache are waited for.
 */
int k_heap_deinit(struct k_heap *h);

/*
 * Allocates `bytes`. Returns NULL for bytes == 0, or when nothing could be
 * found before `timeout` expired (immediately with K_NO_WAIT). May block.
 * Before failing or sleeping it drains every CPU's cache into the global
 * heap, so a failed call leaves allocated_bytes unchanged but may move bytes
 * from cached_bytes to free_bytes. A request larger than the empty heap
 * could ever hold fails at once, whatever the timeout. While it sleeps (and
 * only then) it is a POSIX cancellation point, as pthread_cond_wait is: a
 * cancelled waiter leaves the queue, or returns the block it was just handed,
 * before its thread exits.
 */
void *k_heap_alloc(struct k_heap *h, size_t bytes, k_timeout_t timeout);

/* As k_heap_alloc, aligned to `align` (a power of two; 0 = none, else NULL). */
void *k_heap_aligned_alloc(struct k_heap *h, size_t align, size_t bytes, k_timeout_t timeout);

/* Zeroed num * size bytes; NULL if the product overflows. May block. */
void *k_heap_calloc(struct k_heap *h, size_t num, size_t size, k_timeout_t timeout);

/*
 * Resizes `ptr` as sys_heap_realloc does, waiting up to `timeout` for room.
 * NULL ptr allocates; bytes == 0 frees and returns NULL. On failure returns
 * NULL and `ptr` is untouched. A shrink or move serves waiters. May block.
 */
void *k_heap_realloc(struct k_heap *h, void *ptr, size_t bytes, k_timeout_t timeout);

/* Frees `mem` (NULL is a no-op) and serves waiters. Never blocks. */
void k_heap_free(struct k_heap *h, void *mem);

/* Usable bytes of a block the caller holds. Never blocks. */
size_t k_heap_usable_size(struct k_heap *h, void *mem);

/*
 * Sets the hardening level (see sys_heap.h) while no user holds a block and
 * nobody waits: drains the caches first. Returns 0, -EBUSY, or -EINVAL.
 * EXTREME turns the per-CPU caches off for good. Never blocks.
 */
int k_heap_set_hardening(struct k_heap *h, enum sys_heap_hardening level);

/* Stats with user-held and cached bytes reported apart. 0 or -EINVAL. */
int k_heap_runtime_stats_get(struct k_heap *h, struct sys_memory_stats *stats);

/* Event counters summed over CPUs. 0 or -EINVAL. */
int k_heap_counters_get(struct k_heap *h, struct k_heap_counters *counters);

/* Returns every cached block to the global heap. Never sleeps. */
void k_heap_drain_caches(struct k_heap *h);

/* Number of threads currently blocked in an allocation on `h`. */
unsigned int k_heap_waiter_count(struct k_heap *h);

enum k_heap_chunk_state {
	K_HEAP_CHUNK_METADATA,
	K_HEAP_CHUNK_FREE,
	K_HEAP_CHUNK_USED,
	K_HEAP_CHUNK_CACHED,
};

/*
 * Calls `visit` for every chunk in address order with its offset from the
 * region's start, its size in bytes (header included), its state and, for
 * cached chunks, the CPU whose cache holds it (-1 otherwise). The heap is
 * quiesced for the duration: `visit` must not call into this heap.
 */
int k_heap_walk(struct k_heap *h,
		void (*visit)(void *arg, size_t offset, size_t bytes, enum k_heap_chunk_state state,
			      int cpu),
		void *arg);

/*
 * The system heap, behind k_malloc and friends. Its size is fixed at build
 * time by KHEAP_SYSTEM_HEAP_SIZE (default 16 MiB, reserved in .bss). None of
 * these ever blocks: they return NULL when the heap is exhausted.
 */
void *k_malloc(size_t size);
void *k_calloc(size_t nmemb, size_t size);
void *k_aligned_alloc(size_t align, size_t size);
void *k_realloc(void *ptr, size_t size);
void k_free(void *ptr);
struct k_heap *k_system_heap(void);

#ifdef __cplusplus
}
#endif

#endif
