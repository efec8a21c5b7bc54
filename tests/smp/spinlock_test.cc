// Tests for smp/spinlock: mutual exclusion under oversubscription, trylock.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

extern "C" {
#include "smp/spinlock.h"
}

namespace
{

TEST(SpinlockTest, ExcludesManyThreadsOnBothCores)
{
	// Far more threads than cores, so holders are preempted while others
	// spin: the yield path must keep this finishing, and the plain
	// (non-atomic) counter must come out exact.
	constexpr int kThreads = 16;
	constexpr int kRounds = 20000;
	kheap_spinlock_t lock;
	kheap_spin_init(&lock);
	uint64_t counter = 0;
	std::atomic<int> inside{0};
	std::atomic<bool> overlap{false};

	std::vector<std::thread> threads;
	for (int t = 0; t < kThreads; t++)
		threads.emplace_back([&] {
			for (int i = 0; i < kRounds; i++) {
				kheap_spin_lock(&lock);
				if (inside.fetch_add(1) != 0)
					overlap = true;
				counter++;
				inside.fetch_sub(1);
				kheap_spin_unlock(&lock);
			}
		});
	for (auto &thread : threads)
		thread.join();
	EXPECT_FALSE(overlap.load());
	EXPECT_EQ((uint64_t)kThreads * kRounds, counter);
}

TEST(SpinlockTest, TrylockFailsWhileHeld)
{
	kheap_spinlock_t lock;
	kheap_spin_init(&lock);
	ASSERT_TRUE(kheap_spin_trylock(&lock));
	std::thread other([&] { EXPECT_FALSE(kheap_spin_trylock(&lock)); });
	other.join();
	kheap_spin_unlock(&lock);
	EXPECT_TRUE(kheap_spin_trylock(&lock));
	kheap_spin_unlock(&lock);
}

} // namespace
