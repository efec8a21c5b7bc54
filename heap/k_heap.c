/*
 * k_heap: lifecycle, the global (locked) paths, blocking waits, stats.
 *
 * The cache paths are in cpu_cache_hit.h (hits) and cpu_cache.c; structures
 * and the lock order in k_heap_internal.h. This file owns:
 *   - initialisation (explicit, or lazy for K_HEAP_DEFINE) and teardown;
 *   - the slow allocation path: global heap, drain every cache, then queue
 *     and sleep until served or the absolute deadline passes;
 *   - the hand-off: whoever returns memory to the global heap while waiters
 *     are queued allocates for them in FIFO order and wakes only those it
 *     served (kheap_serve_waiters).
 *
 * Lifetime and RCU. The cache fast paths are protected by the process-wide
 * slot locks (k_heap_internal.h). Every other operation runs inside a
 * liburcu (bulletproof flavour) read-side critical section, except while it
 * sleeps. Teardown moves init_state from READY to CLOSING, waits for a grace
 * period (no slow path can still be in the region), takes every slot lock
 * (no fast path can be either, and later ones will see CLOSING), and only
 * then checks that the heap is idle. Operations that find CLOSING wait,
 * outside any read-side section, for teardown to finish or back off. A
 * sleeping waiter is not in a read-side section, but it is counted in
 * waiter_count, which makes teardown refuse.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include <sched.h>
#include <urcu/urcu-bp.h>

#include "heap/cpu_cache_hit.h"
#include "heap/k_heap_internal.h"
#include "smp/atomic.h"

/* With caches, one kheap_cpu_cache per CPU and the depot after them. */
static size_t control_bytes(uint32_t cpu_count)
{
	return sizeof(struct k_heap_control) +
	       (size_t)kheap_cache_count(cpu_count) * sizeof(struct kheap_cpu_cache);
}

int kheap_format(struct k_heap *h, void *mem, size_t bytes, unsigned int cache_percent)
{
	uint32_t cpus = kheap_cpu_count();
	struct k_heap_control *ctl = NULL;
	struct z_heap *z;
	int rc;

	if (cpus > KHEAP_MAX_CPUS)
		cpus = KHEAP_MAX_CPUS;
	rc = sys_heap_init(&h->heap, mem, bytes);
	if (rc != 0)
		return rc;
	z = h->heap.heap;

	/* Caches pay only when their metadata is a small part of the heap. */
	if (cache_percent == 0 || bytes < KHEAP_CACHE_MIN_HEAP || control_bytes(cpus) > bytes / 16)
		cpus = 0;
	ctl = z_heap_aligned_alloc(z, KHEAP_CACHE_LINE, control_bytes(cpus));
	if (ctl == NULL) {
		h->heap.heap = NULL;
		return -EINVAL;
	}
	memset(ctl, 0, control_bytes(cpus));
	ctl->control_chunk = mem_to_chunk(z, ctl);
	ctl->cpu_count = cpus;
	kheap_spin_init(&ctl->lock);
	for (uint32_t i = 0; i < kheap_cache_count(cpus); i++)
		ctl->cpus[i].cpu = i;
	if (cpus != 0) {
		ctl->max_class_units = bytes_to_chunksz(z, KHEAP_CACHE_MAX_BYTES);
		ctl->min_class_units = KHEAP_CACHE_MIN_UNITS;
		/* The CPUs' caches and the depot share the bound equally. */
		ctl->cpu_budget_bytes = bytes / 100 * (cache_percent > 100 ? 100 : cache_percent) /
					kheap_cache_count(cpus);
		for (uint32_t i = 0; i < kheap_cache_count(cpus); i++)
			ctl->cpus[i].spare_bytes = ctl->cpu_budget_bytes;
	}

	/* The control block is metadata, not an allocation: keep it out of
	 * the stats, as the metadata chunk is.
	 */
	z->owner_control = mem_to_chunk(z, ctl);
	ctl->capacity_bytes = z_heap_largest_free_bytes(z);
	kheap_cache_configure(ctl);
	z->allocated_bytes = 0;
	z->max_allocated_bytes = 0;
	h->control = ctl;
	/* From here on cache_percent != 0 means "this heap has caches"; the
	 * fast paths read it without a lock to skip caches cheaply.
	 */
	kheap_store_release_uint(&h->cache_percent, cpus != 0 ? cache_percent : 0);
	return 0;
}

int k_heap_init_config(struct k_heap *h, void *mem, size_t bytes,
		       const struct k_heap_config *config)
{
	unsigned int percent = config == NULL ? KHEAP_DEFAULT_CACHE_PERCENT : config->cache_percent;
	int rc;

	if (h == NULL)
		return -EINVAL;
	h->control = NULL;
	h->owner_tag = 0;
	h->shared_region = NULL;
	rc = kheap_format(h, mem, bytes, percent);
	kheap_store_release_uint(&h->init_state, rc == 0 ? KHEAP_STATE_READY : KHEAP_STATE_FAILED);
	return rc;
}

int k_heap_init(struct k_heap *h, void *mem, size_t bytes)
{
	return k_heap_init_config(h, mem, bytes, NULL);
}

/* Called inside a read-side section; may leave and re-enter it to wait. */
static struct k_heap_control *ready_control_slow(struct k_heap *h)
{
	for (;;) {
		unsigned int state;

		if (h == NULL)
			break;
		state = kheap_load_acquire_uint(&h->init_state);
		if (state == KHEAP_STATE_READY)
			return h->control;
		if (state == KHEAP_STATE_UNINITIALISED) {
			/* Whoever loses the race re-reads the state and waits. */
			if (kheap_cas_uint(&h->init_state, KHEAP_STATE_UNINITIALISED,
					   KHEAP_STATE_INITIALISING)) {
				int rc = kheap_format(h, h->heap.init_mem, h->heap.init_bytes,
						      kheap_load_uint(&h->cache_percent));

				kheap_store_release_uint(&h->init_state, rc == 0
									     ? KHEAP_STATE_READY
									     : KHEAP_STATE_FAILED);
			}
			continue;
		}
		if (state == KHEAP_STATE_FORKED) {
			kheap_raise_fault(KHEAP_FAULT_BAD_HEAP, h, NULL,
					  "shared heap handle inherited across fork(): the child "
					  "must call k_heap_attach() itself");
			return NULL;
		}
		if (state == KHEAP_STATE_INITIALISING || state == KHEAP_STATE_CLOSING) {
			urcu_bp_read_unlock();
			while (kheap_load_acquire_uint(&h->init_state) == state)
				sched_yield();
			urcu_bp_read_lock();
			continue;
		}
		break;
	}
	kheap_raise_fault(KHEAP_FAULT_BAD_HEAP, h, NULL,
			  "heap is not initialised, its region was too small, or it was torn down");
	return NULL;
}

static inline struct k_heap_control *ready_control(struct k_heap *h)
{
	struct k_heap_control *ctl;

	if (__builtin_expect(
		h != NULL && kheap_load_acquire_uint(&h->init_state) == KHEAP_STATE_READY, 1))
		ctl = h->control;
	else
		ctl = ready_control_slow(h);
	if (__builtin_expect(ctl != NULL && ctl->process_shared != 0, 0) &&
	    !kheap_shared_usable(h, ctl))
		return NULL;
	return ctl;
}

/* Drops slot locks [0, slots) and a shared heap's cache locks [0, caches). */
static void unlock_slots(struct k_heap_control *ctl, uint32_t slots, uint32_t caches)
{
	for (uint32_t i = caches; i-- > 0;)
		kheap_cache_unlock_shared_slot(ctl, i);
	for (uint32_t i = slots; i-- > 0;)
		kheap_spin_unlock(kheap_slot_lock(i));
}

bool kheap_quiesce(struct k_heap_control *ctl)
{
	uint32_t caches = 0;

	for (uint32_t i = 0; i < ctl->cpu_count; i++)
		kheap_spin_lock(kheap_slot_lock(i));
	if (ctl->process_shared) {
		while (caches < ctl->cpu_count && kheap_cache_lock_shared_slot(ctl, caches, true))
			caches++;
		if (caches < ctl->cpu_count) {
			unlock_slots(ctl, ctl->cpu_count, caches);
			return false;
		}
	}
	if (kheap_heap_lock(ctl))
		return true;
	unlock_slots(ctl, ctl->cpu_count, caches);
	return false;
}

void kheap_unquiesce(struct k_heap_control *ctl)
{
	kheap_heap_unlock(ctl);
	unlock_slots(ctl, ctl->cpu_count, ctl->process_shared ? ctl->cpu_count : 0);
}

size_t kheap_serve_waiters(struct k_heap_control *ctl, uint32_t **wake, size_t wake_cap)
{
	struct z_heap *z = control_heap(ctl);
	uintptr_t base = control_waitq_base(ctl);
	struct kheap_waiter *w = kheap_waiter_at(base, ctl->waitq.head);
	size_t served = 0;

	while (w != NULL) {
		struct kheap_waiter *next = kheap_waiter_at(base, w->next);
		void *mem =
		    w->bytes <= z->free_bytes
			? z_heap_aligned_alloc_any_fit(z, (size_t)w->align, (size_t)w->bytes)
			: NULL;

		if (mem != NULL) {
			chunkid_t c = mem_to_chunk(z, mem);

			ctl->handoffs++;
			kheap_tag_block(z, c, w->owner_tag);
			kheap_waiter_serve(&ctl->waitq, base, w, c);
			if (served < wake_cap)
				wake[served++] = &w->state;
			else
				kheap_waiter_wake(&w->state, ctl->process_shared != 0);
		}
		w = next;
	}
	return served;
}

void kheap_wake_served(struct k_heap_control *ctl, uint32_t **wake, size_t count)
{
	for (size_t i = 0; i < count; i++)
		kheap_waiter_wake(wake[i], ctl->process_shared != 0);
}

/* Heap lock held: allocates for this process, tagging the block as its own
 * when the heap is shared. A caller that would sleep on failure asks for
 * any_fit, so it never sleeps while a free chunk fits.
 */
static void *alloc_tagged(struct k_heap *h, struct z_heap *z, size_t align, size_t bytes,
			  bool any_fit)
{
	void *mem = any_fit ? z_heap_aligned_alloc_any_fit(z, align, bytes)
			    : z_heap_aligned_alloc(z, align, bytes);

	if (mem != NULL)
		kheap_tag_block(z, mem_to_chunk(z, mem), h->owner_tag);
	return mem;
}

size_t kheap_after_release(struct k_heap_control *ctl, uint32_t **wake)
{
	size_t served = 0;

	if (ctl->waitq.head != 0)
		served = kheap_serve_waiters(ctl, wake, KHEAP_WAKE_BATCH);
	if (ctl->process_shared)
		kheap_shared_note_room(ctl);
	return served;
}

/* Frees a block the caller handed over, under the heap lock, and serves
 * waiters from it. Reports misuse after dropping the lock.
 */
static void free_global(struct k_heap *h, struct k_heap_control *ctl, void *mem)
{
	struct z_heap *z = control_heap(ctl);
	uint32_t *wake[KHEAP_WAKE_BATCH];
	size_t served = 0;
	const char *detail;
	enum kheap_fault fault;
	chunkid_t c;

	if (!kheap_heap_lock(ctl))
		return;
	fault = z_heap_check_block(z, mem, &c, &detail);
	if (fault == 0) {
		z_heap_free_chunk(z, c);
		served = kheap_after_release(ctl, wake);
		kheap_note_pressure(ctl);
	}
	kheap_heap_unlock(ctl);
	kheap_wake_served(ctl, wake, served);
	if (fault != 0)
		kheap_raise_fault(fault, h, mem, detail);
}

/* A thread in the slow path is counted in waiter_count (and, for a shared
 * heap, against its process, so a process that dies waiting can be
 * uncounted by k_heap_reclaim_dead).
 */
static void waiting_begin(struct k_heap *h, struct k_heap_control *ctl)
{
	kheap_inc_uint(&ctl->waiter_count);
	if (ctl->process_shared)
		kheap_shared_count_waiting(h, ctl, true);
}

static void waiting_end(struct k_heap *h, struct k_heap_control *ctl)
{
	if (ctl->process_shared)
		kheap_shared_count_waiting(h, ctl, false);
	kheap_dec_uint(&ctl->waiter_count);
}

/* Heap lock held: takes `w` out of the queue if still there, and releases
 * a shared heap's waiter record.
 */
static void forget_waiter(struct k_heap_control *ctl, struct kheap_waiter *w, bool queued)
{
	if (queued)
		kheap_waitq_remove(&ctl->waitq, control_waitq_base(ctl), w);
	if (ctl->process_shared)
		kheap_shared_release_waiter(ctl, w);
}

struct abandoned_wait {
	struct k_heap *h;
	struct k_heap_control *ctl;
	struct kheap_waiter *waiter;
};

/*
 * Runs when a thread is cancelled (or calls pthread_exit from a signal
 * handler) while it sleeps in alloc_global: it leaves the queue, or gives
 * back the block it was handed in the meantime, so no waiter record on a
 * dead stack stays queued and no block is lost.
 */
static void abandon_wait(void *arg)
{
	struct abandoned_wait *abandon = arg;
	struct k_heap_control *ctl = abandon->ctl;
	struct kheap_waiter *waiter = abandon->waiter;
	struct z_heap *z = control_heap(ctl);
	uint32_t *wake[KHEAP_WAKE_BATCH];
	size_t served = 0;

	if (kheap_heap_lock(ctl)) {
		bool was_served = kheap_load_acquire_32(&waiter->state) == KHEAP_WAITER_SERVED;

		forget_waiter(ctl, waiter, !was_served);
		if (was_served) {
			z_heap_free_chunk(z, waiter->result);
			served = kheap_after_release(ctl, wake);
		}
		kheap_heap_unlock(ctl);
		kheap_wake_served(ctl, wake, served);
	}
	waiting_end(abandon->h, ctl);
}

/* Sleeps until served or the deadline; a cancellation point meanwhile. */
static bool sleep_queued(struct abandoned_wait *abandon, const struct timespec *deadline)
{
	bool served;

	pthread_cleanup_push(abandon_wait, abandon);
	served = kheap_waiter_sleep(abandon->waiter, deadline, abandon->ctl->process_shared != 0);
	pthread_cleanup_pop(0);
	return served;
}

/*
 * Heap lock held: a record to queue in. A private heap's is on the caller's
 * stack; a shared heap's comes from the region's table, and when that is
 * full the caller waits for room without a record (kheap_shared_wait_room)
 * and tries again.
 */
static struct kheap_waiter *claim_waiter(struct k_heap *h, struct k_heap_control *ctl,
					 struct kheap_waiter *on_stack)
{
	if (!ctl->process_shared)
		return on_stack;
	return kheap_shared_claim_waiter(h, ctl);
}

/*
 * The slow path: global heap, then drain, then wait. The deadline is fixed
 * here, once; a waiter that times out makes one last attempt before giving
 * up. Requests larger than the empty heap could ever serve never wait.
 * The first attempt is bounded as any allocation is; once the caller may
 * wait, attempts (and the frees that serve the queue) examine a whole size
 * bucket, so nobody sleeps, or stays asleep, while a free chunk fits.
 */
static void *alloc_global(struct k_heap *h, struct k_heap_control *ctl, size_t align, size_t bytes,
			  k_timeout_t timeout)
{
	struct z_heap *z = control_heap(ctl);
	bool forever = timeout.ticks == K_TICKS_FOREVER;
	bool shared = ctl->process_shared != 0;
	bool may_wait = timeout.ticks != 0;
	struct timespec deadline;
	struct kheap_waiter on_stack, *waiter;
	struct abandoned_wait abandon;
	uint32_t seen;
	bool served;
	void *mem;

	if (!forever && timeout.ticks > 0)
		kheap_deadline_after(&deadline, timeout.ticks);

	if (!kheap_heap_lock(ctl))
		return NULL;
	mem = alloc_tagged(h, z, align, bytes, false);
	kheap_note_pressure(ctl);
	kheap_heap_unlock(ctl);
	if (mem != NULL)
		return mem;

	waiting_begin(h, ctl);
	for (;;) {
		if (caches_enabled(ctl))
			kheap_cache_drain_all(ctl);
		if (!kheap_heap_lock(ctl)) {
			waiting_end(h, ctl);
			return NULL;
		}
		mem = alloc_tagged(h, z, align, bytes, may_wait);
		if (mem != NULL || !may_wait || bytes > ctl->capacity_bytes) {
			kheap_heap_unlock(ctl);
			waiting_end(h, ctl);
			return mem;
		}
		memset(&on_stack, 0, sizeof(on_stack));
		waiter = claim_waiter(h, ctl, &on_stack);
		if (waiter != NULL)
			break;
		seen = kheap_shared_room_begin(ctl);
		kheap_heap_unlock(ctl);
		urcu_bp_read_unlock();
		served = kheap_shared_room_wait(ctl, seen, forever ? NULL : &deadline);
		urcu_bp_read_lock();
		if (!kheap_heap_lock(ctl)) {
			waiting_end(h, ctl);
			return NULL;
		}
		kheap_shared_room_end(ctl);
		if (!served) {
			mem = alloc_tagged(h, z, align, bytes, true);
			if (mem == NULL)
				ctl->timeouts++;
			kheap_heap_unlock(ctl);
			waiting_end(h, ctl);
			return mem;
		}
		kheap_heap_unlock(ctl);
	}
	waiter->bytes = bytes;
	waiter->align = align;
	waiter->owner_tag = h->owner_tag;
	kheap_waitq_append(&ctl->waitq, control_waitq_base(ctl), waiter);
	ctl->waits++;
	kheap_heap_unlock(ctl);

	urcu_bp_read_unlock();
	abandon.h = h;
	abandon.ctl = ctl;
	abandon.waiter = waiter;
	served = sleep_queued(&abandon, forever ? NULL : &deadline);
	urcu_bp_read_lock();
	if (served && !shared) {
		mem = chunk_mem(z, waiter->result);
	} else if (kheap_heap_lock(ctl)) {
		served = kheap_load_acquire_32(&waiter->state) == KHEAP_WAITER_SERVED;
		if (served) {
			mem = chunk_mem(z, waiter->result);
		} else {
			mem = alloc_tagged(h, z, align, bytes, true);
			if (mem == NULL)
				ctl->timeouts++;
		}
		forget_waiter(ctl, waiter, !served);
		kheap_heap_unlock(ctl);
	}
	waiting_end(h, ctl);
	return mem;
}

/* The slow path of every allocation, in a read-side section. */
/* Never inlined: its calls would make every caller, the cache hit paths
 * included, save registers on entry.
 */
static __attribute__((noinline)) void *alloc_slow(struct k_heap *h, size_t align, size_t bytes,
						  k_timeout_t timeout)
{
	struct k_heap_control *ctl;
	void *mem = NULL;

	urcu_bp_read_lock();
	ctl = ready_control(h);
	if (ctl != NULL && bytes != 0)
		mem = alloc_global(h, ctl, align, bytes, timeout);
	urcu_bp_read_unlock();
	return mem;
}

void *kheap_alloc_slow(struct k_heap *h, size_t bytes, k_timeout_t timeout)
{
	return alloc_slow(h, 0, bytes, timeout);
}

void *k_heap_alloc(struct k_heap *h, size_t bytes, k_timeout_t timeout)
{
	if (__builtin_expect(h != NULL && bytes - 1 < KHEAP_CACHE_MAX_BYTES &&
				 kheap_load_uint(&h->cache_percent) != 0,
			     1))
		return kheap_cache_alloc(h, bytes, timeout);
	return alloc_slow(h, 0, bytes, timeout);
}

void *k_heap_aligned_alloc(struct k_heap *h, size_t align, size_t bytes, k_timeout_t timeout)
{
	if ((align & (align - 1)) != 0)
		return NULL;
	if (align <= CHUNK_UNIT)
		return k_heap_alloc(h, bytes, timeout);
	return alloc_slow(h, align, bytes, timeout);
}

void *k_heap_calloc(struct k_heap *h, size_t num, size_t size, k_timeout_t timeout)
{
	size_t bytes;
	void *mem;

	if (__builtin_mul_overflow(num, size, &bytes))
		return NULL;
	mem = k_heap_alloc(h, bytes, timeout);
	if (mem != NULL)
		memset(mem, 0, bytes);
	return mem;
}

__attribute__((noinline)) void kheap_free_slow(struct k_heap *h, void *mem)
{
	struct k_heap_control *ctl;

	urcu_bp_read_lock();
	ctl = ready_control(h);
	if (ctl != NULL)
		free_global(h, ctl, mem);
	urcu_bp_read_unlock();
}

void k_heap_free(struct k_heap *h, void *mem)
{
	if (mem == NULL)
		return;
	if (__builtin_expect(h != NULL && kheap_load_uint(&h->cache_percent) != 0, 1))
		kheap_cache_free(h, mem);
	else
		kheap_free_slow(h, mem);
}

void *k_heap_realloc(struct k_heap *h, void *ptr, size_t bytes, k_timeout_t timeout)
{
	struct k_heap_control *ctl;
	uint32_t *wake[KHEAP_WAKE_BATCH];
	size_t served = 0, old_bytes = 0;
	const char *detail;
	enum kheap_fault fault;
	struct z_heap *z;
	void *mem = NULL;
	chunkid_t c;

	if (ptr == NULL)
		return k_heap_alloc(h, bytes, timeout);
	if (bytes == 0) {
		k_heap_free(h, ptr);
		return NULL;
	}
	urcu_bp_read_lock();
	ctl = ready_control(h);
	if (ctl == NULL)
		goto out;
	z = control_heap(ctl);

	if (!kheap_heap_lock(ctl))
		goto out;
	fault = z_heap_check_block(z, ptr, &c, &detail);
	if (fault == 0) {
		old_bytes = z_heap_block_bytes(z, c);
		mem = z_heap_realloc_chunk(z, c, 0, bytes);
		if (mem != NULL) {
			kheap_tag_block(z, mem_to_chunk(z, mem), h->owner_tag);
			served = kheap_after_release(ctl, wake);
		}
	}
	kheap_heap_unlock(ctl);
	kheap_wake_served(ctl, wake, served);
	if (fault != 0) {
		kheap_raise_fault(fault, h, ptr, detail);
		goto out;
	}
	if (mem == NULL) {
		/* No room in place or elsewhere right now: drain, wait if allowed,
		 * then move. The old block stays untouched until the new one exists.
		 */
		mem = alloc_global(h, ctl, 0, bytes, timeout);
		if (mem != NULL) {
			memcpy(mem, ptr, old_bytes < bytes ? old_bytes : bytes);
			free_global(h, ctl, ptr);
		}
	}
out:
	urcu_bp_read_unlock();
	return mem;
}

size_t k_heap_usable_size(struct k_heap *h, void *mem)
{
	struct k_heap_control *ctl;
	size_t bytes = 0;

	if (mem == NULL)
		return 0;
	urcu_bp_read_lock();
	ctl = ready_control(h);
	if (ctl != NULL) {
		struct z_heap *z = control_heap(ctl);
		const char *detail;
		enum kheap_fault fault;
		chunkid_t c;

		if (kheap_heap_lock(ctl)) {
			fault = z_heap_check_block(z, mem, &c, &detail);
			if (fault == 0)
				bytes = z_heap_block_bytes(z, c);
			kheap_heap_unlock(ctl);
			if (fault != 0)
				kheap_raise_fault(fault, h, mem, detail);
		}
	}
	urcu_bp_read_unlock();
	return bytes;
}

/* A private heap can go when nobody holds a block or waits on it. */
static bool private_heap_busy(struct k_heap *h, struct k_heap_control *ctl)
{
	(void)h;
	return kheap_load_uint(&ctl->waiter_count) != 0 || ctl->waitq.head != 0 ||
	       control_heap(ctl)->allocated_bytes != kheap_cache_bytes(ctl);
}

int kheap_close_handle(struct k_heap *h, bool (*busy)(struct k_heap *h, struct k_heap_control *ctl))
{
	struct k_heap_control *ctl;
	bool refused = true;

	if (h == NULL || !kheap_cas_uint(&h->init_state, KHEAP_STATE_READY, KHEAP_STATE_CLOSING))
		return -EINVAL;
	urcu_bp_synchronize_rcu();

	ctl = h->control;
	if (kheap_quiesce(ctl)) {
		refused = busy(h, ctl);
		kheap_unquiesce(ctl);
	} else if (ctl->process_shared) {
		/* A broken shared heap can still be left. */
		refused = false;
	}
	if (refused) {
		kheap_store_release_uint(&h->init_state, KHEAP_STATE_READY);
		return -EBUSY;
	}
	h->control = NULL;
	h->heap.heap = NULL;
	kheap_store_release_uint(&h->init_state, KHEAP_STATE_DEAD);
	return 0;
}

int k_heap_deinit(struct k_heap *h)
{
	if (h != NULL && h->shared_region != NULL)
		return k_heap_detach(h);
	return kheap_close_handle(h, private_heap_busy);
}

int kheap_with_quiesced(struct k_heap *h,
			int (*fn)(struct k_heap *h, struct k_heap_control *ctl, void *arg),
			void *arg)
{
	struct k_heap_control *ctl;
	int rc = -EINVAL;

	urcu_bp_read_lock();
	ctl = ready_control(h);
	if (ctl != NULL && kheap_quiesce(ctl)) {
		rc = fn(h, ctl, arg);
		kheap_unquiesce(ctl);
	}
	urcu_bp_read_unlock();
	return rc;
}

static int set_hardening_quiesced(struct k_heap *h, struct k_heap_control *ctl, void *arg)
{
	enum sys_heap_hardening level = *(enum sys_heap_hardening *)arg;
	struct z_heap *z = control_heap(ctl);

	if (ctl->process_shared && level < SYS_HEAP_HARDENING_FULL)
		return -EINVAL;
	if (z->allocated_bytes != kheap_cache_bytes(ctl) || ctl->waitq.head != 0 ||
	    kheap_load_uint(&ctl->waiter_count) != 0)
		return -EBUSY;
	/* Cached blocks were laid out for the old level: return them all. */
	kheap_cache_release_all_locked(ctl);
	z->hardening = level;
	if (level == SYS_HEAP_HARDENING_EXTREME) {
		/* No class left: the cache paths of every handle, other
		 * processes' included, decline from now on.
		 */
		ctl->max_class_units = 0;
		kheap_store_release_uint(&h->cache_percent, 0);
	}
	kheap_cache_configure(ctl);
	return 0;
}

int k_heap_set_hardening(struct k_heap *h, enum sys_heap_hardening level)
{
	if ((unsigned int)level > SYS_HEAP_HARDENING_EXTREME)
		return -EINVAL;
	return kheap_with_quiesced(h, set_hardening_quiesced, &level);
}

static int fill_stats(struct k_heap *h, struct k_heap_control *ctl, void *arg)
{
	struct sys_memory_stats *stats = arg;
	struct z_heap *z = control_heap(ctl);
	size_t cached = kheap_cache_bytes(ctl);

	(void)h;
	stats->free_bytes = z->free_bytes;
	stats->allocated_bytes = z->allocated_bytes - cached;
	stats->cached_bytes = cached;
	stats->max_allocated_bytes = z->max_allocated_bytes;
	return 0;
}

int k_heap_runtime_stats_get(struct k_heap *h, struct sys_memory_stats *stats)
{
	if (stats == NULL)
		return -EINVAL;
	return kheap_with_quiesced(h, fill_stats, stats);
}

static int fill_counters(struct k_heap *h, struct k_heap_control *ctl, void *arg)
{
	struct k_heap_counters *counters = arg;

	(void)h;
	memset(counters, 0, sizeof(*counters));
	kheap_cache_add_counters(ctl, counters);
	counters->drains = ctl->drains;
	counters->waits = ctl->waits;
	counters->handoffs = ctl->handoffs;
	counters->timeouts = ctl->timeouts;
	if (ctl->process_shared)
		counters->recoveries = kheap_shared_recoveries(ctl);
	return 0;
}

int k_heap_counters_get(struct k_heap *h, struct k_heap_counters *counters)
{
	if (counters == NULL)
		return -EINVAL;
	return kheap_with_quiesced(h, fill_counters, counters);
}

void k_heap_drain_caches(struct k_heap *h)
{
	struct k_heap_control *ctl;

	urcu_bp_read_lock();
	ctl = ready_control(h);
	if (ctl != NULL && caches_enabled(ctl))
		kheap_cache_drain_all(ctl);
	urcu_bp_read_unlock();
}

unsigned int k_heap_waiter_count(struct k_heap *h)
{
	struct k_heap_control *ctl;
	unsigned int waiting = 0;

	urcu_bp_read_lock();
	ctl = ready_control(h);
	if (ctl != NULL) {
		uintptr_t base = control_waitq_base(ctl);

		if (kheap_heap_lock(ctl)) {
			for (struct kheap_waiter *w = kheap_waiter_at(base, ctl->waitq.head);
			     w != NULL; w = kheap_waiter_at(base, w->next))
				waiting++;
			kheap_heap_unlock(ctl);
		}
	}
	urcu_bp_read_unlock();
	return waiting;
}

struct walk_request {
	void (*visit)(void *arg, size_t offset, size_t bytes, enum k_heap_chunk_state state,
		      int cpu);
	void *arg;
	const uint8_t *region;
};

static int walk_quiesced(struct k_heap *h, struct k_heap_control *ctl, void *arg)
{
	struct walk_request *walk = arg;
	struct z_heap *z = control_heap(ctl);

	(void)h;
	for (chunkid_t c = 0; c <= z->end_chunk; c += chunk_size(z, c)) {
		size_t offset = (size_t)((const uint8_t *)chunk_address(z, c) - walk->region);
		size_t bytes = (size_t)chunk_size(z, c) * CHUNK_UNIT;
		enum k_heap_chunk_state state = K_HEAP_CHUNK_USED;
		int cpu = -1;

		if (c == 0 || c == z->end_chunk || c == z->owner_control) {
			state = K_HEAP_CHUNK_METADATA;
		} else if (!chunk_used(z, c)) {
			state = K_HEAP_CHUNK_FREE;
		} else if (chunk_cached(z, c)) {
			state = K_HEAP_CHUNK_CACHED;
			cpu = kheap_cache_owner_cpu(ctl, c);
		}
		walk->visit(walk->arg, offset, bytes, state, cpu);
		if (c == z->end_chunk)
			break;
	}
	return 0;
}

int k_heap_walk(struct k_heap *h,
		void (*visit)(void *arg, size_t offset, size_t bytes, enum k_heap_chunk_state state,
			      int cpu),
		void *arg)
{
	struct walk_request walk = {visit, arg, NULL};

	if (h == NULL || visit == NULL)
		return -EINVAL;
	walk.region = h->heap.init_mem;
	return kheap_with_quiesced(h, walk_quiesced, &walk);
}

static int validate_quiesced(struct k_heap *h, struct k_heap_control *ctl, void *arg)
{
	struct z_heap *z = control_heap(ctl);
	struct z_heap_walk_totals totals;
	const char *why;

	(void)arg;
	if (!z_heap_check_invariants(z, &totals, &why) ||
	    !kheap_cache_check_all(ctl, &totals, &why) ||
	    (ctl->process_shared && !kheap_shared_check(ctl, &why))) {
		kheap_raise_fault(KHEAP_FAULT_CORRUPT_HEAP, h, NULL, why);
		return 0;
	}
	return 1;
}

bool k_heap_validate_owned(struct sys_heap *heap)
{
	return kheap_with_quiesced(k_heap_of(heap), validate_quiesced, NULL) == 1;
}

int k_heap_stats_owned(struct sys_heap *heap, struct sys_memory_stats *stats)
{
	return k_heap_runtime_stats_get(k_heap_of(heap), stats);
}

static int reset_max_quiesced(struct k_heap *h, struct k_heap_control *ctl, void *arg)
{
	struct z_heap *z = control_heap(ctl);

	(void)h;
	(void)arg;
	z->max_allocated_bytes = z->allocated_bytes;
	return 0;
}

int k_heap_stats_reset_max_owned(struct sys_heap *heap)
{
	return kheap_with_quiesced(k_heap_of(heap), reset_max_quiesced, NULL);
}
