/*
 * heapstress options: the command line, parsed and checked into one struct.
 *
 * Invariants once hs_options_parse() returns HS_PARSE_RUN: at least one
 * workload is selected; threads >= 1; every CPU in cpus[] exists and this
 * process may run on it; 1 <= size_min <= size_max; exactly one of
 * duration_s > 0 and ops > 0 holds; 1 <= processes <= HS_MAX_PROCESSES, and
 * kill_one, crash_one only with enough processes for them (options.c);
 * the threads of all processes together are at most HS_MAX_THREADS.
 * Whether the heap is big enough for the
 * threads asked for is checked later, once the heap's own overhead is known.
 * Every refusal is one line on the error stream followed by a usage hint.
 */
#ifndef HEAPSTRESS_OPTIONS_H
#define HEAPSTRESS_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <kheap/k_heap.h>

#define HS_MAX_CPUS    1024
#define HS_MAX_THREADS 4096
/* Worker processes on one shared heap: the parent is attached to it too. */
#define HS_MAX_PROCESSES (KHEAP_SHARED_MAX_PROCESSES - 1)

enum hs_workload {
	HS_WL_RANDOM,
	HS_WL_POWERLAW,
	HS_WL_PRODCONS,
	HS_WL_FRAG,
	HS_WL_STORM,
	HS_WL_REALLOC,
	HS_WL_ALIGNED,
	HS_WL_COUNT,
};

#define HS_WL_ALL ((1u << HS_WL_COUNT) - 1)

enum hs_size_dist {
	/* Each workload uses its own shape over [size_min, size_max]. */
	HS_DIST_PER_WORKLOAD,
	HS_DIST_UNIFORM,
	HS_DIST_POWERLAW,
	HS_DIST_FIXED,
};

enum hs_inject {
	HS_INJECT_NONE,
	/* Flip a byte inside a live block: user data corruption. */
	HS_INJECT_PATTERN,
	/* Overwrite the chunk header just past a live block: an overrun. */
	HS_INJECT_HEADER,
};

struct hs_options {
	unsigned int workloads;
	unsigned int threads;
	/* Extra threads that only run the storm workload; -1 means default. */
	int storm_threads;
	int cpus[HS_MAX_CPUS];
	unsigned int ncpus;
	bool cpus_given;
	/* 0 until resolved: the default depends on the thread count. */
	size_t heap_size;
	enum hs_size_dist size_dist;
	size_t size_min;
	size_t size_max;
	double duration_s;
	uint64_t ops;
	uint64_t seed;
	bool seed_given;
	bool caches;
	double validate_interval_s;
	const char *json_path;
	const char *svg_path;
	bool quiet;
	enum hs_inject inject;
	/* Worker processes sharing one heap; 1 runs everything in this process. */
	unsigned int processes;
	/* SIGKILL the last worker process halfway through and reclaim its blocks. */
	bool kill_one;
	/* Let its threads finish their heap calls and park before the kill. */
	bool kill_parked;
	/* Test hook: the first worker process crashes (SIGSEGV) halfway through. */
	bool crash_one;
};

enum hs_parse_result {
	HS_PARSE_RUN,
	/* --help was printed; exit 0. */
	HS_PARSE_HELP,
	/* An error line and a usage hint were printed; exit 2. */
	HS_PARSE_ERROR,
};

/* Parses argv into `opt`, writing help to `out` and errors to `err`. */
enum hs_parse_result hs_options_parse(struct hs_options *opt, int argc, char **argv, FILE *out,
				      FILE *err);

/* Prints "heapstress: <message>" and the usage hint to `err`. */
void hs_usage_error(FILE *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "123", "64K", "16M", "1G", "2KiB": binary multiples. 0 on success, -1 if malformed. */
int hs_parse_bytes(const char *text, uint64_t *bytes);

/* "0-3,6": fills `cpus` ascending without duplicates. Returns the count or -1. */
int hs_parse_cpu_list(const char *text, int *cpus, unsigned int max_cpus);

/* "10", "2.5", "500ms", "1s", "2m". 0 on success, -1 if malformed or negative. */
int hs_parse_seconds(const char *text, double *seconds);

/* Name of a workload, e.g. "prodcons". */
const char *hs_workload_name(enum hs_workload workload);

/* Name of a size distribution, e.g. "powerlaw". */
const char *hs_size_dist_name(enum hs_size_dist dist);

/* Writes "0-3,6" for `cpus` into buf. */
void hs_format_cpu_list(const int *cpus, unsigned int ncpus, char *buf, size_t len);

/* Writes "16.0 MiB" style sizes into buf. */
void hs_format_bytes(uint64_t bytes, char *buf, size_t len);

#endif
