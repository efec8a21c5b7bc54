/*
 * heapstress runner internals, shared by run.c (setup, threads, sampling,
 * reports) and checks.c (the consistency checks). Nothing else includes it.
 *
 * Threads: the main thread owns the runner. Worker and storm threads touch
 * only their own struct hs_worker, the shared state in `shared`, and the
 * fields `lock` guards. While every thread is parked (phase 3 in run.c) the
 * main thread may read every worker's live set and inbox.
 */
#ifndef HEAPSTRESS_RUNNER_H
#define HEAPSTRESS_RUNNER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <kheap/kheap.h>

#include "failures.h"
#include "hist.h"
#include "options.h"
#include "result.h"
#include "workloads.h"

#define HS_NS_PER_S 1000000000ull

struct hs_runner;

struct hs_thread {
	struct hs_runner *runner;
	int pin_cpu;
	pthread_t tid;
	struct hs_worker worker;
};

enum hs_gate_state {
	HS_GATE_CLOSED,
	HS_GATE_OPEN,
	HS_GATE_ABORT,
};

struct hs_runner {
	const struct hs_options *opt;
	FILE *out;
	FILE *err;
	FILE *json;
	FILE *svg;
	struct k_heap heap;
	unsigned char *region;
	/* Initialised and not yet torn down: the region must stay mapped. */
	bool heap_live;
	struct hs_shared shared;
	struct hs_failures failures;
	struct hs_thread *threads;
	unsigned int nthreads;
	unsigned int created;
	/*
	 * `lock` guards gate through observe_done; `wake` wakes the main
	 * thread, `go` the others.
	 */
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_cond_t go;
	enum hs_gate_state gate;
	bool released;
	bool stop_requested;
	unsigned int workers_finished;
	unsigned int parked;
	unsigned int observe_request;
	bool observe_done;
	/*
	 * The rest belongs to the main thread, except that during a delegated
	 * observation (single-thread runs, see run.c) the worker fills
	 * observed_* and the validation counts while the main thread waits.
	 */
	bool delegate;
	struct sys_memory_stats observed_stats;
	unsigned int observed_waiters;
	bool tty;
	uint64_t start_ns;
	uint64_t end_ns;
	uint64_t prev_sample_ns;
	uint64_t prev_ops;
	uint64_t last_progress_ns;
	struct hs_hist_snapshot prev_alloc;
	struct hs_hist_snapshot prev_free;
	struct hs_hist_snapshot cur_alloc;
	struct hs_hist_snapshot cur_free;
	struct hs_hist_snapshot delta;
	struct hs_result result;
};

/* Runs sys_heap_validate and records its outcome; `when` names the moment. */
void hs_validate(struct hs_runner *r, const char *when);

/* With every thread parked: walks the heap and checks it against what the threads hold. */
void hs_inspect(struct hs_runner *r);

/* With every thread joined: sums counts and histograms, overall and per CPU. 0 or -1. */
int hs_collect(struct hs_runner *r);

/* With every thread joined: accounting, leak and teardown checks. */
void hs_final_checks(struct hs_runner *r);

#endif
