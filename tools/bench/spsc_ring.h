/*
 * A bounded lock-free ring for exactly one producer thread and one consumer
 * thread, used to hand blocks from the allocating thread to the freeing one.
 *
 * Invariants: the shared index tail_ is written only by the producer and
 * head_ only by the consumer; head_ <= tail_ <= head_ + capacity at all times.
 * A release store of tail_ publishes the slots below it (and the block
 * contents written before them) to the consumer; a release store of head_
 * gives the slots below it back to the producer.
 *
 * The ring is built so that its own cache-line traffic stays small next to
 * the allocator's: each side works on a private copy of its index and
 * publishes it only every kPublishBatch items, and always before it reports
 * full (or empty), so a side that waits has published everything the other
 * side could be waiting for and the pair cannot stall. Each side also keeps
 * a private copy of the other's index and rereads the shared one only when
 * that copy says full (or empty).
 */
#ifndef KHEAP_TOOLS_BENCH_SPSC_RING_H
#define KHEAP_TOOLS_BENCH_SPSC_RING_H

#include <atomic>
#include <cstddef>
#include <vector>

template <typename T> class SpscRing
{
      public:
	/* `capacity` must be a power of two, larger than kPublishBatch. */
	explicit SpscRing(size_t capacity) : slots_(capacity), mask_(capacity - 1)
	{
	}

	/* Producer only. False (with every earlier push published) when full. */
	bool push(const T &item)
	{
		if (producer_tail_ - producer_head_copy_ > mask_) {
			publish_tail();
			producer_head_copy_ = head_.load(std::memory_order_acquire);
			if (producer_tail_ - producer_head_copy_ > mask_) {
				return false;
			}
		}
		slots_[producer_tail_ & mask_] = item;
		producer_tail_++;
		if (producer_tail_ % kPublishBatch == 0) {
			publish_tail();
		}
		return true;
	}

	/* Producer only: makes every push so far visible to the consumer. */
	void publish_tail()
	{
		if (producer_published_ != producer_tail_) {
			tail_.store(producer_tail_, std::memory_order_release);
			producer_published_ = producer_tail_;
		}
	}

	/* Consumer only. False (with every earlier pop published) when empty. */
	bool pop(T *item)
	{
		if (consumer_head_ == consumer_tail_copy_) {
			publish_head();
			consumer_tail_copy_ = tail_.load(std::memory_order_acquire);
			if (consumer_head_ == consumer_tail_copy_) {
				return false;
			}
		}
		*item = slots_[consumer_head_ & mask_];
		consumer_head_++;
		if (consumer_head_ % kPublishBatch == 0) {
			publish_head();
		}
		return true;
	}

      private:
	static constexpr size_t kPublishBatch = 32;

	void publish_head()
	{
		if (consumer_published_ != consumer_head_) {
			head_.store(consumer_head_, std::memory_order_release);
			consumer_published_ = consumer_head_;
		}
	}

	/* Shared indices and private state each get a cache line, so a side
	 * polling the other's index never steals the line the other side
	 * writes on every item.
	 */
	std::vector<T> slots_;
	const size_t mask_;
	alignas(64) std::atomic<size_t> tail_{0};
	alignas(64) std::atomic<size_t> head_{0};
	alignas(64) size_t producer_tail_ = 0;
	size_t producer_published_ = 0;
	size_t producer_head_copy_ = 0;
	alignas(64) size_t consumer_head_ = 0;
	size_t consumer_published_ = 0;
	size_t consumer_tail_copy_ = 0;
};

#endif
