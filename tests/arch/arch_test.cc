// Tests for arch/: current-CPU lookup, CPU count, cycle counter.
#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <thread>
#include <vector>

extern "C" {
#include "arch/arch.h"
}

namespace
{

std::vector<int> OnlineCpus()
{
	cpu_set_t set;
	CPU_ZERO(&set);
	EXPECT_EQ(0, sched_getaffinity(0, sizeof(set), &set));
	std::vector<int> cpus;
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
		if (CPU_ISSET(cpu, &set))
			cpus.push_back(cpu);
	return cpus;
}

TEST(ArchTest, CurrentCpuFollowsPinning)
{
	for (int cpu : OnlineCpus()) {
		std::thread pinned([cpu] {
			cpu_set_t one;
			CPU_ZERO(&one);
			CPU_SET(cpu, &one);
			ASSERT_EQ(0, pthread_setaffinity_np(pthread_self(), sizeof(one), &one));
			// The first call probes rseq; later calls take the fast path.
			for (int i = 0; i < 3; i++) {
				EXPECT_EQ(cpu, kheap_current_cpu()) << "pinned to " << cpu;
				EXPECT_EQ(cpu, kheap_current_cpu_getcpu()) << "pinned to " << cpu;
			}
		});
		pinned.join();
	}
}

TEST(ArchTest, CurrentCpuIsBelowCount)
{
	unsigned int count = kheap_cpu_count();
	EXPECT_GE(count, (unsigned int)sysconf(_SC_NPROCESSORS_ONLN));
	for (int i = 0; i < 1000; i++) {
		int cpu = kheap_current_cpu();
		EXPECT_GE(cpu, 0);
		EXPECT_LT((unsigned int)cpu, count);
	}
}

TEST(ArchTest, RseqLookupIsUsedWhenRegistered)
{
	// glibc 2.35+ registers rseq for every thread unless disabled by a
	// tunable; the cheap path must then be the one in use.
	std::thread fresh([] {
		(void)kheap_current_cpu();
		if (kheap_cpu_lookup_method() == KHEAP_CPU_LOOKUP_RSEQ)
			EXPECT_NE(nullptr, (const void *)kheap_rseq_cpu_id);
		else
			EXPECT_EQ(nullptr, (const void *)kheap_rseq_cpu_id);
	});
	fresh.join();
}

TEST(ArchTest, CyclesAreMonotonicOnOneThread)
{
	uint64_t previous = kheap_cycles();
	for (int i = 0; i < 100000; i++) {
		uint64_t now = kheap_cycles();
		ASSERT_GE(now, previous);
		previous = now;
	}
	EXPECT_GT(kheap_cycles(), 0u);
}

TEST(ArchTest, CacheLineIsAPowerOfTwo)
{
	EXPECT_GE(KHEAP_CACHE_LINE, 32);
	EXPECT_EQ(0, KHEAP_CACHE_LINE & (KHEAP_CACHE_LINE - 1));
}

} // namespace
