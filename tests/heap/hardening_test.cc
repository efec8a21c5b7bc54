// Hardening levels (enum sys_heap_hardening): what each level adds is caught,
// and changing the level is refused while blocks are live.
#include <gtest/gtest.h>
#include <string.h>

#include <kheap/kheap.h>

#include <vector>

#include "tests/support/test_support.h"

namespace
{

using namespace kheap_test;

class HardeningTest : public ::testing::Test
{
      protected:
	FaultRecorder recorder_;
	Region region_{256 * 1024};
};

TEST_F(HardeningTest, DefaultIsBasicAndLevelsChangeOnlyWhenEmpty)
{
	struct sys_heap heap;
	ASSERT_EQ(0, sys_heap_init(&heap, region_.start(), 4096));
	EXPECT_EQ(SYS_HEAP_HARDENING_BASIC, sys_heap_get_hardening(&heap));
	void *p = sys_heap_alloc(&heap, 16);
	ASSERT_NE(nullptr, p);
	EXPECT_EQ(-EBUSY, sys_heap_set_hardening(&heap, SYS_HEAP_HARDENING_FULL));
	EXPECT_EQ(SYS_HEAP_HARDENING_BASIC, sys_heap_get_hardening(&heap));
	sys_heap_free(&heap, p);
	EXPECT_EQ(-EINVAL, sys_heap_set_hardening(&heap, (enum sys_heap_hardening)99));
	EXPECT_EQ(0, sys_heap_set_hardening(&heap, SYS_HEAP_HARDENING_FULL));
	EXPECT_EQ(SYS_HEAP_HARDENING_FULL, sys_heap_get_hardening(&heap));
	ExpectNoFaults();
}

TEST_F(HardeningTest, FullCatchesAOneByteOverrunThatBasicCannotSee)
{
	for (auto level : {SYS_HEAP_HARDENING_BASIC, SYS_HEAP_HARDENING_FULL}) {
		struct sys_heap heap;
		ASSERT_EQ(0, sys_heap_init(&heap, region_.start(), 8192));
		ASSERT_EQ(0, sys_heap_set_hardening(&heap, level));
		TakeFaults();
		// 21 bytes leave slack inside the chunk, so a one-byte overrun
		// stays clear of the next header.
		char *p = static_cast<char *>(sys_heap_alloc(&heap, 21));
		void *next = sys_heap_alloc(&heap, 21);
		ASSERT_NE(nullptr, p);
		p[21] = 'x';
		sys_heap_free(&heap, p);
		if (level == SYS_HEAP_HARDENING_FULL) {
			ExpectOneFault(KHEAP_FAULT_HEADER_OVERWRITTEN, &heap, p);
		} else {
			ExpectNoFaults();
		}
		sys_heap_free(&heap, next);
	}
}

TEST_F(HardeningTest, FullReportsTheRequestedSizeAndKeepsContentsAcrossRealloc)
{
	struct sys_heap heap;
	ASSERT_EQ(0, sys_heap_init(&heap, region_.start(), 16384));
	ASSERT_EQ(0, sys_heap_set_hardening(&heap, SYS_HEAP_HARDENING_FULL));
	char *p = static_cast<char *>(sys_heap_alloc(&heap, 37));
	ASSERT_NE(nullptr, p);
	EXPECT_EQ(37u, sys_heap_usable_size(&heap, p));
	memset(p, 'a', 37);
	p = static_cast<char *>(sys_heap_realloc(&heap, p, 300));
	ASSERT_NE(nullptr, p);
	EXPECT_EQ(300u, sys_heap_usable_size(&heap, p));
	for (int i = 0; i < 37; i++)
		ASSERT_EQ('a', p[i]) << i;
	memset(p, 'b', 300);
	p = static_cast<char *>(sys_heap_realloc(&heap, p, 10));
	ASSERT_NE(nullptr, p);
	EXPECT_EQ(10u, sys_heap_usable_size(&heap, p));
	sys_heap_free(&heap, p);
	ExpectNoFaults();
	EXPECT_TRUE(sys_heap_validate(&heap));
}

TEST_F(HardeningTest, FullPoisonsFreedMemory)
{
	struct sys_heap heap;
	ASSERT_EQ(0, sys_heap_init(&heap, region_.start(), 16384));
	ASSERT_EQ(0, sys_heap_set_hardening(&heap, SYS_HEAP_HARDENING_FULL));
	unsigned char *p = static_cast<unsigned char *>(sys_heap_alloc(&heap, 512));
	void *guard = sys_heap_alloc(&heap, 16);
	ASSERT_NE(nullptr, p);
	memset(p, 0, 512);
	sys_heap_free(&heap, p);
	// Past the free-list links, the freed block reads as poison.
	for (int i = 64; i < 512; i++)
		ASSERT_EQ(0xdb, p[i]) << i;
	sys_heap_free(&heap, guard);
}

TEST_F(HardeningTest, FullCatchesAWriteAfterFreeWhenACachedBlockIsReused)
{
	struct k_heap heap;
	struct k_heap_config config = {25};
	ASSERT_EQ(0, k_heap_init_config(&heap, region_.start(), region_.bytes(), &config));
	ASSERT_EQ(0, k_heap_set_hardening(&heap, SYS_HEAP_HARDENING_FULL));
	char *p = static_cast<char *>(k_heap_alloc(&heap, 100, K_NO_WAIT));
	ASSERT_NE(nullptr, p);
	k_heap_free(&heap, p);
	ASSERT_GT(Stats(&heap).cached_bytes, 0u) << "the block should sit in a per-CPU cache";
	p[50] = 'u'; // use after free
	// Any allocation of that class may meet the block; it must not be
	// handed out, and the fault must name it.
	std::vector<void *> taken;
	std::vector<Fault> faults = TakeFaults();
	for (int i = 0; i < 64 && faults.empty(); i++) {
		void *q = k_heap_alloc(&heap, 100, K_NO_WAIT);
		ASSERT_NE(p, q);
		taken.push_back(q);
		faults = TakeFaults();
	}
	ASSERT_EQ(1u, faults.size());
	EXPECT_EQ(KHEAP_FAULT_CORRUPT_HEAP, faults[0].kind);
	EXPECT_EQ(p, faults[0].ptr);
	for (void *q : taken)
		k_heap_free(&heap, q);
}

TEST_F(HardeningTest, ExtremeValidatesAfterEveryOperation)
{
	for (auto level : {SYS_HEAP_HARDENING_FULL, SYS_HEAP_HARDENING_EXTREME}) {
		struct sys_heap heap;
		ASSERT_EQ(0, sys_heap_init(&heap, region_.start(), 16384));
		ASSERT_EQ(0, sys_heap_set_hardening(&heap, level));
		TakeFaults();
		// a | gap (freed, a mid-sized free chunk) | b | the rest, free
		void *a = sys_heap_alloc(&heap, 64);
		uint32_t *gap = static_cast<uint32_t *>(sys_heap_alloc(&heap, 2000));
		void *b = sys_heap_alloc(&heap, 64);
		ASSERT_NE(nullptr, gap);
		sys_heap_free(&heap, gap);
		ASSERT_TRUE(TakeFaults().empty());
		// Damage the gap's free-list link; a large request is served from
		// the rest and never looks at the gap, so only a whole-heap
		// check can notice.
		// Both words: the links are 16-bit each with 4-byte headers.
		gap[0] = 0xdeadbeef;
		gap[1] = 0xdeadbeef;
		void *big = sys_heap_alloc(&heap, 4000);
		ASSERT_NE(nullptr, big);
		std::vector<Fault> faults = TakeFaults();
		if (level == SYS_HEAP_HARDENING_EXTREME) {
			ASSERT_FALSE(faults.empty());
			EXPECT_EQ(KHEAP_FAULT_CORRUPT_HEAP, faults.back().kind);
		} else {
			EXPECT_TRUE(faults.empty());
		}
		(void)a;
		(void)b;
	}
}

TEST_F(HardeningTest, ExtremeTurnsKHeapCachesOff)
{
	struct k_heap heap;
	struct k_heap_config config = {25};
	ASSERT_EQ(0, k_heap_init_config(&heap, region_.start(), region_.bytes(), &config));
	ASSERT_EQ(0, k_heap_set_hardening(&heap, SYS_HEAP_HARDENING_EXTREME));
	for (int i = 0; i < 100; i++)
		k_heap_free(&heap, k_heap_alloc(&heap, 64, K_NO_WAIT));
	struct k_heap_counters counters = Counters(&heap);
	EXPECT_EQ(0u, counters.cache_hits + counters.cache_misses);
	ExpectNoFaults();
	EXPECT_TRUE(sys_heap_validate(&heap.heap));
}

TEST_F(HardeningTest, KHeapLevelChangeIsRefusedWhileBlocksAreHeld)
{
	struct k_heap heap;
	ASSERT_EQ(0, k_heap_init(&heap, region_.start(), region_.bytes()));
	void *p = k_heap_alloc(&heap, 64, K_NO_WAIT);
	EXPECT_EQ(-EBUSY, k_heap_set_hardening(&heap, SYS_HEAP_HARDENING_FULL));
	EXPECT_EQ(-EBUSY, sys_heap_set_hardening(&heap.heap, SYS_HEAP_HARDENING_FULL));
	k_heap_free(&heap, p);
	EXPECT_EQ(0, sys_heap_set_hardening(&heap.heap, SYS_HEAP_HARDENING_MODERATE));
	EXPECT_EQ(SYS_HEAP_HARDENING_MODERATE, sys_heap_get_hardening(&heap.heap));
	EXPECT_TRUE(sys_heap_validate(&heap.heap));
}

TEST_F(HardeningTest, EveryLevelPassesARandomWorkload)
{
	for (auto level :
	     {SYS_HEAP_HARDENING_NONE, SYS_HEAP_HARDENING_BASIC, SYS_HEAP_HARDENING_MODERATE,
	      SYS_HEAP_HARDENING_FULL, SYS_HEAP_HARDENING_EXTREME}) {
		struct sys_heap heap;
		ASSERT_EQ(0, sys_heap_init(&heap, region_.start(), 64 * 1024));
		ASSERT_EQ(0, sys_heap_set_hardening(&heap, level));
		static char scratch[4096 * 16];
		struct z_heap_stress_result result;
		sys_heap_stress_seeded(
		    [](void *arg, size_t bytes) {
			    return sys_heap_alloc(static_cast<struct sys_heap *>(arg), bytes);
		    },
		    [](void *arg, void *p) {
			    sys_heap_free(static_cast<struct sys_heap *>(arg), p);
		    },
		    &heap, 64 * 1024, level == SYS_HEAP_HARDENING_EXTREME ? 2000 : 20000, scratch,
		    sizeof(scratch), 70, 42 + level, &result);
		EXPECT_GT(result.successful_allocs, 0u) << "level " << level;
		EXPECT_TRUE(TakeFaults().empty()) << "level " << level;
		EXPECT_TRUE(sys_heap_validate(&heap)) << "level " << level;
		EXPECT_EQ(0u, Stats(&heap).allocated_bytes) << "level " << level;
	}
}

} // namespace
