// Keeps the documented lock order honest (heap/k_heap_internal.h): slot
// locks in ascending order, then a heap lock; nothing takes a slot lock while
// holding a heap lock. Every path that takes more than one lock runs here at
// once, on two heaps sharing the process-wide slot locks, from more threads
// than cores. An order violation shows up as a deadlock, which the watchdog
// turns into a failure instead of a hung test.
#include <gtest/gtest.h>

#include <kheap/kheap.h>

#include <atomic>
#include <chrono>
#include <random>
#include <thread>
#include <vector>

#include "tests/support/test_support.h"

namespace
{

using namespace kheap_test;

constexpr size_t kHeapBytes = 1 << 20;

TEST(LockOrderTest, EveryMultiLockPathRunsConcurrentlyWithoutDeadlock)
{
	Region regions[2] = {Region(kHeapBytes), Region(kHeapBytes)};
	struct k_heap heaps[2];
	struct k_heap_config config = {25};
	for (int i = 0; i < 2; i++)
		ASSERT_EQ(0,
			  k_heap_init_config(&heaps[i], regions[i].start(), kHeapBytes, &config));

	std::atomic<bool> stop{false};
	std::atomic<uint64_t> progress{0};
	std::vector<std::thread> threads;
	Watchdog watchdog("the lock-order workload");

	// Fast paths, refills and flushes (slot lock, then heap lock), and
	// drains when a heap runs dry (each slot lock, then the heap lock).
	for (int t_index = 0; t_index < 8; t_index++)
		threads.emplace_back([&, t_index] {
			std::mt19937 rng(1000 + t_index);
			std::vector<std::pair<int, void *>> live;
			while (!stop.load(std::memory_order_relaxed)) {
				int heap = rng() % 2;
				if (live.size() < 400 && rng() % 3 != 0) {
					void *p = k_heap_alloc(&heaps[heap], 16 + rng() % 2000,
							       K_NO_WAIT);
					if (p != nullptr)
						live.emplace_back(heap, p);
				} else if (!live.empty()) {
					size_t pick = rng() % live.size();
					k_heap_free(&heaps[live[pick].first], live[pick].second);
					live[pick] = live.back();
					live.pop_back();
				}
				progress.fetch_add(1, std::memory_order_relaxed);
			}
			for (auto &[heap, p] : live)
				k_heap_free(&heaps[heap], p);
		});
	// Quiescing paths: all slot locks in order, then the heap lock.
	threads.emplace_back([&] {
		while (!stop.load(std::memory_order_relaxed)) {
			for (auto &heap : heaps) {
				EXPECT_TRUE(sys_heap_validate(&heap.heap));
				Stats(&heap);
				Counters(&heap);
				k_heap_drain_caches(&heap);
			}
		}
	});

	// Run for a fixed amount of work, or three seconds when the machine (or
	// a sanitizer) is slow; either way every path has run many times.
	auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
	while (progress.load() < 200000 && std::chrono::steady_clock::now() < deadline)
		std::this_thread::yield();
	EXPECT_GT(progress.load(), 1000u) << "the allocating threads barely ran";
	stop = true;
	for (auto &thread : threads)
		thread.join();

	for (auto &heap : heaps) {
		EXPECT_EQ(0u, Stats(&heap).allocated_bytes);
		EXPECT_TRUE(sys_heap_validate(&heap.heap));
		EXPECT_EQ(0, k_heap_deinit(&heap));
	}
}

} // namespace
