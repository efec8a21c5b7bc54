/*
 * k_heap's control block and per-CPU caches, shared by k_heap.c (global
 * paths, waiting, lifecycle) and cpu_cache.c (the cache fast paths).
 *
 * Where it lives. The control block is carved out of the heap's own region
 * at init (a USED chunk, aligned to a cache line), and the z_heap records its
 * chunk id in owner_control. Everything but the wait queue's links is
 * therefore offsets and counters inside the region.
 *
 * Layout, one cache line per concern so cores do not false-share:
 *   line 0   read-mostly configuration (cpu count, budget, class limits, and
 *            the copy of the heap's geometry the cache hit paths use)
 *   line 1   the heap lock, the wait queue and global event counters
 *   line 2   waiter_count, read by every free, written only by waiters
 *   then     cpu_count struct kheap_cpu_cache, each starting a cache line
 *
 * Slot locks. Each per-CPU cache is guarded by the lock of its CPU slot
 * (CPU number modulo KHEAP_MAX_CPUS). The slot locks are process-wide,
 * shared by every heap, and never freed: a fast path takes its slot lock
 * before it reads anything inside a heap's region, then checks under it that
 * the heap is READY. Teardown stores CLOSING and then takes every slot lock,
 * so a thread that looked up the heap just before teardown either finished
 * under its slot lock already or will find CLOSING and never touch the
 * region. This keeps the fast path free of any read-side bookkeeping; the
 * slow paths, which touch the region without a slot lock, run inside
 * liburcu read-side sections that teardown waits out (see k_heap.c).
 * Threads on one CPU using different heaps share a slot lock; the fast paths
 * only trylock it, so they fall back to the heap lock instead of waiting.
 *
 * Lock order (outermost first), taken in full by kheap_quiesce:
 *   1. slot locks, in ascending slot index;
 *   2. a heap lock (control->lock).
 * The fast paths hold one slot lock, taken with trylock only: if it is busy
 * (another thread on the same CPU, or a drain) they fall back to the heap
 * lock path instead of spinning behind a possibly preempted holder. Refill
 * and flush take the heap lock while holding their slot lock; drain,
 * validate, stats and walk take slot locks with a blocking acquire. Nothing
 * takes a slot lock while holding a heap lock.
 *
 * What each lock protects:
 *   slot lock    that slot's cache in every heap: class lists, cached_bytes,
 *                counters, and the CACHED flag of the blocks in its lists;
 *   heap lock    the z_heap (free lists, bucket bitmap, stats, every other
 *                header change), the wait queue, the global counters.
 * waiter_count is atomic and protected by neither; the no-lost-wake-up
 * argument for it is in cpu_cache.c.
 *
 * Cached blocks. A block parked in a cache stays USED in the z_heap with
 * CHUNK_CACHED set. Its first body word holds the next block of the same
 * class (a chunk id, 0 ends the list) and its second the owning CPU, so only
 * classes with at least 8 body bytes are cached.
 */
#ifndef KHEAP_HEAP_K_HEAP_INTERNAL_H
#define KHEAP_HEAP_K_HEAP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kheap/k_heap.h>

#include "arch/arch.h"
#include "heap/heap_internal.h"
#include "smp/atomic.h"
#include "smp/spinlock.h"
#include "smp/waitq.h"

/* A class per chunk size in units; requests round up to whole units only. */
#define KHEAP_CACHE_CLASSES (((KHEAP_CACHE_MAX_BYTES + 8 + CHUNK_UNIT - 1) / CHUNK_UNIT) + 1)

/* Blocks a refill takes from the global heap in one lock hold (at most). */
#define KHEAP_REFILL_BATCH 16
/* Bytes one refill may take at most, so large classes refill fewer blocks. */
#define KHEAP_REFILL_BYTES 4096

/* Below capacity / KHEAP_PRESSURE_DIVISOR free bytes (more than half the
 * heap in use), frees bypass the caches and refills take single blocks:
 * blocks parked across a filling heap come back as holes too small for the
 * request that needed them (the fill-to-failure benchmark lost 3 points of
 * utilisation at 1/8 and 2.6 at 1/4; at 1/2 it is within one point).
 */
#define KHEAP_PRESSURE_DIVISOR 2

/* Heaps smaller than this get no caches: the metadata would not pay. */
#define KHEAP_CACHE_MIN_HEAP (64u * 1024u)

/* CPU caches beyond this count share slots (index modulo the count). */
#define KHEAP_MAX_CPUS 256

struct kheap_cache_class {
	chunkid_t head;
	uint32_t count;
};

struct kheap_cpu_counters {
	uint64_t hits;
	uint64_t misses;
	uint64_t refills;
	uint64_t flushes;
};

struct kheap_cpu_cache {
	uint32_t cpu;
	size_t cached_bytes;
	struct kheap_cpu_counters counters;
	struct kheap_cache_class classes[KHEAP_CACHE_CLASSES];
} __attribute__((aligned(KHEAP_CACHE_LINE)));

struct k_heap_control {
	/* Line 0: set at init, read-only afterwards (hit_header_bytes also
	 * changes with the hardening level, under every lock).
	 */
	struct k_heap *owner;
	uint32_t cpu_count;
	/* Largest cached class in units; 0 when caches are off. */
	uint32_t max_class_units;
	uint32_t min_class_units;
	/* The z_heap's header width while the cache hit paths may serve, 0 when
	 * only the general paths may (blocks carry trailers: FULL and above).
	 */
	uint32_t hit_header_bytes;
	size_t cpu_budget_bytes;
	/* The largest block the empty heap can hand out. */
	size_t capacity_bytes;
	/* Copies of the z_heap's fixed geometry for the hit paths, so a hit
	 * reads none of the z_heap's own lines, which the heap lock's holder
	 * keeps writing (free_bytes, buckets).
	 */
	chunkid_t first_block_chunk;
	chunkid_t end_chunk;

	/* Line 1: the heap lock and what it protects. */
	kheap_spinlock_t lock __attribute__((aligned(KHEAP_CACHE_LINE)));
	struct kheap_waitq waitq;
	uint64_t drains;
	uint64_t waits;
	uint64_t handoffs;
	uint64_t timeouts;

	/* Line 2, read by every free, written rarely: how many threads are in
	 * an allocation's slow path, and whether free memory is scarce.
	 */
	unsigned int waiter_count __attribute__((aligned(KHEAP_CACHE_LINE)));
	unsigned int low_memory;

	struct kheap_cpu_cache cpus[];
};

static inline bool caches_enabled(const struct k_heap_control *ctl)
{
	return ctl->max_class_units != 0;
}

static inline struct z_heap *control_heap(const struct k_heap_control *ctl)
{
	return ctl->owner->heap.heap;
}

enum k_heap_state {
	KHEAP_STATE_UNINITIALISED = 0,
	KHEAP_STATE_INITIALISING,
	KHEAP_STATE_READY,
	KHEAP_STATE_FAILED,
	KHEAP_STATE_CLOSING,
	KHEAP_STATE_DEAD,
};

struct kheap_slot_lock {
	kheap_spinlock_t lock;
} __attribute__((aligned(KHEAP_CACHE_LINE)));

extern struct kheap_slot_lock kheap_slot_locks[KHEAP_MAX_CPUS];

/* The lock guarding cache slot `slot` of every heap. */
static inline kheap_spinlock_t *kheap_slot_lock(uint32_t slot)
{
	return &kheap_slot_locks[slot].lock;
}

/*
 * Heap lock held: records whether free memory is below capacity /
 * KHEAP_PRESSURE_DIVISOR. While it is, frees skip the caches and refills take
 * single blocks, so caches never hold memory a nearly full heap needs whole.
 * Written only when the answer changes, so its line stays read-mostly.
 */
static inline void kheap_note_pressure(struct k_heap_control *ctl)
{
	unsigned int low =
	    control_heap(ctl)->free_bytes < ctl->capacity_bytes / KHEAP_PRESSURE_DIVISOR;

	if (kheap_load_uint(&ctl->low_memory) != low)
		kheap_store_release_uint(&ctl->low_memory, low);
}

/* With every lock held (or before the heap is published): copies into line 0
 * what the hit paths need of the z_heap at its current hardening level.
 */
void kheap_cache_configure(struct k_heap_control *ctl);

/* Locks the heap's slot locks then its heap lock, in the documented order. */
void kheap_quiesce(struct k_heap_control *ctl);
void kheap_unquiesce(struct k_heap_control *ctl);

/*
 * What the cache's locked free path did (cpu_cache.c): finished the free
 * (cached it, or reported misuse), or declined, and the global free follows.
 */
enum kheap_cache_free_result {
	KHEAP_CACHE_FREE_DECLINED,
	KHEAP_CACHE_FREE_DONE,
};

/* Returns every cached block to the global heap (takes the locks itself). */
void kheap_cache_drain_all(struct k_heap_control *ctl);

/* With every lock held: returns every cached block to the global heap. */
void kheap_cache_release_all_locked(struct k_heap_control *ctl);

/* With every lock held: checks every cached block; false with *why on error. */
bool kheap_cache_check_all(struct k_heap_control *ctl, const struct z_heap_walk_totals *totals,
			   const char **why);

/* With every lock held: the CPU whose cache holds chunk c (CACHED). */
int kheap_cache_owner_cpu(const struct z_heap *h, chunkid_t c);

/* With every lock held: bytes parked in all caches. */
size_t kheap_cache_bytes(struct k_heap_control *ctl);
/* With every lock held: adds the per-CPU counters to `counters`. */
void kheap_cache_add_counters(struct k_heap_control *ctl, struct k_heap_counters *counters);

/* Hooks for the sys_heap entry points called on a k_heap's inner heap. */
bool k_heap_validate_owned(struct sys_heap *heap);
int k_heap_stats_owned(struct sys_heap *heap, struct sys_memory_stats *stats);
int k_heap_stats_reset_max_owned(struct sys_heap *heap);

/* Serves queued waiters from the global heap; heap lock held. Returns how
 * many were served; their state words are stored in wake[] (up to wake_cap)
 * for kheap_wake_served() after the lock is dropped.
 */
size_t kheap_serve_waiters(struct k_heap_control *ctl, uint32_t **wake, size_t wake_cap);
void kheap_wake_served(uint32_t **wake, size_t count);

/*
 * Fork support (fork.c), for pthread_atfork handlers of a process that keeps
 * using the READY heap `h` in the child: prepare takes urcu-bp's fork locks,
 * every slot lock and h's heap lock; parent and child release them.
 */
void kheap_fork_prepare(struct k_heap *h);
void kheap_fork_parent(struct k_heap *h);
void kheap_fork_child(struct k_heap *h);

#endif
