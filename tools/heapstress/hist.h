/*
 * heapstress latency histograms: log-linear buckets, one writer, any readers.
 *
 * Values (nanoseconds) below 16 get a bucket each; above, every power of two
 * is split into 16 equal buckets, so a bucket's width is at most 1/16 of its
 * lower bound and any percentile read back is within 6.25% of the truth.
 * Values from 2^40 ns (about 18 minutes) up share the top bucket. The
 * maximum is kept exactly.
 *
 * Recording is a handful of instructions: the owning thread is the only
 * writer, so each counter is bumped with a relaxed load and store (plain
 * moves on common CPUs, no locked instruction). Other threads may take a
 * snapshot at any time and see each counter whole, possibly a few events
 * behind; a snapshot taken after the writer is joined is exact.
 */
#ifndef HEAPSTRESS_HIST_H
#define HEAPSTRESS_HIST_H

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#define HS_HIST_SUB_BITS 4
#define HS_HIST_SUB	 (1u << HS_HIST_SUB_BITS)
#define HS_HIST_MAX_EXP	 40
#define HS_HIST_BUCKETS	 ((HS_HIST_MAX_EXP - HS_HIST_SUB_BITS + 1) * HS_HIST_SUB)

struct hs_hist {
	_Atomic uint64_t bucket[HS_HIST_BUCKETS];
	_Atomic uint64_t sum;
	_Atomic uint64_t max;
};

struct hs_hist_snapshot {
	uint64_t bucket[HS_HIST_BUCKETS];
	uint64_t count;
	uint64_t sum;
	uint64_t max;
};

static inline uint64_t hs_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline unsigned int hs_hist_index(uint64_t value)
{
	unsigned int exp;

	if (value < HS_HIST_SUB) {
		return (unsigned int)value;
	}
	if (value >= (UINT64_C(1) << HS_HIST_MAX_EXP)) {
		value = (UINT64_C(1) << HS_HIST_MAX_EXP) - 1;
	}
	exp = 63u - (unsigned int)__builtin_clzll(value);
	return (exp - HS_HIST_SUB_BITS + 1) * HS_HIST_SUB +
	       (unsigned int)((value >> (exp - HS_HIST_SUB_BITS)) & (HS_HIST_SUB - 1));
}

static inline void hs_counter_add(_Atomic uint64_t *counter, uint64_t by)
{
	atomic_store_explicit(counter, atomic_load_explicit(counter, memory_order_relaxed) + by,
			      memory_order_relaxed);
}

/* Only the owning thread may record. */
static inline void hs_hist_record(struct hs_hist *hist, uint64_t value)
{
	hs_counter_add(&hist->bucket[hs_hist_index(value)], 1);
	hs_counter_add(&hist->sum, value);
	if (value > atomic_load_explicit(&hist->max, memory_order_relaxed)) {
		atomic_store_explicit(&hist->max, value, memory_order_relaxed);
	}
}

/* Smallest and largest value that land in bucket `index`. */
uint64_t hs_hist_bucket_low(unsigned int index);
uint64_t hs_hist_bucket_high(unsigned int index);

void hs_hist_snapshot_clear(struct hs_hist_snapshot *snap);

/* Adds the current contents of `hist` to `snap`. */
void hs_hist_snapshot_add(struct hs_hist_snapshot *snap, const struct hs_hist *hist);

/* Adds `other` to `snap`. */
void hs_hist_snapshot_merge(struct hs_hist_snapshot *snap, const struct hs_hist_snapshot *other);

/* The events in `now` that are not in `before` (an earlier snapshot); max is unknown (0). */
void hs_hist_snapshot_delta(struct hs_hist_snapshot *delta, const struct hs_hist_snapshot *now,
			    const struct hs_hist_snapshot *before);

/*
 * The value at quantile `q` (0 < q <= 1): the upper bound of the bucket
 * holding that rank, never above the recorded maximum. 0 when empty.
 */
uint64_t hs_hist_percentile(const struct hs_hist_snapshot *snap, double q);

/* Mean value; 0 when empty. */
double hs_hist_mean(const struct hs_hist_snapshot *snap);

#endif
