/*
 * heapstress reports: the final table on stdout and the same facts as JSON.
 *
 * Both read a finished hs_result and never touch the heap. The JSON is one
 * object; its keys are stable so scripts and tests can rely on them:
 * status, seed, config, elapsed_s, ops, ops_per_s, per_cpu, latency_ns,
 * heap, processes (multi-process runs only), cache, blocking, validation,
 * checks, errors, faults, samples.
 */
#ifndef HEAPSTRESS_REPORT_H
#define HEAPSTRESS_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "result.h"

void hs_report_table(FILE *out, const struct hs_result *res);

/* 0, or -1 when writing failed. */
int hs_report_json(FILE *f, const struct hs_result *res);

/* "850 ns", "1.24 us", "3.10 ms": a latency in nanoseconds for people. */
void hs_format_ns(uint64_t ns, char *buf, size_t len);

#endif
