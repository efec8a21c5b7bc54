/*
 * The per-CPU cache hit paths, inlined into k_heap_alloc and k_heap_free so a
 * hit makes no call. The rest of the caches (the general paths, refill,
 * flush, drain) and the argument for why this is safe are in cpu_cache.c.
 *
 * kheap_cache_alloc and kheap_cache_free look up the current CPU, trylock
 * its slot lock, check the heap is READY, and then either serve the request
 * straight-line (alloc_hit, free_hit, compiled once per header width) or
 * hand it, lock still held, to kheap_cache_alloc_general or
 * kheap_cache_free_general, which finish it, on the slow path if need be.
 * A hit reads only line 0 of the control block (never the z_heap's lines,
 * which the heap lock's holder writes), this CPU's cache and the block.
 *
 * Cached block links: a parked block's first body word holds the next block
 * of its class (a chunk id, 0 ends the list), its second the owning slot.
 */
#ifndef KHEAP_HEAP_CPU_CACHE_HIT_H
#define KHEAP_HEAP_CPU_CACHE_HIT_H

#include <stddef.h>
#include <stdint.h>

#include "heap/k_heap_internal.h"
#include "smp/atomic.h"
#include "smp/spinlock.h"

enum { LINK_NEXT, LINK_CPU };

/*
 * The general paths (cpu_cache.c), for every case a hit path leaves. Called
 * with the slot lock of `slot` held; they drop it, and finish the request
 * on the slow path (k_heap.c) when the cache cannot.
 */
void *kheap_cache_alloc_general(struct k_heap *h, struct k_heap_control *ctl, uint32_t slot,
				size_t bytes, k_timeout_t timeout);
void kheap_cache_free_general(struct k_heap *h, struct k_heap_control *ctl, uint32_t slot,
			      void *mem);

/* The hit paths for a thread without rseq: the CPU from kheap_current_cpu(). */
void *kheap_cache_alloc_any_cpu(struct k_heap *h, size_t bytes, k_timeout_t timeout);
void kheap_cache_free_any_cpu(struct k_heap *h, void *mem);

/* The slow paths (k_heap.c): the global heap, under a read-side section. */
void *kheap_alloc_slow(struct k_heap *h, size_t bytes, k_timeout_t timeout);
void kheap_free_slow(struct k_heap *h, void *mem);

static inline size_t rotate_right_size(size_t x, unsigned int bits)
{
	return x >> bits | x << (sizeof(size_t) * 8 - bits);
}

static inline uint32_t rotate_right_32(uint32_t x, unsigned int bits)
{
	return x >> bits | x << (32 - bits);
}

static inline bool nobody_waits(struct k_heap_control *ctl)
{
	return kheap_load_uint(&ctl->waiter_count) == 0;
}

/*
 * Takes the slot lock of `cpu` (the current CPU, or one the thread just left)
 * and returns the heap's control block if the heap is ready and has a cache
 * for that slot; otherwise drops the lock and returns NULL. Only after this
 * succeeds may the caller touch the region.
 */
static inline __attribute__((always_inline)) struct k_heap_control *
lock_cpu_slot(struct k_heap *h, uint32_t cpu, uint32_t *slot)
{
	struct k_heap_control *ctl;

	*slot = cpu % KHEAP_MAX_CPUS;
	if (__builtin_expect(!kheap_spin_trylock(kheap_slot_lock(*slot)), 0))
		return NULL;
	/* Acquire pairs with the release that published READY after (lazy)
	 * initialisation. The slot lock orders this read after a teardown that
	 * began before we took it: teardown stores CLOSING, then takes every
	 * slot lock.
	 */
	if (__builtin_expect(kheap_load_acquire_uint(&h->init_state) == KHEAP_STATE_READY, 1)) {
		ctl = h->control;
		if (__builtin_expect(*slot < ctl->cpu_count, 1))
			return ctl;
	}
	kheap_spin_unlock(kheap_slot_lock(*slot));
	return NULL;
}

/*
 * The allocation hit path for a heap whose header width is header_bytes (a
 * constant at each call site). It serves only a non-empty class whose head
 * block still has exactly the header it was parked with and names this
 * cache in its links, and hands every other case, lock held, to
 * kheap_cache_alloc_general, which re-examines it in full.
 * Reads: line 0 of the control block, this CPU's cache, the block.
 */
static inline __attribute__((always_inline)) void *
alloc_hit(struct k_heap *h, struct k_heap_control *ctl, uint32_t slot, size_t bytes,
	  k_timeout_t timeout, uint32_t header_bytes)
{
	uint8_t *heap_mem = (uint8_t *)h->heap.heap;
	struct kheap_cpu_cache *cache = &ctl->cpus[slot];
	uint32_t units = (uint32_t)((bytes + header_bytes + CHUNK_UNIT - 1) / CHUNK_UNIT);
	struct kheap_cache_class *cls;
	uint8_t *mem;
	chunkid_t c;

	/* Requests are at least one byte: with a full-unit header they never
	 * round below the smallest class, and the clamp compiles away.
	 */
	if ((1 + header_bytes + CHUNK_UNIT - 1) / CHUNK_UNIT < KHEAP_CACHE_MIN_UNITS &&
	    units < KHEAP_CACHE_MIN_UNITS)
		units = KHEAP_CACHE_MIN_UNITS;
	if (__builtin_expect(units > ctl->max_class_units, 0))
		return kheap_cache_alloc_general(h, ctl, slot, bytes, timeout);
	cls = &cache->classes[units];
	c = cls->head;
	if (__builtin_expect(c == 0 || c >= ctl->end_chunk, 0))
		return kheap_cache_alloc_general(h, ctl, slot, bytes, timeout);
	mem = heap_mem + (size_t)c * CHUNK_UNIT;
	if (__builtin_expect(mem_header_field(mem, header_bytes, SIZE_FLAGS) !=
				     (units << 2 | CHUNK_USED | CHUNK_CACHED) ||
				 ((const uint32_t *)mem)[LINK_CPU] != slot,
			     0))
		return kheap_cache_alloc_general(h, ctl, slot, bytes, timeout);
	cls->head = ((const uint32_t *)mem)[LINK_NEXT];
	cls->count--;
	cache->counters.hits++;
	mem_set_header_field(mem, header_bytes, SIZE_FLAGS, units << 2 | CHUNK_USED);
	kheap_spin_unlock(kheap_slot_lock(slot));
	return mem;
}

/* kheap_cache_alloc on CPU `cpu`. */
static inline __attribute__((always_inline)) void *cache_alloc_on(struct k_heap *h, uint32_t cpu,
								  size_t bytes, k_timeout_t timeout)
{
	struct k_heap_control *ctl;
	uint32_t slot;

	ctl = lock_cpu_slot(h, cpu, &slot);
	if (ctl == NULL)
		return kheap_alloc_slow(h, bytes, timeout);
	/* One width dispatch per call; each branch is straight-line. */
	if (__builtin_expect(ctl->hit_header_bytes == 8, 1))
		return alloc_hit(h, ctl, slot, bytes, timeout, 8);
	if (ctl->hit_header_bytes == 4)
		return alloc_hit(h, ctl, slot, bytes, timeout, 4);
	return kheap_cache_alloc_general(h, ctl, slot, bytes, timeout);
}

/*
 * Allocates `bytes` (1..KHEAP_CACHE_MAX_BYTES) from h, through this CPU's
 * cache when it can; every other case ends in a tail call to the general
 * or slow path. Inlined into each caller, so a hit makes no call or jump
 * between functions.
 */
static inline __attribute__((always_inline)) void *kheap_cache_alloc(struct k_heap *h, size_t bytes,
								     k_timeout_t timeout)
{
	uint32_t cpu;

	if (__builtin_expect(!kheap_current_cpu_rseq(&cpu), 0))
		return kheap_cache_alloc_any_cpu(h, bytes, timeout);
	return cache_alloc_on(h, cpu, bytes, timeout);
}

/*
 * The free hit path for a heap whose header width is header_bytes (a constant
 * at each call site). It parks a block only when every BASIC check of
 * z_heap_check_owned_block passes on the fast reads below (inside the heap,
 * at a block start, USED and not CACHED, the next header's left size equal
 * to the block's size), its class is cached, nobody waits, memory is not
 * scarce and the class is below its limit. Any other case goes, lock held, to
 * kheap_cache_free_general, which repeats the checks in full and classifies
 * misuse.
 */
static inline __attribute__((always_inline)) void free_hit(struct k_heap *h,
							   struct k_heap_control *ctl,
							   uint32_t slot, void *mem,
							   uint32_t header_bytes)
{
	uint8_t *first_mem = (uint8_t *)h->heap.heap + (size_t)ctl->first_block_chunk * CHUNK_UNIT;
	size_t from_first = rotate_right_size((size_t)((uintptr_t)mem - (uintptr_t)first_mem), 3);
	const uint32_t min = KHEAP_CACHE_MIN_UNITS;
	struct kheap_cpu_cache *cache;
	struct kheap_cache_class *cls;
	uint32_t size_flags, units;
	chunkid_t c;

	/* Inside the heap and at a unit boundary: a misaligned offset rotates
	 * into the top bits, so one compare covers both.
	 */
	if (__builtin_expect(from_first >= ctl->end_chunk - ctl->first_block_chunk, 0)) {
		kheap_cache_free_general(h, ctl, slot, mem);
		return;
	}
	c = ctl->first_block_chunk + (chunkid_t)from_first;
	size_flags = mem_header_field(mem, header_bytes, SIZE_FLAGS);
	units = size_flags >> 2;
	/* USED, not CACHED, and a cached class: flags other than USED rotate
	 * into the top bits, a size below the smallest class wraps.
	 */
	if (__builtin_expect(rotate_right_32(size_flags - (min << 2 | CHUNK_USED), 2) >
				     ctl->max_class_units - min ||
				 units > ctl->end_chunk - c,
			     0)) {
		kheap_cache_free_general(h, ctl, slot, mem);
		return;
	}
	if (__builtin_expect(mem_header_field((uint8_t *)mem + (size_t)units * CHUNK_UNIT,
					      header_bytes, LEFT_SIZE) != units,
			     0)) {
		kheap_cache_free_general(h, ctl, slot, mem);
		return;
	}
	if (__builtin_expect(!nobody_waits(ctl) || kheap_load_uint(&ctl->low_memory), 0)) {
		kheap_cache_free_general(h, ctl, slot, mem);
		return;
	}
	cache = &ctl->cpus[slot];
	cls = &cache->classes[units];
	if (__builtin_expect(cls->count >= cls->limit, 0)) {
		kheap_cache_free_general(h, ctl, slot, mem);
		return;
	}
	((uint32_t *)mem)[LINK_NEXT] = cls->head;
	((uint32_t *)mem)[LINK_CPU] = slot;
	mem_set_header_field(mem, header_bytes, SIZE_FLAGS, size_flags | CHUNK_CACHED);
	cls->head = c;
	cls->count++;
	kheap_spin_unlock(kheap_slot_lock(slot));
}

/* kheap_cache_free on CPU `cpu`. */
static inline __attribute__((always_inline)) void cache_free_on(struct k_heap *h, uint32_t cpu,
								void *mem)
{
	struct k_heap_control *ctl;
	uint32_t slot;

	ctl = lock_cpu_slot(h, cpu, &slot);
	if (ctl == NULL) {
		kheap_free_slow(h, mem);
		return;
	}
	if (__builtin_expect(ctl->hit_header_bytes == 8, 1)) {
		free_hit(h, ctl, slot, mem, 8);
		return;
	}
	if (ctl->hit_header_bytes == 4) {
		free_hit(h, ctl, slot, mem, 4);
		return;
	}
	{
		kheap_cache_free_general(h, ctl, slot, mem);
		return;
	}
}

/*
 * Frees mem, a non-NULL pointer, to h: into this CPU's cache when it can;
 * every other case ends in a call to the general or slow path. Inlined into
 * k_heap_free, as kheap_cache_alloc is into the allocation calls.
 */
static inline __attribute__((always_inline)) void kheap_cache_free(struct k_heap *h, void *mem)
{
	uint32_t cpu;

	if (__builtin_expect(!kheap_current_cpu_rseq(&cpu), 0)) {
		kheap_cache_free_any_cpu(h, mem);
		return;
	}
	cache_free_on(h, cpu, mem);
}

#endif
