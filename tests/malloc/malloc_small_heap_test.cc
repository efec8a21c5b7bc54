/*
 * The malloc replacement on a small region (KHEAP_MALLOC_HEAP_SIZE=16M, set
 * by the BUILD rule): running out of heap returns NULL with ENOMEM from
 * every allocation function, never aborts, and the heap recovers once
 * blocks are freed; mapped blocks are still served meanwhile.
 *
 * Built with -fno-builtin so that every allocation call is really made.
 */
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include <vector>

#include <gtest/gtest.h>

#include <kheap/kheap.h>

#include "malloc/kheap_malloc.h"

namespace
{

TEST(SmallHeap, SizeComesFromTheEnvironment)
{
	struct kheap_malloc_stats stats;
	ASSERT_EQ(kheap_malloc_stats_get(&stats), 0);
	EXPECT_EQ(stats.heap_bytes, size_t{16} << 20);
}

TEST(SmallHeap, ExhaustionFailsWithEnomemAndRecovers)
{
	constexpr size_t kBlock = 1000;
	constexpr size_t kMost = (size_t{16} << 20) / kBlock + 1;
	std::vector<void *> blocks;
	blocks.reserve(kMost);
	int last_errno = 0;
	while (blocks.size() < kMost) {
		errno = 0;
		void *p = malloc(kBlock);
		if (p == nullptr) {
			last_errno = errno;
			break;
		}
		memset(p, 0x42, kBlock);
		blocks.push_back(p);
	}
	/* While the heap is full, every heap-served call fails the same way;
	 * no GoogleTest assertion runs until some memory is back.
	 */
	int errors[6];
	void *got[5] = {};
	errno = 0;
	got[0] = calloc(10, kBlock / 10);
	errors[0] = got[0] == nullptr ? errno : 0;
	errno = 0;
	got[1] = memalign(64, kBlock);
	errors[1] = got[1] == nullptr ? errno : 0;
	errors[2] = posix_memalign(&got[2], 128, kBlock);
	errno = 0;
	got[3] = aligned_alloc(256, kBlock);
	errors[3] = got[3] == nullptr ? errno : 0;
	errno = 0;
	got[4] = realloc(blocks.back(), 8 * kBlock);
	errors[4] = got[4] == nullptr ? errno : 0;
	if (got[4] != nullptr) {
		blocks.back() = got[4];
		got[4] = nullptr;
	}
	void *mapped = malloc(KHEAP_MALLOC_MMAP_THRESHOLD);
	errors[5] = mapped == nullptr ? 1 : 0;
	free(mapped);
	for (void *p : got) {
		free(p);
	}
	size_t exhausted_at = blocks.size();
	for (void *p : blocks) {
		free(p);
	}
	blocks.clear();

	EXPECT_LT(exhausted_at, kMost);
	EXPECT_GT(exhausted_at, kMost / 2);
	EXPECT_EQ(last_errno, ENOMEM);
	EXPECT_EQ(errors[0], ENOMEM);
	EXPECT_EQ(errors[1], ENOMEM);
	EXPECT_EQ(errors[2], ENOMEM);
	EXPECT_EQ(errors[3], ENOMEM);
	EXPECT_EQ(errors[4], ENOMEM);
	EXPECT_EQ(errors[5], 0) << "a mapped block was refused while the heap was full";

	void *again = malloc(8 * kBlock);
	EXPECT_NE(again, nullptr);
	free(again);
	EXPECT_TRUE(sys_heap_validate(&kheap_malloc_heap()->heap));
}

} // namespace
