/* Plain-function wrappers over heapstress's histograms; see hist_probe.h. */
#include "hist_probe.h"

#include <stdlib.h>

#include "tools/heapstress/hist.h"

unsigned int hist_probe_buckets(void)
{
	return HS_HIST_BUCKETS;
}

unsigned int hist_probe_index(uint64_t value)
{
	return hs_hist_index(value);
}

uint64_t hist_probe_low(unsigned int index)
{
	return hs_hist_bucket_low(index);
}

uint64_t hist_probe_high(unsigned int index)
{
	return hs_hist_bucket_high(index);
}

static struct hs_hist_snapshot *hist_probe_fill(const uint64_t *values, size_t count)
{
	struct hs_hist *hist = calloc(1, sizeof(*hist));
	struct hs_hist_snapshot *snap = calloc(1, sizeof(*snap));
	size_t i;

	if (hist == NULL || snap == NULL) {
		abort();
	}
	for (i = 0; i < count; i++) {
		hs_hist_record(hist, values[i]);
	}
	hs_hist_snapshot_add(snap, hist);
	free(hist);
	return snap;
}

uint64_t hist_probe_percentile(const uint64_t *values, size_t count, double q)
{
	struct hs_hist_snapshot *snap = hist_probe_fill(values, count);
	uint64_t value = hs_hist_percentile(snap, q);

	free(snap);
	return value;
}

uint64_t hist_probe_count(const uint64_t *values, size_t count)
{
	struct hs_hist_snapshot *snap = hist_probe_fill(values, count);
	uint64_t n = snap->count;

	free(snap);
	return n;
}
