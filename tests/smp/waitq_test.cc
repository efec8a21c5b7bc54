// Tests for smp/waitq: FIFO bookkeeping, deadlines, hand-off, EINTR.
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>

#include <atomic>
#include <thread>

extern "C" {
#include "smp/waitq.h"
}

namespace
{

int64_t NowNs()
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

TEST(WaitqTest, KeepsArrivalOrderAndRemovesFromAnywhere)
{
	struct kheap_waitq q = {};
	struct kheap_waiter w[4] = {};
	for (auto &waiter : w)
		kheap_waitq_append(&q, 0, &waiter);
	kheap_waitq_remove(&q, 0, &w[1]);
	kheap_waitq_remove(&q, 0, &w[3]);
	ASSERT_EQ(&w[0], kheap_waiter_at(0, q.head));
	EXPECT_EQ(&w[2], kheap_waiter_at(0, kheap_waiter_at(0, q.head)->next));
	EXPECT_EQ(&w[2], kheap_waiter_at(0, q.tail));
	EXPECT_EQ(0u, kheap_waiter_at(0, q.tail)->next);
	kheap_waitq_remove(&q, 0, &w[0]);
	kheap_waitq_remove(&q, 0, &w[2]);
	EXPECT_EQ(0u, q.head);
	EXPECT_EQ(0u, q.tail);
}

// A queue in shared memory links its waiters by offsets from the region's
// start, so a copy of the region at another address reads the same queue.
TEST(WaitqTest, OffsetLinksReadTheSameAtAnyAddress)
{
	struct Region {
		struct kheap_waitq q;
		struct kheap_waiter w[3];
	};
	Region first = {}, second;
	uintptr_t base = reinterpret_cast<uintptr_t>(&first);
	for (auto &waiter : first.w)
		kheap_waitq_append(&first.q, base, &waiter);
	kheap_waitq_remove(&first.q, base, &first.w[1]);
	second = first;
	uintptr_t moved = reinterpret_cast<uintptr_t>(&second);
	ASSERT_EQ(&second.w[0], kheap_waiter_at(moved, second.q.head));
	EXPECT_EQ(&second.w[2], kheap_waiter_at(moved, second.w[0].next));
	EXPECT_EQ(&second.w[2], kheap_waiter_at(moved, second.q.tail));
	kheap_waiter_serve(&second.q, moved, &second.w[0], 42);
	EXPECT_EQ(42u, second.w[0].result);
	EXPECT_EQ((uint32_t)KHEAP_WAITER_SERVED, second.w[0].state);
	EXPECT_EQ(&second.w[2], kheap_waiter_at(moved, second.q.head));
}

TEST(WaitqTest, SleepReturnsFalseAtTheDeadlineNotBefore)
{
	struct kheap_waiter w = {};
	struct timespec deadline;
	const int64_t timeout = 30 * 1000000;
	int64_t start = NowNs();
	kheap_deadline_after(&deadline, timeout);
	EXPECT_FALSE(kheap_waiter_sleep(&w, &deadline, false));
	int64_t waited = NowNs() - start;
	EXPECT_GE(waited, timeout);
	EXPECT_LT(waited, timeout + 2000 * 1000000LL);
}

TEST(WaitqTest, ServedWaiterSeesResultFromAnotherThread)
{
	for (int round = 0; round < 200; round++) {
		struct kheap_waitq q = {};
		struct kheap_waiter w = {};
		uint32_t payload = (uint32_t)round + 1;
		std::atomic<bool> queued{false};
		kheap_waitq_append(&q, 0, &w);
		std::thread waiter([&] {
			queued = true;
			EXPECT_TRUE(kheap_waiter_sleep(&w, nullptr, round % 2 == 0));
			EXPECT_EQ(payload, w.result);
		});
		while (!queued)
			std::this_thread::yield();
		kheap_waiter_serve(&q, 0, &w, payload);
		kheap_waiter_wake(&w.state, round % 2 == 0);
		waiter.join();
		EXPECT_EQ(0u, q.head);
	}
}

void IgnoreSignal(int)
{
}

TEST(WaitqTest, SignalsDoNotCutAWaitShort)
{
	struct sigaction action = {};
	action.sa_handler = IgnoreSignal;
	sigemptyset(&action.sa_mask);
	action.sa_flags = 0; // no SA_RESTART: the futex call sees EINTR
	ASSERT_EQ(0, sigaction(SIGUSR1, &action, nullptr));

	struct kheap_waiter w = {};
	std::atomic<bool> done{false};
	const int64_t timeout = 200 * 1000000;
	int64_t waited = 0;
	std::thread waiter([&] {
		struct timespec deadline;
		int64_t start = NowNs();
		kheap_deadline_after(&deadline, timeout);
		EXPECT_FALSE(kheap_waiter_sleep(&w, &deadline, false));
		waited = NowNs() - start;
		done = true;
	});
	pthread_t handle = waiter.native_handle();
	while (!done) {
		pthread_kill(handle, SIGUSR1);
		struct timespec pause = {0, 2000000};
		nanosleep(&pause, nullptr);
	}
	waiter.join();
	EXPECT_GE(waited, timeout);
}

TEST(WaitqTest, DeadlineSaturatesForHugeTimeouts)
{
	struct timespec deadline;
	kheap_deadline_after(&deadline, INT64_MAX);
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	EXPECT_GT(deadline.tv_sec, now.tv_sec + 1000000);
}

} // namespace
