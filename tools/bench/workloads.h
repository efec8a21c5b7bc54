/*
 * The workloads, each run on one allocator and returning one figure.
 *
 * Every block a workload allocates is stamped with a tag in its first and
 * last 8 bytes (only the first for blocks under 16 bytes) and checked before
 * it is freed, so overlapping or corrupted
 * blocks show up as errors in Sanity rather than as fast timings. Random
 * sizes and slots come from tables built from a fixed seed before the clock
 * starts, so every allocator sees the same request sequence and the random
 * number generator costs nothing inside the timed loop.
 */
#ifndef KHEAP_TOOLS_BENCH_WORKLOADS_H
#define KHEAP_TOOLS_BENCH_WORKLOADS_H

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "tools/bench/allocators.h"

/* Problems seen while measuring; any non-zero count fails the run. */
struct Sanity {
	std::atomic<uint64_t> null_allocs{0};
	std::atomic<uint64_t> bad_tags{0};
	std::atomic<uint64_t> misaligned{0};

	uint64_t total() const
	{
		return null_allocs.load() + bad_tags.load() + misaligned.load();
	}
};

/* A fixed request sequence: sizes in [min_bytes, max_bytes] and, for the
 * window workloads, slot indices in [0, window).
 */
struct RequestTable {
	std::vector<uint32_t> sizes;
	std::vector<uint32_t> slots;
	size_t mask;

	static RequestTable random(uint64_t seed, uint32_t min_bytes, uint32_t max_bytes,
				   uint32_t window);
	static RequestTable constant(uint32_t bytes);
};

/*
 * The cost of one operation in nanoseconds of the measuring thread's own CPU
 * time (CLOCK_THREAD_CPUTIME_ID), so time the thread spends preempted by
 * other processes is not charged to the allocator; waiting_share is the
 * part of the wall time the thread spent runnable but waiting for a CPU
 * (negative when the kernel does not report it).
 */
struct OpCost {
	double cpu_ns;
	double waiting_share;
};

/* 1. One block allocated and freed at once; the cost is per pair. */
OpCost run_alloc_free_pair(const Allocator &a, const RequestTable &requests, double min_seconds,
			   Sanity *sanity);

/* 2. `window` live blocks replaced at random; the cost is per replacement
 * (one free plus one alloc).
 */
OpCost run_window(const Allocator &a, const RequestTable &requests, uint32_t window,
		  double min_seconds, Sanity *sanity);

/*
 * A rate measured by worker threads. waiting_share is the largest part of
 * the wall time any worker spent runnable but waiting for a CPU (0 on a
 * quiet machine; above 0 means other processes took the CPU and per_second
 * understates the allocator; negative when the kernel does not report it).
 * per_cpu_second sums each worker's operations per second of its own CPU
 * time: it does not drop when another process preempts a worker, so it is
 * the steadier base for a scaling ratio on a busy machine (spinning on a
 * lock still counts as CPU time).
 */
struct Throughput {
	double per_second;
	double waiting_share;
	double per_cpu_second;
};

/* 3. The window workload on `cpus.size()` threads at once, each pinned to
 * its CPU with its own window and request table; the rate is replacements
 * per second summed over threads.
 */
Throughput run_window_threads(const Allocator &a, const std::vector<RequestTable> &requests,
			      uint32_t window, const std::vector<int> &cpus, double seconds,
			      Sanity *sanity);

/* 4. A producer on `producer_cpu` allocates, a consumer on `consumer_cpu`
 * frees what it receives through an SPSC ring; the rate is blocks freed per
 * second.
 */
Throughput run_producer_consumer(const Allocator &a, const RequestTable &requests, int producer_cpu,
				 int consumer_cpu, double seconds, Sanity *sanity);

struct FillOutcome {
	/* Requested bytes live at the first failure, percent of the heap. */
	double first_fill_percent;
	/* The same after each "free a random half, refill" round. */
	double mean_refill_percent;
	double min_refill_percent;
	/* Free bytes of the empty heap, percent of the heap: what its own
	 * metadata leaves for users.
	 */
	double empty_free_percent;
	/* Bytes still parked in per-CPU caches right after each failed
	 * allocation (mean over all fills); memory a request could not use.
	 */
	double mean_cached_at_failure;
	/* False when the heap could not be set up or did not come back empty. */
	bool heap_ok;
};

/* 5. Fill-to-failure utilisation of a fresh k_heap of `heap_bytes`, sizes
 * uniform in [min_bytes, max_bytes]. With `free_cpu` >= 0 the random half is
 * freed by a thread pinned to that CPU (so freed blocks land in another
 * CPU's cache); allocation runs on `alloc_cpu`.
 */
FillOutcome run_fill_to_failure(size_t heap_bytes, unsigned cache_percent, uint32_t min_bytes,
				uint32_t max_bytes, int rounds, uint64_t seed, int alloc_cpu,
				int free_cpu, Sanity *sanity);

/*
 * The time, in ns, for one cache line to go from `cpu_a` to `cpu_b` and back
 * (two pinned threads bouncing a flag `round_trips` times; the median of
 * the per-batch means). On a virtual
 * machine it changes with where the host places the two vCPUs, and every
 * cross-CPU workload moves with it; it tells runs on a near pair of cores
 * from runs on a distant pair.
 */
double core_to_core_round_trip_ns(int cpu_a, int cpu_b, int round_trips);

/* Pins the calling thread to `cpu`; false if the kernel refuses. */
bool pin_current_thread(int cpu);

#endif
