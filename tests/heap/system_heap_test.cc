/*
 * Tests of the system heap behind k_malloc, k_calloc, k_aligned_alloc,
 * k_realloc and k_free: Zephyr's semantics for each call, that none of them
 * ever blocks (an exhausted heap answers NULL at once, and nobody is counted
 * as waiting), that k_system_heap() reports the same memory through stats,
 * and that misuse and concurrent use leave it intact.
 *
 * The system heap is one process-wide heap shared by every test here, so
 * each test frees all it allocates and compares stats against a baseline it
 * took first, never against absolute values. Randomized tests print their
 * seed (KHEAP_TEST_SEED replays one).
 */
#include <stdint.h>
#include <string.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <random>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <kheap/kheap.h>

#include "tests/support/test_support.h"

namespace
{

using namespace kheap_test;

/* The system heap's size when the build does not override it. */
constexpr size_t kSystemHeapBytes = 16u * 1024 * 1024;
/* What "promptly" means for a call that must not block, on a noisy machine. */
constexpr int64_t kPromptMicros = 250 * 1000;

size_t Usable(void *mem)
{
	return k_heap_usable_size(k_system_heap(), mem);
}

class SystemHeapTest : public ::testing::Test
{
      protected:
	void SetUp() override
	{
		baseline_ = Stats(k_system_heap());
	}

	void TearDown() override
	{
		EXPECT_EQ(Stats(k_system_heap()).allocated_bytes, baseline_.allocated_bytes)
		    << "the test leaked system heap memory";
		EXPECT_TRUE(sys_heap_validate(&k_system_heap()->heap));
		ExpectNoFaults();
	}

	FaultRecorder recorder_;
	struct sys_memory_stats baseline_ = {};
};

TEST_F(SystemHeapTest, SystemHeapIsOneHeapOfTheConfiguredSize)
{
	struct k_heap *heap = k_system_heap();
	ASSERT_NE(heap, nullptr);
	EXPECT_EQ(k_system_heap(), heap);
	struct sys_memory_stats stats = Stats(k_system_heap());
	EXPECT_GT(stats.free_bytes + stats.cached_bytes, kSystemHeapBytes - kSystemHeapBytes / 16);
	EXPECT_LE(stats.free_bytes + stats.cached_bytes + stats.allocated_bytes, kSystemHeapBytes);
	EXPECT_EQ(k_heap_waiter_count(heap), 0u);
}

TEST_F(SystemHeapTest, MallocReturnsUsableAlignedBlocksCountedInStats)
{
	EXPECT_EQ(k_malloc(0), nullptr);
	k_free(nullptr);

	std::vector<void *> blocks;
	size_t usable_total = 0;
	for (size_t bytes : {1, 8, 13, 64, 100, 1024, 1025, 4096, 100000, 1000000}) {
		void *mem = k_malloc(bytes);
		ASSERT_NE(mem, nullptr) << bytes << " bytes";
		EXPECT_TRUE(IsAligned(mem, 8)) << mem;
		EXPECT_GE(Usable(mem), bytes);
		FillPattern(mem, bytes, bytes);
		usable_total += Usable(mem);
		blocks.push_back(mem);
		EXPECT_EQ(Stats(k_system_heap()).allocated_bytes,
			  baseline_.allocated_bytes + usable_total);
	}
	size_t index = 0;
	for (size_t bytes : {1, 8, 13, 64, 100, 1024, 1025, 4096, 100000, 1000000}) {
		EXPECT_TRUE(HasPattern(blocks[index], bytes, bytes)) << bytes << " bytes";
		k_free(blocks[index++]);
	}
}

TEST_F(SystemHeapTest, CallocZeroesAndRefusesOverflow)
{
	for (size_t bytes : {32, 512, 5000}) {
		std::vector<void *> dirty;
		for (int i = 0; i < 32; i++) {
			void *mem = k_malloc(bytes);
			ASSERT_NE(mem, nullptr);
			memset(mem, 0xff, Usable(mem));
			dirty.push_back(mem);
		}
		for (void *mem : dirty) {
			k_free(mem);
		}
		for (int i = 0; i < 32; i++) {
			void *mem = k_calloc(bytes / 4, 4);
			ASSERT_NE(mem, nullptr);
			EXPECT_TRUE(IsZero(mem, bytes / 4 * 4)) << bytes << " bytes";
			dirty[i] = mem;
		}
		for (void *mem : dirty) {
			k_free(mem);
		}
	}

	struct sys_memory_stats before = Stats(k_system_heap());
	EXPECT_EQ(k_calloc(SIZE_MAX / 2 + 1, 2), nullptr);
	EXPECT_EQ(k_calloc(2, SIZE_MAX / 2 + 1), nullptr);
	EXPECT_EQ(k_calloc(SIZE_MAX, SIZE_MAX), nullptr);
	EXPECT_EQ(k_calloc(0, 8), nullptr);
	EXPECT_EQ(k_calloc(8, 0), nullptr);
	EXPECT_EQ(Stats(k_system_heap()).allocated_bytes, before.allocated_bytes);
}

TEST_F(SystemHeapTest, AlignedAllocHonoursPowerOfTwoAlignments)
{
	std::vector<void *> blocks;
	for (size_t align = 1; align <= 64 * 1024; align *= 2) {
		for (size_t bytes : {1, 100, 5000}) {
			void *mem = k_aligned_alloc(align, bytes);
			ASSERT_NE(mem, nullptr) << "align " << align;
			EXPECT_TRUE(IsAligned(mem, std::max<size_t>(align, 8)));
			EXPECT_GE(Usable(mem), bytes);
			blocks.push_back(mem);
		}
	}
	for (size_t align : {3, 6, 24, 100, 4095}) {
		EXPECT_EQ(k_aligned_alloc(align, 64), nullptr) << "align " << align;
	}
	for (void *mem : blocks) {
		k_free(mem);
	}
}

TEST_F(SystemHeapTest, ReallocFollowsZephyrSemantics)
{
	EXPECT_EQ(k_realloc(nullptr, 0), nullptr);
	void *mem = k_realloc(nullptr, 40);
	ASSERT_NE(mem, nullptr);
	FillPattern(mem, 40, 1);

	void *grown = k_realloc(mem, 200000);
	ASSERT_NE(grown, nullptr);
	EXPECT_TRUE(HasPattern(grown, 40, 1));
	FillPattern(grown, 200000, 2);

	void *shrunk = k_realloc(grown, 300);
	ASSERT_NE(shrunk, nullptr);
	EXPECT_EQ(shrunk, grown) << "a shrink can always stay in place";
	EXPECT_TRUE(HasPattern(shrunk, 300, 2));

	struct sys_memory_stats before = Stats(k_system_heap());
	EXPECT_EQ(k_realloc(shrunk, 2 * kSystemHeapBytes), nullptr);
	EXPECT_TRUE(HasPattern(shrunk, 300, 2)) << "a failed realloc changed the block";
	EXPECT_EQ(Stats(k_system_heap()).allocated_bytes, before.allocated_bytes);

	EXPECT_EQ(k_realloc(shrunk, 0), nullptr);
	EXPECT_EQ(Stats(k_system_heap()).allocated_bytes, baseline_.allocated_bytes);
}

TEST_F(SystemHeapTest, ExhaustedHeapAnswersNullPromptlyAndNeverWaits)
{
	std::vector<void *> blocks;
	for (size_t bytes : {1024 * 1024, 4096, 64, 8}) {
		for (;;) {
			void *mem = k_malloc(bytes);
			if (mem == nullptr) {
				break;
			}
			blocks.push_back(mem);
		}
	}
	ASSERT_GE(blocks.size(), 15u);
	struct k_heap_counters before = Counters(k_system_heap());

	std::atomic<bool> stop{false};
	std::atomic<unsigned int> most_waiters{0};
	std::thread watcher([&] {
		while (!stop.load()) {
			unsigned int waiters = k_heap_waiter_count(k_system_heap());
			if (waiters > most_waiters.load()) {
				most_waiters.store(waiters);
			}
			std::this_thread::yield();
		}
	});
	std::atomic<int64_t> slowest{0};
	std::atomic<int> successes{0};
	std::vector<std::thread> callers;
	for (int t = 0; t < 4; t++) {
		callers.emplace_back([&, t] {
			for (int i = 0; i < 1000; i++) {
				Clock::time_point start = Clock::now();
				void *mem;
				switch ((i + t) % 4) {
				case 0:
					mem = k_malloc(8);
					break;
				case 1:
					mem = k_calloc(1, 8);
					break;
				case 2:
					mem = k_aligned_alloc(64, 8);
					break;
				default:
					mem = k_realloc(blocks[t], 2 * 1024 * 1024);
					break;
				}
				int64_t took = MicrosSince(start);
				if (took > slowest.load()) {
					slowest.store(took);
				}
				if (mem != nullptr) {
					successes++;
				}
			}
		});
	}
	for (std::thread &caller : callers) {
		caller.join();
	}
	stop.store(true);
	watcher.join();

	EXPECT_EQ(successes.load(), 0) << "an exhausted heap served a request";
	EXPECT_LT(slowest.load(), kPromptMicros) << "a call on an exhausted heap took too long";
	EXPECT_EQ(most_waiters.load(), 0u) << "a k_malloc-family call waited";
	EXPECT_EQ(Counters(k_system_heap()).waits, before.waits);

	for (void *mem : blocks) {
		k_free(mem);
	}
	void *mem = k_malloc(1024 * 1024);
	EXPECT_NE(mem, nullptr) << "memory did not come back";
	k_free(mem);
}

TEST_F(SystemHeapTest, MisuseReachesTheFaultHandlerWithTheSystemHeap)
{
	void *mem = k_malloc(64);
	ASSERT_NE(mem, nullptr);
	alignas(16) char on_stack[32];
	struct sys_memory_stats before = Stats(k_system_heap());

	k_free(on_stack + 8);
	ExpectOneFault(KHEAP_FAULT_FOREIGN_POINTER, k_system_heap(), on_stack + 8);

	/* With known contents, so nothing in the body can pass for a header. */
	FillPattern(mem, 64, 64);
	k_free(static_cast<char *>(mem) + 16);
	ExpectOneFault(KHEAP_FAULT_INTERIOR_POINTER, k_system_heap(),
		       static_cast<char *>(mem) + 16);

	EXPECT_EQ(k_realloc(on_stack + 8, 100), nullptr);
	ExpectOneFault(KHEAP_FAULT_FOREIGN_POINTER, k_system_heap(), on_stack + 8);
	EXPECT_EQ(Stats(k_system_heap()).allocated_bytes, before.allocated_bytes);

	k_free(mem);
	k_free(mem);
	ExpectOneFault(KHEAP_FAULT_DOUBLE_FREE, k_system_heap(), mem);
}

TEST_F(SystemHeapTest, ConcurrentUseKeepsContentsAndHeapIntact)
{
	uint64_t seed = TestSeed();
	SCOPED_TRACE(SeedTrace(seed));
	constexpr int kThreads = 8;
	constexpr int kOps = 50000;
	std::atomic<int> corrupted{0};
	std::atomic<int> invalid{0};
	std::atomic<bool> stop{false};

	std::thread validator([&] {
		while (!stop.load()) {
			if (!sys_heap_validate(&k_system_heap()->heap)) {
				invalid++;
			}
			std::this_thread::sleep_for(std::chrono::milliseconds(2));
		}
	});
	std::vector<std::thread> workers;
	for (int t = 0; t < kThreads; t++) {
		workers.emplace_back([&, t] {
			std::mt19937_64 rng(seed + t);
			std::vector<TaggedBlock> held;
			uint64_t tag = static_cast<uint64_t>(t) << 40;
			for (int op = 0; op < kOps; op++) {
				size_t bytes = 1 + rng() % (size_t{1} << (rng() % 14));
				unsigned int action = rng() % 10;
				if (held.size() < 64 && action < 5) {
					void *mem =
					    action == 0 ? k_calloc(1, bytes) : k_malloc(bytes);
					if (mem == nullptr) {
						continue;
					}
					if (action == 0 && !IsZero(mem, bytes)) {
						corrupted++;
					}
					FillPattern(mem, bytes, tag);
					held.push_back({mem, bytes, tag++});
				} else if (!held.empty() && action < 7) {
					TaggedBlock &block = held[rng() % held.size()];
					void *mem = k_realloc(block.mem, bytes);
					if (mem == nullptr) {
						continue;
					}
					if (!HasPattern(mem, std::min(bytes, block.bytes),
							block.tag)) {
						corrupted++;
					}
					FillPattern(mem, bytes, tag);
					block = {mem, bytes, tag++};
				} else if (!held.empty()) {
					size_t victim = rng() % held.size();
					if (!HasPattern(held[victim])) {
						corrupted++;
					}
					k_free(held[victim].mem);
					held[victim] = held.back();
					held.pop_back();
				}
			}
			for (const TaggedBlock &block : held) {
				k_free(block.mem);
			}
		});
	}
	for (std::thread &worker : workers) {
		worker.join();
	}
	stop.store(true);
	validator.join();
	EXPECT_EQ(corrupted.load(), 0);
	EXPECT_EQ(invalid.load(), 0);
}

} // namespace
