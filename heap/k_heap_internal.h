/*
 * k_heap's control block and per-CPU caches, shared by k_heap.c (global
 * paths, waiting, lifecycle) and cpu_cache.c (the cache fast paths).
 *
 * Where it lives. The control block is carved out of the heap's own region
 * at init (a USED chunk, aligned to a cache line), and the z_heap records its
 * chunk id in owner_control. Everything in it is offsets and counters, and
 * the wait queue links its waiters by reference (smp/waitq.h), so a heap in
 * shared memory (shared.c) works at any mapping address. The slot locks are
 * the one thing outside the region.
 *
 * Layout, one cache line per concern so cores do not false-share:
 *   line 0   read-mostly configuration (cpu count, budget, class limits, and
 *            the copy of the heap's geometry the cache hit paths use)
 *   line 1   the heap lock, the wait queue and global event counters
 *   line 2   waiter_count, read by every free, written only by waiters
 *   then     cpu_count struct kheap_cpu_cache, each starting a cache line,
 *            and one more, the depot (cpu_cache.c), when caches are on
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
 *   1b. for a heap in shared memory, the cache locks in the region
 *      (kheap_cpu_cache.shared_lock), ascending; a cache path takes its
 *      slot's right after the slot lock;
 *   2. a heap lock (control->lock, or control->shared_lock for a heap in
 *      shared memory; kheap_heap_lock picks).
 * The fast paths hold one slot lock, taken with trylock only: if it is busy
 * (another thread on the same CPU, or a drain) they fall back to the heap
 * lock path instead of spinning behind a possibly preempted holder. Refill
 * and flush take the heap lock while holding their slot lock; drain,
 * validate, stats and walk take slot locks with a blocking acquire. Nothing
 * takes a slot lock while holding a heap lock.
 *
 * What each lock protects:
 *   slot lock    that slot's cache in every heap: class lists and limits, spare_bytes,
 *                counters, and the CACHED flag of the blocks in its lists;
 *   heap lock    the z_heap (free lists, bucket bitmap, stats, every other
 *                header change), the wait queue, the global counters, and
 *                the depot (the cache after the CPUs' own).
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

#include <pthread.h>
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

/* The smallest cached class in units: a parked block's two link words need
 * 8 body bytes. The hit paths assume it (shared heaps start higher and use
 * only the general paths).
 */
#define KHEAP_CACHE_MIN_UNITS 2u

/* A cache takes back its classes' unused claims (a pass over every class)
 * at most once in this many times it finds its spare budget short.
 */
#define KHEAP_RECLAIM_INTERVAL 32u

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
	/* Blocks in the list; never above limit. */
	uint16_t count;
	/* This class's claim on its cache's budget, in blocks (cpu_cache.c,
	 * "Bound"), so a push checks its room with no byte arithmetic.
	 */
	uint16_t limit;
};

#define KHEAP_CLASS_LIMIT_MAX UINT16_MAX

struct kheap_cpu_counters {
	uint64_t hits;
	uint64_t misses;
	uint64_t refills;
	uint64_t flushes;
};

struct kheap_cpu_cache {
	uint32_t cpu;
	/* Times this cache may still find its spare short before it takes
	 * back unused claims again (cpu_cache.c, make_room).
	 */
	uint32_t reclaim_wait;
	/* Budget no class has claimed: spare_bytes plus every class's limit
	 * times its block bytes is always cpu_budget_bytes. The depot has no
	 * limits: its spare_bytes plus the bytes it holds is the budget.
	 */
	size_t spare_bytes;
	struct kheap_cpu_counters counters;
	struct kheap_cache_class classes[KHEAP_CACHE_CLASSES];
	/* A shared heap's cache is also guarded by this robust, process-shared
	 * mutex: the slot lock excludes only this process's threads.
	 */
	pthread_mutex_t shared_lock;
} __attribute__((aligned(KHEAP_CACHE_LINE)));

struct k_heap_control {
	/* Line 0: set at init, read-only afterwards (hit_header_bytes, and
	 * max_class_units when EXTREME turns the caches off, change with the
	 * hardening level, under every lock).
	 */
	/* This block's chunk id: the z_heap sits control_chunk units below. */
	uint32_t control_chunk;
	/* Non-zero for a heap in shared memory (heap/shared.c). */
	uint32_t process_shared;
	/* Shared heaps: bytes from the region's start to this block. */
	uint64_t region_offset;
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
	/* Shared heaps lock this robust, process-shared mutex instead. */
	pthread_mutex_t shared_lock;
	uint64_t drains;
	uint64_t waits;
	uint64_t handoffs;
	uint64_t timeouts;

	/* Line 2, read by every free, written rarely: how many threads are in
	 * an allocation's slow path, and whether free memory is scarce.
	 */
	unsigned int waiter_count __attribute__((aligned(KHEAP_CACHE_LINE)));
	unsigned int low_memory;
	/* Counts the times low_memory turned on (heap lock held), and the last
	 * of those spells whose start drained every cache (cpu_cache.c).
	 */
	unsigned int pressure_generation;
	unsigned int drained_generation;

	struct kheap_cpu_cache cpus[];
};

/* How many kheap_cpu_cache a control block for cpu_count CPUs holds. */
static inline uint32_t kheap_cache_count(uint32_t cpu_count)
{
	return cpu_count != 0 ? cpu_count + 1 : 0;
}

static inline bool caches_enabled(const struct k_heap_control *ctl)
{
	return ctl->max_class_units != 0;
}

/* Computed from the block's own address, so it holds in every process. */
static inline struct z_heap *control_heap(const struct k_heap_control *ctl)
{
	return (struct z_heap *)((uint8_t *)ctl - (size_t)ctl->control_chunk * CHUNK_UNIT);
}

/* The base the wait queue's references are relative to (smp/waitq.h). */
static inline uintptr_t control_waitq_base(const struct k_heap_control *ctl)
{
	return ctl->process_shared ? (uintptr_t)ctl - (uintptr_t)ctl->region_offset : 0;
}

/* The k_heap whose inner sys_heap is `heap` (its first member). */
static inline struct k_heap *k_heap_of(struct sys_heap *heap)
{
	return (struct k_heap *)heap;
}

/* Shared heaps (shared.c): the robust heap lock, and recovery when its
 * previous holder died.
 */
bool kheap_shared_lock(struct k_heap_control *ctl);
void kheap_shared_unlock(struct k_heap_control *ctl);

/*
 * The heap lock: a CK spinlock, or for a shared heap a robust mutex. Returns
 * false, without the lock, only for a shared heap found broken (a process
 * died halfway through changing it; the fault was reported): the caller
 * must then fail its operation without touching the heap.
 */
static inline bool kheap_heap_lock(struct k_heap_control *ctl)
{
	if (__builtin_expect(ctl->process_shared != 0, 0))
		return kheap_shared_lock(ctl);
	kheap_spin_lock(&ctl->lock);
	return true;
}

static inline void kheap_heap_unlock(struct k_heap_control *ctl)
{
	if (__builtin_expect(ctl->process_shared != 0, 0))
		kheap_shared_unlock(ctl);
	else
		kheap_spin_unlock(&ctl->lock);
}

enum k_heap_state {
	KHEAP_STATE_UNINITIALISED = 0,
	KHEAP_STATE_INITIALISING,
	KHEAP_STATE_READY,
	KHEAP_STATE_FAILED,
	KHEAP_STATE_CLOSING,
	KHEAP_STATE_DEAD,
	/* A shared heap's handle inherited by a forked child (shared.c). */
	KHEAP_STATE_FORKED,
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

	if (kheap_load_uint(&ctl->low_memory) == low)
		return;
	if (low)
		kheap_store_release_uint(&ctl->pressure_generation, ctl->pressure_generation + 1);
	kheap_store_release_uint(&ctl->low_memory, low);
}

/* With every lock held (or before the heap is published): copies into line 0
 * what the hit paths need of the z_heap at its current hardening level.
 */
void kheap_cache_configure(struct k_heap_control *ctl);

/* Locks the heap's slot locks then its heap lock, in the documented order;
 * false (nothing held) for a broken shared heap, as kheap_heap_lock.
 */
bool kheap_quiesce(struct k_heap_control *ctl);
void kheap_unquiesce(struct k_heap_control *ctl);

/*
 * What the cache's locked free path did (cpu_cache.c): finished the free
 * (cached it, or reported misuse), or declined, and the global free follows.
 */
enum kheap_cache_free_result {
	KHEAP_CACHE_FREE_DECLINED,
	KHEAP_CACHE_FREE_DONE,
};

/*
 * A shared heap's cache lock of `slot` (the caller holds the slot lock):
 * waits for it, or only tries. When its holder died, the cache is first
 * emptied into the heap (its lists may be half changed). False when the
 * lock is busy (trying) or the heap is broken.
 */
bool kheap_cache_lock_shared_slot(struct k_heap_control *ctl, uint32_t slot, bool wait);
void kheap_cache_unlock_shared_slot(struct k_heap_control *ctl, uint32_t slot);

/* Returns every cached block to the global heap (takes the locks itself). */
void kheap_cache_drain_all(struct k_heap_control *ctl);

/* With every lock held: returns every cached block to the global heap. */
void kheap_cache_release_all_locked(struct k_heap_control *ctl);

/* With every lock held: checks every cached block; false with *why on error. */
bool kheap_cache_check_all(struct k_heap_control *ctl, const struct z_heap_walk_totals *totals,
			   const char **why);

/* With every lock held: the CPU whose cache holds chunk c (CACHED), or
 * K_HEAP_WALK_DEPOT.
 */
int kheap_cache_owner_cpu(struct k_heap_control *ctl, chunkid_t c);

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
void kheap_wake_served(struct k_heap_control *ctl, uint32_t **wake, size_t count);

/* Waiters one release wakes after dropping the lock (more are woken under it). */
#define KHEAP_WAKE_BATCH 8

/* Heap lock held, after memory went back to the global heap: serves the
 * queue (wake[] has room for KHEAP_WAKE_BATCH) and tells a shared heap's
 * waiters without a record that there is room. Returns how many to wake.
 */
size_t kheap_after_release(struct k_heap_control *ctl, uint32_t **wake);

/* Heap lock held: records `tag` as the owner of freshly allocated block c
 * of a shared heap (a no-op for tag 0, a private heap's handle).
 */
static inline void kheap_tag_block(struct z_heap *z, chunkid_t c, uint32_t tag)
{
	if (tag != 0)
		z_heap_set_trailer_tag(z, c, tag);
}

/* Formats a private k_heap (k_heap.c); shared.c builds on it. */
int kheap_format(struct k_heap *h, void *mem, size_t bytes, unsigned int cache_percent);

/*
 * Tears a handle down (READY -> CLOSING -> DEAD) once no thread of this
 * process can be inside it. `closing` runs quiesced: it returns true to
 * refuse (the handle goes back to READY and -EBUSY is returned), otherwise
 * it does whatever leaving needs.
 */
int kheap_close_handle(struct k_heap *h,
		       bool (*closing)(struct k_heap *h, struct k_heap_control *ctl));

/* Runs `fn` quiesced inside a read-side section; -EINVAL if not ready. */
int kheap_with_quiesced(struct k_heap *h,
			int (*fn)(struct k_heap *h, struct k_heap_control *ctl, void *arg),
			void *arg);

/*
 * Shared heaps (shared.c). Unless noted, called with the heap lock held.
 *   usable         (no lock) false, after reporting, if the region is broken;
 *   count_waiting  (no lock) per-process share of waiter_count;
 *   claim_waiter   a waiter record in the region, or NULL when all are taken;
 *   release_waiter gives a record back;
 *   note_room      memory or a record came back: wakes room waiters;
 *   room_begin/end a waiter without a record registers for note_room; the
 *                  wait itself (room_wait) runs without the lock and
 *                  returns false when the deadline passed first;
 *   check          validate's check of the region's own bookkeeping.
 */
bool kheap_shared_usable(struct k_heap *h, struct k_heap_control *ctl);
void kheap_shared_count_waiting(struct k_heap *h, struct k_heap_control *ctl, bool begin);
struct kheap_waiter *kheap_shared_claim_waiter(struct k_heap *h, struct k_heap_control *ctl);
void kheap_shared_release_waiter(struct k_heap_control *ctl, struct kheap_waiter *w);
void kheap_shared_note_room(struct k_heap_control *ctl);
uint32_t kheap_shared_room_begin(struct k_heap_control *ctl);
void kheap_shared_room_end(struct k_heap_control *ctl);
bool kheap_shared_room_wait(struct k_heap_control *ctl, uint32_t seen,
			    const struct timespec *deadline);
bool kheap_shared_check(struct k_heap_control *ctl, const char **why);
uint64_t kheap_shared_recoveries(struct k_heap_control *ctl);
/* Heap lock held: counts one more lock taken over and repaired. */
void kheap_shared_note_recovery(struct k_heap_control *ctl);

/*
 * Fork support (fork.c), for pthread_atfork handlers of a process that keeps
 * using the READY heap `h` in the child: prepare takes urcu-bp's fork locks,
 * every slot lock and h's heap lock; parent and child release them.
 */
void kheap_fork_prepare(struct k_heap *h);
void kheap_fork_parent(struct k_heap *h);
void kheap_fork_child(struct k_heap *h);

#endif
