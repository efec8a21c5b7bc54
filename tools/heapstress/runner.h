/*
 * heapstress runner internals, shared by run.c (setup, threads, sampling,
 * reports), checks.c (the consistency checks) and procs.c (multi-process
 * runs). Nothing else includes it.
 *
 * Threads: the main thread owns the runner. Worker and storm threads touch
 * only their own struct hs_worker, the shared state in `shared`, and the
 * fields `lock` guards. While every thread is parked (phase 3 in run.c) the
 * main thread may read every worker's live set and inbox.
 *
 * In a multi-process run the parent's runner has no threads of its own:
 * `threads` points at every process's threads in the coordination area
 * (procs.c), whose counters and histograms the parent only reads. Each
 * child has a runner of its own whose `threads` is its slice of that array.
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
struct hs_procs;

struct hs_thread {
	struct hs_runner *runner;
	int pin_cpu;
	/* Its process died before the run ended: its counts are partial and left out. */
	bool lost;
	pthread_t tid;
	struct hs_worker worker;
};

enum hs_observation {
	HS_OBSERVE_SAMPLE = 1u << 0,
	HS_OBSERVE_VALIDATE = 1u << 1,
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
	/* `threads` lives in the coordination area and is not this runner's to free. */
	bool threads_borrowed;
	/* A multi-process run's coordination (procs.c), or NULL. */
	struct hs_procs *procs;
	/* This process's number among the worker processes; 0 in a single-process run. */
	unsigned int proc_index;
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

/* run.c: the steps of a run, which procs.c also puts together for its processes. */

struct hs_runner *hs_runner_new(const struct hs_options *opt, FILE *out, FILE *err);

/*
 * Prepares this process's worker and storm threads, not yet started: in
 * `threads` when given (room for opt->threads + opt->storm_threads), else in
 * an array of its own. Thread i of process p is number p * (threads per
 * process) + i in ids, random streams and messages. 0, or -1 after an error.
 */
int hs_setup_threads(struct hs_runner *r, struct hs_thread *threads);

/* Creates the threads and opens the gate. 0, or -1 after an error (exit 2). */
int hs_start_threads(struct hs_runner *r);

/* Observes the heap (stats, validation), through the only worker when delegating. */
void hs_observe(struct hs_runner *r, unsigned int what);

/* When the driving thread next samples, validates, and stops (run.c). */
struct hs_clock {
	uint64_t interval, vinterval;
	uint64_t next_sample, next_validate, deadline;
};

/* Starts the clock at r->start_ns from the options. */
void hs_clock_start(struct hs_runner *r, struct hs_clock *clock);
/* The earliest of the next sample, validation and the deadline. */
uint64_t hs_clock_next(const struct hs_clock *clock);
/* Samples and validates as far as they are due at `now`. */
void hs_clock_tick(struct hs_runner *r, struct hs_clock *clock, uint64_t now);

/* Records a sample from the latest observation and every thread's counters. */
void hs_record_sample(struct hs_runner *r, uint64_t now, bool show);

/* Waits until every thread parked; exits 1 at once when one is stuck in the heap. */
void hs_park(struct hs_runner *r);

/* Lets parked threads free what they hold and exit, and joins them. */
void hs_release_and_join(struct hs_runner *r);

/* Makes `r` the run that heap faults and the first failure report to. */
void hs_report_faults_to(struct hs_runner *r);

/* checks.c */

/* Records one check in the result; a failed one is also a failure of the run. */
void hs_check(struct hs_runner *r, const char *name, bool passed, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Runs sys_heap_validate and records its outcome; `when` names the moment. */
void hs_validate(struct hs_runner *r, const char *when);

/* With every thread parked: walks the heap and checks it against what the threads hold. */
void hs_inspect(struct hs_runner *r);

/* With every thread joined: sums counts and histograms, overall and per CPU. 0 or -1. */
int hs_collect(struct hs_runner *r);

/* With every thread joined: accounting, leak and teardown checks. */
void hs_final_checks(struct hs_runner *r);

#endif
