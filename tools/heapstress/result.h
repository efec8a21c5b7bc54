/*
 * heapstress results: everything a finished run hands to the report, JSON
 * and SVG writers. Plain data, filled by the runner after every thread has
 * been joined; the writers only read it.
 */
#ifndef HEAPSTRESS_RESULT_H
#define HEAPSTRESS_RESULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kheap/k_heap.h>

#include "failures.h"
#include "hist.h"
#include "options.h"
#include "workloads.h"

#define HS_MAX_CHECKS 32

struct hs_cpu_result {
	/* -1 collects threads that could not be pinned. */
	int cpu;
	unsigned int workers;
	unsigned int storm_threads;
	uint64_t ops;
	struct hs_hist_snapshot alloc;
	struct hs_hist_snapshot free;
};

/* One point of the time series, taken every sample interval. */
struct hs_sample {
	double t;
	/* Operations so far: by every thread, and by workers alone. */
	uint64_t ops;
	uint64_t worker_ops;
	double ops_per_s;
	size_t allocated_bytes;
	size_t cached_bytes;
	unsigned int waiters;
	uint64_t alloc_p50_ns;
	uint64_t alloc_p99_ns;
	uint64_t free_p99_ns;
};

struct hs_chunk {
	size_t offset;
	size_t bytes;
	enum k_heap_chunk_state state;
	int cpu;
};

#define HS_CHUNK_STATES 4

/* The heap as k_heap_walk saw it when the run stopped, before cleanup. */
struct hs_heap_map {
	bool available;
	/* Out of memory while recording the walk: some chunks are missing. */
	bool truncated;
	char unavailable_reason[96];
	struct hs_chunk *chunks;
	size_t count;
	size_t cap;
	size_t region_bytes;
	size_t state_bytes[HS_CHUNK_STATES];
	size_t state_chunks[HS_CHUNK_STATES];
	size_t largest_free;
	int max_cpu;
	/* Some cached chunk sits in the heap's depot (K_HEAP_WALK_DEPOT). */
	bool has_depot;
};

struct hs_check {
	const char *name;
	bool passed;
	char detail[192];
};

/* How a worker process of a multi-process run ended. */
enum hs_proc_end {
	/* Never forked, or still running when the run gave up on it. */
	HS_PROC_NOT_ENDED,
	/* Exited by itself; exit_code says how. */
	HS_PROC_EXITED,
	/* SIGKILLed by --kill-one, as asked. */
	HS_PROC_KILLED,
	/* Ended by a signal nobody asked for, or exited before the run ended. */
	HS_PROC_DIED,
};

struct hs_proc_result {
	unsigned int index;
	long pid;
	/* Where this process mapped the heap, and the owner tag its blocks carry. */
	uintptr_t mapping;
	uint32_t owner_tag;
	unsigned int workers;
	unsigned int storm_threads;
	/* Summed over its threads; partial for a process that did not exit. */
	struct hs_counts counts;
	enum hs_proc_end end;
	int exit_code;
	int signal;
	/* Seconds into the run when it was killed or died. */
	double ended_at_s;
	/* What k_heap_reclaim_dead freed when this process alone was found dead. */
	bool reclaimed_known;
	struct k_heap_reclaimed reclaimed;
};

/*
 * One step of the wake-up relay: with every other thread idle, `filler`
 * fills the heap, `waiter` blocks in k_heap_alloc, and `filler` frees one
 * block once it sees the waiter queued. Written by the two processes.
 */
struct hs_relay_step {
	unsigned int filler;
	unsigned int waiter;
	uint32_t filled_blocks;
	/* The filler saw the waiter queued in the heap before it freed. */
	bool waiter_seen;
	bool served;
	/* Both blocks carried the owner tag of the process that allocated them. */
	bool filler_owner_ok;
	bool waiter_owner_ok;
	uint64_t wait_ns;
};

struct hs_procs_result {
	unsigned int count;
	long parent_pid;
	uintptr_t parent_mapping;
	bool distinct_mappings;
	/* The process --kill-one kills, or -1; parked: its threads were parked first. */
	int victim;
	bool victim_parked;
	struct hs_proc_result proc[HS_MAX_PROCESSES];
	/* Everything k_heap_reclaim_dead freed during the run. */
	unsigned int reclaim_calls;
	struct k_heap_reclaimed reclaimed;
	/* The call after every process exited: nothing should be left to find. */
	bool final_reclaim_done;
	struct k_heap_reclaimed final_reclaim;
	size_t relay_block;
	unsigned int relay_steps;
	struct hs_relay_step relay[HS_MAX_PROCESSES];
};

struct hs_result {
	const struct hs_options *opt;
	uint64_t seed;
	bool passed;
	double elapsed_s;
	unsigned int workers;
	unsigned int storm_threads;
	unsigned int unpinned;
	size_t heap_bytes;
	size_t initial_free;
	/* allocated_bytes of the fresh heap: the value it must return to. */
	size_t initial_allocated;
	size_t worker_budget;
	size_t storm_block;
	struct hs_counts worker_counts;
	struct hs_counts storm_counts;
	struct hs_counts total;
	struct hs_cpu_result *cpus;
	unsigned int ncpus;
	struct hs_hist_snapshot alloc;
	struct hs_hist_snapshot free;
	struct hs_hist_snapshot realloc;
	struct hs_hist_snapshot wait;
	struct hs_sample *samples;
	size_t nsamples;
	size_t samples_cap;
	struct hs_heap_map map;
	bool have_stop_stats;
	struct sys_memory_stats at_stop;
	size_t peak_allocated;
	double mean_used_fraction;
	struct k_heap_counters counters;
	unsigned int validations;
	unsigned int validation_failures;
	double validate_max_ms;
	struct hs_check checks[HS_MAX_CHECKS];
	unsigned int nchecks;
	struct hs_failures *failures;
	/* A multi-process run's processes, or NULL. */
	const struct hs_procs_result *procs;
};

#endif
