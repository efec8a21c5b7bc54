/*
 * heapstress workloads: what each thread does to the heap.
 *
 * A worker runs bursts of about 64 operations, each burst one workload
 * picked at random from the selected set, so any mix interleaves finely on
 * every CPU. Storm threads (extra threads) run only the storm workload.
 *
 * Ownership, the invariant every check relies on: a block the heap handed
 * out is in exactly one place: one worker's live set, one worker's inbox
 * (sent by its producer neighbour, not yet consumed), one worker's
 * cross-process inbox (sent by the worker of the same number in the previous
 * process, in a multi-process run), or freed. Only the
 * owner of a live set touches it, except the runner while every thread is
 * parked (run.c). Each block holds its pattern (pattern.h) from the
 * moment it is accepted until just before it is freed, where it is checked.
 *
 * Counting: `counts.ops` is every heap call made while running (allocations
 * that failed included, the cleanup at the end excluded); it is mirrored in
 * `ops_done` for the progress sampler. With a quota a worker makes exactly
 * `quota` such calls.
 */
#ifndef HEAPSTRESS_WORKLOADS_H
#define HEAPSTRESS_WORKLOADS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kheap/k_heap.h>

#include "failures.h"
#include "hist.h"
#include "options.h"
#include "rng.h"

/* State every thread shares; written before threads start, except `stop`. */
struct hs_shared {
	struct k_heap *heap;
	unsigned char *region;
	size_t region_bytes;
	const struct hs_options *opt;
	uint64_t seed;
	struct hs_failures *failures;
	atomic_bool stop;
	/* Bytes each worker keeps live at most (its share of the target fill). */
	size_t worker_budget;
	/* Typical storm request: sized so storm threads want several heaps' worth. */
	size_t storm_block;
	unsigned int workers;
	/* Workloads workers pick from (storm included only if selected). */
	enum hs_workload worker_mix[HS_WL_COUNT];
	unsigned int worker_mix_count;
	/* Time mode: when worker 0 plants the requested corruption. */
	uint64_t inject_at_ns;
	/*
	 * When set, a worker that finds observe_pending calls observe() between
	 * bursts: the runner uses this to look at the heap from the worker's
	 * own thread when it is the only one (see run.c).
	 */
	void (*observe)(struct hs_shared *shared);
	atomic_bool observe_pending;
};

/* A block a thread holds: `size` bytes requested, all of them patterned for `id`. */
struct hs_block {
	unsigned char *ptr;
	size_t size;
	uint64_t id;
};

struct hs_counts {
	uint64_t ops;
	uint64_t workload_ops[HS_WL_COUNT];
	uint64_t allocs;
	uint64_t alloc_failures;
	uint64_t aligned_allocs;
	uint64_t aligned_failures;
	uint64_t blocking_allocs;
	uint64_t blocking_timeouts;
	/* Largest time a timed-out blocking call returned after its deadline. */
	uint64_t timeout_overshoot_max_ns;
	uint64_t reallocs;
	uint64_t realloc_failures;
	uint64_t realloc_moves;
	uint64_t frees;
	uint64_t cleanup_frees;
	uint64_t produced;
	uint64_t consumed;
	/* Blocks sent to, and received from, a worker in another process. */
	uint64_t cross_sent;
	uint64_t cross_received;
	uint64_t blocks_checked;
	uint64_t bytes_checked;
};

struct hs_ring;

/*
 * A single-producer single-consumer ring in memory that every process of a
 * multi-process run maps. It carries heap offsets, never pointers: a block
 * is at region + offset in every process, wherever each mapped the heap.
 */
struct hs_xring;

/* Bytes one ring takes, a multiple of 64 so rings can sit in an array. */
size_t hs_xring_bytes(void);

/* Makes `ring` empty; before either end uses it. */
void hs_xring_init(struct hs_xring *ring);

/*
 * Adds the blocks waiting in `ring` and their usable sizes, reading the heap
 * through a view mapped at `region`. Only while neither end runs.
 */
void hs_xring_holdings(struct hs_xring *ring, struct k_heap *heap, unsigned char *region,
		       size_t region_bytes, size_t *blocks, size_t *usable_bytes);

struct hs_worker {
	struct hs_shared *shared;
	unsigned int index;
	bool storm_only;
	/* The CPU the thread was pinned to, or -1 when pinning failed. */
	int cpu;
	struct hs_rng rng;
	/* Operations to make, or 0 to run until `stop`. */
	uint64_t quota;
	uint64_t next_id;
	enum hs_workload current;
	bool cleaning;
	bool injected;
	struct hs_block *live;
	size_t live_count;
	size_t live_cap;
	size_t live_bytes;
	/* Blocks sent by the previous worker; outbox is the next worker's inbox. */
	struct hs_ring *inbox;
	struct hs_ring *outbox;
	/* The same across processes; NULL in a single-process run. */
	struct hs_xring *xinbox;
	struct hs_xring *xoutbox;
	struct hs_counts counts;
	_Atomic uint64_t ops_done;
	struct hs_hist alloc_ns;
	struct hs_hist free_ns;
	struct hs_hist realloc_ns;
	struct hs_hist wait_ns;
};

/* Prepares a worker (or a storm thread); 0, or -1 when out of memory. */
int hs_worker_init(struct hs_worker *w, struct hs_shared *shared, unsigned int index,
		   bool storm_only, uint64_t quota);
void hs_worker_destroy(struct hs_worker *w);

/* Runs bursts until `stop` is set or the quota is spent. */
void hs_worker_run(struct hs_worker *w);

/*
 * Blocks this worker accounts for (its live set and its inbox) and their
 * total usable size. Only while the worker and its producer are parked.
 * Blocks on their way from another process are not included: they are
 * counted from the ring (hs_xring_holdings) once every process is parked.
 */
void hs_worker_holdings(const struct hs_worker *w, size_t *blocks, size_t *usable_bytes);

/* Verifies and frees everything the worker holds; a no-op on a suspect heap. */
void hs_worker_cleanup(struct hs_worker *w);

/* Adds `from` into `into`. */
void hs_counts_add(struct hs_counts *into, const struct hs_counts *from);

/* Blocks taken from the heap and not given back, by these counts. */
int64_t hs_counts_outstanding(const struct hs_counts *c);

#endif
