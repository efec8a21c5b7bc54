/*
 * Tests of the k_heap contract (include/kheap/k_heap.h): allocation, alignment,
 * calloc, realloc, timeouts, blocking and hand-off to waiters, misuse
 * detection, teardown, statically defined heaps and concurrent use.
 *
 * Every KHeapTest case runs twice, with the per-CPU caches on (25% of the
 * heap) and off, because no part of the contract depends on them.
 *
 * Invariants each test keeps:
 * - every block it allocates is freed before it ends, so the fixture's final
 *   k_heap_deinit() returning 0 also proves nothing leaked and nobody waits;
 * - no fault reaches the handler unless the test provokes it and checks it;
 * - a thread blocked with K_FOREVER is covered by a Watchdog, which aborts the
 *   binary with a message instead of letting a lost wake-up hang it;
 * - randomized tests print their seed; KHEAP_TEST_SEED replays one.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <kheap/kheap.h>

#include "heap/heap_testing.h"
#include "tests/support/test_support.h"

namespace
{

using namespace kheap_test;

/* How late a timed wait may return on a shared, noisy machine. */
constexpr int64_t kLatenessMs = 2000;

/* Runs one possibly blocking allocation call on its own thread. */
class Waiter
{
      public:
	explicit Waiter(std::function<void *()> call)
	    : thread_([this, call] {
		      Clock::time_point start = Clock::now();
		      void *mem = call();
		      elapsed_us_ = MicrosSince(start);
		      result_ = mem;
		      done_.store(true);
	      })
	{
	}

	~Waiter()
	{
		if (thread_.joinable()) {
			thread_.join();
		}
	}

	bool done() const
	{
		return done_.load();
	}

	void *Join()
	{
		thread_.join();
		return result_;
	}

	/* Valid after Join(). */
	int64_t elapsed_us() const
	{
		return elapsed_us_;
	}

      private:
	std::atomic<bool> done_{false};
	void *result_ = nullptr;
	int64_t elapsed_us_ = 0;
	std::thread thread_;
};

std::unique_ptr<Waiter> StartAlloc(struct k_heap *h, size_t bytes, k_timeout_t timeout)
{
	return std::make_unique<Waiter>(
	    [h, bytes, timeout] { return k_heap_alloc(h, bytes, timeout); });
}

/* Distance between neighbouring equal-size blocks: their chunk size. */
ptrdiff_t ChunkStride(const std::vector<void *> &sorted)
{
	ptrdiff_t stride = PTRDIFF_MAX;
	for (size_t i = 1; i < sorted.size(); i++) {
		stride = std::min(stride, static_cast<char *>(sorted[i]) -
					      static_cast<char *>(sorted[i - 1]));
	}
	return stride;
}

/* True when sorted[first..first+count-1] lie back to back in memory. */
bool Adjacent(const std::vector<void *> &sorted, size_t first, size_t count, ptrdiff_t stride)
{
	for (size_t i = first + 1; i < first + count; i++) {
		if (static_cast<char *>(sorted[i]) - static_cast<char *>(sorted[i - 1]) != stride) {
			return false;
		}
	}
	return true;
}

/* The first index from `from` on that starts `count` adjacent blocks, else sorted.size(). */
size_t FindAdjacent(const std::vector<void *> &sorted, size_t from, size_t count)
{
	ptrdiff_t stride = ChunkStride(sorted);
	for (size_t first = from; first + count <= sorted.size(); first++) {
		if (Adjacent(sorted, first, count, stride)) {
			return first;
		}
	}
	return sorted.size();
}

/*
 * A filled heap in which one size bucket holds many free chunks just too
 * small for `request` and, freed last (so at the end of the bucket's list),
 * one chunk that fits: the layout a search that examines only the first few
 * chunks of a bucket misses. Freed runs of `short_run` adjacent blocks are
 * too small, a run of short_run + 1 fits; an allocated block parts each run
 * from the next, and both run lengths fall in the same log2 bucket.
 */
struct MisleadingBucket {
	FilledHeap filled;
	std::vector<void *> fitting_run;
	size_t request = 0;
};

constexpr size_t kMisleadingBlock = 4096;
constexpr size_t kTooSmallRuns = 16;

bool SameLog2Bucket(size_t a, size_t b)
{
	return 63 - __builtin_clzll(a) == 63 - __builtin_clzll(b);
}

/* Builds the layout; the fitting run is freed only when `free_fitting`. */
bool BuildMisleadingBucket(struct k_heap *heap, bool free_fitting, MisleadingBucket *out)
{
	out->filled = FillHeap(heap, kMisleadingBlock);
	std::vector<void *> &blocks = out->filled.blocks;
	size_t units = static_cast<size_t>(ChunkStride(blocks)) / 8, short_run = 2;

	while (!SameLog2Bucket(short_run * units, (short_run + 1) * units)) {
		short_run++;
	}
	size_t needed = kTooSmallRuns * (short_run + 1) + short_run + 2;
	if (blocks.size() < needed || FindAdjacent(blocks, 0, needed) != 0) {
		return false;
	}
	/* Half a block more than a short run: it fits only the long run. */
	out->request = (short_run * units + units / 2) * 8 - 64;

	std::vector<void *> kept;
	size_t next = 0;
	for (size_t run = 0; run < kTooSmallRuns; run++) {
		for (size_t i = 0; i < short_run; i++) {
			k_heap_free(heap, blocks[next++]);
		}
		kept.push_back(blocks[next++]);
	}
	for (size_t i = 0; i <= short_run; i++) {
		out->fitting_run.push_back(blocks[next++]);
	}
	kept.insert(kept.end(), blocks.begin() + static_cast<ptrdiff_t>(next), blocks.end());
	blocks = kept;
	if (free_fitting) {
		FreeAll(heap, &out->fitting_run);
	}
	return true;
}

/* Runs each test with this instance's cache setting. */
class KHeapTest : public KHeapFixture, public ::testing::WithParamInterface<unsigned int>
{
      protected:
	bool Init(size_t bytes)
	{
		return KHeapFixture::Init(bytes, GetParam());
	}
};

TEST_P(KHeapTest, InitRefusesBadArguments)
{
	Region region(64 * 1024);
	struct k_heap h = {};
	struct k_heap_config config = {GetParam()};

	EXPECT_EQ(k_heap_init(nullptr, region.start(), 64 * 1024), -EINVAL);
	EXPECT_EQ(k_heap_init(&h, nullptr, 64 * 1024), -EINVAL);
	EXPECT_EQ(k_heap_init_config(nullptr, region.start(), 64 * 1024, &config), -EINVAL);
	EXPECT_EQ(k_heap_init_config(&h, nullptr, 64 * 1024, &config), -EINVAL);
	for (size_t tiny : {0, 1, 8, 16}) {
		EXPECT_EQ(k_heap_init(&h, region.start(), tiny), -EINVAL) << tiny << " bytes";
		EXPECT_EQ(k_heap_init_config(&h, region.start(), tiny, &config), -EINVAL)
		    << tiny << " bytes";
	}

	ASSERT_EQ(k_heap_init_config(&h, region.start(), 64 * 1024, nullptr), 0);
	void *mem = k_heap_alloc(&h, 100, K_NO_WAIT);
	EXPECT_NE(mem, nullptr);
	k_heap_free(&h, mem);
	EXPECT_EQ(k_heap_deinit(&h), 0);
}

TEST_P(KHeapTest, AllocatesAlignedWritableDisjointBlocks)
{
	ASSERT_TRUE(Init(256 * 1024));
	EXPECT_EQ(initial_.allocated_bytes, 0u);
	EXPECT_EQ(initial_.cached_bytes, 0u);
	EXPECT_GT(initial_.free_bytes, 200u * 1024);

	EXPECT_EQ(k_heap_alloc(&heap_, 0, K_NO_WAIT), nullptr);
	EXPECT_EQ(k_heap_alloc(&heap_, 0, K_MSEC(10)), nullptr);
	k_heap_free(&heap_, nullptr);

	struct Block {
		void *mem;
		size_t bytes;
	};
	std::vector<Block> blocks;
	size_t usable_total = 0;
	for (int round = 0; round < 2; round++) {
		for (size_t bytes : {1, 7, 8, 9, 16, 24, 100, 255, 256, 512, 1000, 1024, 1025, 2000,
				     4096, 10000}) {
			void *mem = k_heap_alloc(&heap_, bytes, K_NO_WAIT);
			ASSERT_NE(mem, nullptr) << bytes << " bytes";
			EXPECT_TRUE(IsAligned(mem, 8)) << mem;
			size_t usable = k_heap_usable_size(&heap_, mem);
			EXPECT_GE(usable, bytes);
			usable_total += usable;
			FillPattern(mem, usable, blocks.size());
			blocks.push_back({mem, usable});
		}
	}

	struct sys_memory_stats stats = Stats(&heap_);
	EXPECT_EQ(stats.allocated_bytes, usable_total);
	EXPECT_GE(stats.max_allocated_bytes, stats.allocated_bytes);

	std::vector<Block> sorted = blocks;
	std::sort(sorted.begin(), sorted.end(),
		  [](const Block &a, const Block &b) { return a.mem < b.mem; });
	for (size_t i = 1; i < sorted.size(); i++) {
		EXPECT_LE(static_cast<char *>(sorted[i - 1].mem) + sorted[i - 1].bytes,
			  static_cast<char *>(sorted[i].mem))
		    << "blocks overlap";
	}
	for (size_t i = 0; i < blocks.size(); i++) {
		EXPECT_TRUE(HasPattern(blocks[i].mem, blocks[i].bytes, i)) << "block " << i;
	}
	EXPECT_TRUE(sys_heap_validate(&heap_.heap));

	for (size_t i = 0; i < blocks.size(); i += 2) {
		k_heap_free(&heap_, blocks[i].mem);
		usable_total -= blocks[i].bytes;
	}
	EXPECT_EQ(Stats(&heap_).allocated_bytes, usable_total);
	for (size_t i = 1; i < blocks.size(); i += 2) {
		EXPECT_TRUE(HasPattern(blocks[i].mem, blocks[i].bytes, i)) << "block " << i;
		k_heap_free(&heap_, blocks[i].mem);
	}
	EXPECT_EQ(Stats(&heap_).allocated_bytes, 0u);
}

TEST_P(KHeapTest, AlignedAllocHonoursPowerOfTwoAlignments)
{
	ASSERT_TRUE(Init(256 * 1024));
	std::vector<void *> blocks;
	size_t usable_total = 0;
	for (size_t align : {0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096}) {
		for (size_t bytes : {1, 64, 1000, 3000}) {
			void *mem = k_heap_aligned_alloc(&heap_, align, bytes, K_NO_WAIT);
			ASSERT_NE(mem, nullptr) << "align " << align << ", " << bytes << " bytes";
			EXPECT_TRUE(IsAligned(mem, align == 0 ? 8 : std::max<size_t>(align, 8)))
			    << mem << " for align " << align;
			size_t usable = k_heap_usable_size(&heap_, mem);
			EXPECT_GE(usable, bytes);
			usable_total += usable;
			FillPattern(mem, bytes, align);
			blocks.push_back(mem);
		}
	}
	EXPECT_EQ(Stats(&heap_).allocated_bytes, usable_total);

	struct sys_memory_stats before = Stats(&heap_);
	for (size_t align : {3, 12, 24, 48, 96, 1000, 4097}) {
		EXPECT_EQ(k_heap_aligned_alloc(&heap_, align, 64, K_NO_WAIT), nullptr)
		    << "align " << align;
		EXPECT_EQ(k_heap_aligned_alloc(&heap_, align, 64, K_MSEC(10)), nullptr)
		    << "align " << align;
	}
	EXPECT_EQ(before, Stats(&heap_));
	EXPECT_TRUE(sys_heap_validate(&heap_.heap));
	FreeAll(&heap_, &blocks);
	EXPECT_EQ(Stats(&heap_).allocated_bytes, 0u);
}

TEST_P(KHeapTest, CallocZeroesRecycledMemoryAndRefusesOverflow)
{
	ASSERT_TRUE(Init(128 * 1024));
	for (size_t bytes : {24, 256, 1024, 3000}) {
		std::vector<void *> dirty = AllocUntilRefused(&heap_, bytes);
		ASSERT_FALSE(dirty.empty());
		for (void *mem : dirty) {
			memset(mem, 0xff, k_heap_usable_size(&heap_, mem));
		}
		FreeAll(&heap_, &dirty);

		std::vector<void *> zeroed;
		for (int i = 0; i < 16; i++) {
			void *mem = k_heap_calloc(&heap_, bytes / 8, 8, K_NO_WAIT);
			ASSERT_NE(mem, nullptr);
			EXPECT_TRUE(IsZero(mem, bytes / 8 * 8)) << bytes << " bytes";
			zeroed.push_back(mem);
		}
		FreeAll(&heap_, &zeroed);
	}

	struct sys_memory_stats before = Stats(&heap_);
	EXPECT_EQ(k_heap_calloc(&heap_, 0, 16, K_NO_WAIT), nullptr);
	EXPECT_EQ(k_heap_calloc(&heap_, 16, 0, K_NO_WAIT), nullptr);
	{
		/* An overflowing product can never be served: no wait, even forever. */
		Watchdog watchdog("calloc overflow with K_FOREVER");
		Clock::time_point start = Clock::now();
		EXPECT_EQ(k_heap_calloc(&heap_, SIZE_MAX / 2 + 1, 2, K_NO_WAIT), nullptr);
		EXPECT_EQ(k_heap_calloc(&heap_, 2, SIZE_MAX / 2 + 1, K_MSEC(10)), nullptr);
		EXPECT_EQ(k_heap_calloc(&heap_, SIZE_MAX, SIZE_MAX, K_FOREVER), nullptr);
		const size_t half_bits = size_t{1} << (sizeof(size_t) * 4 + 1);
		EXPECT_EQ(k_heap_calloc(&heap_, half_bits, half_bits, K_FOREVER), nullptr);
		EXPECT_LT(MicrosSince(start), kLatenessMs * 1000);
	}
	EXPECT_EQ(before, Stats(&heap_));
}

TEST_P(KHeapTest, ReallocGrowsAndShrinksKeepingContents)
{
	ASSERT_TRUE(Init(256 * 1024));
	EXPECT_EQ(k_heap_realloc(&heap_, nullptr, 0, K_NO_WAIT), nullptr);

	void *mem = k_heap_realloc(&heap_, nullptr, 100, K_NO_WAIT);
	ASSERT_NE(mem, nullptr);
	EXPECT_EQ(Stats(&heap_).allocated_bytes, k_heap_usable_size(&heap_, mem));
	FillPattern(mem, 100, 1);

	size_t previous = 100;
	uint64_t tag = 1;
	for (size_t bytes : {512, 1024, 3000, 20000, 2000, 600, 40, 8, 1500}) {
		void *resized = k_heap_realloc(&heap_, mem, bytes, K_NO_WAIT);
		ASSERT_NE(resized, nullptr) << previous << " -> " << bytes;
		EXPECT_TRUE(HasPattern(resized, std::min(previous, bytes), tag))
		    << previous << " -> " << bytes;
		size_t usable = k_heap_usable_size(&heap_, resized);
		EXPECT_GE(usable, bytes);
		if (bytes < previous) {
			EXPECT_EQ(resized, mem) << "a shrink can always stay in place";
		}
		EXPECT_EQ(Stats(&heap_).allocated_bytes, usable);
		tag++;
		FillPattern(resized, bytes, tag);
		mem = resized;
		previous = bytes;
	}

	EXPECT_EQ(k_heap_realloc(&heap_, mem, 0, K_NO_WAIT), nullptr);
	EXPECT_EQ(Stats(&heap_).allocated_bytes, 0u);
}

TEST_P(KHeapTest, ReallocMovesWhenItCannotGrowInPlace)
{
	ASSERT_TRUE(Init(64 * 1024));
	FilledHeap filled = FillHeap(&heap_, 2000);
	std::vector<void *> &blocks = filled.blocks;
	size_t mover = FindAdjacent(blocks, 0, 2);
	size_t hole = FindAdjacent(blocks, mover + 3, 2);
	ASSERT_LT(hole + 1, blocks.size()) << "no two adjacent blocks after the mover";

	void *old = blocks[mover];
	FillPattern(old, 2000, 7);
	k_heap_free(&heap_, blocks[hole]);
	k_heap_free(&heap_, blocks[hole + 1]);
	blocks.erase(blocks.begin() + hole, blocks.begin() + hole + 2);

	/* Its right neighbour is held, so growing means moving into the hole. */
	void *moved = k_heap_realloc(&heap_, old, 3000, K_NO_WAIT);
	ASSERT_NE(moved, nullptr);
	EXPECT_NE(moved, old);
	EXPECT_TRUE(HasPattern(moved, 2000, 7));
	blocks[mover] = moved;

	/* Only the old place can hold another 2000 bytes now. */
	void *reuse = k_heap_alloc(&heap_, 2000, K_NO_WAIT);
	EXPECT_NE(reuse, nullptr) << "the old block was not released";
	k_heap_free(&heap_, reuse);
	FreeAll(&heap_, &filled);
	EXPECT_EQ(Stats(&heap_).allocated_bytes, 0u);
}

TEST_P(KHeapTest, FailedReallocLeavesTheBlockUntouched)
{
	ASSERT_TRUE(Init(64 * 1024));
	void *mem = k_heap_alloc(&heap_, 1000, K_NO_WAIT);
	ASSERT_NE(mem, nullptr);
	FillPattern(mem, 1000, 3);
	/* A failed attempt may drain the caches, but users hold the same. */
	size_t held_bytes = Stats(&heap_).allocated_bytes;

	EXPECT_EQ(k_heap_realloc(&heap_, mem, 1024 * 1024, K_NO_WAIT), nullptr);
	EXPECT_TRUE(HasPattern(mem, 1000, 3));
	EXPECT_EQ(Stats(&heap_).allocated_bytes, held_bytes);

	Clock::time_point start = Clock::now();
	EXPECT_EQ(k_heap_realloc(&heap_, mem, 1024 * 1024, K_MSEC(30)), nullptr);
	EXPECT_LT(MicrosSince(start), (30 + kLatenessMs) * 1000);
	EXPECT_TRUE(HasPattern(mem, 1000, 3));
	EXPECT_EQ(Stats(&heap_).allocated_bytes, held_bytes);

	/* Possible in principle but not now: waits its timeout, then gives up. */
	FilledHeap filled = FillHeap(&heap_, 1000);
	start = Clock::now();
	EXPECT_EQ(k_heap_realloc(&heap_, mem, 4000, K_MSEC(30)), nullptr);
	EXPECT_GE(MicrosSince(start), 30 * 1000);
	EXPECT_TRUE(HasPattern(mem, 1000, 3));
	FreeAll(&heap_, &filled);
	k_heap_free(&heap_, mem);
}

TEST_P(KHeapTest, NoWaitNeverBlocks)
{
	ASSERT_TRUE(Init(64 * 1024));
	FilledHeap filled = FillHeap(&heap_, 256);
	ASSERT_FALSE(filled.blocks.empty());
	void *held = filled.blocks.front();
	struct k_heap_counters before = Counters(&heap_);

	Clock::time_point start = Clock::now();
	for (int i = 0; i < 100; i++) {
		EXPECT_EQ(k_heap_alloc(&heap_, 256, K_NO_WAIT), nullptr);
		EXPECT_EQ(k_heap_alloc(&heap_, 256, K_MSEC(0)), nullptr);
		EXPECT_EQ(k_heap_alloc(&heap_, 256, K_MSEC(-5)), nullptr);
		EXPECT_EQ(k_heap_alloc(&heap_, 256, K_USEC(0)), nullptr);
		EXPECT_EQ(k_heap_aligned_alloc(&heap_, 64, 256, K_NO_WAIT), nullptr);
		EXPECT_EQ(k_heap_calloc(&heap_, 32, 8, K_NO_WAIT), nullptr);
		EXPECT_EQ(k_heap_realloc(&heap_, held, 4096, K_NO_WAIT), nullptr);
	}
	EXPECT_LT(MicrosSince(start), kLatenessMs * 1000);
	EXPECT_EQ(k_heap_waiter_count(&heap_), 0u);
	EXPECT_EQ(Counters(&heap_).waits, before.waits) << "a K_NO_WAIT call waited";
	FreeAll(&heap_, &filled);
}

TEST_P(KHeapTest, RequestBiggerThanTheEmptyHeapFailsAtOnceEvenForever)
{
	ASSERT_TRUE(Init(64 * 1024));
	/* Find the largest block the empty heap hands out; one byte more can
	 * never be served, so K_FOREVER must not sleep for it.
	 */
	size_t low = 1, high = 64 * 1024;
	while (low < high) {
		size_t mid = (low + high + 1) / 2;
		void *p = k_heap_alloc(&heap_, mid, K_NO_WAIT);
		if (p != nullptr) {
			k_heap_free(&heap_, p);
			low = mid;
		} else {
			high = mid - 1;
		}
	}
	size_t capacity = low;
	ASSERT_GT(capacity, 32u * 1024);
	EXPECT_EQ(k_heap_alloc(&heap_, capacity + 1, K_FOREVER), nullptr);
	EXPECT_EQ(k_heap_aligned_alloc(&heap_, 64, capacity + 1, K_FOREVER), nullptr);
	struct k_heap_counters counters;
	ASSERT_EQ(0, k_heap_counters_get(&heap_, &counters));
	EXPECT_EQ(0u, counters.waits);
}

TEST_P(KHeapTest, TimedWaitLastsItsTimeoutAndNotMuchLonger)
{
	ASSERT_TRUE(Init(64 * 1024));
	FilledHeap filled = FillHeap(&heap_, 256);
	struct k_heap_counters before = Counters(&heap_);

	struct Case {
		k_timeout_t timeout;
		int64_t ms;
	};
	for (const Case &c : {Case{K_MSEC(50), 50}, Case{K_USEC(30000), 30},
			      Case{K_NSEC(20000000), 20}, Case{K_TICKS(10000000), 10}}) {
		Clock::time_point start = Clock::now();
		EXPECT_EQ(k_heap_alloc(&heap_, 256, c.timeout), nullptr);
		int64_t elapsed_us = MicrosSince(start);
		EXPECT_GE(elapsed_us, c.ms * 1000) << "returned before its " << c.ms << " ms";
		EXPECT_LT(elapsed_us, (c.ms + kLatenessMs) * 1000) << "overslept " << c.ms << " ms";
	}
	Clock::time_point start = Clock::now();
	EXPECT_EQ(k_heap_calloc(&heap_, 32, 8, K_MSEC(40)), nullptr);
	EXPECT_GE(MicrosSince(start), 40 * 1000);
	start = Clock::now();
	EXPECT_EQ(k_heap_aligned_alloc(&heap_, 64, 256, K_MSEC(40)), nullptr);
	EXPECT_GE(MicrosSince(start), 40 * 1000);

	struct k_heap_counters after = Counters(&heap_);
	EXPECT_EQ(after.timeouts - before.timeouts, 6u);
	EXPECT_GE(after.waits - before.waits, 6u);
	EXPECT_EQ(k_heap_waiter_count(&heap_), 0u);
	FreeAll(&heap_, &filled);
}

TEST_P(KHeapTest, ManyTimedWaitersAllGiveUpOnTime)
{
	ASSERT_TRUE(Init(64 * 1024));
	FilledHeap filled = FillHeap(&heap_, 512);
	struct k_heap_counters before = Counters(&heap_);
	constexpr int kWaiters = 16;
	std::vector<std::unique_ptr<Waiter>> waiters;
	for (int i = 0; i < kWaiters; i++) {
		waiters.push_back(StartAlloc(&heap_, 512, K_MSEC(100)));
	}
	for (auto &waiter : waiters) {
		EXPECT_EQ(waiter->Join(), nullptr);
		EXPECT_GE(waiter->elapsed_us(), 100 * 1000);
		EXPECT_LT(waiter->elapsed_us(), (100 + kLatenessMs) * 1000);
	}
	EXPECT_EQ(k_heap_waiter_count(&heap_), 0u);
	EXPECT_EQ(Counters(&heap_).timeouts - before.timeouts, static_cast<uint64_t>(kWaiters));
	FreeAll(&heap_, &filled);
}

TEST_P(KHeapTest, ForeverWaiterIsWokenByAFreeOnAnotherThread)
{
	ASSERT_TRUE(Init(64 * 1024));
	FilledHeap filled = FillHeap(&heap_, 256);
	ASSERT_FALSE(filled.blocks.empty());
	for (void *mem : filled.blocks) {
		memset(mem, 0xee, 256);
	}
	struct k_heap_counters before = Counters(&heap_);
	Watchdog watchdog("K_FOREVER waiters");

	auto plain = StartAlloc(&heap_, 256, K_FOREVER);
	ASSERT_TRUE(WaitForWaiters(&heap_, 1));
	auto zeroed =
	    std::make_unique<Waiter>([this] { return k_heap_calloc(&heap_, 32, 8, K_FOREVER); });
	ASSERT_TRUE(WaitForWaiters(&heap_, 2));
	EXPECT_FALSE(plain->done());
	EXPECT_FALSE(zeroed->done());

	std::thread freer([&] {
		k_heap_free(&heap_, filled.blocks.back());
		k_heap_free(&heap_, filled.blocks.front());
	});
	freer.join();
	filled.blocks.pop_back();
	filled.blocks.erase(filled.blocks.begin());

	void *got = plain->Join();
	void *got_zeroed = zeroed->Join();
	EXPECT_NE(got, nullptr);
	ASSERT_NE(got_zeroed, nullptr);
	EXPECT_TRUE(IsZero(got_zeroed, 256)) << "calloc handed a dirty block";
	EXPECT_EQ(k_heap_waiter_count(&heap_), 0u);
	struct k_heap_counters after = Counters(&heap_);
	EXPECT_EQ(after.handoffs - before.handoffs, 2u);
	EXPECT_EQ(after.timeouts, before.timeouts);
	k_heap_free(&heap_, got);
	k_heap_free(&heap_, got_zeroed);
	FreeAll(&heap_, &filled);
}

TEST_P(KHeapTest, FreesThatLeaveTooLittleKeepTheWaiterUntilItsDeadline)
{
	ASSERT_TRUE(Init(128 * 1024));
	FilledHeap filled = FillHeap(&heap_, 256);
	ASSERT_GT(filled.blocks.size(), 200u);
	constexpr int64_t kTimeoutMs = 300;

	auto waiter = StartAlloc(&heap_, 32 * 1024, K_MSEC(kTimeoutMs));
	ASSERT_TRUE(WaitForWaiters(&heap_, 1));
	/*
	 * Every other block, so no two freed blocks merge: each free is a
	 * chance to wake the waiter but never enough for it. If a wake-up
	 * restarted the relative timeout, these frees would outlast the bound.
	 */
	size_t freed = 0;
	std::vector<void *> kept;
	for (size_t i = 0; i < filled.blocks.size(); i++) {
		if (i % 2 == 1 || waiter->done()) {
			kept.push_back(filled.blocks[i]);
			continue;
		}
		k_heap_free(&heap_, filled.blocks[i]);
		freed++;
		std::this_thread::sleep_for(std::chrono::milliseconds(20));
	}
	EXPECT_EQ(waiter->Join(), nullptr);
	EXPECT_GE(waiter->elapsed_us(), kTimeoutMs * 1000);
	EXPECT_LT(waiter->elapsed_us(), (kTimeoutMs + 1500) * 1000);
	EXPECT_GE(freed, 5u) << "the frees did not overlap the wait";
	EXPECT_EQ(k_heap_waiter_count(&heap_), 0u);
	FreeAll(&heap_, &kept);
	FreeAll(&heap_, &filled.filler);
}

TEST_P(KHeapTest, ForeverWaiterSleepsThroughTooSmallFrees)
{
	ASSERT_TRUE(Init(128 * 1024));
	FilledHeap filled = FillHeap(&heap_, 256);
	Watchdog watchdog("a K_FOREVER waiter for a large block");
	auto waiter = StartAlloc(&heap_, 32 * 1024, K_FOREVER);
	ASSERT_TRUE(WaitForWaiters(&heap_, 1));

	std::vector<void *> kept;
	for (size_t i = 0; i < filled.blocks.size(); i++) {
		if (i % 2 == 0 && i < 64) {
			k_heap_free(&heap_, filled.blocks[i]);
		} else {
			kept.push_back(filled.blocks[i]);
		}
	}
	EXPECT_FALSE(waiter->done());
	EXPECT_EQ(k_heap_waiter_count(&heap_), 1u);

	FreeAll(&heap_, &kept);
	void *got = waiter->Join();
	EXPECT_NE(got, nullptr);
	k_heap_free(&heap_, got);
	FreeAll(&heap_, &filled.filler);
}

TEST_P(KHeapTest, WaitersAreServedInArrivalOrder)
{
	ASSERT_TRUE(Init(64 * 1024));
	FilledHeap filled = FillHeap(&heap_, 256);
	constexpr unsigned int kWaiters = 8;
	ASSERT_GT(filled.blocks.size(), kWaiters);
	struct k_heap_counters before = Counters(&heap_);
	Watchdog watchdog("FIFO waiters");

	std::vector<std::unique_ptr<Waiter>> waiters;
	for (unsigned int i = 0; i < kWaiters; i++) {
		waiters.push_back(StartAlloc(&heap_, 256, K_FOREVER));
		ASSERT_TRUE(WaitForWaiters(&heap_, i + 1)) << "waiter " << i << " never blocked";
	}

	for (unsigned int served = 0; served < kWaiters; served++) {
		k_heap_free(&heap_, filled.blocks.back());
		filled.blocks.pop_back();
		ASSERT_TRUE(WaitFor([&] { return waiters[served]->done(); }))
		    << "waiter " << served << " was not the one served";
		for (unsigned int later = served + 1; later < kWaiters; later++) {
			EXPECT_FALSE(waiters[later]->done())
			    << "waiter " << later << " overtook " << served;
		}
		EXPECT_EQ(k_heap_waiter_count(&heap_), kWaiters - served - 1);
	}
	for (auto &waiter : waiters) {
		void *got = waiter->Join();
		EXPECT_NE(got, nullptr);
		k_heap_free(&heap_, got);
	}
	EXPECT_EQ(Counters(&heap_).handoffs - before.handoffs, static_cast<uint64_t>(kWaiters));
	FreeAll(&heap_, &filled);
}

TEST_P(KHeapTest, LargeWaiterDoesNotHoldBackSmallerOnes)
{
	ASSERT_TRUE(Init(128 * 1024));
	FilledHeap filled = FillHeap(&heap_, 256);
	Watchdog watchdog("a large and a small waiter");

	auto large = StartAlloc(&heap_, 48 * 1024, K_FOREVER);
	ASSERT_TRUE(WaitForWaiters(&heap_, 1));
	auto small = StartAlloc(&heap_, 200, K_FOREVER);
	ASSERT_TRUE(WaitForWaiters(&heap_, 2));

	k_heap_free(&heap_, filled.blocks[filled.blocks.size() / 2]);
	filled.blocks.erase(filled.blocks.begin() + filled.blocks.size() / 2);
	void *small_got = small->Join();
	EXPECT_NE(small_got, nullptr);
	EXPECT_FALSE(large->done());
	EXPECT_EQ(k_heap_waiter_count(&heap_), 1u);

	k_heap_free(&heap_, small_got);
	FreeAll(&heap_, &filled.blocks);
	void *large_got = large->Join();
	EXPECT_NE(large_got, nullptr);
	k_heap_free(&heap_, large_got);
	FreeAll(&heap_, &filled.filler);
}

/*
 * The bounded search of an allocation that may not wait misses the chunk;
 * one that may wait must find it rather than sleep beside it.
 */
TEST_P(KHeapTest, BlockingAllocationFindsAFitBeyondTheBoundedSearch)
{
	ASSERT_TRUE(Init(1024 * 1024));
	MisleadingBucket layout;
	ASSERT_TRUE(BuildMisleadingBucket(&heap_, true, &layout));
	ASSERT_EQ(k_heap_alloc(&heap_, layout.request, K_NO_WAIT), nullptr)
	    << "the layout no longer defeats the bounded search";
	struct k_heap_counters before = Counters(&heap_);

	void *got = k_heap_alloc(&heap_, layout.request, K_SECONDS(10));
	ASSERT_NE(got, nullptr);
	struct k_heap_counters after = Counters(&heap_);
	EXPECT_EQ(after.waits, before.waits) << "slept while a free chunk fitted";
	EXPECT_EQ(after.timeouts, before.timeouts);
	memset(got, 0x5a, layout.request);
	k_heap_free(&heap_, got);
	FreeAll(&heap_, &layout.filled);
}

/* A free whose merged chunk lands last in a crowded bucket still serves the waiter. */
TEST_P(KHeapTest, FreeServesAWaiterFromTheEndOfACrowdedBucket)
{
	ASSERT_TRUE(Init(1024 * 1024));
	MisleadingBucket layout;
	ASSERT_TRUE(BuildMisleadingBucket(&heap_, false, &layout));
	struct k_heap_counters before = Counters(&heap_);
	Watchdog watchdog("a waiter beside a crowded bucket");

	auto waiter = StartAlloc(&heap_, layout.request, K_FOREVER);
	ASSERT_TRUE(WaitForWaiters(&heap_, 1));
	FreeAll(&heap_, &layout.fitting_run);
	void *got = waiter->Join();
	ASSERT_NE(got, nullptr);
	struct k_heap_counters after = Counters(&heap_);
	EXPECT_EQ(after.handoffs - before.handoffs, 1u);
	EXPECT_EQ(k_heap_waiter_count(&heap_), 0u);
	memset(got, 0xa5, layout.request);
	k_heap_free(&heap_, got);
	FreeAll(&heap_, &layout.filled);
}

TEST_P(KHeapTest, ReallocShrinkServesWaiters)
{
	ASSERT_TRUE(Init(64 * 1024));
	FilledHeap filled = FillHeap(&heap_, 2000);
	ASSERT_GT(filled.blocks.size(), 4u);
	Watchdog watchdog("a waiter served by a shrink");
	auto waiter = StartAlloc(&heap_, 1500, K_FOREVER);
	ASSERT_TRUE(WaitForWaiters(&heap_, 1));

	void *shrinking = filled.blocks[1];
	FillPattern(shrinking, 200, 5);
	EXPECT_EQ(k_heap_realloc(&heap_, shrinking, 200, K_NO_WAIT), shrinking);
	EXPECT_TRUE(HasPattern(shrinking, 200, 5));
	void *got = waiter->Join();
	EXPECT_NE(got, nullptr) << "the shrink's tail did not reach the waiter";
	k_heap_free(&heap_, got);
	FreeAll(&heap_, &filled);
}

TEST_P(KHeapTest, ReallocMoveServesWaiters)
{
	ASSERT_TRUE(Init(64 * 1024));
	FilledHeap filled = FillHeap(&heap_, 2000);
	std::vector<void *> &blocks = filled.blocks;
	/* [left][mover][held] back to back, and [shrunk][hole][held] further on. */
	size_t left = FindAdjacent(blocks, 0, 3);
	size_t shrunk = FindAdjacent(blocks, left + 4, 3);
	ASSERT_LT(shrunk + 2, blocks.size()) << "layout not found";

	void *mover = blocks[left + 1];
	FillPattern(mover, 2000, 9);
	k_heap_free(&heap_, blocks[left]);
	ASSERT_EQ(k_heap_realloc(&heap_, blocks[shrunk], 1500, K_NO_WAIT), blocks[shrunk]);
	k_heap_free(&heap_, blocks[shrunk + 1]);
	/*
	 * Free now: the 2000-byte gap at `left` and about 2500 bytes at the
	 * hole. A 3000-byte request fits neither; it fits once the mover's
	 * 2000 bytes join the gap at `left`.
	 */
	Watchdog watchdog("a waiter served by a move");
	auto waiter = StartAlloc(&heap_, 3000, K_FOREVER);
	ASSERT_TRUE(WaitForWaiters(&heap_, 1));

	void *moved = k_heap_realloc(&heap_, mover, 2400, K_NO_WAIT);
	ASSERT_NE(moved, nullptr);
	EXPECT_NE(moved, mover);
	EXPECT_TRUE(HasPattern(moved, 2000, 9));
	void *got = waiter->Join();
	EXPECT_NE(got, nullptr) << "the move's old block did not reach the waiter";

	k_heap_free(&heap_, got);
	k_heap_free(&heap_, moved);
	for (size_t i = 0; i < blocks.size(); i++) {
		if (i != left && i != left + 1 && i != shrunk + 1) {
			k_heap_free(&heap_, blocks[i]);
		}
	}
	blocks.clear();
	FreeAll(&heap_, &filled.filler);
}

TEST_P(KHeapTest, ManyBlockedThreadsOnATinyHeapAllFinish)
{
	ASSERT_TRUE(Init(64 * 1024));
	constexpr int kThreads = 32;
	constexpr int kRounds = 300;
	const size_t sizes[] = {6144, 1024, 3072, 512};
	struct k_heap_counters before = Counters(&heap_);
	std::atomic<int> nulls{0};
	std::atomic<int> corrupted{0};
	std::atomic<int> finished{0};
	/* Start full, so the first requests must queue whatever the scheduler
	 * does; the heap is released once someone is seen waiting.
	 */
	FilledHeap full = FillHeap(&heap_, 512);
	{
		Watchdog watchdog("32 threads blocking with K_FOREVER");
		std::vector<std::thread> threads;
		for (int t = 0; t < kThreads; t++) {
			threads.emplace_back([&, t] {
				size_t bytes = sizes[t % 4];
				for (int round = 0; round < kRounds; round++) {
					void *mem = k_heap_alloc(&heap_, bytes, K_FOREVER);
					if (mem == nullptr) {
						nulls++;
						continue;
					}
					uint64_t tag = static_cast<uint64_t>(t) << 32 | round;
					FillPattern(mem, bytes, tag);
					std::this_thread::yield();
					if (!HasPattern(mem, bytes, tag)) {
						corrupted++;
					}
					k_heap_free(&heap_, mem);
				}
				finished++;
			});
		}
		EXPECT_TRUE(WaitFor([&] { return k_heap_waiter_count(&heap_) > 0; }))
		    << "nobody queued on a full heap";
		FreeAll(&heap_, &full);
		for (std::thread &thread : threads) {
			thread.join();
		}
	}
	EXPECT_EQ(finished.load(), kThreads);
	EXPECT_EQ(nulls.load(), 0) << "K_FOREVER returned NULL";
	EXPECT_EQ(corrupted.load(), 0);
	EXPECT_GT(Counters(&heap_).waits, before.waits) << "nobody ever had to wait";
	EXPECT_EQ(k_heap_waiter_count(&heap_), 0u);
	EXPECT_EQ(Stats(&heap_).allocated_bytes, 0u);
}

TEST_P(KHeapTest, DoubleFreeIsReportedAndHarmless)
{
	ASSERT_TRUE(Init(128 * 1024));
	void *neighbour = k_heap_alloc(&heap_, 64, K_NO_WAIT);
	ASSERT_NE(neighbour, nullptr);
	for (size_t bytes : {64, 2000}) {
		void *mem = k_heap_alloc(&heap_, bytes, K_NO_WAIT);
		ASSERT_NE(mem, nullptr);
		k_heap_free(&heap_, mem);
		struct sys_memory_stats before = Stats(&heap_);

		k_heap_free(&heap_, mem);
		ExpectOneFault(KHEAP_FAULT_DOUBLE_FREE, &heap_, mem);
		EXPECT_EQ(k_heap_realloc(&heap_, mem, bytes * 2, K_NO_WAIT), nullptr);
		ExpectOneFault(KHEAP_FAULT_DOUBLE_FREE, &heap_, mem);

		EXPECT_EQ(before, Stats(&heap_));
		EXPECT_TRUE(sys_heap_validate(&heap_.heap)) << bytes << " bytes";
	}
	k_heap_free(&heap_, neighbour);
}

TEST_P(KHeapTest, ForeignPointersAreReportedAndHarmless)
{
	ASSERT_TRUE(Init(128 * 1024));
	Region other_region(128 * 1024);
	struct k_heap other = {};
	struct k_heap_config config = {GetParam()};
	ASSERT_EQ(k_heap_init_config(&other, other_region.start(), 128 * 1024, &config), 0);
	void *theirs = k_heap_alloc(&other, 64, K_NO_WAIT);
	ASSERT_NE(theirs, nullptr);
	FillPattern(theirs, 64, 11);
	alignas(16) char on_stack[64];
	Region from_libc(64);
	void *mine = k_heap_alloc(&heap_, 64, K_NO_WAIT);
	ASSERT_NE(mine, nullptr);
	struct sys_memory_stats before = Stats(&heap_);

	for (void *foreign :
	     {theirs, static_cast<void *>(on_stack + 16), static_cast<void *>(from_libc.start()),
	      static_cast<void *>(region_->start() + bytes_ + 64)}) {
		k_heap_free(&heap_, foreign);
		ExpectOneFault(KHEAP_FAULT_FOREIGN_POINTER, &heap_, foreign);
		EXPECT_EQ(k_heap_realloc(&heap_, foreign, 128, K_NO_WAIT), nullptr);
		ExpectOneFault(KHEAP_FAULT_FOREIGN_POINTER, &heap_, foreign);
	}
	EXPECT_EQ(before, Stats(&heap_));
	EXPECT_TRUE(sys_heap_validate(&heap_.heap));
	EXPECT_TRUE(HasPattern(theirs, 64, 11));
	EXPECT_TRUE(sys_heap_validate(&other.heap));
	k_heap_free(&other, theirs);
	EXPECT_EQ(k_heap_deinit(&other), 0);
	k_heap_free(&heap_, mine);
}

TEST_P(KHeapTest, InteriorPointersAreReportedAndHarmless)
{
	ASSERT_TRUE(Init(128 * 1024));
	for (size_t bytes : {256, 2000}) {
		char *mem = static_cast<char *>(k_heap_alloc(&heap_, bytes, K_NO_WAIT));
		ASSERT_NE(mem, nullptr);
		FillPattern(mem, bytes, bytes);
		struct sys_memory_stats before = Stats(&heap_);
		for (size_t offset : {size_t{1}, size_t{8}, size_t{16}, bytes / 2, bytes - 8}) {
			k_heap_free(&heap_, mem + offset);
			ExpectOneFault(KHEAP_FAULT_INTERIOR_POINTER, &heap_, mem + offset);
			EXPECT_EQ(k_heap_realloc(&heap_, mem + offset, 64, K_NO_WAIT), nullptr);
			ExpectOneFault(KHEAP_FAULT_INTERIOR_POINTER, &heap_, mem + offset);
		}
		EXPECT_EQ(before, Stats(&heap_));
		EXPECT_TRUE(HasPattern(mem, bytes, bytes));
		EXPECT_TRUE(sys_heap_validate(&heap_.heap));
		k_heap_free(&heap_, mem);
	}

	/* The region's own metadata is in the heap but is no block of it. */
	struct sys_memory_stats before = Stats(&heap_);
	void *metadata = region_->start() + 8;
	k_heap_free(&heap_, metadata);
	std::vector<Fault> faults = TakeFaults();
	ASSERT_EQ(faults.size(), 1u);
	EXPECT_TRUE(faults[0].kind == KHEAP_FAULT_INTERIOR_POINTER ||
		    faults[0].kind == KHEAP_FAULT_FOREIGN_POINTER)
	    << kheap_fault_name(faults[0].kind);
	EXPECT_EQ(faults[0].ptr, metadata);
	EXPECT_EQ(before, Stats(&heap_));
}

TEST_P(KHeapTest, InteriorPointerIntoARecycledBlockIsNotADoubleFree)
{
	ASSERT_TRUE(Init(128 * 1024));
	for (size_t bytes : {64, 2000}) {
		void *first = k_heap_alloc(&heap_, bytes, K_NO_WAIT);
		void *guard = k_heap_alloc(&heap_, bytes, K_NO_WAIT);
		ASSERT_NE(first, nullptr);
		ASSERT_NE(guard, nullptr);
		k_heap_free(&heap_, first);
		/* Left as the allocator hands it out: whatever it kept in the body. */
		char *recycled = static_cast<char *>(k_heap_alloc(&heap_, bytes, K_NO_WAIT));
		ASSERT_NE(recycled, nullptr);
		struct sys_memory_stats before = Stats(&heap_);

		for (size_t offset : {8, 16}) {
			k_heap_free(&heap_, recycled + offset);
			ExpectOneFault(KHEAP_FAULT_INTERIOR_POINTER, &heap_, recycled + offset);
			EXPECT_EQ(k_heap_realloc(&heap_, recycled + offset, 32, K_NO_WAIT),
				  nullptr);
			ExpectOneFault(KHEAP_FAULT_INTERIOR_POINTER, &heap_, recycled + offset);
		}
		EXPECT_EQ(before, Stats(&heap_));
		EXPECT_TRUE(sys_heap_validate(&heap_.heap));
		k_heap_free(&heap_, recycled);
		k_heap_free(&heap_, guard);
	}
}

TEST_P(KHeapTest, OverrunHeaderIsReportedAtFree)
{
	ASSERT_TRUE(Init(128 * 1024));
	for (size_t bytes : {64, 2000}) {
		char *mem = static_cast<char *>(k_heap_alloc(&heap_, bytes, K_NO_WAIT));
		void *after = k_heap_alloc(&heap_, bytes, K_NO_WAIT);
		ASSERT_NE(mem, nullptr);
		ASSERT_NE(after, nullptr);
		struct sys_memory_stats before = Stats(&heap_);

		size_t usable = k_heap_usable_size(&heap_, mem);
		char saved[8];
		memcpy(saved, mem + usable, sizeof(saved));
		memset(mem + usable, 0xa5, sizeof(saved));
		k_heap_free(&heap_, mem);
		ExpectOneFault(KHEAP_FAULT_HEADER_OVERWRITTEN, &heap_, mem);
		memcpy(mem + usable, saved, sizeof(saved));

		EXPECT_EQ(before, Stats(&heap_));
		EXPECT_TRUE(sys_heap_validate(&heap_.heap)) << bytes << " bytes";
		k_heap_free(&heap_, mem);
		k_heap_free(&heap_, after);
	}
	EXPECT_EQ(Stats(&heap_).allocated_bytes, 0u);
}

TEST_P(KHeapTest, DeinitRefusesWhileBlocksAreHeldOrThreadsWait)
{
	ASSERT_TRUE(Init(64 * 1024));
	void *held = k_heap_alloc(&heap_, 100, K_NO_WAIT);
	ASSERT_NE(held, nullptr);
	EXPECT_EQ(k_heap_deinit(&heap_), -EBUSY);
	void *more = k_heap_alloc(&heap_, 100, K_NO_WAIT);
	EXPECT_NE(more, nullptr) << "a refused deinit changed the heap";
	k_heap_free(&heap_, more);
	EXPECT_TRUE(sys_heap_validate(&heap_.heap));

	void *large = k_heap_alloc(&heap_, 40 * 1024, K_NO_WAIT);
	ASSERT_NE(large, nullptr);
	Watchdog watchdog("a waiter during deinit");
	auto waiter = StartAlloc(&heap_, 40 * 1024, K_FOREVER);
	ASSERT_TRUE(WaitForWaiters(&heap_, 1));
	k_heap_free(&heap_, held);
	EXPECT_EQ(k_heap_deinit(&heap_), -EBUSY);
	EXPECT_EQ(k_heap_waiter_count(&heap_), 1u);
	k_heap_free(&heap_, large);
	void *got = waiter->Join();
	EXPECT_NE(got, nullptr);
	EXPECT_EQ(k_heap_deinit(&heap_), -EBUSY);
	k_heap_free(&heap_, got);
	EXPECT_EQ(k_heap_deinit(&heap_), 0);
	ready_ = false;
}

TEST_P(KHeapTest, UseAfterDeinitReachesTheFaultHandler)
{
	ASSERT_TRUE(Init(64 * 1024));
	void *mem = k_heap_alloc(&heap_, 100, K_NO_WAIT);
	ASSERT_NE(mem, nullptr);
	k_heap_free(&heap_, mem);
	ASSERT_EQ(k_heap_deinit(&heap_), 0);
	ready_ = false;

	auto expect_bad_heap = [this](const char *what) {
		std::vector<Fault> faults = TakeFaults();
		ASSERT_EQ(faults.size(), 1u) << what;
		EXPECT_EQ(faults[0].kind, KHEAP_FAULT_BAD_HEAP)
		    << what << ": " << kheap_fault_name(faults[0].kind);
		EXPECT_EQ(faults[0].heap, &heap_) << what;
	};
	EXPECT_EQ(k_heap_alloc(&heap_, 100, K_NO_WAIT), nullptr);
	expect_bad_heap("alloc");
	EXPECT_EQ(k_heap_alloc(&heap_, 100, K_MSEC(50)), nullptr);
	expect_bad_heap("timed alloc");
	EXPECT_EQ(k_heap_aligned_alloc(&heap_, 64, 100, K_NO_WAIT), nullptr);
	expect_bad_heap("aligned alloc");
	EXPECT_EQ(k_heap_calloc(&heap_, 10, 10, K_NO_WAIT), nullptr);
	expect_bad_heap("calloc");
	EXPECT_EQ(k_heap_realloc(&heap_, nullptr, 100, K_NO_WAIT), nullptr);
	expect_bad_heap("realloc");
	k_heap_free(&heap_, mem);
	expect_bad_heap("free");
	EXPECT_EQ(k_heap_realloc(&heap_, mem, 200, K_NO_WAIT), nullptr);
	expect_bad_heap("realloc of a block");

	struct k_heap_config config = {GetParam()};
	ASSERT_EQ(k_heap_init_config(&heap_, region_->start(), bytes_, &config), 0);
	ready_ = true;
	mem = k_heap_alloc(&heap_, 100, K_NO_WAIT);
	EXPECT_NE(mem, nullptr);
	k_heap_free(&heap_, mem);
	EXPECT_EQ(Stats(&heap_).allocated_bytes, 0u);
}

/* Power-law sizes: mostly small, sometimes up to 4 KiB. */
size_t RandomSize(std::mt19937_64 &rng)
{
	size_t scale = size_t{1} << (rng() % 13);
	return 1 + rng() % scale;
}

void StressWorker(struct k_heap *h, uint64_t seed, int ops, Failures *failures)
{
	std::mt19937_64 rng(seed);
	std::vector<TaggedBlock> held;
	uint64_t next_tag = seed << 24;
	for (int op = 0; op < ops; op++) {
		unsigned int action = rng() % 100;
		if (held.size() < 48 && action < 55) {
			size_t bytes = RandomSize(rng);
			k_timeout_t timeout = rng() % 4 == 0 ? K_USEC(100) : K_NO_WAIT;
			size_t align = 0;
			bool zeroed = false;
			void *mem;
			switch (rng() % 6) {
			case 0:
				align = size_t{1} << (rng() % 8);
				mem = k_heap_aligned_alloc(h, align, bytes, timeout);
				break;
			case 1:
				zeroed = true;
				mem = k_heap_calloc(h, 1, bytes, timeout);
				break;
			default:
				mem = k_heap_alloc(h, bytes, timeout);
				break;
			}
			if (mem == nullptr) {
				continue;
			}
			if (align != 0 && !IsAligned(mem, align)) {
				failures->Add("misaligned block for align " +
					      std::to_string(align));
			}
			if (zeroed && !IsZero(mem, bytes)) {
				failures->Add("calloc returned dirty memory");
			}
			if (k_heap_usable_size(h, mem) < bytes) {
				failures->Add("usable size below the request");
			}
			FillPattern(mem, bytes, next_tag);
			held.push_back({mem, bytes, next_tag++});
		} else if (!held.empty() && action < 70) {
			TaggedBlock &block = held[rng() % held.size()];
			size_t bytes = RandomSize(rng);
			void *mem = k_heap_realloc(h, block.mem, bytes, K_NO_WAIT);
			if (mem == nullptr) {
				if (!HasPattern(block)) {
					failures->Add("a failed realloc changed the block");
				}
				continue;
			}
			if (!HasPattern(mem, std::min(bytes, block.bytes), block.tag)) {
				failures->Add("realloc lost contents");
			}
			FillPattern(mem, bytes, next_tag);
			block = {mem, bytes, next_tag++};
		} else if (!held.empty()) {
			size_t victim = rng() % held.size();
			if (!HasPattern(held[victim])) {
				failures->Add("block contents changed while held");
			}
			k_heap_free(h, held[victim].mem);
			held[victim] = held.back();
			held.pop_back();
		}
	}
	for (const TaggedBlock &block : held) {
		if (!HasPattern(block)) {
			failures->Add("block contents changed while held");
		}
		k_heap_free(h, block.mem);
	}
}

TEST_P(KHeapTest, ConcurrentStressKeepsContentsStatsAndHeapIntact)
{
	ASSERT_TRUE(Init(256 * 1024));
	uint64_t seed = TestSeed();
	SCOPED_TRACE(SeedTrace(seed));
	constexpr int kThreads = 16;
	constexpr int kOps = 40000;
	Failures failures;
	std::atomic<bool> stop{false};
	std::atomic<int> validations{0};

	std::thread checker([&] {
		while (!stop.load()) {
			if (!sys_heap_validate(&heap_.heap)) {
				failures.Add("sys_heap_validate failed under load");
			}
			struct sys_memory_stats stats = {};
			if (k_heap_runtime_stats_get(&heap_, &stats) != 0) {
				failures.Add("stats failed under load");
			} else if (stats.allocated_bytes + stats.cached_bytes + stats.free_bytes >
				   bytes_) {
				failures.Add("stats add up to more than the heap");
			}
			validations++;
			std::this_thread::sleep_for(std::chrono::milliseconds(1));
		}
	});
	std::vector<std::thread> workers;
	for (int t = 0; t < kThreads; t++) {
		workers.emplace_back(StressWorker, &heap_, seed + t, kOps, &failures);
	}
	for (std::thread &worker : workers) {
		worker.join();
	}
	stop.store(true);
	checker.join();

	EXPECT_EQ(failures.count(), 0) << "first: " << failures.first();
	EXPECT_GT(validations.load(), 0);
	struct sys_memory_stats stats = Stats(&heap_);
	EXPECT_EQ(stats.allocated_bytes, 0u);
	EXPECT_LE(stats.max_allocated_bytes, bytes_);
	EXPECT_GT(stats.max_allocated_bytes, 0u);
	k_heap_drain_caches(&heap_);
	stats = Stats(&heap_);
	EXPECT_EQ(stats.cached_bytes, 0u);
	EXPECT_EQ(stats.free_bytes, initial_.free_bytes) << "free space did not merge back";
}

INSTANTIATE_TEST_SUITE_P(CachesOnAndOff, KHeapTest, ::testing::Values(25u, 0u), CacheSettingName);

K_HEAP_DEFINE(g_static_heap, 128 * 1024);
K_HEAP_DEFINE(g_contended_first_use_heap, 256 * 1024);

namespace
{

/* For k_heap_walk: the largest free chunk, header included, in bytes. */
void NoteLargestFree(void *arg, size_t, size_t bytes, enum k_heap_chunk_state state, int)
{
	size_t *largest = static_cast<size_t *>(arg);
	if (state == K_HEAP_CHUNK_FREE && bytes > *largest) {
		*largest = bytes;
	}
}

class WaitingRequestTest : public KHeapFixture
{
};

} // namespace

/*
 * On many randomly fragmented heaps (caches off, so the walk sees every free
 * chunk): a request that may wait and fits the largest free chunk is served
 * at once, never queued. Requests sit just under that chunk's size, where a
 * search of a few chunks per bucket most often misses; the rounds go on
 * until kMissesWanted of them defeated the bounded search (about one round
 * in fifty does).
 */
TEST_F(WaitingRequestTest, ServedAtOnceWheneverTheLargestFreeChunkFits)
{
	ASSERT_TRUE(Init(1024 * 1024, 0));
	uint64_t seed = TestSeed();
	SCOPED_TRACE(SeedTrace(seed));
	std::mt19937_64 rng(seed);
	const size_t header = z_heap_header_bytes(&heap_.heap);
	std::vector<void *> live;
	constexpr unsigned int kMissesWanted = 10;
	constexpr int kMaxRounds = 20000;
	unsigned int served_beyond_bounded = 0;
	int round = 0;

	for (; served_beyond_bounded < kMissesWanted && round < kMaxRounds; round++) {
		std::uniform_int_distribution<size_t> size(16, 4096);
		for (void *mem; (mem = k_heap_alloc(&heap_, size(rng), K_NO_WAIT)) != nullptr;) {
			live.push_back(mem);
		}
		std::shuffle(live.begin(), live.end(), rng);
		size_t keep = live.size() * 3 / 4;
		for (size_t i = keep; i < live.size(); i++) {
			k_heap_free(&heap_, live[i]);
		}
		live.resize(keep);

		size_t largest = 0;
		ASSERT_EQ(k_heap_walk(&heap_, NoteLargestFree, &largest), 0);
		ASSERT_GT(largest, header + 64) << "round " << round;
		size_t request =
		    largest - header - std::uniform_int_distribution<size_t>(0, 56)(rng);
		void *bounded = k_heap_alloc(&heap_, request, K_NO_WAIT);
		if (bounded == nullptr) {
			served_beyond_bounded++;
		}
		struct k_heap_counters before = Counters(&heap_);
		void *mem =
		    bounded != nullptr ? bounded : k_heap_alloc(&heap_, request, K_SECONDS(10));
		ASSERT_NE(mem, nullptr) << "round " << round << ": " << request
					<< " bytes did not fit a free chunk of " << largest;
		EXPECT_EQ(Counters(&heap_).waits, before.waits) << "round " << round;
		live.push_back(mem);
	}
	EXPECT_EQ(served_beyond_bounded, kMissesWanted)
	    << "only " << served_beyond_bounded << " of " << round
	    << " layouts defeated the bounded search";
	FreeAll(&heap_, &live);
}

TEST(KHeapDefineTest, DefinedHeapNeedsNoInitCall)
{
	struct sys_memory_stats stats = Stats(&g_static_heap);
	EXPECT_EQ(stats.allocated_bytes, 0u);
	EXPECT_GT(stats.free_bytes, 64u * 1024);
	EXPECT_EQ(k_heap_waiter_count(&g_static_heap), 0u);

	void *mem = k_heap_alloc(&g_static_heap, 100, K_NO_WAIT);
	ASSERT_NE(mem, nullptr);
	EXPECT_EQ(Stats(&g_static_heap).allocated_bytes, k_heap_usable_size(&g_static_heap, mem));
	EXPECT_TRUE(sys_heap_validate(&g_static_heap.heap));
	k_heap_free(&g_static_heap, mem);
	EXPECT_EQ(Stats(&g_static_heap).allocated_bytes, 0u);
}

TEST(KHeapDefineTest, FirstUseByManyThreadsAtOnceInitialisesOnce)
{
	constexpr int kThreads = 16;
	constexpr int kRounds = 500;
	uint64_t seed = TestSeed();
	SCOPED_TRACE(SeedTrace(seed));
	pthread_barrier_t start;
	ASSERT_EQ(pthread_barrier_init(&start, nullptr, kThreads), 0);
	Failures failures;
	std::vector<std::thread> threads;
	for (int t = 0; t < kThreads; t++) {
		threads.emplace_back([&, t] {
			std::mt19937_64 rng(seed + t);
			pthread_barrier_wait(&start);
			std::vector<TaggedBlock> held;
			for (int round = 0; round < kRounds; round++) {
				size_t bytes = 1 + rng() % 1024;
				uint64_t tag = static_cast<uint64_t>(t) << 32 | round;
				void *mem =
				    k_heap_alloc(&g_contended_first_use_heap, bytes, K_NO_WAIT);
				if (mem == nullptr) {
					failures.Add("allocation failed on a roomy heap");
					continue;
				}
				FillPattern(mem, bytes, tag);
				held.push_back({mem, bytes, tag});
				if (held.size() > 8) {
					if (!HasPattern(held.front())) {
						failures.Add("contents changed while held");
					}
					k_heap_free(&g_contended_first_use_heap, held.front().mem);
					held.erase(held.begin());
				}
			}
			for (const TaggedBlock &block : held) {
				k_heap_free(&g_contended_first_use_heap, block.mem);
			}
		});
	}
	for (std::thread &thread : threads) {
		thread.join();
	}
	pthread_barrier_destroy(&start);
	EXPECT_EQ(failures.count(), 0) << "first: " << failures.first();
	EXPECT_TRUE(sys_heap_validate(&g_contended_first_use_heap.heap));
	EXPECT_EQ(Stats(&g_contended_first_use_heap).allocated_bytes, 0u);
}

TEST(KHeapInitTest, RefusesRegionsTooLargeForTheChunkFormat)
{
	if (sizeof(void *) < 8)
		GTEST_SKIP() << "needs a 64-bit address space";
	const size_t huge = static_cast<size_t>(uint64_t{9} << 30);
	void *mem = mmap(nullptr, huge, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED) {
		GTEST_SKIP() << "cannot reserve 9 GiB of address space";
	}
	struct k_heap h = {};
	EXPECT_EQ(k_heap_init(&h, mem, huge), -E2BIG);
	munmap(mem, huge);
}

} // namespace
