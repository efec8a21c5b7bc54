/*
 * A C window on heapstress's histograms for the C++ tests: hist.h uses C11
 * atomics, which C++17 cannot include, so the tests reach it through these
 * plain functions.
 */
#ifndef KHEAP_TESTS_TOOLS_HIST_PROBE_H
#define KHEAP_TESTS_TOOLS_HIST_PROBE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

unsigned int hist_probe_buckets(void);
unsigned int hist_probe_index(uint64_t value);
uint64_t hist_probe_low(unsigned int index);
uint64_t hist_probe_high(unsigned int index);

/* Records `count` values into a fresh histogram and reads quantile `q` back. */
uint64_t hist_probe_percentile(const uint64_t *values, size_t count, double q);

/* Records `count` values and returns how many the histogram holds. */
uint64_t hist_probe_count(const uint64_t *values, size_t count);

#ifdef __cplusplus
}
#endif

#endif
