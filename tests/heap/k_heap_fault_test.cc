// Fault tolerance of k_heap and sys_heap: threads cancelled while they wait,
// waits interrupted by signals, and free chunks whose headers an overrun has
// damaged before anyone freed the culprit.
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include <kheap/kheap.h>

#include <atomic>
#include <thread>
#include <vector>

#include "tests/support/test_support.h"

namespace
{

using namespace kheap_test;

class FaultTest : public ::testing::Test
{
      protected:
	FaultRecorder recorder_;
	Region region_{64 * 1024};
};

struct BlockedAlloc {
	struct k_heap *heap;
	size_t bytes;
	std::atomic<void *> result{nullptr};
	std::atomic<bool> returned{false};
};

void *AllocForever(void *arg)
{
	auto *request = static_cast<BlockedAlloc *>(arg);
	request->result = k_heap_alloc(request->heap, request->bytes, K_FOREVER);
	request->returned = true;
	return nullptr;
}

TEST_F(FaultTest, CancelledWaitersLeaveTheQueueAndOthersAreStillServed)
{
	struct k_heap heap;
	ASSERT_EQ(0, k_heap_init(&heap, region_.start(), region_.bytes()));
	// Fill the heap so every request below has to wait.
	std::vector<void *> filler;
	for (void *p; (p = k_heap_alloc(&heap, 1024, K_NO_WAIT)) != nullptr;)
		filler.push_back(p);
	ASSERT_GE(filler.size(), 8u);

	constexpr int kWaiters = 8;
	BlockedAlloc requests[kWaiters];
	pthread_t threads[kWaiters];
	for (int i = 0; i < kWaiters; i++) {
		requests[i].heap = &heap;
		requests[i].bytes = 1000;
		ASSERT_EQ(0, pthread_create(&threads[i], nullptr, AllocForever, &requests[i]));
		ASSERT_TRUE(WaitForWaiters(&heap, i + 1)) << "waiters never reached " << i + 1;
	}
	// Cancel every other waiter while it sleeps.
	for (int i = 0; i < kWaiters; i += 2) {
		void *status;
		ASSERT_EQ(0, pthread_cancel(threads[i]));
		ASSERT_EQ(0, pthread_join(threads[i], &status));
		EXPECT_EQ(PTHREAD_CANCELED, status) << "waiter " << i;
		EXPECT_FALSE(requests[i].returned.load());
	}
	EXPECT_EQ(kWaiters / 2u, k_heap_waiter_count(&heap));
	EXPECT_TRUE(sys_heap_validate(&heap.heap));

	// The survivors are still queued and get served by ordinary frees.
	for (int i = 0; i < kWaiters / 2; i++)
		k_heap_free(&heap, filler[i]);
	for (int i = 1; i < kWaiters; i += 2) {
		ASSERT_EQ(0, pthread_join(threads[i], nullptr));
		EXPECT_NE(nullptr, requests[i].result.load()) << "waiter " << i;
		k_heap_free(&heap, requests[i].result.load());
	}
	for (size_t i = kWaiters / 2; i < filler.size(); i++)
		k_heap_free(&heap, filler[i]);

	EXPECT_EQ(0u, Stats(&heap).allocated_bytes);
	EXPECT_TRUE(sys_heap_validate(&heap.heap));
	ExpectNoFaults();
	EXPECT_EQ(0, k_heap_deinit(&heap));
}

void IgnoreSignal(int)
{
}

TEST_F(FaultTest, SignalsDoNotWakeAWaiterEarlyOrLoseItsBlock)
{
	struct sigaction action = {};
	action.sa_handler = IgnoreSignal;
	sigemptyset(&action.sa_mask);
	ASSERT_EQ(0, sigaction(SIGUSR2, &action, nullptr));

	struct k_heap heap;
	ASSERT_EQ(0, k_heap_init(&heap, region_.start(), region_.bytes()));
	std::vector<void *> filler;
	for (void *p; (p = k_heap_alloc(&heap, 4096, K_NO_WAIT)) != nullptr;)
		filler.push_back(p);

	BlockedAlloc request;
	request.heap = &heap;
	request.bytes = 4000;
	pthread_t thread;
	ASSERT_EQ(0, pthread_create(&thread, nullptr, AllocForever, &request));
	ASSERT_TRUE(WaitForWaiters(&heap, 1)) << "the waiter never blocked";
	for (int i = 0; i < 200; i++) {
		ASSERT_EQ(0, pthread_kill(thread, SIGUSR2));
		std::this_thread::yield();
	}
	EXPECT_FALSE(request.returned.load()) << "a signal ended a K_FOREVER wait";
	EXPECT_EQ(1u, k_heap_waiter_count(&heap));

	k_heap_free(&heap, filler.back());
	filler.pop_back();
	ASSERT_EQ(0, pthread_join(thread, nullptr));
	ASSERT_NE(nullptr, request.result.load());
	k_heap_free(&heap, request.result.load());
	for (void *p : filler)
		k_heap_free(&heap, p);
	EXPECT_TRUE(sys_heap_validate(&heap.heap));
	EXPECT_EQ(0, k_heap_deinit(&heap));
}

TEST_F(FaultTest, OverrunIntoAFreeNeighbourFailsTheAllocationInsteadOfCrashing)
{
	Region region(16 * 1024);
	struct sys_heap heap;
	ASSERT_EQ(0, sys_heap_init(&heap, region.start(), region.bytes()));
	// a | gap (freed) | b: the gap is a free chunk right after a.
	char *a = static_cast<char *>(sys_heap_alloc(&heap, 64));
	void *gap = sys_heap_alloc(&heap, 2000);
	void *b = sys_heap_alloc(&heap, 64);
	ASSERT_NE(nullptr, a);
	ASSERT_NE(nullptr, gap);
	ASSERT_NE(nullptr, b);
	sys_heap_free(&heap, gap);

	// a writes 8 bytes past its end: the whole header of the free chunk.
	size_t usable = sys_heap_usable_size(&heap, a);
	memset(a + usable, 0x5a, 8);

	// Only a request that picks that chunk reaches it; it must fail with
	// a fault, not split garbage.
	EXPECT_EQ(nullptr, sys_heap_alloc(&heap, 1500));
	std::vector<Fault> faults = TakeFaults();
	ASSERT_EQ(1u, faults.size());
	EXPECT_EQ(KHEAP_FAULT_CORRUPT_HEAP, faults[0].kind);
	// The block that overran is caught when it is freed.
	sys_heap_free(&heap, a);
	ExpectOneFault(KHEAP_FAULT_HEADER_OVERWRITTEN, &heap, a);
}

} // namespace
