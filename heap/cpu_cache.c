/*
 * Per-CPU caches: the general allocation and free paths, refill, flush, drain.
 *
 * Fast path (inlined from cpu_cache_hit.h). kheap_cache_alloc/free look up
 * the current CPU (one TLS load through rseq), trylock that CPU's slot lock,
 * check the heap is READY, and push or pop one block of the request's class.
 * On a hit they touch only lines that belong to this CPU (its slot lock and
 * its cache), read-only configuration, and the block itself: no shared line
 * is written and no shared lock is taken. The CPU number is only a hint: a
 * thread migrated after the lookup still holds that slot's lock, so
 * correctness never depends on it; a busy lock (rare: another thread on the
 * same CPU) sends the caller to the global path instead of spinning.
 *
 * Hit and general paths. Under the slot lock, alloc_hit and free_hit serve
 * the common case straight-line, compiled once per header width, reading
 * only line 0 of the control block (never the z_heap's lines, which the heap
 * lock's holder writes), this CPU's cache and the block. Everything else (a
 * miss, misuse, waiters, pressure, a full budget, trailers) comes here with
 * the lock still held, to kheap_cache_alloc_general or
 * kheap_cache_free_general, which re-examine the request in full with the
 * generic accessors (alloc_locked, free_locked) and finish it on the slow
 * path of k_heap.c when the cache cannot.
 *
 * Refill and flush move batches under one heap-lock hold each, so blocks
 * allocated on one CPU and freed on another (producer/consumer) cross the
 * global lock once per batch, never once per block.
 *
 * No lost wake-up. An allocator that is about to sleep first increments
 * waiter_count, then drains every cache (taking each slot lock), then tries
 * the global heap under the heap lock and queues itself in that same hold.
 * A free reads waiter_count while holding its slot lock. Either the free's
 * critical section comes first, and the drain (which takes the same lock
 * after it) moves the block to the global heap before the waiter's last
 * try; or the waiter's increment is ordered before the free's lock acquire
 * (the drain's release of that lock pairs with the free's acquire), so the
 * free sees waiter_count != 0 and goes to the global heap, where it serves
 * the queue. Refill must check waiter_count too, and park nothing while
 * anyone waits: the waiter has already drained this cache, so blocks parked
 * after that would sit unseen while it sleeps (a lost wake-up; the model in
 * smp/waitq.pml finds it when this check is removed).
 *
 * Bound. A CPU never holds more than cpu_budget_bytes in its cache. Each
 * class claims part of that budget as a limit in blocks, and the cache keeps
 * the unclaimed rest as spare_bytes; the claims and the spare always add up
 * to the budget, and no class holds more blocks than its limit. So a push
 * on the hit path compares two 16-bit counts and keeps no byte count. A push
 * at the limit goes to the general path, which grows the limit from the
 * spare (taking back, first, what other classes claimed and do not hold) or
 * else flushes half of that class. Cached bytes are counted when asked for
 * (stats, drain), from the classes' counts.
 *
 * Scarcity. When free memory falls below half the heap, frees stop parking
 * blocks and refills take only the block they serve; and the first general
 * path to notice drains every CPU's cache and the depot
 * (drained_for_scarcity), so blocks parked while memory was plentiful merge
 * back before the heap fills around them.
 *
 * The depot. After the CPUs' caches the control block holds one more,
 * ctl->cpus[cpu_count], guarded by the heap lock instead of a slot lock. A
 * flush parks the blocks there rather than freeing them, and a refill takes
 * the depot's whole list of its class, in O(1), before it splits new blocks
 * off the global heap; it renames the blocks' links to its own cache after
 * dropping the heap lock (adopt_chain), so no other CPU waits on the cache
 * misses of reading them. So when one CPU frees what another allocates
 * (producer/consumer), blocks travel between their caches in batches
 * without a split, a merge or a free-list update in the global heap. The
 * depot has a CPU's budget, in bytes (no hit path reads it, so it needs no
 * class limits), and the CPUs' caches and the depot together stay within
 * the heap's cache bound. It is cache memory everywhere: stats, drain, validate, teardown.
 * It parks nothing while anyone waits or memory is scarce (the same checks
 * under the heap lock as refill's; a waiter drains it, under the heap lock,
 * after the CPUs' caches). It is not used with trailers (FULL and above,
 * hence never in a shared heap): a block leaving it would skip the poison
 * check of hand_out_cached.
 */
/* pthread_mutex_consistent is POSIX.1-2008. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <string.h>

#include "heap/cpu_cache_hit.h"
#include "heap/k_heap_internal.h"
#include "smp/atomic.h"

/* Process-wide and never freed; see "Slot locks" in k_heap_internal.h. */
struct kheap_slot_lock kheap_slot_locks[KHEAP_MAX_CPUS];

static inline uint32_t *cached_links(const struct z_heap *h, chunkid_t c)
{
	return chunk_mem(h, c);
}

static inline struct kheap_cpu_cache *depot_of(struct k_heap_control *ctl)
{
	return &ctl->cpus[ctl->cpu_count];
}

/* Heap lock held: whether the depot may take blocks in. */
static bool depot_may_park(struct k_heap_control *ctl, struct z_heap *h)
{
	return !z_heap_has_trailers(h) && nobody_waits(ctl) && !kheap_load_uint(&ctl->low_memory);
}

/* Blocks one refill brings in, and the step a class's limit grows by. */
static uint32_t refill_batch(size_t block_bytes)
{
	uint32_t batch = KHEAP_REFILL_BYTES / (uint32_t)block_bytes;

	return batch > KHEAP_REFILL_BATCH ? KHEAP_REFILL_BATCH : batch < 1 ? 1 : batch;
}

/* Hands the budget that classes claimed but hold no blocks for back to spare. */
static void reclaim_unused_limits(struct k_heap_control *ctl, struct kheap_cpu_cache *cache)
{
	struct z_heap *h = control_heap(ctl);

	for (uint32_t units = ctl->min_class_units; units < KHEAP_CACHE_CLASSES; units++) {
		struct kheap_cache_class *cls = &cache->classes[units];

		cache->spare_bytes +=
		    (size_t)(cls->limit - cls->count) * chunksz_to_bytes(h, units);
		cls->limit = cls->count;
	}
}

/*
 * Makes room for one more block in class `units` of `cache`, which the
 * caller owns, and says whether there is. A CPU's cache has room when the
 * class is below its limit, or its limit can grow (by up to a refill batch)
 * out of the spare budget; with `may_reclaim`, after taking back first what
 * other classes claimed and do not use. That is a pass over every class, so
 * only callers not holding the heap lock make it, and at most once in
 * KHEAP_RECLAIM_INTERVAL shortages (a cache whose classes are all full would
 * otherwise pay it before every flush). The depot, which no hit path
 * reads, keeps no limits: its spare_bytes is what is left of its budget,
 * taken here block by block and given back by give_back_room.
 */
static bool make_room(struct k_heap_control *ctl, struct kheap_cpu_cache *cache, uint32_t units,
		      bool may_reclaim)
{
	struct kheap_cache_class *cls = &cache->classes[units];
	size_t block_bytes = chunksz_to_bytes(control_heap(ctl), units);
	size_t grow;

	if (cache == depot_of(ctl)) {
		if (cache->spare_bytes < block_bytes || cls->count == KHEAP_CLASS_LIMIT_MAX)
			return false;
		cache->spare_bytes -= block_bytes;
		return true;
	}
	if (cls->count < cls->limit)
		return true;
	if (cache->spare_bytes < block_bytes && may_reclaim) {
		if (cache->reclaim_wait == 0) {
			reclaim_unused_limits(ctl, cache);
			cache->reclaim_wait = KHEAP_RECLAIM_INTERVAL;
		} else {
			cache->reclaim_wait--;
		}
	}
	grow = cache->spare_bytes / block_bytes;
	if (grow > refill_batch(block_bytes))
		grow = refill_batch(block_bytes);
	if (grow > (size_t)(KHEAP_CLASS_LIMIT_MAX - cls->limit))
		grow = KHEAP_CLASS_LIMIT_MAX - cls->limit;
	if (grow == 0)
		return false;
	cls->limit += (uint16_t)grow;
	cache->spare_bytes -= grow * block_bytes;
	return true;
}

/* A block of class `units` left `cache`: the depot's budget gets its bytes back. */
static void give_back_room(struct k_heap_control *ctl, struct kheap_cpu_cache *cache,
			   uint32_t units)
{
	if (cache == depot_of(ctl))
		cache->spare_bytes += chunksz_to_bytes(control_heap(ctl), units);
}

/* The bytes a cache holds: what its classes' counts add up to. */
static size_t cache_bytes(struct k_heap_control *ctl, const struct kheap_cpu_cache *cache)
{
	struct z_heap *h = control_heap(ctl);
	size_t bytes = 0;

	for (uint32_t units = ctl->min_class_units; units < KHEAP_CACHE_CLASSES; units++)
		bytes += (size_t)cache->classes[units].count * chunksz_to_bytes(h, units);
	return bytes;
}

/*
 * Moves up to `limit` blocks of class `units` from one cache to another
 * while `to` has room; both are locked (one of them is the depot, under the
 * heap lock). Returns how many moved. The blocks stay CACHED; only their
 * links and the two caches' counts change.
 */
static uint32_t move_blocks(struct k_heap_control *ctl, struct kheap_cpu_cache *from,
			    struct kheap_cpu_cache *to, uint32_t units, uint32_t limit)
{
	struct z_heap *h = control_heap(ctl);
	struct kheap_cache_class *src = &from->classes[units], *dst = &to->classes[units];
	uint32_t moved = 0;

	while (moved < limit && src->head != 0 && make_room(ctl, to, units, false)) {
		chunkid_t c = src->head;
		uint32_t *links = cached_links(h, c);

		src->head = links[LINK_NEXT];
		src->count--;
		give_back_room(ctl, from, units);
		links[LINK_NEXT] = dst->head;
		links[LINK_CPU] = to->cpu;
		dst->head = c;
		dst->count++;
		moved++;
	}
	return moved;
}

/*
 * Heap lock held, no trailers: takes the depot's whole list of class
 * `units` in O(1), reading only its first block, and returns that block
 * (no longer CACHED), or 0. The rest stays a CACHED list naming the depot
 * in its links; *rest and *rest_count describe it, for adopt_chain (outside
 * the heap lock) or put_back_chain.
 */
static chunkid_t take_depot_class(struct k_heap_control *ctl, uint32_t units, chunkid_t *rest,
				  uint32_t *rest_count)
{
	struct z_heap *h = control_heap(ctl);
	struct kheap_cpu_cache *depot = depot_of(ctl);
	struct kheap_cache_class *cls = &depot->classes[units];
	chunkid_t c = cls->head;

	*rest = 0;
	*rest_count = 0;
	if (c == 0)
		return 0;
	*rest = cached_links(h, c)[LINK_NEXT];
	*rest_count = cls->count - 1u;
	depot->spare_bytes += (size_t)cls->count * chunksz_to_bytes(h, units);
	cls->head = 0;
	cls->count = 0;
	z_heap_mark_uncached(h, c);
	return c;
}

/*
 * Heap lock held: puts a chain from take_depot_class back as the depot's
 * list of its class, if the depot may take blocks in, that list is still
 * empty, and the depot's budget still has the room (other CPUs' flushes may
 * have used what the take gave back). Returns whether it did; O(1), since
 * the chain's end need not be found.
 */
static bool put_back_chain(struct k_heap_control *ctl, uint32_t units, chunkid_t rest,
			   uint32_t rest_count)
{
	struct z_heap *h = control_heap(ctl);
	struct kheap_cpu_cache *depot = depot_of(ctl);
	struct kheap_cache_class *cls = &depot->classes[units];
	size_t chain_bytes = (size_t)rest_count * chunksz_to_bytes(h, units);

	if (!depot_may_park(ctl, h) || cls->head != 0 || depot->spare_bytes < chain_bytes)
		return false;
	cls->head = rest;
	cls->count = (uint16_t)rest_count;
	depot->spare_bytes -= chain_bytes;
	return true;
}

/* Heap lock held: frees a chain of cached blocks to the heap. */
static void release_chain(struct z_heap *h, chunkid_t rest)
{
	while (rest != 0) {
		chunkid_t c = rest;

		rest = cached_links(h, c)[LINK_NEXT];
		z_heap_mark_uncached(h, c);
		z_heap_free_chunk(h, c);
	}
}

/* Drops the slot lock and, for a shared heap, the cache lock in the region. */
static void unlock_slot(struct k_heap_control *ctl, uint32_t slot)
{
	if (ctl->process_shared)
		kheap_cache_unlock_shared_slot(ctl, slot);
	kheap_spin_unlock(kheap_slot_lock(slot));
}

/*
 * Parks chunk c; make_room said its class has room. The links go in before CACHED is set, and
 * FULL's poison after, past the links: a shared heap's process that dies at any point of this
 * leaves the block either USED with its owner's tag intact (reclaimed with that owner) or CACHED
 * with its slot in its links (freed when the slot's lock is taken over).
 */
static void push_block(struct z_heap *h, struct kheap_cpu_cache *cache, chunkid_t c, uint32_t units)
{
	struct kheap_cache_class *cls = &cache->classes[units];
	uint32_t *links = cached_links(h, c);

	links[LINK_NEXT] = cls->head;
	links[LINK_CPU] = cache->cpu;
	z_heap_mark_cached(h, c);
	if (z_heap_has_trailers(h))
		z_heap_poison_from(h, c, 2 * sizeof(uint32_t));
	cls->head = c;
	cls->count++;
}

/* Frees up to `limit` blocks of one class to the heap; heap lock held. */
static void release_class(struct k_heap_control *ctl, struct kheap_cpu_cache *cache, uint32_t units,
			  uint32_t limit)
{
	struct z_heap *h = control_heap(ctl);
	struct kheap_cache_class *cls = &cache->classes[units];

	while (cls->head != 0 && limit-- > 0) {
		chunkid_t c = cls->head;

		cls->head = cached_links(h, c)[LINK_NEXT];
		cls->count--;
		give_back_room(ctl, cache, units);
		z_heap_mark_uncached(h, c);
		z_heap_free_chunk(h, c);
	}
}

/*
 * Parks a chain taken from the depot in this CPU's empty class `units`,
 * without the heap lock (the slot lock keeps it from every drain and
 * validate meanwhile): its links are made to name this cache, one block at a
 * time, so the cross-CPU cache misses of reading them delay no other CPU.
 * Blocks the class has no room for go back to the depot, or to the heap.
 */
static void adopt_chain(struct k_heap_control *ctl, struct kheap_cpu_cache *cache, uint32_t units,
			chunkid_t rest, uint32_t rest_count)
{
	struct z_heap *h = control_heap(ctl);
	struct kheap_cache_class *cls = &cache->classes[units];
	chunkid_t *tail = &cls->head;
	uint32_t *wake[KHEAP_WAKE_BATCH];
	size_t served;

	while (rest != 0 && make_room(ctl, cache, units, false)) {
		uint32_t *links = cached_links(h, rest);

		links[LINK_CPU] = cache->cpu;
		*tail = rest;
		tail = &links[LINK_NEXT];
		rest = links[LINK_NEXT];
		cls->count++;
		rest_count--;
	}
	*tail = 0;
	if (rest == 0 || !kheap_heap_lock(ctl))
		return;
	if (put_back_chain(ctl, units, rest, rest_count)) {
		kheap_heap_unlock(ctl);
		return;
	}
	release_chain(h, rest);
	served = kheap_after_release(ctl, wake);
	kheap_note_pressure(ctl);
	kheap_heap_unlock(ctl);
	kheap_wake_served(ctl, wake, served);
}

static void *refill(struct k_heap_control *ctl, struct kheap_cpu_cache *cache, uint32_t units,
		    size_t bytes, uint32_t owner_tag)
{
	struct z_heap *h = control_heap(ctl);
	uint32_t batch = refill_batch(chunksz_to_bytes(h, units));
	uint32_t *wake[KHEAP_WAKE_BATCH];
	uint32_t rest_count = 0;
	chunkid_t first, rest = 0;
	size_t served = 0;

	if (!kheap_heap_lock(ctl))
		return NULL;
	first = z_heap_has_trailers(h) ? 0 : take_depot_class(ctl, units, &rest, &rest_count);
	if (first == 0)
		first = z_heap_alloc_exact(h, units);
	/* A batch parks blocks all over a nearly full heap; when they come back
	 * at the next drain they are holes too small for the request that
	 * needed the drain. Under pressure a refill takes only what it serves.
	 */
	kheap_note_pressure(ctl);
	if (kheap_load_uint(&ctl->low_memory))
		batch = 1;
	if (rest != 0 && (batch == 1 || !nobody_waits(ctl))) {
		/* Nothing may be parked now: the chain goes back where it was,
		 * whose list this hold emptied, or to the heap.
		 */
		if (!put_back_chain(ctl, units, rest, rest_count)) {
			release_chain(h, rest);
			served = kheap_after_release(ctl, wake);
			kheap_note_pressure(ctl);
		}
		rest = 0;
	}
	if (first != 0 && rest == 0 && nobody_waits(ctl)) {
		for (uint32_t i = 1; i < batch; i++) {
			chunkid_t c;

			if (!make_room(ctl, cache, units, false))
				break;
			c = z_heap_alloc_exact(h, units);
			if (c == 0)
				break;
			/* A chunk whose leftover was too small to split is one
			 * unit larger than its class; it belongs to no list.
			 */
			if (chunk_size(h, c) != units) {
				z_heap_free_chunk(h, c);
				break;
			}
			push_block(h, cache, c, units);
		}
	}
	if (first != 0 && z_heap_has_trailers(h)) {
		z_heap_write_trailer(h, first, bytes);
		kheap_tag_block(h, first, owner_tag);
	}
	kheap_heap_unlock(ctl);
	kheap_wake_served(ctl, wake, served);
	if (rest != 0)
		adopt_chain(ctl, cache, units, rest, rest_count);
	cache->counters.refills++;
	return first == 0 ? NULL : chunk_mem(h, first);
}

/*
 * FULL hardening: a block leaving a cache must still hold the poison it got
 * when it was freed (past its cache links); if it does not, someone wrote to
 * it after freeing it. Such a block is kept out of circulation (leaked, still
 * USED) and the caller takes the global path. The trailer and owner tag are
 * written before CACHED is cleared (see push_block). Called with the slot
 * lock held, the block already unlinked; drops the lock.
 */
static void *hand_out_cached(struct k_heap *h, struct k_heap_control *ctl, uint32_t slot,
			     struct z_heap *z, chunkid_t c, size_t bytes)
{
	if (!z_heap_poison_intact(z, c, 2 * sizeof(uint32_t))) {
		z_heap_mark_uncached(z, c);
		unlock_slot(ctl, slot);
		kheap_raise_fault(KHEAP_FAULT_CORRUPT_HEAP, h, chunk_mem(z, c),
				  "a freed block was written while it sat in a per-CPU cache "
				  "(use after free)");
		return NULL;
	}
	z_heap_write_trailer(z, c, bytes);
	kheap_tag_block(z, c, h->owner_tag);
	z_heap_mark_uncached(z, c);
	unlock_slot(ctl, slot);
	return chunk_mem(z, c);
}

/*
 * The general allocation path, for every case the hit path leaves: a miss
 * (refill), a damaged list, trailers. Called with the slot lock held; drops it.
 */
static void *alloc_locked(struct k_heap *h, struct k_heap_control *ctl, uint32_t slot, size_t bytes)
{
	struct z_heap *z = control_heap(ctl);
	struct kheap_cpu_cache *cache;
	struct kheap_cache_class *cls;
	uint32_t units;
	chunkid_t c;
	void *mem;

	cache = &ctl->cpus[slot];
	units = z_heap_request_units(z, bytes);
	if (units < ctl->min_class_units)
		units = ctl->min_class_units;
	if (units > ctl->max_class_units) {
		unlock_slot(ctl, slot);
		return NULL;
	}
	cls = &cache->classes[units];
	c = cls->head;
	if (__builtin_expect(c != 0, 1)) {
		const char *detail;

		/* A parked block keeps its exact size and flags, and its links
		 * name the cache it sits in. A header that changed was written
		 * after the free; a block naming another cache was written after
		 * the free too, or was freed twice at once on two CPUs and sits
		 * in both caches, whose lists now run into each other.
		 */
		if (__builtin_expect(c >= z->end_chunk ||
					 chunk_field(z, c, SIZE_FLAGS) !=
					     (units << 2 | CHUNK_USED | CHUNK_CACHED) ||
					 cached_links(z, c)[LINK_CPU] != cache->cpu,
				     0)) {
			if (z_heap_check_cached_block(z, c, &detail) == 0)
				detail = cached_links(z, c)[LINK_CPU] != cache->cpu
					     ? "cached block's links name another cache (written "
					       "after free, or freed twice at once on two CPUs)"
					     : "cached block's size changed while it was free";
			/* The list is no longer trustworthy: forget it (its blocks
			 * leak) rather than hand out memory that may be in use.
			 */
			cls->head = 0;
			cls->count = 0;
			unlock_slot(ctl, slot);
			kheap_raise_fault(KHEAP_FAULT_CORRUPT_HEAP, h, chunk_mem(z, c), detail);
			return NULL;
		}
		cls->head = cached_links(z, c)[LINK_NEXT];
		cls->count--;
		cache->counters.hits++;
		if (z_heap_has_trailers(z))
			return hand_out_cached(h, ctl, slot, z, c, bytes);
		z_heap_mark_uncached(z, c);
		unlock_slot(ctl, slot);
		return chunk_mem(z, c);
	}
	cache->counters.misses++;
	/* Room for the batch is made here, where taking back other classes'
	 * unused claims does not hold up the heap lock; refill only grows.
	 */
	make_room(ctl, cache, units, true);
	mem = refill(ctl, cache, units, bytes, h->owner_tag);
	unlock_slot(ctl, slot);
	return mem;
}

/*
 * The general free path, for every case the hit path leaves: misuse to
 * classify, a block no class takes, waiters or pressure, a full budget,
 * trailers. Called with the slot lock held; drops it.
 */
static enum kheap_cache_free_result free_locked(struct k_heap *h, struct k_heap_control *ctl,
						uint32_t slot, void *mem)
{
	enum kheap_cache_free_result result = KHEAP_CACHE_FREE_DECLINED;
	struct z_heap *z = control_heap(ctl);
	struct kheap_cpu_cache *cache;
	const char *detail = NULL;
	enum kheap_fault fault;
	uint32_t units;
	chunkid_t c;

	fault = z_heap_check_owned_block(z, mem, &c, &detail);
	if (__builtin_expect(fault != 0, 0)) {
		unlock_slot(ctl, slot);
		/* Telling a double free from stale bytes inside a live block
		 * needs the heap lock (z_heap_check_block); let the global path
		 * classify it.
		 */
		if (fault == KHEAP_FAULT_DOUBLE_FREE)
			return KHEAP_CACHE_FREE_DECLINED;
		kheap_raise_fault(fault, h, mem, detail);
		return KHEAP_CACHE_FREE_DONE;
	}
	units = chunk_size(z, c);
	cache = &ctl->cpus[slot];
	if (units > ctl->max_class_units || units < ctl->min_class_units || !nobody_waits(ctl) ||
	    kheap_load_uint(&ctl->low_memory))
		goto out;
	if (!make_room(ctl, cache, units, true)) {
		uint32_t half = (cache->classes[units].count + 1) / 2;

		if (!kheap_heap_lock(ctl))
			goto out;
		if (depot_may_park(ctl, z))
			half -= move_blocks(ctl, cache, depot_of(ctl), units, half);
		release_class(ctl, cache, units, half);
		kheap_note_pressure(ctl);
		kheap_heap_unlock(ctl);
		cache->counters.flushes++;
		if (!make_room(ctl, cache, units, true))
			goto out;
	}
	push_block(z, cache, c, units);
	result = KHEAP_CACHE_FREE_DONE;
out:
	unlock_slot(ctl, slot);
	return result;
}

/* A shared heap's general paths also need the region's cache lock; when
 * it is busy the slot lock is dropped and the caller goes to the slow path.
 */
static bool lock_shared_slot_or_leave(struct k_heap_control *ctl, uint32_t slot)
{
	if (!ctl->process_shared || kheap_cache_lock_shared_slot(ctl, slot, false))
		return true;
	kheap_spin_unlock(kheap_slot_lock(slot));
	return false;
}

/*
 * Whether the caller is the first to see this scarce spell (low_memory on,
 * pressure_generation past drained_generation) and should drain every cache.
 */
static bool first_to_see_scarcity(struct k_heap_control *ctl)
{
	unsigned int drained = kheap_load_uint(&ctl->drained_generation);
	unsigned int generation = kheap_load_acquire_uint(&ctl->pressure_generation);

	return generation != drained && kheap_load_uint(&ctl->low_memory) &&
	       kheap_cas_uint(&ctl->drained_generation, drained, generation);
}

/*
 * Memory has become scarce: the first general path to notice drains every
 * CPU's cache and the depot, after dropping its slot lock, and then serves
 * its own request from the heap. Blocks parked while memory was plentiful
 * go back while they can still merge with their neighbours and serve the
 * requests that follow, instead of at the drain before the first failure,
 * by which time they are holes between live blocks. Once per scarce spell:
 * until it ends, frees park nothing and refills take only the block they
 * serve.
 */
static bool drained_for_scarcity(struct k_heap *h, struct k_heap_control *ctl, uint32_t slot)
{
	if (__builtin_expect(!first_to_see_scarcity(ctl), 1))
		return false;
	kheap_spin_unlock(kheap_slot_lock(slot));
	/* Without the slot lock only a read-side section keeps the region
	 * from being torn down under the drain: the public call has one.
	 */
	k_heap_drain_caches(h);
	return true;
}

void *kheap_cache_alloc_general(struct k_heap *h, struct k_heap_control *ctl, uint32_t slot,
				size_t bytes, k_timeout_t timeout)
{
	void *mem = NULL;

	if (drained_for_scarcity(h, ctl, slot))
		return kheap_alloc_slow(h, bytes, timeout);
	if (lock_shared_slot_or_leave(ctl, slot))
		mem = alloc_locked(h, ctl, slot, bytes);
	return mem != NULL ? mem : kheap_alloc_slow(h, bytes, timeout);
}

void kheap_cache_free_general(struct k_heap *h, struct k_heap_control *ctl, uint32_t slot,
			      void *mem)
{
	if (drained_for_scarcity(h, ctl, slot) || !lock_shared_slot_or_leave(ctl, slot) ||
	    free_locked(h, ctl, slot, mem) == KHEAP_CACHE_FREE_DECLINED)
		kheap_free_slow(h, mem);
}

void *kheap_cache_alloc_any_cpu(struct k_heap *h, size_t bytes, k_timeout_t timeout)
{
	return cache_alloc_on(h, (uint32_t)kheap_current_cpu(), bytes, timeout);
}

void kheap_cache_free_any_cpu(struct k_heap *h, void *mem)
{
	cache_free_on(h, (uint32_t)kheap_current_cpu(), mem);
}

void kheap_cache_configure(struct k_heap_control *ctl)
{
	struct z_heap *z = control_heap(ctl);

	ctl->first_block_chunk = first_block_chunk(z);
	ctl->end_chunk = z->end_chunk;
	ctl->hit_header_bytes = z_heap_has_trailers(z) || !caches_enabled(ctl) ||
					ctl->min_class_units != KHEAP_CACHE_MIN_UNITS
				    ? 0
				    : z->header_bytes;
}

/* Frees every block one CPU's cache holds; its slot lock and the heap lock
 * are held.
 */
static void release_cache(struct k_heap_control *ctl, struct kheap_cpu_cache *cache)
{
	for (uint32_t units = ctl->min_class_units; units <= ctl->max_class_units; units++)
		release_class(ctl, cache, units, UINT32_MAX);
}

void kheap_cache_release_all_locked(struct k_heap_control *ctl)
{
	for (uint32_t i = 0; i < kheap_cache_count(ctl->cpu_count); i++)
		release_cache(ctl, &ctl->cpus[i]);
}

/* The depot's part of a drain: after the CPUs' caches, under the heap lock. */
static void drain_depot(struct k_heap_control *ctl)
{
	uint32_t *wake[KHEAP_WAKE_BATCH];
	size_t served;

	if (ctl->cpu_count == 0 || !kheap_heap_lock(ctl))
		return;
	if (cache_bytes(ctl, depot_of(ctl)) == 0) {
		kheap_heap_unlock(ctl);
		return;
	}
	release_cache(ctl, depot_of(ctl));
	ctl->drains++;
	served = kheap_after_release(ctl, wake);
	kheap_note_pressure(ctl);
	kheap_heap_unlock(ctl);
	kheap_wake_served(ctl, wake, served);
}

void kheap_cache_drain_all(struct k_heap_control *ctl)
{
	for (uint32_t i = 0; i < ctl->cpu_count; i++) {
		struct kheap_cpu_cache *cache = &ctl->cpus[i];
		uint32_t *wake[KHEAP_WAKE_BATCH];
		size_t served;

		kheap_spin_lock(kheap_slot_lock(i));
		if (ctl->process_shared && !kheap_cache_lock_shared_slot(ctl, i, true)) {
			kheap_spin_unlock(kheap_slot_lock(i));
			return;
		}
		if (cache_bytes(ctl, cache) == 0 || !kheap_heap_lock(ctl)) {
			unlock_slot(ctl, i);
			continue;
		}
		release_cache(ctl, cache);
		ctl->drains++;
		served = kheap_after_release(ctl, wake);
		kheap_note_pressure(ctl);
		kheap_heap_unlock(ctl);
		unlock_slot(ctl, i);
		kheap_wake_served(ctl, wake, served);
	}
	drain_depot(ctl);
}

bool kheap_cache_check_all(struct k_heap_control *ctl, const struct z_heap_walk_totals *totals,
			   const char **why)
{
	struct z_heap *h = control_heap(ctl);
	size_t chunks = 0, bytes = 0;

	for (uint32_t i = 0; i < kheap_cache_count(ctl->cpu_count); i++) {
		struct kheap_cpu_cache *cache = &ctl->cpus[i];
		const bool depot = cache == depot_of(ctl);
		size_t cpu_bytes = 0, claimed = cache->spare_bytes;

		for (uint32_t units = 0; units < KHEAP_CACHE_CLASSES; units++) {
			struct kheap_cache_class *cls = &cache->classes[units];
			uint32_t seen = 0;

			/* The depot's budget is in bytes: it has no limits. */
			if ((!depot && cls->count > cls->limit) ||
			    ((depot || units < ctl->min_class_units) && cls->limit != 0)) {
				*why = "a per-CPU cache class holds more than its limit";
				return false;
			}
			if (!depot && units >= ctl->min_class_units)
				claimed += (size_t)cls->limit * chunksz_to_bytes(h, units);

			for (chunkid_t c = cls->head; c != 0; c = cached_links(h, c)[LINK_NEXT]) {
				const char *detail;

				if (z_heap_check_cached_block(h, c, &detail) != 0 ||
				    chunk_size(h, c) != units ||
				    cached_links(h, c)[LINK_CPU] != cache->cpu ||
				    ++seen > cls->count) {
					*why = "a per-CPU cache list is damaged";
					return false;
				}
				cpu_bytes += chunksz_to_bytes(h, units);
			}
			if (seen != cls->count) {
				*why = "a per-CPU cache class count disagrees with its list";
				return false;
			}
			chunks += seen;
		}
		if (depot)
			claimed += cpu_bytes;
		if (claimed != ctl->cpu_budget_bytes || cpu_bytes > ctl->cpu_budget_bytes) {
			*why = "a per-CPU cache's claimed budget is wrong or it is over its bound";
			return false;
		}
		bytes += cpu_bytes;
	}
	if (chunks != totals->cached_chunks || bytes != totals->cached_bytes) {
		*why = "chunks marked cached are not exactly the chunks in the caches";
		return false;
	}
	return true;
}

int kheap_cache_owner_cpu(struct k_heap_control *ctl, chunkid_t c)
{
	uint32_t cpu = cached_links(control_heap(ctl), c)[LINK_CPU];

	return cpu == ctl->cpu_count ? K_HEAP_WALK_DEPOT : (int)cpu;
}

size_t kheap_cache_bytes(struct k_heap_control *ctl)
{
	size_t total = 0;

	for (uint32_t i = 0; i < kheap_cache_count(ctl->cpu_count); i++)
		total += cache_bytes(ctl, &ctl->cpus[i]);
	return total;
}

void kheap_cache_add_counters(struct k_heap_control *ctl, struct k_heap_counters *counters)
{
	for (uint32_t i = 0; i < ctl->cpu_count; i++) {
		const struct kheap_cpu_counters *c = &ctl->cpus[i].counters;

		counters->cache_hits += c->hits;
		counters->cache_misses += c->misses;
		counters->refills += c->refills;
		counters->flushes += c->flushes;
	}
}

/*
 * The cache lock of a shared heap's slot was held by a process that died:
 * its lists and counts may be half changed. Every block whose links name
 * this slot and which is still marked CACHED goes back to the heap (a block
 * it was handing out or parking belonged to the dead process anyway; see
 * push_block), and the cache starts empty. Heap lock taken here.
 */
static bool parked_by_cpu(struct z_heap *z, chunkid_t c, void *cpu)
{
	return chunk_cached(z, c) && cached_links(z, c)[LINK_CPU] == *(uint32_t *)cpu;
}

static bool empty_abandoned_cache(struct k_heap_control *ctl, struct kheap_cpu_cache *cache)
{
	struct z_heap *z = control_heap(ctl);
	uint32_t *wake[KHEAP_WAKE_BATCH];
	size_t served;

	if (!kheap_heap_lock(ctl))
		return false;
	z_heap_free_where(z, parked_by_cpu, &cache->cpu, NULL);
	memset(cache->classes, 0, sizeof(cache->classes));
	cache->spare_bytes = ctl->cpu_budget_bytes;
	kheap_shared_note_recovery(ctl);
	served = kheap_after_release(ctl, wake);
	kheap_note_pressure(ctl);
	kheap_heap_unlock(ctl);
	kheap_wake_served(ctl, wake, served);
	return true;
}

bool kheap_cache_lock_shared_slot(struct k_heap_control *ctl, uint32_t slot, bool wait)
{
	struct kheap_cpu_cache *cache = &ctl->cpus[slot];
	int rc = wait ? pthread_mutex_lock(&cache->shared_lock)
		      : pthread_mutex_trylock(&cache->shared_lock);

	if (rc == 0)
		return true;
	if (rc != EOWNERDEAD)
		return false;
	if (empty_abandoned_cache(ctl, cache)) {
		pthread_mutex_consistent(&cache->shared_lock);
		return true;
	}
	pthread_mutex_consistent(&cache->shared_lock);
	pthread_mutex_unlock(&cache->shared_lock);
	return false;
}

void kheap_cache_unlock_shared_slot(struct k_heap_control *ctl, uint32_t slot)
{
	pthread_mutex_unlock(&ctl->cpus[slot].shared_lock);
}
