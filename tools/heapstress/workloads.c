/*
 * heapstress workloads: the bursts, the checks around every heap call, and
 * the single-producer single-consumer rings that carry blocks between CPUs.
 *
 * In a multi-process run prodcons also sends every other block to the worker
 * of the same number in the next process, through a ring in shared memory
 * that carries the block's heap offset, size and id; the receiver finds the
 * block in its own mapping, checks the sender's pattern and frees it there.
 *
 * Every heap call goes through one of hs_alloc_block, hs_release,
 * hs_realloc_block or hs_storm_step, which time it, count it and check its
 * result (pointer inside the region, alignment, usable size, pattern). A
 * loop checks hs_done() before each call, which is how a quota is met
 * exactly. Decisions come from the worker's own random stream, so with one
 * thread the whole sequence of calls is a function of the seed.
 */
#include "workloads.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pattern.h"

#define HS_BURST_STEPS	   64
#define HS_STORM_STEPS	   4
#define HS_FRAG_RUN	   32
#define HS_LIVE_INITIAL	   256
#define HS_LIVE_MAX	   (1u << 18)
#define HS_RING_CAP	   128
#define HS_ID_THREAD_SHIFT 40
#define HS_STORM_MIN_NS	   1000000u
#define HS_STORM_SPREAD_NS 19000000u
/* A timed-out blocking call may return this much before its deadline (clock skew). */
#define HS_TIMEOUT_SLACK_NS 200000u

/* One producer (the previous worker) and one consumer (the owner). */
struct hs_ring {
	_Atomic size_t head __attribute__((aligned(64)));
	_Atomic size_t tail __attribute__((aligned(64)));
	struct hs_block slot[HS_RING_CAP];
};

static bool hs_ring_push(struct hs_ring *ring, const struct hs_block *block)
{
	size_t tail = atomic_load_explicit(&ring->tail, memory_order_relaxed);
	size_t head = atomic_load_explicit(&ring->head, memory_order_acquire);

	if (tail - head == HS_RING_CAP) {
		return false;
	}
	ring->slot[tail % HS_RING_CAP] = *block;
	atomic_store_explicit(&ring->tail, tail + 1, memory_order_release);
	return true;
}

static bool hs_ring_pop(struct hs_ring *ring, struct hs_block *block)
{
	size_t head = atomic_load_explicit(&ring->head, memory_order_relaxed);
	size_t tail = atomic_load_explicit(&ring->tail, memory_order_acquire);

	if (head == tail) {
		return false;
	}
	*block = ring->slot[head % HS_RING_CAP];
	atomic_store_explicit(&ring->head, head + 1, memory_order_release);
	return true;
}

/* A block as it travels between processes. */
struct hs_xslot {
	uint64_t offset;
	uint64_t size;
	uint64_t id;
};

/* Indices wrap at 2^32; HS_RING_CAP divides that, so slots stay in order. */
struct hs_xring {
	_Atomic uint32_t head __attribute__((aligned(64)));
	_Atomic uint32_t tail __attribute__((aligned(64)));
	struct hs_xslot slot[HS_RING_CAP];
} __attribute__((aligned(64)));

size_t hs_xring_bytes(void)
{
	return sizeof(struct hs_xring);
}

void hs_xring_init(struct hs_xring *ring)
{
	memset(ring, 0, sizeof(*ring));
	atomic_init(&ring->head, 0);
	atomic_init(&ring->tail, 0);
}

static size_t hs_offset(const struct hs_worker *w, const void *p)
{
	return (size_t)((const unsigned char *)p - w->shared->region);
}

static bool hs_xring_push(struct hs_worker *w, const struct hs_block *block)
{
	struct hs_xring *ring = w->xoutbox;
	uint32_t tail = atomic_load_explicit(&ring->tail, memory_order_relaxed);
	uint32_t head = atomic_load_explicit(&ring->head, memory_order_acquire);
	struct hs_xslot *slot = &ring->slot[tail % HS_RING_CAP];

	if (tail - head == HS_RING_CAP) {
		return false;
	}
	slot->offset = hs_offset(w, block->ptr);
	slot->size = block->size;
	slot->id = block->id;
	atomic_store_explicit(&ring->tail, tail + 1, memory_order_release);
	return true;
}

/* A ring slot as a block in this process's mapping; false (and a failure) if it cannot be one. */
static bool hs_xslot_block(struct hs_worker *w, const struct hs_xslot *slot, struct hs_block *block)
{
	struct hs_shared *s = w->shared;

	if (slot->offset >= s->region_bytes || slot->size > s->region_bytes - slot->offset) {
		hs_fail(s->failures, false,
			"a block received from another process claims %llu bytes at heap offset "
			"+0x%llx, outside the heap (thread %u)",
			(unsigned long long)slot->size, (unsigned long long)slot->offset, w->index);
		return false;
	}
	block->ptr = s->region + slot->offset;
	block->size = (size_t)slot->size;
	block->id = slot->id;
	return true;
}

/* Takes the oldest block sent from the other process; a slot that is not a block is dropped. */
static bool hs_xring_pop(struct hs_worker *w, struct hs_block *block)
{
	struct hs_xring *ring = w->xinbox;
	uint32_t head = atomic_load_explicit(&ring->head, memory_order_relaxed);
	uint32_t tail = atomic_load_explicit(&ring->tail, memory_order_acquire);
	bool valid;

	if (head == tail) {
		return false;
	}
	valid = hs_xslot_block(w, &ring->slot[head % HS_RING_CAP], block);
	atomic_store_explicit(&ring->head, head + 1, memory_order_release);
	return valid;
}

static bool hs_done(const struct hs_worker *w)
{
	return atomic_load_explicit(&w->shared->stop, memory_order_relaxed) ||
	       (w->quota != 0 && w->counts.ops >= w->quota);
}

static void hs_count_op(struct hs_worker *w)
{
	if (w->cleaning) {
		return;
	}
	w->counts.ops++;
	w->counts.workload_ops[w->current]++;
	atomic_store_explicit(&w->ops_done, w->counts.ops, memory_order_relaxed);
}

static uint64_t hs_new_id(struct hs_worker *w)
{
	return ((uint64_t)w->index << HS_ID_THREAD_SHIFT) | w->next_id++;
}

static size_t hs_pick_size(struct hs_worker *w, enum hs_size_dist shape)
{
	const struct hs_options *opt = w->shared->opt;
	enum hs_size_dist dist = opt->size_dist == HS_DIST_PER_WORKLOAD ? shape : opt->size_dist;
	double low, high, y;
	size_t size;

	switch (dist) {
	case HS_DIST_FIXED:
		return opt->size_min;
	case HS_DIST_POWERLAW:
		/* Truncated Pareto with exponent 1.5, by inverting its CDF: small
		 * requests dominate and large ones still come regularly.
		 */
		low = 1.0 / sqrt((double)opt->size_min);
		high = 1.0 / sqrt((double)opt->size_max);
		y = low - hs_rng_unit(&w->rng) * (low - high);
		size = (size_t)(1.0 / (y * y));
		if (size < opt->size_min) {
			size = opt->size_min;
		}
		return size > opt->size_max ? opt->size_max : size;
	case HS_DIST_UNIFORM:
	case HS_DIST_PER_WORKLOAD:
		break;
	}
	return hs_rng_range(&w->rng, opt->size_min, opt->size_max);
}

/*
 * Checks a pointer the heap just returned for `size` bytes. False when it
 * must not be used at all (outside the region); other defects are recorded
 * and the block is still tracked and freed.
 */
static bool hs_accept(struct hs_worker *w, void *p, size_t size, size_t align, const char *call)
{
	struct hs_shared *s = w->shared;
	uintptr_t addr = (uintptr_t)p, base = (uintptr_t)s->region;
	size_t usable;

	if (addr < base || size > s->region_bytes || addr - base > s->region_bytes - size) {
		hs_fail(s->failures, true,
			"%s(%zu) returned %p, outside the heap region [%p, %p) (thread %u, CPU %d)",
			call, size, p, (void *)s->region, (void *)(s->region + s->region_bytes),
			w->index, w->cpu);
		return false;
	}
	if (addr % 8 != 0 || (align != 0 && addr % align != 0)) {
		hs_fail(s->failures, false,
			"%s(%zu, align %zu) returned heap offset +0x%zx, not %zu-byte aligned "
			"(thread %u, CPU %d)",
			call, size, align, hs_offset(w, p), align ? align : 8, w->index, w->cpu);
	}
	usable = k_heap_usable_size(s->heap, p);
	if (usable < size) {
		hs_fail(
		    s->failures, false,
		    "%s(%zu) returned heap offset +0x%zx whose usable size is only %zu (thread %u, "
		    "CPU %d)",
		    call, size, hs_offset(w, p), usable, w->index, w->cpu);
	}
	return true;
}

static void hs_fill_block(struct hs_worker *w, struct hs_block *b)
{
	b->id = hs_new_id(w);
	hs_pattern_fill(b->ptr, b->size, hs_pattern_key(w->shared->seed, b->id));
}

/* Checks the first `bytes` of a block against the pattern of block `id`. */
static void hs_verify(struct hs_worker *w, const struct hs_block *b, size_t bytes, uint64_t id,
		      const char *when)
{
	struct hs_mismatch m;

	w->counts.blocks_checked++;
	w->counts.bytes_checked += bytes;
	if (hs_pattern_check(b->ptr, bytes, hs_pattern_key(w->shared->seed, id), &m)) {
		return;
	}
	hs_fail(w->shared->failures, false,
		"block %#llx (%zu bytes at heap offset +0x%zx, allocated by thread %llu) corrupted "
		"at byte %zu %s: expected 0x%02x, found 0x%02x (checked by thread %u on CPU %d)",
		(unsigned long long)id, b->size, hs_offset(w, b->ptr),
		(unsigned long long)(id >> HS_ID_THREAD_SHIFT), m.offset, when, m.expected, m.found,
		w->index, w->cpu);
}

/* Checks a block's pattern, then frees it. */
static void hs_release(struct hs_worker *w, const struct hs_block *b)
{
	struct hs_shared *s = w->shared;
	uint64_t t0, t1;

	hs_verify(w, b, b->size, b->id, "before free");
	if (hs_heap_suspect(s->failures)) {
		return;
	}
	t0 = hs_now_ns();
	k_heap_free(s->heap, b->ptr);
	t1 = hs_now_ns();
	hs_hist_record(&w->free_ns, t1 - t0);
	w->counts.frees++;
	if (w->cleaning) {
		w->counts.cleanup_frees++;
	}
	hs_count_op(w);
}

static struct hs_block hs_live_take(struct hs_worker *w, size_t index)
{
	struct hs_block b = w->live[index];

	w->live[index] = w->live[--w->live_count];
	w->live_bytes -= b.size;
	return b;
}

static void hs_release_random(struct hs_worker *w)
{
	struct hs_block b;

	if (w->live_count == 0) {
		return;
	}
	b = hs_live_take(w, (size_t)hs_rng_below(&w->rng, w->live_count));
	hs_release(w, &b);
}

/* Adds a block to the live set, growing it as needed. */
static void hs_live_add(struct hs_worker *w, const struct hs_block *b)
{
	struct hs_block *grown;
	size_t cap;

	if (w->live_count == w->live_cap) {
		cap = w->live_cap * 2;
		grown = realloc(w->live, cap * sizeof(*grown));
		if (grown == NULL) {
			hs_fail(w->shared->failures, false, "out of memory for %zu live blocks",
				cap);
			hs_release(w, b);
			return;
		}
		w->live = grown;
		w->live_cap = cap;
	}
	w->live[w->live_count++] = *b;
	w->live_bytes += b->size;
}

/* One non-blocking allocation; true with `out` filled and patterned on success. */
static bool hs_alloc_block(struct hs_worker *w, size_t size, size_t align, struct hs_block *out)
{
	struct hs_shared *s = w->shared;
	uint64_t t0, t1;
	void *p;

	t0 = hs_now_ns();
	if (align != 0) {
		p = k_heap_aligned_alloc(s->heap, align, size, K_NO_WAIT);
	} else {
		p = k_heap_alloc(s->heap, size, K_NO_WAIT);
	}
	t1 = hs_now_ns();
	hs_hist_record(&w->alloc_ns, t1 - t0);
	if (align != 0) {
		w->counts.aligned_allocs++;
	} else {
		w->counts.allocs++;
	}
	hs_count_op(w);
	if (p == NULL) {
		if (align != 0) {
			w->counts.aligned_failures++;
		} else {
			w->counts.alloc_failures++;
		}
		return false;
	}
	if (!hs_accept(w, p, size, align, align ? "k_heap_aligned_alloc" : "k_heap_alloc")) {
		return false;
	}
	out->ptr = p;
	out->size = size;
	hs_fill_block(w, out);
	return true;
}

static bool hs_want_alloc(struct hs_worker *w, size_t size)
{
	size_t budget = w->shared->worker_budget;

	if (w->live_count == 0) {
		return true;
	}
	if (w->live_count >= HS_LIVE_MAX || w->live_bytes + size > budget) {
		return false;
	}
	return hs_rng_unit(&w->rng) < (w->live_bytes < budget / 2 ? 0.75 : 0.5);
}

static void hs_random_step(struct hs_worker *w, enum hs_size_dist shape, bool aligned)
{
	size_t size = hs_pick_size(w, shape);
	size_t align = 0;
	struct hs_block b;

	if (!hs_want_alloc(w, size)) {
		hs_release_random(w);
		return;
	}
	if (aligned) {
		align = (size_t)1 << hs_rng_range(&w->rng, 3, 12);
	}
	if (hs_alloc_block(w, size, align, &b)) {
		hs_live_add(w, &b);
	}
}

static void hs_realloc_block(struct hs_worker *w, size_t index, size_t new_size)
{
	struct hs_shared *s = w->shared;
	struct hs_block *b = &w->live[index];
	struct hs_block old = *b;
	uint64_t t0, t1;
	void *q;

	t0 = hs_now_ns();
	q = k_heap_realloc(s->heap, old.ptr, new_size, K_NO_WAIT);
	t1 = hs_now_ns();
	hs_hist_record(&w->realloc_ns, t1 - t0);
	w->counts.reallocs++;
	hs_count_op(w);
	if (q == NULL) {
		w->counts.realloc_failures++;
		hs_verify(w, &old, old.size, old.id, "after a failed realloc (must be untouched)");
		return;
	}
	if (!hs_accept(w, q, new_size, 0, "k_heap_realloc")) {
		hs_live_take(w, index);
		return;
	}
	if (q != (void *)old.ptr) {
		w->counts.realloc_moves++;
	}
	b->ptr = q;
	hs_verify(w, b, old.size < new_size ? old.size : new_size, old.id,
		  "after realloc (contents must be kept)");
	w->live_bytes = w->live_bytes - old.size + new_size;
	b->size = new_size;
	hs_fill_block(w, b);
}

static void hs_realloc_step(struct hs_worker *w)
{
	size_t index, new_size;

	if (w->live_count == 0 || hs_rng_unit(&w->rng) < 0.25) {
		hs_random_step(w, HS_DIST_UNIFORM, false);
		return;
	}
	index = (size_t)hs_rng_below(&w->rng, w->live_count);
	new_size = hs_pick_size(w, HS_DIST_UNIFORM);
	if (w->live_bytes - w->live[index].size + new_size > w->shared->worker_budget) {
		struct hs_block b = hs_live_take(w, index);

		hs_release(w, &b);
		return;
	}
	hs_realloc_block(w, index, new_size);
}

/* Takes one block from the other process's ring; true with `b` filled. */
static bool hs_take_cross(struct hs_worker *w, struct hs_block *b)
{
	if (w->xinbox == NULL || !hs_xring_pop(w, b)) {
		return false;
	}
	w->counts.cross_received++;
	return true;
}

static bool hs_take_local(struct hs_worker *w, struct hs_block *b)
{
	if (w->inbox == NULL || !hs_ring_pop(w->inbox, b)) {
		return false;
	}
	w->counts.consumed++;
	return true;
}

/* Checks and frees up to `limit` received blocks, taking from both inboxes in turn. */
static void hs_drain_inbox(struct hs_worker *w, size_t limit, bool until_done)
{
	struct hs_block b;
	size_t n;
	bool got;

	for (n = 0; n < limit; n++) {
		if (until_done && hs_done(w)) {
			return;
		}
		if (n % 2 == 0) {
			got = hs_take_local(w, &b) || hs_take_cross(w, &b);
		} else {
			got = hs_take_cross(w, &b) || hs_take_local(w, &b);
		}
		if (!got) {
			return;
		}
		hs_release(w, &b);
	}
}

static void hs_prodcons_burst(struct hs_worker *w)
{
	struct hs_block b;
	unsigned int step;

	for (step = 0; step < HS_BURST_STEPS && !hs_done(w); step++) {
		if (step % 8 == 0) {
			hs_drain_inbox(w, 16, true);
			continue;
		}
		if (!hs_alloc_block(w, hs_pick_size(w, HS_DIST_POWERLAW), 0, &b)) {
			continue;
		}
		if (w->xoutbox != NULL && step % 2 == 1 && hs_xring_push(w, &b)) {
			w->counts.cross_sent++;
		} else if (hs_ring_push(w->outbox, &b)) {
			w->counts.produced++;
		} else if (hs_done(w)) {
			hs_live_add(w, &b);
		} else {
			hs_release(w, &b);
		}
	}
}

/*
 * Two patterns that defeat a first-fit-like allocator:
 * holes: a run of small blocks, every other one freed, then requests just
 *   too big for the holes;
 * pinning: large and small blocks alternate, the large ones are freed and
 *   the small ones live on, so free memory is cut into pieces by survivors.
 */
static void hs_frag_burst(struct hs_worker *w)
{
	const struct hs_options *opt = w->shared->opt;
	struct hs_block run[HS_FRAG_RUN], b;
	size_t small = opt->size_min, large = opt->size_max, n = 0, i;
	bool holes = hs_rng_below(&w->rng, 2) == 0;

	for (i = 0; i < HS_FRAG_RUN && !hs_done(w); i++) {
		size_t size = holes || i % 2 ? small : large;

		if (hs_alloc_block(w, size, 0, &run[n])) {
			n++;
		}
	}
	for (i = 0; i < n; i++) {
		bool drop = holes ? i % 2 == 0 : run[i].size == large && large != small;

		if (drop && !hs_done(w)) {
			hs_release(w, &run[i]);
		} else {
			hs_live_add(w, &run[i]);
		}
	}
	for (i = 0; holes && i < n / 2 && !hs_done(w); i++) {
		if (hs_alloc_block(w, small * 2 + 8 < large ? small * 2 + 8 : large, 0, &b)) {
			hs_live_add(w, &b);
		}
	}
}

/* One blocking allocation with a timeout; the block is held only while it is checked. */
static void hs_storm_step(struct hs_worker *w)
{
	struct hs_shared *s = w->shared;
	size_t size = s->storm_block / 2 + (size_t)hs_rng_below(&w->rng, s->storm_block);
	uint64_t timeout_ns = HS_STORM_MIN_NS + hs_rng_below(&w->rng, HS_STORM_SPREAD_NS);
	uint64_t t0, t1;
	struct hs_block b;
	void *p;

	t0 = hs_now_ns();
	p = k_heap_alloc(s->heap, size, K_NSEC(timeout_ns));
	t1 = hs_now_ns();
	hs_hist_record(&w->wait_ns, t1 - t0);
	w->counts.blocking_allocs++;
	hs_count_op(w);
	if (p == NULL) {
		w->counts.blocking_timeouts++;
		if (t1 - t0 > timeout_ns + w->counts.timeout_overshoot_max_ns) {
			w->counts.timeout_overshoot_max_ns = t1 - t0 - timeout_ns;
		}
		if (t1 - t0 + HS_TIMEOUT_SLACK_NS < timeout_ns) {
			hs_fail(
			    s->failures, false,
			    "k_heap_alloc(%zu) with a %.3f ms timeout returned NULL after %.3f ms, "
			    "before its deadline (thread %u, CPU %d)",
			    size, (double)timeout_ns / 1e6, (double)(t1 - t0) / 1e6, w->index,
			    w->cpu);
		}
		return;
	}
	if (!hs_accept(w, p, size, 0, "k_heap_alloc")) {
		return;
	}
	b.ptr = p;
	b.size = size;
	hs_fill_block(w, &b);
	if (hs_done(w)) {
		hs_live_add(w, &b);
	} else {
		hs_release(w, &b);
	}
}

/* Back under the byte budget, and with room for a whole fragmentation burst. */
static void hs_trim(struct hs_worker *w)
{
	while ((w->live_bytes > w->shared->worker_budget ||
		w->live_count > HS_LIVE_MAX - 2 * HS_FRAG_RUN) &&
	       !hs_done(w)) {
		hs_release_random(w);
	}
}

static void hs_burst(struct hs_worker *w, enum hs_workload workload)
{
	unsigned int step;

	w->current = workload;
	switch (workload) {
	case HS_WL_PRODCONS:
		hs_prodcons_burst(w);
		break;
	case HS_WL_FRAG:
		hs_frag_burst(w);
		break;
	case HS_WL_STORM:
		for (step = 0; step < HS_STORM_STEPS && !hs_done(w); step++) {
			hs_storm_step(w);
		}
		break;
	default:
		for (step = 0; step < HS_BURST_STEPS && !hs_done(w); step++) {
			if (workload == HS_WL_REALLOC) {
				hs_realloc_step(w);
			} else {
				hs_random_step(w,
					       workload == HS_WL_POWERLAW ? HS_DIST_POWERLAW
									  : HS_DIST_UNIFORM,
					       workload == HS_WL_ALIGNED);
			}
		}
		break;
	}
	hs_trim(w);
}

static bool hs_inject_due(const struct hs_worker *w)
{
	const struct hs_options *opt = w->shared->opt;

	if (opt->inject == HS_INJECT_NONE || w->index != 0 || w->injected || w->live_count == 0 ||
	    hs_done(w)) {
		return false;
	}
	if (w->quota != 0) {
		return w->counts.ops >= w->quota / 2;
	}
	return hs_now_ns() >= w->shared->inject_at_ns;
}

/*
 * The test hook: damages one live block, then frees it through the normal
 * path so the damage meets the checks at once. "pattern" flips a byte of
 * the block's data; "header" is a two-byte overrun: it flips the first two
 * bytes past the block's usable end, which belong to the next chunk's
 * header (its left-size field, in either header format). False when no
 * live block qualifies yet.
 */
static bool hs_inject(struct hs_worker *w)
{
	struct hs_shared *s = w->shared;
	size_t index = w->live_count;
	unsigned char *header = NULL;
	struct hs_block b;

	while (index-- > 0) {
		b = w->live[index];
		if (s->opt->inject == HS_INJECT_PATTERN) {
			break;
		}
		header = b.ptr + k_heap_usable_size(s->heap, b.ptr);
		if (hs_offset(w, header) + 2 <= s->region_bytes) {
			break;
		}
	}
	if (index == SIZE_MAX) {
		return false;
	}
	if (s->opt->inject == HS_INJECT_PATTERN) {
		b.ptr[b.size / 2] ^= 0x5a;
		fprintf(stderr,
			"heapstress: planted corruption: flipped byte %zu of block %#llx at heap "
			"offset +0x%zx\n",
			b.size / 2, (unsigned long long)b.id, hs_offset(w, b.ptr));
	} else {
		header[0] ^= 0xa5;
		header[1] ^= 0xa5;
		fprintf(
		    stderr,
		    "heapstress: planted corruption: a two-byte overrun into the chunk header at "
		    "heap offset +0x%zx, just past block %#llx\n",
		    hs_offset(w, header), (unsigned long long)b.id);
	}
	w->injected = true;
	hs_live_take(w, index);
	hs_release(w, &b);
	return true;
}

/* A run that ends before the planned moment still gets its corruption, last thing. */
static void hs_inject_before_leaving(struct hs_worker *w)
{
	struct hs_block b;

	if (w->shared->opt->inject == HS_INJECT_NONE || w->index != 0 || w->injected ||
	    hs_heap_suspect(w->shared->failures)) {
		return;
	}
	if (!hs_inject(w) && hs_alloc_block(w, w->shared->opt->size_min, 0, &b)) {
		hs_live_add(w, &b);
		hs_inject(w);
	}
}

void hs_worker_run(struct hs_worker *w)
{
	struct hs_shared *s = w->shared;
	enum hs_workload next;

	while (!hs_done(w)) {
		if (w->inbox != NULL) {
			w->current = HS_WL_PRODCONS;
			hs_drain_inbox(w, HS_BURST_STEPS, true);
		}
		if (w->storm_only) {
			next = HS_WL_STORM;
		} else {
			next = s->worker_mix[hs_rng_below(&w->rng, s->worker_mix_count)];
		}
		hs_burst(w, next);
		if (hs_inject_due(w)) {
			hs_inject(w);
		}
		if (s->observe != NULL &&
		    atomic_load_explicit(&s->observe_pending, memory_order_acquire)) {
			s->observe(s);
		}
	}
	hs_inject_before_leaving(w);
}

void hs_xring_holdings(struct hs_xring *ring, struct k_heap *heap, unsigned char *region,
		       size_t region_bytes, size_t *blocks, size_t *usable_bytes)
{
	uint32_t head = atomic_load_explicit(&ring->head, memory_order_acquire);
	uint32_t tail = atomic_load_explicit(&ring->tail, memory_order_acquire);
	const struct hs_xslot *slot;
	uint32_t i;

	*blocks += tail - head;
	for (i = head; i != tail; i++) {
		slot = &ring->slot[i % HS_RING_CAP];
		if (slot->offset < region_bytes) {
			*usable_bytes += k_heap_usable_size(heap, region + slot->offset);
		}
	}
}

void hs_worker_holdings(const struct hs_worker *w, size_t *blocks, size_t *usable_bytes)
{
	struct k_heap *heap = w->shared->heap;
	size_t i, head, tail;

	*blocks = w->live_count;
	*usable_bytes = 0;
	for (i = 0; i < w->live_count; i++) {
		*usable_bytes += k_heap_usable_size(heap, w->live[i].ptr);
	}
	if (w->inbox != NULL) {
		head = atomic_load_explicit(&w->inbox->head, memory_order_acquire);
		tail = atomic_load_explicit(&w->inbox->tail, memory_order_acquire);
		*blocks += tail - head;
		for (i = head; i != tail; i++) {
			*usable_bytes +=
			    k_heap_usable_size(heap, w->inbox->slot[i % HS_RING_CAP].ptr);
		}
	}
}

void hs_worker_cleanup(struct hs_worker *w)
{
	struct hs_block b;

	w->cleaning = true;
	if (hs_heap_suspect(w->shared->failures)) {
		return;
	}
	while (w->live_count > 0) {
		b = hs_live_take(w, w->live_count - 1);
		hs_release(w, &b);
	}
	if (w->inbox != NULL || w->xinbox != NULL) {
		hs_drain_inbox(w, SIZE_MAX, false);
	}
}

int hs_worker_init(struct hs_worker *w, struct hs_shared *shared, unsigned int index,
		   bool storm_only, uint64_t quota)
{
	memset(w, 0, sizeof(*w));
	w->shared = shared;
	w->index = index;
	w->storm_only = storm_only;
	w->cpu = -1;
	w->quota = quota;
	w->current = storm_only ? HS_WL_STORM : HS_WL_RANDOM;
	hs_rng_seed(&w->rng, shared->seed, index);
	w->live = malloc(HS_LIVE_INITIAL * sizeof(*w->live));
	if (w->live == NULL) {
		return -1;
	}
	w->live_cap = HS_LIVE_INITIAL;
	if (!storm_only) {
		w->inbox = aligned_alloc(64, (sizeof(*w->inbox) + 63) & ~(size_t)63);
		if (w->inbox == NULL) {
			free(w->live);
			return -1;
		}
		atomic_init(&w->inbox->head, 0);
		atomic_init(&w->inbox->tail, 0);
	}
	return 0;
}

void hs_worker_destroy(struct hs_worker *w)
{
	free(w->live);
	free(w->inbox);
	w->live = NULL;
	w->inbox = NULL;
}

void hs_counts_add(struct hs_counts *into, const struct hs_counts *from)
{
	unsigned int i;

	into->ops += from->ops;
	for (i = 0; i < HS_WL_COUNT; i++) {
		into->workload_ops[i] += from->workload_ops[i];
	}
	into->allocs += from->allocs;
	into->alloc_failures += from->alloc_failures;
	into->aligned_allocs += from->aligned_allocs;
	into->aligned_failures += from->aligned_failures;
	into->blocking_allocs += from->blocking_allocs;
	into->blocking_timeouts += from->blocking_timeouts;
	if (from->timeout_overshoot_max_ns > into->timeout_overshoot_max_ns) {
		into->timeout_overshoot_max_ns = from->timeout_overshoot_max_ns;
	}
	into->reallocs += from->reallocs;
	into->realloc_failures += from->realloc_failures;
	into->realloc_moves += from->realloc_moves;
	into->frees += from->frees;
	into->cleanup_frees += from->cleanup_frees;
	into->produced += from->produced;
	into->consumed += from->consumed;
	into->cross_sent += from->cross_sent;
	into->cross_received += from->cross_received;
	into->blocks_checked += from->blocks_checked;
	into->bytes_checked += from->bytes_checked;
}

int64_t hs_counts_outstanding(const struct hs_counts *c)
{
	uint64_t taken = (c->allocs - c->alloc_failures) +
			 (c->aligned_allocs - c->aligned_failures) +
			 (c->blocking_allocs - c->blocking_timeouts);

	return (int64_t)(taken - c->frees);
}
