/*
 * Tests of k_heap's per-CPU caches, seen only through the public API: where
 * freed blocks park (k_heap_walk names the CPU), draining under pressure,
 * bypass while threads wait, the cache_percent bound, migration between CPUs
 * in the middle of operations, cross-CPU producer/consumer traffic, teardown,
 * counters, stats and the walk's picture of the region.
 *
 * Threads are pinned with pthread_setaffinity_np to the first two CPUs this
 * process may use; the suite is skipped on a single-CPU machine. Invariants
 * each test keeps: every block it allocates is freed before it ends (the
 * fixture's k_heap_deinit() returning 0 checks it), no unexpected fault
 * reaches the handler, the main thread's affinity is restored, K_FOREVER
 * waits run under a Watchdog, and randomized tests print their seed
 * (KHEAP_TEST_SEED replays one).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <kheap/kheap.h>

#include "tests/support/test_support.h"

namespace
{

using namespace kheap_test;

std::vector<int> AllowedCpus()
{
	cpu_set_t set;
	CPU_ZERO(&set);
	std::vector<int> cpus;
	if (sched_getaffinity(0, sizeof(set), &set) != 0) {
		return cpus;
	}
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (CPU_ISSET(cpu, &set)) {
			cpus.push_back(cpu);
		}
	}
	return cpus;
}

/* Moves the calling thread onto `cpu`; true once it runs there. */
bool PinSelf(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0 &&
	       sched_getcpu() == cpu;
}

/* Runs `work` on a thread pinned to `cpu` and waits for it. */
void RunPinned(int cpu, const std::function<void()> &work)
{
	std::thread thread([cpu, &work] {
		EXPECT_TRUE(PinSelf(cpu)) << "cannot pin to CPU " << cpu;
		work();
	});
	thread.join();
}

struct Chunk {
	size_t offset;
	size_t bytes;
	enum k_heap_chunk_state state;
	int cpu;
};

void CollectChunk(void *arg, size_t offset, size_t bytes, enum k_heap_chunk_state state, int cpu)
{
	static_cast<std::vector<Chunk> *>(arg)->push_back({offset, bytes, state, cpu});
}

std::vector<Chunk> Walk(struct k_heap *h)
{
	std::vector<Chunk> chunks;
	EXPECT_EQ(k_heap_walk(h, CollectChunk, &chunks), 0);
	return chunks;
}

/* Empty when `chunks` tile a region of `bytes` in order, else what is wrong. */
std::string TilingError(const std::vector<Chunk> &chunks, size_t bytes)
{
	if (chunks.empty()) {
		return "no chunks";
	}
	if (chunks.front().offset >= 16) {
		return "first chunk at offset " + std::to_string(chunks.front().offset);
	}
	for (size_t i = 1; i < chunks.size(); i++) {
		if (chunks[i].offset != chunks[i - 1].offset + chunks[i - 1].bytes) {
			return "gap or overlap before chunk at " + std::to_string(chunks[i].offset);
		}
	}
	size_t end = chunks.back().offset + chunks.back().bytes;
	if (end > bytes || end + 16 <= bytes) {
		return "chunks end at " + std::to_string(end) + " of " + std::to_string(bytes);
	}
	return "";
}

/* The CPUs whose own caches hold chunks (the depot is not a CPU). */
std::set<int> CachingCpus(const std::vector<Chunk> &chunks)
{
	std::set<int> cpus;
	for (const Chunk &chunk : chunks) {
		if (chunk.state == K_HEAP_CHUNK_CACHED && chunk.cpu != K_HEAP_WALK_DEPOT) {
			cpus.insert(chunk.cpu);
		}
	}
	return cpus;
}

/* The size of the first cached chunk `cpu` holds (0 if none). */
size_t ChunkBytesOf(const std::vector<Chunk> &chunks, int cpu)
{
	for (const Chunk &chunk : chunks) {
		if (chunk.state == K_HEAP_CHUNK_CACHED && chunk.cpu == cpu) {
			return chunk.bytes;
		}
	}
	return 0;
}

/* Bytes (headers included) of the chunks cached by `cpu` (or the depot). */
size_t CachedBytesOf(const std::vector<Chunk> &chunks, int cpu)
{
	size_t bytes = 0;
	for (const Chunk &chunk : chunks) {
		if (chunk.state == K_HEAP_CHUNK_CACHED && chunk.cpu == cpu) {
			bytes += chunk.bytes;
		}
	}
	return bytes;
}

size_t DepotBytes(const std::vector<Chunk> &chunks)
{
	return CachedBytesOf(chunks, K_HEAP_WALK_DEPOT);
}

/* Allocates and frees `count` blocks of `bytes`, leaving them in a cache. */
void ChurnSmallBlocks(struct k_heap *h, int count, size_t bytes)
{
	std::vector<void *> blocks;
	for (int i = 0; i < count; i++) {
		void *mem = k_heap_alloc(h, bytes, K_NO_WAIT);
		ASSERT_NE(mem, nullptr);
		blocks.push_back(mem);
	}
	FreeAll(h, &blocks);
}

/* A heap per test, run from threads pinned to the first two allowed CPUs. */
class KHeapCacheTest : public KHeapFixture
{
      protected:
	void SetUp() override
	{
		cpus_ = AllowedCpus();
		if (cpus_.size() < 2) {
			GTEST_SKIP() << "needs two CPUs, has " << cpus_.size();
		}
		ASSERT_EQ(
		    pthread_getaffinity_np(pthread_self(), sizeof(main_affinity_), &main_affinity_),
		    0);
		affinity_saved_ = true;
	}

	void TearDown() override
	{
		KHeapFixture::TearDown();
		if (affinity_saved_) {
			pthread_setaffinity_np(pthread_self(), sizeof(main_affinity_),
					       &main_affinity_);
		}
	}

	/* Leaves freed blocks of several classes in the caches of both CPUs. */
	void ParkBlocksOnBothCpus()
	{
		for (int i = 0; i < 2; i++) {
			RunPinned(cpus_[i], [this] {
				ChurnSmallBlocks(&heap_, 40, 64);
				ChurnSmallBlocks(&heap_, 24, 256);
				ChurnSmallBlocks(&heap_, 8, 1000);
			});
		}
	}

	/* Allocates 64-byte blocks on the first CPU until the heap refuses,
	 * frees all but 3000 of them there, and frees those on the second CPU,
	 * whose flushes park some in the depot.
	 */
	void ParkBlocksInTheDepot()
	{
		constexpr size_t kBlocks = 3000;
		std::vector<void *> blocks;

		RunPinned(cpus_[0], [&] { blocks = AllocUntilRefused(&heap_, 64); });
		ASSERT_GT(blocks.size(), kBlocks);
		RunPinned(cpus_[0], [&] {
			while (blocks.size() > kBlocks) {
				k_heap_free(&heap_, blocks.back());
				blocks.pop_back();
			}
		});
		RunPinned(cpus_[1], [&] { FreeAll(&heap_, &blocks); });
	}

	std::vector<int> cpus_;
	cpu_set_t main_affinity_;
	bool affinity_saved_ = false;
};

TEST_F(KHeapCacheTest, FreedBlocksParkInTheFreeingCpusCache)
{
	ASSERT_TRUE(Init(1024 * 1024, 25));
	ParkBlocksOnBothCpus();
	struct sys_memory_stats stats = Stats(&heap_);
	EXPECT_EQ(stats.allocated_bytes, 0u);
	EXPECT_GT(stats.cached_bytes, 0u);
	EXPECT_LT(stats.free_bytes, initial_.free_bytes);
	EXPECT_EQ(CachingCpus(Walk(&heap_)).size(), 2u) << "both CPUs should hold cached blocks";

	k_heap_drain_caches(&heap_);
	stats = Stats(&heap_);
	EXPECT_EQ(stats.cached_bytes, 0u);
	EXPECT_EQ(stats.free_bytes, initial_.free_bytes);
	EXPECT_TRUE(CachingCpus(Walk(&heap_)).empty());
}

TEST_F(KHeapCacheTest, PressureDrainsTheCachesOfEveryCpu)
{
	ASSERT_TRUE(Init(1024 * 1024, 25));
	ParkBlocksOnBothCpus();
	struct sys_memory_stats parked = Stats(&heap_);
	ASSERT_GT(parked.cached_bytes, 0u);
	ASSERT_EQ(CachingCpus(Walk(&heap_)).size(), 2u);

	/* More than the global heap has free, less than it has once drained. */
	size_t request =
	    (parked.free_bytes + (initial_.free_bytes - parked.free_bytes) / 2) / 8 * 8;
	ASSERT_GT(request, parked.free_bytes);
	struct k_heap_counters before = Counters(&heap_);
	void *mem = k_heap_alloc(&heap_, request, K_NO_WAIT);
	ASSERT_NE(mem, nullptr) << "cached blocks were lost to a " << request << "-byte request";
	EXPECT_GT(Counters(&heap_).drains, before.drains);
	EXPECT_TRUE(CachingCpus(Walk(&heap_)).empty());
	k_heap_free(&heap_, mem);
}

/*
 * Once memory turns scarce, the first free or miss that leaves the hit path
 * gives every CPU's cache (and the depot) back to the heap, once per scarce
 * spell, instead of keeping the blocks as holes until the drain before a
 * failure.
 */
TEST_F(KHeapCacheTest, CachesDrainOnceWhenMemoryBecomesScarce)
{
	ASSERT_TRUE(Init(1024 * 1024, 25));
	for (int spell = 0; spell < 2; spell++) {
		ParkBlocksOnBothCpus();
		ASSERT_EQ(CachingCpus(Walk(&heap_)).size(), 2u);

		/* Past half the heap: from here on memory counts as scarce. */
		void *big = k_heap_alloc(&heap_, initial_.free_bytes * 6 / 10 / 8 * 8, K_NO_WAIT);
		ASSERT_NE(big, nullptr);
		ASSERT_EQ(CachingCpus(Walk(&heap_)).size(), 2u)
		    << "a global allocation touched a cache";
		struct k_heap_counters before = Counters(&heap_);

		/* A hit, then a free on one CPU: the free leaves the hit path and
		 * takes every CPU's cache along. Each spell starts on another CPU.
		 */
		RunPinned(cpus_[spell], [this] {
			void *mem = k_heap_alloc(&heap_, 64, K_NO_WAIT);
			ASSERT_NE(mem, nullptr);
			k_heap_free(&heap_, mem);
		});
		EXPECT_TRUE(CachingCpus(Walk(&heap_)).empty()) << "spell " << spell;
		EXPECT_EQ(DepotBytes(Walk(&heap_)), 0u);
		struct k_heap_counters drained = Counters(&heap_);
		EXPECT_GT(drained.drains, before.drains);

		/* A miss on the other CPU (no 512-byte block was parked) finds the
		 * spell drained already, and parks nothing.
		 */
		RunPinned(cpus_[1 - spell], [this] {
			void *mem = k_heap_alloc(&heap_, 512, K_NO_WAIT);
			ASSERT_NE(mem, nullptr);
			k_heap_free(&heap_, mem);
		});
		EXPECT_TRUE(CachingCpus(Walk(&heap_)).empty());
		EXPECT_EQ(Counters(&heap_).drains, drained.drains) << "drained twice in one spell";
		EXPECT_TRUE(sys_heap_validate(&heap_.heap));

		k_heap_free(&heap_, big);
		EXPECT_EQ(Stats(&heap_).free_bytes, initial_.free_bytes);
	}
}

/*
 * Each class claims part of its cache's budget as it grows. A class that
 * hands its blocks out again keeps its claim, but another class that needs
 * room takes back what the first claimed and no longer holds.
 */
TEST_F(KHeapCacheTest, AClassTakesBackTheBudgetAnotherClassNoLongerUses)
{
	ASSERT_TRUE(Init(1024 * 1024, 25));
	std::vector<void *> small, large;

	RunPinned(cpus_[0], [&] {
		ChurnSmallBlocks(&heap_, 3000, 64);
		size_t full = CachedBytesOf(Walk(&heap_), cpus_[0]);
		ASSERT_GT(full, 0u);
		/* Take the 64-byte blocks out again: the class keeps its claim. */
		while (CachedBytesOf(Walk(&heap_), cpus_[0]) > full / 8) {
			small.push_back(k_heap_alloc(&heap_, 64, K_NO_WAIT));
			ASSERT_NE(small.back(), nullptr);
		}
		for (int i = 0; i < 600; i++) {
			large.push_back(k_heap_alloc(&heap_, 256, K_NO_WAIT));
			ASSERT_NE(large.back(), nullptr);
		}
		FreeAll(&heap_, &large);
		size_t parked = CachedBytesOf(Walk(&heap_), cpus_[0]);
		EXPECT_GE(parked, full / 2)
		    << "256-byte blocks found no room beside the 64-byte class's unused claim ("
		    << parked << " of " << full << " bytes)";
		EXPECT_TRUE(sys_heap_validate(&heap_.heap));
		FreeAll(&heap_, &small);
	});
	EXPECT_LE(Stats(&heap_).cached_bytes, bytes_ / 4);
	EXPECT_TRUE(sys_heap_validate(&heap_.heap));
}

TEST_F(KHeapCacheTest, FreesBypassTheCachesWhileSomeoneWaits)
{
	ASSERT_TRUE(Init(256 * 1024, 25));
	ASSERT_TRUE(PinSelf(cpus_[0]));
	FilledHeap filled = FillHeap(&heap_, 128);
	std::vector<void *> &blocks = filled.blocks;
	ASSERT_GT(blocks.size(), 100u);
	Watchdog watchdog("a waiter on another CPU");

	std::atomic<void *> large{nullptr};
	std::thread waiter([&] {
		EXPECT_TRUE(PinSelf(cpus_[1]));
		large.store(k_heap_alloc(&heap_, 4096, K_FOREVER));
	});
	ASSERT_TRUE(WaitForWaiters(&heap_, 1));

	/* Too small for the waiter, yet none of it may stay in a cache. */
	struct sys_memory_stats previous = Stats(&heap_);
	for (size_t i = 0; i < 40; i += 2) {
		k_heap_free(&heap_, blocks[i]);
		blocks[i] = nullptr;
		struct sys_memory_stats now = Stats(&heap_);
		EXPECT_LE(now.cached_bytes, previous.cached_bytes) << "free " << i / 2;
		EXPECT_GT(now.free_bytes, previous.free_bytes) << "free " << i / 2;
		previous = now;
	}
	EXPECT_EQ(k_heap_waiter_count(&heap_), 1u);
	EXPECT_EQ(large.load(), nullptr);

	blocks.erase(std::remove(blocks.begin(), blocks.end(), nullptr), blocks.end());
	FreeAll(&heap_, &blocks);
	waiter.join();
	EXPECT_NE(large.load(), nullptr);
	k_heap_free(&heap_, large.load());
	FreeAll(&heap_, &filled);
}

TEST_F(KHeapCacheTest, FreeHandsItsBlockToAWaiterOnAnotherCpu)
{
	ASSERT_TRUE(Init(256 * 1024, 25));
	ASSERT_TRUE(PinSelf(cpus_[0]));
	ChurnSmallBlocks(&heap_, 40, 128);
	FilledHeap filled = FillHeap(&heap_, 128);
	ASSERT_FALSE(filled.blocks.empty());
	struct k_heap_counters before = Counters(&heap_);
	Watchdog watchdog("a waiter on another CPU");

	std::atomic<void *> got{nullptr};
	std::thread waiter([&] {
		EXPECT_TRUE(PinSelf(cpus_[1]));
		got.store(k_heap_alloc(&heap_, 128, K_FOREVER));
	});
	ASSERT_TRUE(WaitForWaiters(&heap_, 1));
	size_t cached_before = Stats(&heap_).cached_bytes;
	k_heap_free(&heap_, filled.blocks.back());
	filled.blocks.pop_back();
	waiter.join();
	EXPECT_NE(got.load(), nullptr);
	EXPECT_EQ(Counters(&heap_).handoffs - before.handoffs, 1u);
	EXPECT_LE(Stats(&heap_).cached_bytes, cached_before);

	k_heap_free(&heap_, got.load());
	FreeAll(&heap_, &filled);
}

class KHeapCacheBoundTest : public KHeapCacheTest,
			    public ::testing::WithParamInterface<unsigned int>
{
};

TEST_P(KHeapCacheBoundTest, CachedBytesStayWithinTheConfiguredPercent)
{
	const unsigned int percent = GetParam();
	ASSERT_TRUE(Init(512 * 1024, percent));
	const size_t bound = bytes_ * percent / 100;
	uint64_t seed = TestSeed();
	SCOPED_TRACE(SeedTrace(seed));
	constexpr int kThreads = 6;
	constexpr int kOps = 60000;
	Failures failures;
	std::atomic<bool> stop{false};
	std::atomic<int> samples{0};
	size_t max_cached = 0;

	std::thread monitor([&] {
		struct k_heap_counters last = {};
		while (!stop.load()) {
			struct sys_memory_stats stats = {};
			struct k_heap_counters counters = {};
			if (k_heap_runtime_stats_get(&heap_, &stats) != 0 ||
			    k_heap_counters_get(&heap_, &counters) != 0) {
				failures.Add("stats or counters failed under load");
				continue;
			}
			max_cached = std::max(max_cached, stats.cached_bytes);
			if (stats.cached_bytes > bound) {
				failures.Add("cached " + std::to_string(stats.cached_bytes) +
					     " bytes, bound " + std::to_string(bound));
			}
			if (stats.allocated_bytes + stats.cached_bytes + stats.free_bytes >
			    bytes_) {
				failures.Add("stats add up to more than the heap");
			}
			/* Validate also checks each cache's budget accounting, which
			 * can go wrong before any byte count shows it.
			 */
			if (samples.load() % 8 == 0 && !sys_heap_validate(&heap_.heap)) {
				failures.Add("validate failed under load");
			}
			if (counters.cache_hits < last.cache_hits ||
			    counters.cache_misses < last.cache_misses ||
			    counters.refills < last.refills || counters.flushes < last.flushes) {
				failures.Add("a counter went backwards");
			}
			last = counters;
			samples++;
			std::this_thread::yield();
		}
	});
	std::vector<std::thread> workers;
	for (int t = 0; t < kThreads; t++) {
		workers.emplace_back([&, t] {
			if (t < 4) {
				EXPECT_TRUE(PinSelf(cpus_[t % 2]));
			}
			/* The bound is only checked while the monitor is running. */
			while (samples.load() == 0) {
				std::this_thread::yield();
			}
			std::mt19937_64 rng(seed + t);
			std::vector<void *> held;
			for (int op = 0; op < kOps; op++) {
				if (held.size() < 32 && rng() % 2 == 0) {
					void *mem =
					    k_heap_alloc(&heap_, 1 + rng() % 1024, K_NO_WAIT);
					if (mem != nullptr) {
						held.push_back(mem);
					}
				} else if (!held.empty()) {
					size_t victim = rng() % held.size();
					k_heap_free(&heap_, held[victim]);
					held[victim] = held.back();
					held.pop_back();
				}
			}
			FreeAll(&heap_, &held);
		});
	}
	for (std::thread &worker : workers) {
		worker.join();
	}
	stop.store(true);
	monitor.join();

	EXPECT_EQ(failures.count(), 0) << "first: " << failures.first();
	EXPECT_GT(samples.load(), 1);
	struct sys_memory_stats stats = Stats(&heap_);
	EXPECT_EQ(stats.allocated_bytes, 0u);
	EXPECT_LE(stats.cached_bytes, bound);
	max_cached = std::max(max_cached, stats.cached_bytes);
	struct k_heap_counters counters = Counters(&heap_);
	if (percent == 0) {
		EXPECT_EQ(max_cached, 0u);
		EXPECT_EQ(counters.cache_hits, 0u);
		EXPECT_TRUE(CachingCpus(Walk(&heap_)).empty());
	} else {
		EXPECT_GT(max_cached, 0u) << "the caches were never used";
		EXPECT_GT(counters.cache_hits, 0u);
	}
}

INSTANTIATE_TEST_SUITE_P(Percents, KHeapCacheBoundTest, ::testing::Values(5u, 25u, 0u),
			 [](const ::testing::TestParamInfo<unsigned int> &info) {
				 return "Percent" + std::to_string(info.param);
			 });

TEST_F(KHeapCacheTest, ThreadsMigratingMidOperationKeepContentsAndHeapIntact)
{
	ASSERT_TRUE(Init(512 * 1024, 25));
	uint64_t seed = TestSeed();
	SCOPED_TRACE(SeedTrace(seed));
	constexpr int kThreads = 24;
	constexpr int kOps = 20000;
	Failures failures;
	std::atomic<bool> stop{false};
	std::atomic<int> checks{0};

	std::thread checker([&] {
		while (!stop.load()) {
			if (!sys_heap_validate(&heap_.heap)) {
				failures.Add("sys_heap_validate failed under load");
			}
			std::string tiling = TilingError(Walk(&heap_), bytes_);
			if (!tiling.empty()) {
				failures.Add("walk under load: " + tiling);
			}
			checks++;
			std::this_thread::sleep_for(std::chrono::milliseconds(1));
		}
	});
	std::vector<std::thread> workers;
	for (int t = 0; t < kThreads; t++) {
		workers.emplace_back([&, t] {
			/* A third float freely; the rest are moved between CPUs. */
			const bool hops = t % 3 != 0;
			std::mt19937_64 rng(seed + t);
			std::vector<TaggedBlock> held;
			uint64_t tag = static_cast<uint64_t>(t) << 40;
			for (int op = 0; op < kOps; op++) {
				if (hops && op % 50 == 0) {
					PinSelf(cpus_[(op / 50 + t) % 2]);
				}
				if (held.size() < 16 && rng() % 2 == 0) {
					size_t bytes = 1 + rng() % 2048;
					void *mem = k_heap_alloc(&heap_, bytes, K_NO_WAIT);
					if (mem == nullptr) {
						continue;
					}
					FillPattern(mem, bytes, tag);
					held.push_back({mem, bytes, tag++});
				} else if (!held.empty()) {
					size_t victim = rng() % held.size();
					TaggedBlock block = held[victim];
					if (!HasPattern(block)) {
						failures.Add("contents changed while held");
					}
					if (rng() % 4 == 0) {
						size_t bytes = 1 + rng() % 2048;
						void *mem = k_heap_realloc(&heap_, block.mem, bytes,
									   K_NO_WAIT);
						if (mem != nullptr) {
							if (!HasPattern(
								mem, std::min(bytes, block.bytes),
								block.tag)) {
								failures.Add(
								    "realloc lost contents");
							}
							FillPattern(mem, bytes, tag);
							held[victim] = {mem, bytes, tag++};
						}
						continue;
					}
					k_heap_free(&heap_, block.mem);
					held[victim] = held.back();
					held.pop_back();
				}
			}
			for (const TaggedBlock &block : held) {
				if (!HasPattern(block)) {
					failures.Add("contents changed while held");
				}
				k_heap_free(&heap_, block.mem);
			}
		});
	}
	for (std::thread &worker : workers) {
		worker.join();
	}
	stop.store(true);
	checker.join();

	EXPECT_EQ(failures.count(), 0) << "first: " << failures.first();
	EXPECT_GT(checks.load(), 0);
	EXPECT_TRUE(sys_heap_validate(&heap_.heap));
	EXPECT_EQ(Stats(&heap_).allocated_bytes, 0u);
	k_heap_drain_caches(&heap_);
	struct sys_memory_stats stats = Stats(&heap_);
	EXPECT_EQ(stats.cached_bytes, 0u);
	EXPECT_EQ(stats.free_bytes, initial_.free_bytes);
}

/*
 * Blocks allocated on one CPU and freed on the other: the freeing CPU's
 * surplus goes to the depot, and the allocating CPU's refills take it from
 * there instead of splitting the global heap.
 */
TEST_F(KHeapCacheTest, DepotCarriesTheFreeingCpusSurplusToTheAllocatingCpu)
{
	ASSERT_TRUE(Init(1024 * 1024, 25));
	std::vector<void *> blocks;

	ParkBlocksInTheDepot();
	std::vector<Chunk> chunks = Walk(&heap_);
	size_t parked = DepotBytes(chunks);
	ASSERT_GT(parked, 0u) << "the freeing CPU's flushes left nothing in the depot";
	EXPECT_TRUE(sys_heap_validate(&heap_.heap));
	struct sys_memory_stats stats = Stats(&heap_);
	EXPECT_EQ(stats.allocated_bytes, 0u);
	EXPECT_LE(stats.cached_bytes, bytes_ / 4) << "the depot went past the cache bound";
	size_t free_before = stats.free_bytes;

	/* What the allocating CPU's own cache holds, then half of the depot:
	 * the refills for that half take it from the depot.
	 */
	size_t chunk = ChunkBytesOf(chunks, K_HEAP_WALK_DEPOT);
	ASSERT_GT(chunk, 0u);
	size_t wanted = CachedBytesOf(chunks, cpus_[0]) / chunk + parked / chunk / 2;
	RunPinned(cpus_[0], [&] {
		for (size_t i = 0; i < wanted; i++) {
			blocks.push_back(k_heap_alloc(&heap_, 64, K_NO_WAIT));
			ASSERT_NE(blocks.back(), nullptr);
		}
	});
	EXPECT_LT(DepotBytes(Walk(&heap_)), parked);
	EXPECT_EQ(Stats(&heap_).free_bytes, free_before)
	    << "blocks came from the global heap while the depot had them";
	EXPECT_TRUE(sys_heap_validate(&heap_.heap));

	RunPinned(cpus_[0], [&] { FreeAll(&heap_, &blocks); });
	k_heap_drain_caches(&heap_);
	EXPECT_EQ(DepotBytes(Walk(&heap_)), 0u) << "a drain left blocks in the depot";
	EXPECT_EQ(Stats(&heap_).cached_bytes, 0u);
	EXPECT_EQ(Stats(&heap_).free_bytes, initial_.free_bytes);
}

/*
 * A refill that finds blocks of its class in the depot takes the whole list
 * at once, and every block it parks names its new cache (validate checks
 * each link), without the global heap giving or taking a byte.
 */
TEST_F(KHeapCacheTest, ARefillTakesTheDepotsWholeListAtOnce)
{
	ASSERT_TRUE(Init(1024 * 1024, 25));
	std::vector<void *> blocks;

	ParkBlocksInTheDepot();
	std::vector<Chunk> chunks = Walk(&heap_);
	size_t parked = DepotBytes(chunks), chunk = ChunkBytesOf(chunks, K_HEAP_WALK_DEPOT);
	size_t own = CachedBytesOf(chunks, cpus_[0]);
	ASSERT_GT(parked, chunk) << "the depot should hold several blocks";
	size_t free_before = Stats(&heap_).free_bytes;

	RunPinned(cpus_[0], [&] {
		/* This CPU's own blocks first: the depot is not touched. */
		for (size_t i = 0; i < own / chunk; i++) {
			blocks.push_back(k_heap_alloc(&heap_, 64, K_NO_WAIT));
			ASSERT_NE(blocks.back(), nullptr);
		}
		ASSERT_EQ(DepotBytes(Walk(&heap_)), parked);
		ASSERT_EQ(CachedBytesOf(Walk(&heap_), cpus_[0]), 0u);
		/* The miss: one refill empties the depot's list into this cache. */
		blocks.push_back(k_heap_alloc(&heap_, 64, K_NO_WAIT));
		ASSERT_NE(blocks.back(), nullptr);
	});
	chunks = Walk(&heap_);
	EXPECT_EQ(DepotBytes(chunks), 0u);
	EXPECT_EQ(CachedBytesOf(chunks, cpus_[0]), parked - chunk);
	EXPECT_EQ(Stats(&heap_).free_bytes, free_before) << "the global heap took part";
	EXPECT_TRUE(sys_heap_validate(&heap_.heap));

	RunPinned(cpus_[0], [&] { FreeAll(&heap_, &blocks); });
	k_heap_drain_caches(&heap_);
	EXPECT_EQ(Stats(&heap_).free_bytes, initial_.free_bytes);
}

/* With trailers (FULL) a block must leave a cache through the poison check: no depot. */
TEST_F(KHeapCacheTest, DepotStaysEmptyWithTrailers)
{
	ASSERT_TRUE(Init(1024 * 1024, 25));
	ASSERT_EQ(k_heap_set_hardening(&heap_, SYS_HEAP_HARDENING_FULL), 0);
	std::vector<void *> blocks;

	RunPinned(cpus_[0], [&] {
		for (int i = 0; i < 3000; i++) {
			blocks.push_back(k_heap_alloc(&heap_, 64, K_NO_WAIT));
			ASSERT_NE(blocks.back(), nullptr);
		}
	});
	RunPinned(cpus_[1], [&] { FreeAll(&heap_, &blocks); });
	struct k_heap_counters counters = Counters(&heap_);
	EXPECT_GT(counters.flushes, 0u) << "the freeing CPU never flushed";
	EXPECT_EQ(DepotBytes(Walk(&heap_)), 0u);
	EXPECT_TRUE(sys_heap_validate(&heap_.heap));
	k_heap_drain_caches(&heap_);
}

TEST_F(KHeapCacheTest, ProducerOnOneCpuConsumerOnAnother)
{
	ASSERT_TRUE(Init(1024 * 1024, 25));
	uint64_t seed = TestSeed();
	SCOPED_TRACE(SeedTrace(seed));
	constexpr int kItems = 60000;
	constexpr size_t kQueueLimit = 512;
	std::mutex mutex;
	std::condition_variable not_full;
	std::condition_variable not_empty;
	std::deque<TaggedBlock> queue;
	Failures failures;
	struct k_heap_counters before = Counters(&heap_);

	{
		Watchdog watchdog("producer and consumer");
		std::thread producer([&] {
			EXPECT_TRUE(PinSelf(cpus_[0]));
			std::mt19937_64 rng(seed);
			for (int i = 0; i < kItems; i++) {
				size_t bytes = 16 + rng() % 1009;
				void *mem = k_heap_alloc(&heap_, bytes, K_FOREVER);
				if (mem == nullptr) {
					failures.Add("K_FOREVER returned NULL");
					continue;
				}
				FillPattern(mem, bytes, i);
				std::unique_lock<std::mutex> lock(mutex);
				not_full.wait(lock, [&] { return queue.size() < kQueueLimit; });
				queue.push_back({mem, bytes, static_cast<uint64_t>(i)});
				not_empty.notify_one();
			}
			std::lock_guard<std::mutex> lock(mutex);
			queue.push_back({nullptr, 0, 0});
			not_empty.notify_one();
		});
		std::thread consumer([&] {
			EXPECT_TRUE(PinSelf(cpus_[1]));
			for (;;) {
				TaggedBlock item;
				{
					std::unique_lock<std::mutex> lock(mutex);
					not_empty.wait(lock, [&] { return !queue.empty(); });
					item = queue.front();
					queue.pop_front();
					not_full.notify_one();
				}
				if (item.mem == nullptr) {
					break;
				}
				if (!HasPattern(item)) {
					failures.Add("item " + std::to_string(item.tag) +
						     " changed in transit");
				}
				k_heap_free(&heap_, item.mem);
			}
		});
		producer.join();
		consumer.join();
	}

	EXPECT_EQ(failures.count(), 0) << "first: " << failures.first();
	struct k_heap_counters after = Counters(&heap_);
	EXPECT_GT(after.cache_hits, before.cache_hits) << "the producer's cache never served";
	EXPECT_GT(after.refills, before.refills) << "the producer's cache never refilled";
	EXPECT_GT(after.flushes, before.flushes) << "the consumer's cache never flushed";
	struct sys_memory_stats stats = Stats(&heap_);
	EXPECT_EQ(stats.allocated_bytes, 0u);
	EXPECT_LE(stats.cached_bytes, bytes_ / 4);
	EXPECT_TRUE(sys_heap_validate(&heap_.heap));
}

TEST_F(KHeapCacheTest, DeinitSucceedsWithFullCachesOnceUsersFreedEverything)
{
	ASSERT_TRUE(Init(1024 * 1024, 25));
	ParkBlocksOnBothCpus();
	ASSERT_GT(Stats(&heap_).cached_bytes, 0u);
	ASSERT_EQ(k_heap_deinit(&heap_), 0);
	ready_ = false;

	struct k_heap_config config = {25};
	ASSERT_EQ(k_heap_init_config(&heap_, region_->start(), bytes_, &config), 0);
	ready_ = true;
	struct sys_memory_stats stats = Stats(&heap_);
	EXPECT_EQ(stats.allocated_bytes, 0u);
	EXPECT_EQ(stats.cached_bytes, 0u);
	EXPECT_EQ(stats.free_bytes, initial_.free_bytes);
	ParkBlocksOnBothCpus();
	EXPECT_TRUE(sys_heap_validate(&heap_.heap));
}

TEST_F(KHeapCacheTest, DeinitIsRefusedWhileABlockIsHeld)
{
	ASSERT_TRUE(Init(1024 * 1024, 25));
	ParkBlocksOnBothCpus();
	void *held = nullptr;
	RunPinned(cpus_[1], [&] { held = k_heap_alloc(&heap_, 64, K_NO_WAIT); });
	ASSERT_NE(held, nullptr);
	struct sys_memory_stats before = Stats(&heap_);

	EXPECT_EQ(k_heap_deinit(&heap_), -EBUSY);
	struct sys_memory_stats after = Stats(&heap_);
	EXPECT_EQ(after.allocated_bytes, before.allocated_bytes);
	EXPECT_EQ(after.cached_bytes, before.cached_bytes) << "a refused deinit drained the caches";
	EXPECT_TRUE(sys_heap_validate(&heap_.heap));

	k_heap_free(&heap_, held);
	EXPECT_EQ(k_heap_deinit(&heap_), 0);
	ready_ = false;
}

/* Heap bytes: 64 KiB formats with 4-byte headers, 1 MiB with 8-byte ones. */
class KHeapCacheMisuseTest : public KHeapCacheTest, public ::testing::WithParamInterface<size_t>
{
};

TEST_P(KHeapCacheMisuseTest, CacheHitsKeepEveryBasicCheck)
{
	ASSERT_TRUE(Init(GetParam(), 25));
	ASSERT_TRUE(PinSelf(cpus_[0]));
	char *parked = static_cast<char *>(k_heap_alloc(&heap_, 64, K_NO_WAIT));
	char *live = static_cast<char *>(k_heap_alloc(&heap_, 64, K_NO_WAIT));
	void *after = k_heap_alloc(&heap_, 64, K_NO_WAIT);
	ASSERT_NE(parked, nullptr);
	ASSERT_NE(live, nullptr);
	ASSERT_NE(after, nullptr);
	/* Zeros: no word inside the block can pass for a header, so every
	 * interior pointer below is reported as one on every target.
	 */
	memset(live, 0, 64);
	k_heap_free(&heap_, parked);
	ASSERT_GT(Stats(&heap_).cached_bytes, 0u) << "the block should sit in this CPU's cache";
	struct sys_memory_stats before = Stats(&heap_);

	k_heap_free(&heap_, parked);
	ExpectOneFault(KHEAP_FAULT_DOUBLE_FREE, &heap_, parked);
	for (size_t offset : {size_t{4}, size_t{8}, size_t{16}}) {
		k_heap_free(&heap_, live + offset);
		ExpectOneFault(KHEAP_FAULT_INTERIOR_POINTER, &heap_, live + offset);
	}
	alignas(16) char on_stack[64];
	for (void *foreign : {static_cast<void *>(on_stack + 16),
			      static_cast<void *>(region_->start() + bytes_ + 64)}) {
		k_heap_free(&heap_, foreign);
		ExpectOneFault(KHEAP_FAULT_FOREIGN_POINTER, &heap_, foreign);
	}
	size_t usable = k_heap_usable_size(&heap_, live);
	char saved[8];
	memcpy(saved, live + usable, sizeof(saved));
	memset(live + usable, 0xa5, sizeof(saved));
	k_heap_free(&heap_, live);
	ExpectOneFault(KHEAP_FAULT_HEADER_OVERWRITTEN, &heap_, live);
	memcpy(live + usable, saved, sizeof(saved));
	EXPECT_EQ(before, Stats(&heap_));
	EXPECT_TRUE(IsZero(live, 64));
	EXPECT_TRUE(sys_heap_validate(&heap_.heap));

	/* The byte before a block's memory belongs to its size in both header
	 * formats: a parked block whose size changed is never handed out.
	 */
	parked[-1] ^= 0x40;
	void *next = k_heap_alloc(&heap_, 64, K_NO_WAIT);
	ASSERT_NE(next, nullptr);
	EXPECT_NE(next, parked);
	ExpectOneFault(KHEAP_FAULT_CORRUPT_HEAP, &heap_, parked);
	k_heap_free(&heap_, next);
	k_heap_free(&heap_, live);
	k_heap_free(&heap_, after);
	ExpectNoFaults();
	/* The damaged block stays out of circulation, so the heap never empties. */
	ready_ = false;
}

/*
 * A parked block's second word names its cache. A block that names another
 * one was written after it was freed, or was freed on two CPUs at once and
 * sits in both caches: it is never handed out.
 */
TEST_P(KHeapCacheMisuseTest, ABlockNamingAnotherCacheIsNeverHandedOut)
{
	ASSERT_TRUE(Init(GetParam(), 25));
	ASSERT_TRUE(PinSelf(cpus_[0]));
	uint32_t *parked = static_cast<uint32_t *>(k_heap_alloc(&heap_, 64, K_NO_WAIT));
	void *live = k_heap_alloc(&heap_, 64, K_NO_WAIT);
	ASSERT_NE(parked, nullptr);
	ASSERT_NE(live, nullptr);
	k_heap_free(&heap_, parked);
	ASSERT_GT(CachedBytesOf(Walk(&heap_), cpus_[0]), 0u);
	/* The freed block heads its class's list: the next allocation meets it. */
	parked[1] ^= 1;

	void *next = k_heap_alloc(&heap_, 64, K_NO_WAIT);
	ASSERT_NE(next, nullptr);
	EXPECT_NE(next, static_cast<void *>(parked));
	ExpectOneFault(KHEAP_FAULT_CORRUPT_HEAP, &heap_, parked);
	k_heap_free(&heap_, next);
	k_heap_free(&heap_, live);
	ExpectNoFaults();
	ready_ = false;
}

/* A reusable spin barrier: waiting threads stay on their CPUs, so the two
 * frees after it start within a few hundred nanoseconds of each other.
 */
class SpinBarrier
{
      public:
	explicit SpinBarrier(int parties) : parties_(parties)
	{
	}

	void Wait()
	{
		int generation = generation_.load();
		if (arrived_.fetch_add(1) + 1 == parties_) {
			arrived_.store(0);
			generation_.fetch_add(1);
			return;
		}
		while (generation_.load() == generation) {
		}
	}

      private:
	const int parties_;
	std::atomic<int> arrived_{0};
	std::atomic<int> generation_{0};
};

/*
 * Two CPUs free the same block at the same instant, many times. Whichever
 * way each race goes (the later free is refused, or both CPUs park the
 * block), every round raises a fault and no block is ever held twice.
 */
TEST_F(KHeapCacheTest, ABlockFreedOnTwoCpusAtOnceIsNeverHeldTwice)
{
#if defined(__SANITIZE_THREAD__)
	GTEST_SKIP() << "the race under test is a data race on the block by design";
#endif
	ASSERT_TRUE(Init(1024 * 1024, 25));
	constexpr int kRounds = 1000;
	SpinBarrier barrier(2);
	void *victim = nullptr;
	std::vector<void *> held[2];
	int faultless_rounds = 0, corrupt_rounds = 0;

	/* Side 0 also hands out each round's block and collects its faults. */
	auto freer = [&](int side) {
		EXPECT_TRUE(PinSelf(cpus_[side]));
		for (int round = 0; round < kRounds; round++) {
			if (side == 0)
				victim = k_heap_alloc(&heap_, 64, K_NO_WAIT);
			barrier.Wait();
			if (victim == nullptr)
				return;
			k_heap_free(&heap_, victim);
			barrier.Wait();
			/* A block parked in both caches is the head of both. */
			for (int i = 0; i < 2; i++) {
				void *mem = k_heap_alloc(&heap_, 64, K_NO_WAIT);
				EXPECT_NE(mem, nullptr);
				if (mem != nullptr)
					held[side].push_back(mem);
			}
			barrier.Wait();
			if (side != 0)
				continue;
			std::vector<Fault> faults = TakeFaults();
			faultless_rounds += faults.empty();
			for (const Fault &fault : faults)
				corrupt_rounds += fault.kind == KHEAP_FAULT_CORRUPT_HEAP;
		}
	};
	std::thread other(freer, 1);
	freer(0);
	other.join();
	EXPECT_EQ(faultless_rounds, 0) << "a second free of one block went unnoticed";
	std::set<void *> distinct;
	for (auto &blocks : held)
		for (void *mem : blocks)
			EXPECT_TRUE(distinct.insert(mem).second)
			    << "block " << mem << " held twice";
	std::printf("%d of %d rounds raced past the double-free check and were caught in "
		    "the caches\n",
		    corrupt_rounds, kRounds);
	for (auto &blocks : held)
		FreeAll(&heap_, &blocks);
	/* A caught race leaves the two damaged lists' blocks out of circulation. */
	ready_ = corrupt_rounds == 0;
}

INSTANTIATE_TEST_SUITE_P(HeaderWidths, KHeapCacheMisuseTest,
			 ::testing::Values(size_t{64 * 1024}, size_t{1024 * 1024}),
			 [](const ::testing::TestParamInfo<size_t> &info) {
				 return info.param < 128 * 1024 ? "SmallHeaders" : "BigHeaders";
			 });

class KHeapCacheCountersTest : public KHeapCacheTest,
			       public ::testing::WithParamInterface<unsigned int>
{
};

TEST_P(KHeapCacheCountersTest, CountersArePlausible)
{
	const bool caches_on = GetParam() != 0;
	ASSERT_TRUE(Init(1024 * 1024, GetParam()));
	ASSERT_TRUE(PinSelf(cpus_[0]));
	struct k_heap_counters zero = Counters(&heap_);
	EXPECT_EQ(zero.cache_hits + zero.cache_misses + zero.refills + zero.flushes + zero.drains +
		      zero.waits + zero.handoffs + zero.timeouts,
		  0u)
	    << "a fresh heap has events";

	for (int i = 0; i < 2000; i++) {
		void *mem = k_heap_alloc(&heap_, 64, K_NO_WAIT);
		ASSERT_NE(mem, nullptr);
		k_heap_free(&heap_, mem);
	}
	for (int i = 0; i < 20; i++) {
		ChurnSmallBlocks(&heap_, 200, 128);
	}
	/* Frees far past any cache bound: they must flush to the global heap. */
	ChurnSmallBlocks(&heap_, 700, 1000);
	struct k_heap_counters churned = Counters(&heap_);
	if (caches_on) {
		EXPECT_GE(churned.cache_hits, 1000u);
		EXPECT_GT(churned.cache_misses, 0u);
		EXPECT_GT(churned.refills, 0u);
		EXPECT_GT(churned.flushes, 0u);
	} else {
		EXPECT_EQ(churned.cache_hits, 0u);
		EXPECT_EQ(churned.refills, 0u);
		EXPECT_EQ(churned.flushes, 0u);
	}
	EXPECT_EQ(churned.waits, 0u);
	EXPECT_EQ(churned.handoffs, 0u);
	EXPECT_EQ(churned.timeouts, 0u);

	k_heap_drain_caches(&heap_);
	if (caches_on) {
		EXPECT_GT(Counters(&heap_).drains, churned.drains);
	}

	FilledHeap filled = FillHeap(&heap_, 4096);
	struct k_heap_counters full = Counters(&heap_);
	EXPECT_EQ(k_heap_alloc(&heap_, 4096, K_MSEC(5)), nullptr);
	struct k_heap_counters timed_out = Counters(&heap_);
	EXPECT_EQ(timed_out.waits - full.waits, 1u);
	EXPECT_EQ(timed_out.timeouts - full.timeouts, 1u);
	EXPECT_EQ(timed_out.handoffs, full.handoffs);
	{
		Watchdog watchdog("a waiter counted as a hand-off");
		std::atomic<void *> got{nullptr};
		std::thread waiter([&] { got.store(k_heap_alloc(&heap_, 4096, K_FOREVER)); });
		ASSERT_TRUE(WaitForWaiters(&heap_, 1));
		k_heap_free(&heap_, filled.blocks.back());
		filled.blocks.pop_back();
		waiter.join();
		ASSERT_NE(got.load(), nullptr);
		k_heap_free(&heap_, got.load());
	}
	struct k_heap_counters handed = Counters(&heap_);
	EXPECT_EQ(handed.waits - timed_out.waits, 1u);
	EXPECT_EQ(handed.handoffs - timed_out.handoffs, 1u);
	EXPECT_EQ(handed.timeouts, timed_out.timeouts);
	FreeAll(&heap_, &filled);
}

INSTANTIATE_TEST_SUITE_P(CachesOnAndOff, KHeapCacheCountersTest, ::testing::Values(25u, 0u),
			 CacheSettingName);

TEST_F(KHeapCacheTest, WalkTilesTheRegionAndAgreesWithStats)
{
	ASSERT_TRUE(Init(512 * 1024, 25));
	ParkBlocksOnBothCpus();
	ASSERT_TRUE(PinSelf(cpus_[0]));
	std::vector<uint8_t *> held;
	for (int i = 0; i < 60; i++) {
		size_t bytes = i % 3 == 0 ? 3000 + i * 17 : 16 + i * 13;
		held.push_back(static_cast<uint8_t *>(k_heap_alloc(&heap_, bytes, K_NO_WAIT)));
		ASSERT_NE(held.back(), nullptr);
	}
	/* Freed small blocks go to this CPU's cache, freed large ones to the heap. */
	for (size_t i = 0; i < held.size(); i += 4) {
		k_heap_free(&heap_, held[i]);
		held[i] = nullptr;
	}
	held.erase(std::remove(held.begin(), held.end(), nullptr), held.end());

	std::vector<Chunk> chunks = Walk(&heap_);
	struct sys_memory_stats stats = Stats(&heap_);
	ASSERT_EQ(TilingError(chunks, bytes_), "");

	size_t counts[4] = {};
	for (const Chunk &chunk : chunks) {
		ASSERT_LE(chunk.state, K_HEAP_CHUNK_CACHED);
		counts[chunk.state]++;
		if (chunk.state == K_HEAP_CHUNK_CACHED) {
			EXPECT_TRUE(chunk.cpu >= 0 || chunk.cpu == K_HEAP_WALK_DEPOT) << chunk.cpu;
		} else {
			EXPECT_EQ(chunk.cpu, -1) << "a chunk not in a cache names a CPU";
		}
	}
	EXPECT_GT(counts[K_HEAP_CHUNK_METADATA], 0u);
	EXPECT_GT(counts[K_HEAP_CHUNK_FREE], 0u);
	EXPECT_GT(counts[K_HEAP_CHUNK_CACHED], 0u);
	EXPECT_EQ(counts[K_HEAP_CHUNK_USED], held.size()) << "USED chunks are not the held blocks";
	EXPECT_EQ(CachingCpus(chunks).size(), 2u);

	/* Each held block is the body of one USED chunk, to its last byte. */
	size_t header = 0;
	size_t usable_total = 0;
	for (uint8_t *mem : held) {
		size_t at = static_cast<size_t>(mem - region_->start());
		auto chunk = std::find_if(chunks.begin(), chunks.end(), [at](const Chunk &c) {
			return c.offset <= at && at < c.offset + c.bytes;
		});
		ASSERT_NE(chunk, chunks.end());
		EXPECT_EQ(chunk->state, K_HEAP_CHUNK_USED) << "held block at offset " << at;
		size_t usable = k_heap_usable_size(&heap_, mem);
		EXPECT_EQ(chunk->offset + chunk->bytes, at + usable)
		    << "held block at offset " << at;
		if (header == 0) {
			header = at - chunk->offset;
		}
		EXPECT_EQ(at - chunk->offset, header) << "headers differ in size";
		usable_total += usable;
	}
	EXPECT_EQ(stats.allocated_bytes, usable_total);

	size_t free_total = 0;
	size_t cached_total = 0;
	size_t cached_headers = 0;
	for (const Chunk &chunk : chunks) {
		if (chunk.state == K_HEAP_CHUNK_FREE) {
			free_total += chunk.bytes - header;
		} else if (chunk.state == K_HEAP_CHUNK_CACHED) {
			cached_total += chunk.bytes;
			cached_headers += header;
		}
	}
	EXPECT_EQ(stats.free_bytes, free_total);
	EXPECT_LE(stats.cached_bytes, cached_total);
	EXPECT_GE(stats.cached_bytes, cached_total - cached_headers);

	for (uint8_t *mem : held) {
		k_heap_free(&heap_, mem);
	}
	EXPECT_EQ(Stats(&heap_).allocated_bytes, 0u);
}

K_HEAP_DEFINE(g_cached_static_heap, 1024 * 1024);
K_HEAP_DEFINE_NOCACHE(g_uncached_static_heap, 1024 * 1024);

void ChurnOnEveryCpu(struct k_heap *h, const std::vector<int> &cpus)
{
	for (int cpu : cpus) {
		RunPinned(cpu, [h] {
			for (int i = 0; i < 10; i++) {
				ChurnSmallBlocks(h, 50, 64);
			}
		});
	}
}

TEST(KHeapDefineCacheTest, DefinedHeapCachesByDefault)
{
	std::vector<int> cpus = AllowedCpus();
	ChurnOnEveryCpu(&g_cached_static_heap, cpus);
	EXPECT_GT(Counters(&g_cached_static_heap).cache_hits, 0u);
	EXPECT_GT(Stats(&g_cached_static_heap).cached_bytes, 0u);
	EXPECT_LE(Stats(&g_cached_static_heap).cached_bytes,
		  1024u * 1024 * KHEAP_DEFAULT_CACHE_PERCENT / 100);
	EXPECT_TRUE(sys_heap_validate(&g_cached_static_heap.heap));
}

TEST(KHeapDefineCacheTest, DefinedNocacheHeapNeverCaches)
{
	std::vector<int> cpus = AllowedCpus();
	ChurnOnEveryCpu(&g_uncached_static_heap, cpus);
	struct k_heap_counters counters = Counters(&g_uncached_static_heap);
	EXPECT_EQ(counters.cache_hits, 0u);
	EXPECT_EQ(counters.refills, 0u);
	EXPECT_EQ(Stats(&g_uncached_static_heap).cached_bytes, 0u);
	EXPECT_TRUE(CachingCpus(Walk(&g_uncached_static_heap)).empty());
	EXPECT_TRUE(sys_heap_validate(&g_uncached_static_heap.heap));
}

} // namespace
