/*
 * k_heap: a thread-safe heap with blocking allocation, Zephyr's API.
 *
 * Path of an allocation: a small request (up to KHEAP_CACHE_MAX_BYTES) is
 * served from the current CPU's cache for its size class; a miss refills a
 * batch under the heap's spinlock, first from the depot (where a CPU whose
 * cache is over its share parks the surplus), then from the global sys_heap
 * (a single block, and frees skip the caches, while more than half the heap
 * is in use, so parked blocks never fragment a filling heap); if the global
 * heap cannot serve, every CPU's cache and the depot are drained back and
 * the request retried; if that fails and the timeout allows, the caller sleeps in FIFO
 * order until a free can serve it or its absolute deadline passes.
 *
 * Stricter than Zephyr:
 * - init returns an error code (Zephyr's returns void and asserts);
 * - waiters are served in arrival order by the freeing thread, which hands
 *   each one its block directly and wakes only that waiter: no thundering
 *   herd, and a request that does not fit yet does not hold back smaller
 *   requests queued behind it;
 * - realloc that shrinks or moves also serves waiters;
 * - a request that may wait never sleeps, nor stays asleep, while a free
 *   chunk fits it: its attempts, and the frees that serve the queue, search
 *   its whole size bucket, where a K_NO_WAIT request (as in Zephyr) gives up
 *   after a few chunks of it and may fail beside a chunk that would fit;
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
	/* For a heap in shared memory, this process's view of it: the owner
	 * tag its blocks carry (0 for a private heap), and where the region
	 * starts in this process (NULL for a private heap).
	 */
	uint32_t owner_tag;
	void *shared_region;
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
	/* Shared heaps: locks taken over from a process that died holding
	 * them, after which the heap was repaired and went on.
	 */
	uint64_t recoveries;
};

#define KHEAP_STATIC_INITIALIZER(region, bytes, percent)                                           \
	{                                                                                          \
		{NULL, (region), (bytes)}, 0, (percent), NULL, 0, NULL                             \
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

/* The `cpu` k_heap_walk reports for a cached chunk parked in the depot. */
#define K_HEAP_WALK_DEPOT (-2)

/*
 * Calls `visit` for every chunk in address order with its offset from the
 * region's start, its size in bytes (header included), its state and, for
 * cached chunks, the CPU whose cache holds it, or K_HEAP_WALK_DEPOT for the
 * depot, where one CPU's surplus waits for another CPU's refill (-1 for a
 * chunk that is not cached). The heap is quiesced for the duration: `visit`
 * must not call into this heap.
 */
int k_heap_walk(struct k_heap *h,
		void (*visit)(void *arg, size_t offset, size_t bytes, enum k_heap_chunk_state state,
			      int cpu),
		void *arg);

/*
 * Heaps in shared memory. One heap lives inside a region that several
 * processes map (a memfd, a /dev/shm file, a device BAR), each at any
 * address. Everything the heap keeps in the region is offsets; a pointer an
 * allocation returns is valid in the calling process only (the same block is
 * at region + the same offset in every process).
 *
 * Every k_heap_* function works on an attached handle as on a private heap,
 * across processes: a k_heap_alloc blocked in one process is served by a
 * k_heap_free in another. The heap and cache locks are process-shared
 * robust mutexes. Each block records the owner tag of the process that
 * allocated it, which is what k_heap_reclaim_owner() and
 * k_heap_reclaim_dead() go by.
 *
 * A process that dies while holding a heap or cache lock is detected by the
 * next process to take that lock, which repairs what the dead one left half
 * done (free lists and counters are rebuilt from the chunk headers; a
 * cache's blocks go back to the heap) and then checks the whole heap. If a
 * chunk header itself was half written the check fails and the region is
 * marked broken for good: every later operation in every process reaches
 * the fault handler (KHEAP_FAULT_CORRUPT_HEAP), allocations return NULL and
 * k_heap_attach() returns -ENOTRECOVERABLE.
 *
 * A handle belongs to the process that attached it: a child forked after
 * the attach must call k_heap_attach() itself (using the inherited handle
 * reaches the fault handler). Shared heaps always run at hardening level
 * FULL or above, because the owner tag lives in the FULL trailer.
 */

/*
 * A shared region starts with the 8 bytes "kheapSM1" and then the layout
 * version as a 32-bit integer in the machine's byte order. A region of
 * another version, or formatted by a build whose structures differ in size
 * (another ABI or configuration), is refused by k_heap_attach.
 */
/* 2: the control block ends with the depot, after the CPUs' caches.
 * 3: cache classes claim their budget in blocks (limit), caches keep the
 *    unclaimed rest (spare_bytes) instead of a byte count.
 */
#define KHEAP_SHARED_VERSION 3u

/* Processes that may be attached to one shared heap at a time. */
#define KHEAP_SHARED_MAX_PROCESSES 64

/* The smallest region k_heap_init_shared accepts. */
#define KHEAP_SHARED_MIN_BYTES (64u * 1024u)

/*
 * Formats `bytes` at `mem` (which every process maps; 64-byte aligned) as a
 * shared heap and attaches the calling process through `h`. Returns 0,
 * -EINVAL (NULL argument, misaligned or too small a region), -E2BIG.
 */
int k_heap_init_shared(struct k_heap *h, void *mem, size_t bytes,
		       const struct k_heap_config *config);

/*
 * Attaches the calling process to the shared heap formatted at `mem`, which
 * may be mapped at a different address than in the process that formatted
 * it. `bytes` is the size of this process's mapping. Returns 0, or, leaving
 * `h` unusable:
 *   -EINVAL           NULL argument, or `mem` does not hold a kheap shared heap
 *                     (bad magic, or its header disagrees with itself);
 *   -EPROTO           a kheap shared heap of another layout version or ABI;
 *   -ERANGE           the mapping is smaller than the heap;
 *   -EAGAIN           the region is still being formatted;
 *   -ENOTRECOVERABLE  the heap was marked broken (see above);
 *   -EUSERS           KHEAP_SHARED_MAX_PROCESSES processes are attached.
 */
int k_heap_attach(struct k_heap *h, void *mem, size_t bytes);

/*
 * Detaches this process. Its blocks stay allocated under its owner tag
 * (reclaim them with k_heap_reclaim_owner()). Afterwards `h` is unusable.
 * Returns 0, -EINVAL (not an attached shared heap), or -EBUSY (a thread of
 * this process is blocked in an allocation on it). A broken heap can always
 * be detached from. Each attached handle holds one of the
 * KHEAP_SHARED_MAX_PROCESSES places, even several in one process.
 */
int k_heap_detach(struct k_heap *h);

/* This process's owner tag on a shared heap; 0 for a private heap. */
uint32_t k_heap_owner_tag(struct k_heap *h);

/* The owner tag of the block `mem` of a shared heap; 0 if not known. */
uint32_t k_heap_block_owner(struct k_heap *h, void *mem);

struct k_heap_reclaimed {
	/* Processes found dead (k_heap_reclaim_dead only). */
	unsigned int processes;
	/* Blocks freed, and the bytes they gave back to the heap: what
	 * sys_memory_stats.allocated_bytes drops by (whole chunks, so at
	 * least the sum of their requested sizes).
	 */
	size_t blocks;
	size_t bytes;
	/* Waits of the reclaimed owners taken out of the wait queue. */
	unsigned int waiters;
};

/*
 * Frees every block tagged `tag` (the caller vouches that its owner will
 * never touch them again) and serves waiters from them. `out` may be NULL.
 * Returns 0, or -EINVAL for a private heap or tag 0.
 */
int k_heap_reclaim_owner(struct k_heap *h, uint32_t tag, struct k_heap_reclaimed *out);

/*
 * Finds attached processes that no longer exist (a pid that was reused by a
 * new process counts as dead: the start time must match too), detaches them
 * and frees their blocks as k_heap_reclaim_owner does. Returns 0 or -EINVAL.
 */
int k_heap_reclaim_dead(struct k_heap *h, struct k_heap_reclaimed *out);

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
