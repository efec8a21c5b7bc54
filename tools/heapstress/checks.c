/*
 * heapstress checks: everything that compares the heap with what the
 * threads did. Each check is recorded in the result with its outcome and a
 * detail line; a failed one is also a failure of the run (exit status 1).
 *
 * The order matters: hs_inspect runs while every thread is parked and still
 * holds its blocks; hs_collect and hs_final_checks run after every thread
 * freed what it held and was joined.
 *
 * In a multi-process run the parent makes these checks for all processes:
 * what the threads hold comes from what each process published when it
 * parked, and the threads of a process that did not live to the end are
 * left out of the sums (hs_thread.lost). When a process died unasked, the
 * blocks it held or had in flight cannot be accounted for, so the checks
 * that need every block are skipped (the run fails on the death itself).
 */
#include "runner.h"

#include <stdarg.h>
#include <stdlib.h>

#include "procs.h"

void hs_check(struct hs_runner *r, const char *name, bool passed, const char *fmt, ...)
{
	struct hs_check *check;
	va_list ap;

	if (r->result.nchecks == HS_MAX_CHECKS) {
		return;
	}
	check = &r->result.checks[r->result.nchecks++];
	check->name = name;
	check->passed = passed;
	va_start(ap, fmt);
	vsnprintf(check->detail, sizeof(check->detail), fmt, ap);
	va_end(ap);
	if (!passed) {
		hs_fail(&r->failures, false, "check '%s' failed: %s", name, check->detail);
	}
}

void hs_validate(struct hs_runner *r, const char *when)
{
	uint64_t t0 = hs_now_ns();
	bool ok = sys_heap_validate(&r->heap.heap);
	double ms = (double)(hs_now_ns() - t0) / 1e6;

	r->result.validations++;
	if (ms > r->result.validate_max_ms) {
		r->result.validate_max_ms = ms;
	}
	if (!ok) {
		r->result.validation_failures++;
		hs_fail(&r->failures, true, "sys_heap_validate found the heap inconsistent %s",
			when);
	}
}

static void hs_walk_visit(void *arg, size_t offset, size_t bytes, enum k_heap_chunk_state state,
			  int cpu)
{
	struct hs_heap_map *map = arg;
	struct hs_chunk *grown;
	size_t cap;

	if (map->count == map->cap) {
		cap = map->cap ? map->cap * 2 : 4096;
		grown = realloc(map->chunks, cap * sizeof(*grown));
		if (grown == NULL) {
			map->truncated = true;
			return;
		}
		map->chunks = grown;
		map->cap = cap;
	}
	map->chunks[map->count].offset = offset;
	map->chunks[map->count].bytes = bytes;
	map->chunks[map->count].state = state;
	map->chunks[map->count].cpu = cpu;
	map->count++;
	if ((unsigned int)state < HS_CHUNK_STATES) {
		map->state_bytes[state] += bytes;
		map->state_chunks[state]++;
	}
	if (state == K_HEAP_CHUNK_FREE && bytes > map->largest_free) {
		map->largest_free = bytes;
	}
	if (cpu > map->max_cpu) {
		map->max_cpu = cpu;
	}
	if (cpu == K_HEAP_WALK_DEPOT) {
		map->has_depot = true;
	}
}

/* Checks that the walk tiles the region: chunks in order, no gap, no overlap. */
static void hs_check_walk(struct hs_runner *r)
{
	const struct hs_heap_map *map = &r->result.map;
	size_t i;

	for (i = 0; i < map->count; i++) {
		const struct hs_chunk *c = &map->chunks[i];

		if ((unsigned int)c->state >= HS_CHUNK_STATES || c->bytes == 0 ||
		    c->offset + c->bytes > map->region_bytes ||
		    (i > 0 && c->offset != map->chunks[i - 1].offset + map->chunks[i - 1].bytes)) {
			hs_check(r, "heap walk tiles the region", false,
				 "chunk %zu (offset 0x%zx, %zu bytes, state %d) breaks the tiling",
				 i, c->offset, c->bytes, (int)c->state);
			return;
		}
	}
	hs_check(r, "heap walk tiles the region", map->count > 0, "%zu chunks", map->count);
}

/*
 * allocated_bytes against the usable sizes of the blocks held. A heap that
 * keeps trailers (hardening FULL and above, which every shared heap runs
 * at) reports the requested size as a block's usable size while
 * allocated_bytes counts whole chunks, the 8-byte trailer included, so
 * there it can only be checked as a lower bound.
 */
static void hs_check_allocated(struct hs_runner *r, size_t held_blocks, size_t held_usable)
{
	struct hs_result *res = &r->result;
	size_t held = res->initial_allocated + held_usable;
	size_t allocated = res->at_stop.allocated_bytes;

	if (sys_heap_get_hardening(&r->heap.heap) < SYS_HEAP_HARDENING_FULL) {
		hs_check(r, "allocated_bytes == bytes held", allocated == held,
			 "allocated_bytes is %zu; the held blocks' usable sizes add up to %zu, "
			 "and the fresh heap had %zu",
			 allocated, held_usable, res->initial_allocated);
		return;
	}
	hs_check(r, "allocated_bytes covers bytes held", allocated >= held,
		 "allocated_bytes is %zu; the held blocks' requested sizes add up to %zu, and "
		 "the fresh heap had %zu (%.1f bytes a block of trailer and rounding)",
		 allocated, held_usable, res->initial_allocated,
		 held_blocks != 0 ? ((double)allocated - (double)held) / (double)held_blocks : 0.0);
}

/* Still phase 3: with every thread parked, compare the heap with what they hold. */
void hs_inspect(struct hs_runner *r)
{
	struct hs_result *res = &r->result;
	size_t held_blocks = 0, held_usable = 0, blocks, usable;
	bool complete = true;
	unsigned int i;
	int rc;

	res->map.region_bytes = r->opt->heap_size;
	res->map.max_cpu = -1;
	if (hs_heap_suspect(&r->failures)) {
		snprintf(res->map.unavailable_reason, sizeof(res->map.unavailable_reason),
			 "not drawn: the heap is corrupt");
		return;
	}
	if (k_heap_runtime_stats_get(&r->heap, &res->at_stop) == 0) {
		res->have_stop_stats = true;
	}
	if (r->procs != NULL) {
		complete = hs_procs_holdings(r, &held_blocks, &held_usable);
	} else {
		for (i = 0; i < r->nthreads; i++) {
			hs_worker_holdings(&r->threads[i].worker, &blocks, &usable);
			held_blocks += blocks;
			held_usable += usable;
		}
	}
	rc = k_heap_walk(&r->heap, hs_walk_visit, &res->map);
	if (rc != 0) {
		snprintf(res->map.unavailable_reason, sizeof(res->map.unavailable_reason),
			 "not drawn: k_heap_walk returned %d", rc);
		hs_check(r, "heap walk succeeds", false, "k_heap_walk returned %d", rc);
	} else if (res->map.truncated) {
		snprintf(res->map.unavailable_reason, sizeof(res->map.unavailable_reason),
			 "not drawn: out of memory recording %zu chunks", res->map.count);
	} else {
		res->map.available = true;
		hs_check_walk(r);
	}
	if (res->map.available && complete) {
		hs_check(r, "used chunks == blocks held",
			 res->map.state_chunks[K_HEAP_CHUNK_USED] == held_blocks,
			 "the walk found %zu used chunks, the threads hold %zu blocks",
			 res->map.state_chunks[K_HEAP_CHUNK_USED], held_blocks);
	}
	if (res->have_stop_stats && complete) {
		hs_check_allocated(r, held_blocks, held_usable);
	}
	hs_validate(r, "with every thread parked");
}

static struct hs_cpu_result *hs_cpu_slot(struct hs_result *res, int cpu)
{
	unsigned int i;

	for (i = 0; i < res->ncpus; i++) {
		if (res->cpus[i].cpu == cpu) {
			return &res->cpus[i];
		}
	}
	res->cpus[res->ncpus].cpu = cpu;
	return &res->cpus[res->ncpus++];
}

/* Sums counts and histograms over threads, and per CPU. */
int hs_collect(struct hs_runner *r)
{
	struct hs_result *res = &r->result;
	struct hs_cpu_result *slot;
	unsigned int i;
	double used = 0;

	res->elapsed_s = (double)(r->end_ns - r->start_ns) / 1e9;
	res->worker_budget = r->shared.worker_budget;
	res->storm_block = r->shared.storm_block;
	res->cpus = calloc(r->opt->ncpus + 1, sizeof(*res->cpus));
	if (res->cpus == NULL) {
		return -1;
	}
	for (i = 0; i < r->opt->ncpus; i++) {
		hs_cpu_slot(res, r->opt->cpus[i]);
	}
	for (i = 0; i < r->nthreads; i++) {
		const struct hs_worker *w = &r->threads[i].worker;

		if (r->threads[i].lost) {
			continue;
		}
		if (w->storm_only) {
			res->storm_threads++;
		} else {
			res->workers++;
		}
		hs_counts_add(w->storm_only ? &res->storm_counts : &res->worker_counts, &w->counts);
		hs_counts_add(&res->total, &w->counts);
		hs_hist_snapshot_add(&res->alloc, &w->alloc_ns);
		hs_hist_snapshot_add(&res->free, &w->free_ns);
		hs_hist_snapshot_add(&res->realloc, &w->realloc_ns);
		hs_hist_snapshot_add(&res->wait, &w->wait_ns);
		slot = hs_cpu_slot(res, w->cpu);
		if (w->storm_only) {
			slot->storm_threads++;
		} else {
			slot->workers++;
		}
		slot->ops += w->counts.ops;
		hs_hist_snapshot_add(&slot->alloc, &w->alloc_ns);
		hs_hist_snapshot_add(&slot->free, &w->free_ns);
		if (w->cpu < 0) {
			res->unpinned++;
		}
	}
	for (i = 0; i < res->nsamples; i++) {
		used += (double)res->samples[i].allocated_bytes;
	}
	if (res->nsamples > 0) {
		res->mean_used_fraction = used / (double)res->nsamples / (double)res->heap_bytes;
	}
	return 0;
}

static uint64_t hs_hist_count(const struct hs_hist *hist)
{
	struct hs_hist_snapshot *snap = malloc(sizeof(*snap));
	uint64_t count;

	if (snap == NULL) {
		return UINT64_MAX;
	}
	hs_hist_snapshot_clear(snap);
	hs_hist_snapshot_add(snap, hist);
	count = snap->count;
	free(snap);
	return count;
}

/*
 * Every heap call a thread made is counted once, in its counters and its
 * histograms; without an earlier failure, each worker met its quota.
 */
static void hs_check_accounting(struct hs_runner *r, bool stopped_early)
{
	unsigned int i, wl;

	for (i = 0; i < r->nthreads; i++) {
		const struct hs_worker *w = &r->threads[i].worker;
		const struct hs_counts *c = &w->counts;
		uint64_t calls = c->allocs + c->aligned_allocs + c->blocking_allocs + c->reallocs +
				 c->frees - c->cleanup_frees;
		uint64_t by_workload = 0;

		if (r->threads[i].lost) {
			continue;
		}
		for (wl = 0; wl < HS_WL_COUNT; wl++) {
			by_workload += c->workload_ops[wl];
		}
		if (c->ops != calls || c->ops != by_workload ||
		    c->ops != atomic_load(&w->ops_done) ||
		    hs_hist_count(&w->alloc_ns) != c->allocs + c->aligned_allocs ||
		    hs_hist_count(&w->free_ns) != c->frees ||
		    hs_hist_count(&w->realloc_ns) != c->reallocs ||
		    hs_hist_count(&w->wait_ns) != c->blocking_allocs) {
			hs_check(r, "ops counted == ops done", false,
				 "thread %u: %llu ops counted, %llu calls made, %llu by workload",
				 i, (unsigned long long)c->ops, (unsigned long long)calls,
				 (unsigned long long)by_workload);
			return;
		}
		if (w->quota != 0 && c->ops != w->quota && !stopped_early) {
			hs_check(r, "ops counted == ops done", false,
				 "thread %u made %llu ops, its quota was %llu", i,
				 (unsigned long long)c->ops, (unsigned long long)w->quota);
			return;
		}
	}
	hs_check(r, "ops counted == ops done", true, "%llu ops by %u threads",
		 (unsigned long long)r->result.total.ops,
		 r->result.workers + r->result.storm_threads);
}

/* Operations the workers that lived to the end were asked for. */
static uint64_t hs_quota_kept(const struct hs_runner *r)
{
	uint64_t quota = r->opt->ops;
	unsigned int i;

	for (i = 0; i < r->nthreads; i++) {
		if (r->threads[i].lost) {
			quota -= r->threads[i].worker.quota;
		}
	}
	return quota;
}

/* Phase 5: after cleanup, everything the run took must be back. */
void hs_final_checks(struct hs_runner *r)
{
	struct hs_result *res = &r->result;
	const struct hs_counts *t = &res->total;
	struct sys_memory_stats stats = {0};
	bool accounted = r->procs == NULL || hs_procs_accounted(r);
	/*
	 * A failure stops workers short of their quota; so may a planted
	 * corruption, and the death of a process.
	 */
	bool stopped_early =
	    hs_failed(&r->failures) || r->opt->inject != HS_INJECT_NONE || !accounted;
	uint64_t quota = hs_quota_kept(r);
	int rc;

	hs_check_accounting(r, stopped_early);
	if (r->opt->ops != 0 && !stopped_early) {
		hs_check(r, "worker ops == --ops", res->worker_counts.ops == quota,
			 "%llu of %llu%s", (unsigned long long)res->worker_counts.ops,
			 (unsigned long long)quota,
			 quota != r->opt->ops ? " (the killed process's share left out)" : "");
	}
	res->peak_allocated = r->observed_stats.max_allocated_bytes;
	if (hs_heap_suspect(&r->failures)) {
		if (r->procs != NULL) {
			hs_procs_final_checks(r);
		}
		return;
	}
	if (accounted) {
		hs_check(r, "no lost blocks", hs_counts_outstanding(t) == 0,
			 "%lld blocks were allocated and never freed",
			 (long long)hs_counts_outstanding(t));
		hs_check(r, "every block sent was received", t->produced == t->consumed,
			 "%llu produced, %llu consumed", (unsigned long long)t->produced,
			 (unsigned long long)t->consumed);
		rc = k_heap_runtime_stats_get(&r->heap, &stats);
		hs_check(
		    r, "no leaked bytes",
		    rc == 0 && stats.allocated_bytes == res->initial_allocated,
		    "allocated_bytes is %zu after every block was freed (%zu on the fresh heap)",
		    stats.allocated_bytes, res->initial_allocated);
	}
	k_heap_drain_caches(&r->heap);
	rc = k_heap_runtime_stats_get(&r->heap, &stats);
	hs_check(r, "caches drain to zero", rc == 0 && stats.cached_bytes == 0,
		 "cached_bytes is %zu after k_heap_drain_caches", stats.cached_bytes);
	if (accounted) {
		hs_check(r, "free space fully restored",
			 rc == 0 && stats.free_bytes == res->initial_free,
			 "free_bytes is %zu, it was %zu on the fresh heap (%+lld bytes)",
			 stats.free_bytes, res->initial_free,
			 (long long)stats.free_bytes - (long long)res->initial_free);
	}
	res->peak_allocated = stats.max_allocated_bytes;
	k_heap_counters_get(&r->heap, &res->counters);
	if (!r->opt->caches) {
		hs_check(r, "no cache hits with caches off", res->counters.cache_hits == 0,
			 "%llu cache hits", (unsigned long long)res->counters.cache_hits);
	}
	hs_validate(r, "after cleanup");
	if (r->procs != NULL) {
		hs_procs_final_checks(r);
		return;
	}
	rc = k_heap_deinit(&r->heap);
	r->heap_live = rc != 0;
	hs_check(r, "empty heap deinitialises", rc == 0, "k_heap_deinit returned %d", rc);
}
