/*
 * heapstress latency histograms: snapshots and percentiles.
 *
 * A snapshot is a plain copy, so percentiles are computed without touching
 * the live counters again; count is derived from the buckets, which keeps
 * it consistent with them even when the writer is still running.
 */
#include "hist.h"

#include <math.h>
#include <string.h>

uint64_t hs_hist_bucket_low(unsigned int index)
{
	unsigned int exp, sub;

	if (index < HS_HIST_SUB) {
		return index;
	}
	exp = index / HS_HIST_SUB + HS_HIST_SUB_BITS - 1;
	sub = index % HS_HIST_SUB;
	return (uint64_t)(HS_HIST_SUB + sub) << (exp - HS_HIST_SUB_BITS);
}

uint64_t hs_hist_bucket_high(unsigned int index)
{
	unsigned int exp;

	if (index < HS_HIST_SUB) {
		return index;
	}
	exp = index / HS_HIST_SUB + HS_HIST_SUB_BITS - 1;
	return hs_hist_bucket_low(index) + (UINT64_C(1) << (exp - HS_HIST_SUB_BITS)) - 1;
}

void hs_hist_snapshot_clear(struct hs_hist_snapshot *snap)
{
	memset(snap, 0, sizeof(*snap));
}

void hs_hist_snapshot_add(struct hs_hist_snapshot *snap, const struct hs_hist *hist)
{
	uint64_t n, max;
	unsigned int i;

	for (i = 0; i < HS_HIST_BUCKETS; i++) {
		n = atomic_load_explicit(&hist->bucket[i], memory_order_relaxed);
		snap->bucket[i] += n;
		snap->count += n;
	}
	snap->sum += atomic_load_explicit(&hist->sum, memory_order_relaxed);
	max = atomic_load_explicit(&hist->max, memory_order_relaxed);
	if (max > snap->max) {
		snap->max = max;
	}
}

void hs_hist_snapshot_merge(struct hs_hist_snapshot *snap, const struct hs_hist_snapshot *other)
{
	unsigned int i;

	for (i = 0; i < HS_HIST_BUCKETS; i++) {
		snap->bucket[i] += other->bucket[i];
	}
	snap->count += other->count;
	snap->sum += other->sum;
	if (other->max > snap->max) {
		snap->max = other->max;
	}
}

void hs_hist_snapshot_delta(struct hs_hist_snapshot *delta, const struct hs_hist_snapshot *now,
			    const struct hs_hist_snapshot *before)
{
	unsigned int i;

	hs_hist_snapshot_clear(delta);
	for (i = 0; i < HS_HIST_BUCKETS; i++) {
		delta->bucket[i] = now->bucket[i] - before->bucket[i];
		delta->count += delta->bucket[i];
	}
	delta->sum = now->sum - before->sum;
}

uint64_t hs_hist_percentile(const struct hs_hist_snapshot *snap, double q)
{
	uint64_t rank, seen = 0, value;
	unsigned int i;

	if (snap->count == 0) {
		return 0;
	}
	rank = (uint64_t)ceil(q * (double)snap->count);
	if (rank == 0) {
		rank = 1;
	}
	if (rank > snap->count) {
		rank = snap->count;
	}
	for (i = 0; i < HS_HIST_BUCKETS; i++) {
		seen += snap->bucket[i];
		if (seen >= rank) {
			value = hs_hist_bucket_high(i);
			if (snap->max != 0 && value > snap->max) {
				value = snap->max;
			}
			return value;
		}
	}
	return snap->max;
}

double hs_hist_mean(const struct hs_hist_snapshot *snap)
{
	return snap->count ? (double)snap->sum / (double)snap->count : 0.0;
}
