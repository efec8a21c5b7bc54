/*
 * Workload loops. Timed loops touch only the request table, the live-block
 * array and the allocator; error counts are kept in locals and published to
 * Sanity once, after the clock has stopped.
 */
#include "tools/bench/workloads.h"

#include <pthread.h>
#include <sched.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include <kheap/k_heap.h>

#include "tools/bench/spsc_ring.h"

namespace
{

using Clock = std::chrono::steady_clock;

constexpr size_t kTableEntries = 1 << 16;
constexpr int kBatch = 256;
constexpr size_t kRingCapacity = 1024;

uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

uint32_t uniform(uint64_t *state, uint32_t lo, uint32_t hi)
{
	return lo + (uint32_t)(splitmix64(state) % ((uint64_t)hi - lo + 1));
}

double seconds_between(Clock::time_point from, Clock::time_point to)
{
	return std::chrono::duration<double>(to - from).count();
}

inline void cpu_relax()
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
	__asm__ __volatile__("yield");
#endif
}

struct LocalSanity {
	uint64_t null_allocs = 0;
	uint64_t bad_tags = 0;
	uint64_t misaligned = 0;

	void publish(Sanity *sanity) const
	{
		sanity->null_allocs += null_allocs;
		sanity->bad_tags += bad_tags;
		sanity->misaligned += misaligned;
	}
};

struct LiveBlock {
	void *ptr;
	size_t bytes;
	uint64_t tag;
};

/* Writes `tag` into the first 8 bytes and, when they do not overlap those,
 * the last 8 bytes.
 */
inline void stamp(void *ptr, size_t bytes, uint64_t tag)
{
	std::memcpy(ptr, &tag, sizeof(tag));
	if (bytes >= 2 * sizeof(tag)) {
		std::memcpy(static_cast<char *>(ptr) + bytes - sizeof(tag), &tag, sizeof(tag));
	}
}

inline bool stamped(const void *ptr, size_t bytes, uint64_t tag)
{
	uint64_t head;
	uint64_t tail = tag;

	std::memcpy(&head, ptr, sizeof(head));
	if (bytes >= 2 * sizeof(tag)) {
		std::memcpy(&tail, static_cast<const char *>(ptr) + bytes - sizeof(tail),
			    sizeof(tail));
	}
	return head == tag && tail == tag;
}

/* Allocates and stamps one block; false (counted) when the allocator said no. */
inline bool place(const Allocator &a, LiveBlock *block, size_t bytes, uint64_t tag,
		  LocalSanity *local)
{
	void *ptr = a.alloc(a.ctx, bytes);

	if (ptr == nullptr) {
		local->null_allocs++;
		block->ptr = nullptr;
		return false;
	}
	local->misaligned += (reinterpret_cast<uintptr_t>(ptr) & 7) != 0;
	stamp(ptr, bytes, tag);
	*block = {ptr, bytes, tag};
	return true;
}

inline void retire(const Allocator &a, LiveBlock *block, LocalSanity *local)
{
	if (block->ptr == nullptr) {
		return;
	}
	local->bad_tags += !stamped(block->ptr, block->bytes, block->tag);
	a.free(a.ctx, block->ptr);
	block->ptr = nullptr;
}

/* A thread's window: `count` live blocks, replaced in the table's slot order. */
class Window
{
      public:
	Window(const Allocator &a, const RequestTable &requests, uint32_t count)
	    : a_(a), requests_(requests), blocks_(count)
	{
		for (uint32_t i = 0; i < count; i++) {
			place(a_, &blocks_[i], requests_.sizes[next_ & requests_.mask], next_,
			      &local_);
			next_++;
		}
	}

	~Window()
	{
		for (LiveBlock &block : blocks_) {
			retire(a_, &block, &local_);
		}
	}

	void replace_batch()
	{
		for (int i = 0; i < kBatch; i++, next_++) {
			LiveBlock &block = blocks_[requests_.slots[next_ & requests_.mask]];

			retire(a_, &block, &local_);
			place(a_, &block, requests_.sizes[next_ & requests_.mask], next_, &local_);
		}
	}

	LocalSanity &sanity()
	{
		return local_;
	}

      private:
	const Allocator &a_;
	const RequestTable &requests_;
	std::vector<LiveBlock> blocks_;
	uint64_t next_ = 0;
	LocalSanity local_;
};

/* Start line for timed threads: everyone (and the timer) leaves together. */
class StartBarrier
{
      public:
	explicit StartBarrier(unsigned count)
	{
		pthread_barrier_init(&barrier_, nullptr, count);
	}
	~StartBarrier()
	{
		pthread_barrier_destroy(&barrier_);
	}
	void wait()
	{
		pthread_barrier_wait(&barrier_);
	}

      private:
	pthread_barrier_t barrier_;
};

double thread_cpu_seconds()
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/*
 * Nanoseconds the calling thread has spent runnable but waiting for a CPU,
 * from /proc/thread-self/schedstat; negative when the kernel does not say.
 * Unlike wall time minus CPU time, this excludes time the thread chose to
 * sleep (an allocator blocking on a futex), so it measures only what other
 * processes took.
 */
double thread_run_delay_ns()
{
	FILE *f = std::fopen("/proc/thread-self/schedstat", "r");
	unsigned long long on_cpu_ns;
	unsigned long long waiting_ns;
	int fields = 0;

	if (f != nullptr) {
		fields = std::fscanf(f, "%llu %llu", &on_cpu_ns, &waiting_ns);
		std::fclose(f);
	}
	return fields == 2 ? (double)waiting_ns : -1;
}

/* One worker's clock readings, wall, CPU and run-queue, around its loop. */
struct alignas(64) ThreadTiming {
	uint64_t ops = 0;
	Clock::time_point start;
	Clock::time_point end;
	double cpu_start = 0;
	double cpu_end = 0;
	double delay_start_ns = 0;
	double delay_end_ns = 0;

	void begin()
	{
		delay_start_ns = thread_run_delay_ns();
		start = Clock::now();
		cpu_start = thread_cpu_seconds();
	}
	void finish()
	{
		end = Clock::now();
		cpu_end = thread_cpu_seconds();
		delay_end_ns = thread_run_delay_ns();
	}
	/* Share of the wall time spent waiting for a CPU; negative if unknown. */
	double waiting_share() const
	{
		double wall_ns = seconds_between(start, end) * 1e9;

		if (delay_start_ns < 0 || delay_end_ns < 0 || wall_ns <= 0) {
			return -1;
		}
		return (delay_end_ns - delay_start_ns) / wall_ns;
	}
	double ops_per_cpu_second() const
	{
		return cpu_end > cpu_start ? (double)ops / (cpu_end - cpu_start) : 0;
	}
	OpCost cost_per_op() const
	{
		return {(cpu_end - cpu_start) * 1e9 / (double)ops, waiting_share()};
	}
};

} // namespace

bool pin_current_thread(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0;
}

RequestTable RequestTable::random(uint64_t seed, uint32_t min_bytes, uint32_t max_bytes,
				  uint32_t window)
{
	RequestTable t;
	uint64_t state = seed;

	t.sizes.resize(kTableEntries);
	t.slots.resize(kTableEntries);
	t.mask = kTableEntries - 1;
	for (size_t i = 0; i < kTableEntries; i++) {
		t.sizes[i] = uniform(&state, min_bytes, max_bytes);
		t.slots[i] = window ? uniform(&state, 0, window - 1) : 0;
	}
	return t;
}

RequestTable RequestTable::constant(uint32_t bytes)
{
	RequestTable t;

	t.sizes.assign(kTableEntries, bytes);
	t.slots.assign(kTableEntries, 0);
	t.mask = kTableEntries - 1;
	return t;
}

OpCost run_alloc_free_pair(const Allocator &a, const RequestTable &requests, double min_seconds,
			   Sanity *sanity)
{
	const uint32_t *sizes = requests.sizes.data();
	LocalSanity local;
	ThreadTiming timing;

	timing.begin();
	do {
		for (int i = 0; i < kBatch; i++, timing.ops++) {
			size_t bytes = sizes[timing.ops & requests.mask];
			void *ptr = a.alloc(a.ctx, bytes);

			if (ptr == nullptr) {
				local.null_allocs++;
				continue;
			}
			local.misaligned += (reinterpret_cast<uintptr_t>(ptr) & 7) != 0;
			stamp(ptr, bytes, timing.ops);
			a.free(a.ctx, ptr);
		}
	} while (seconds_between(timing.start, Clock::now()) < min_seconds);
	timing.finish();
	local.publish(sanity);
	return timing.cost_per_op();
}

OpCost run_window(const Allocator &a, const RequestTable &requests, uint32_t window,
		  double min_seconds, Sanity *sanity)
{
	ThreadTiming timing;
	Window live(a, requests, window);

	timing.begin();
	do {
		live.replace_batch();
		timing.ops += kBatch;
	} while (seconds_between(timing.start, Clock::now()) < min_seconds);
	timing.finish();
	live.sanity().publish(sanity);
	return timing.cost_per_op();
}

Throughput run_window_threads(const Allocator &a, const std::vector<RequestTable> &requests,
			      uint32_t window, const std::vector<int> &cpus, double seconds,
			      Sanity *sanity)
{
	const size_t count = cpus.size();
	StartBarrier barrier((unsigned)count + 1);
	std::atomic<bool> stop{false};
	std::vector<ThreadTiming> timing(count);
	std::vector<std::thread> threads;

	for (size_t t = 0; t < count; t++) {
		threads.emplace_back([&, t] {
			pin_current_thread(cpus[t]);
			Window live(a, requests[t], window);

			barrier.wait();
			timing[t].begin();
			do {
				live.replace_batch();
				timing[t].ops += kBatch;
			} while (!stop.load(std::memory_order_relaxed));
			timing[t].finish();
			live.sanity().publish(sanity);
		});
	}
	barrier.wait();
	std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
	stop.store(true, std::memory_order_relaxed);
	for (std::thread &thread : threads) {
		thread.join();
	}

	uint64_t ops = 0;
	Clock::time_point first_start = timing[0].start;
	Clock::time_point last_end = timing[0].end;
	double waiting = 0;
	double per_cpu_second = 0;
	for (const ThreadTiming &t : timing) {
		ops += t.ops;
		per_cpu_second += t.ops_per_cpu_second();
		first_start = std::min(first_start, t.start);
		last_end = std::max(last_end, t.end);
		waiting = t.waiting_share() < 0 ? -1 : std::max(waiting, t.waiting_share());
	}
	return {(double)ops / seconds_between(first_start, last_end), waiting, per_cpu_second};
}

Throughput run_producer_consumer(const Allocator &a, const RequestTable &requests, int producer_cpu,
				 int consumer_cpu, double seconds, Sanity *sanity)
{
	struct Handoff {
		void *ptr;
		size_t bytes;
	};
	SpscRing<Handoff> ring(kRingCapacity);
	StartBarrier barrier(3);
	std::atomic<bool> stop{false};
	ThreadTiming producer_timing;
	ThreadTiming consumer_timing;

	std::thread producer([&] {
		LocalSanity local;
		uint64_t sent = 0;

		pin_current_thread(producer_cpu);
		barrier.wait();
		producer_timing.begin();
		while (!stop.load(std::memory_order_relaxed)) {
			size_t bytes = requests.sizes[sent & requests.mask];
			void *ptr = a.alloc(a.ctx, bytes);

			if (ptr == nullptr) {
				local.null_allocs++;
				continue;
			}
			local.misaligned += (reinterpret_cast<uintptr_t>(ptr) & 7) != 0;
			stamp(ptr, bytes, sent);
			while (!ring.push({ptr, bytes})) {
				cpu_relax();
			}
			sent++;
		}
		while (!ring.push({nullptr, 0})) {
			cpu_relax();
		}
		ring.publish_tail();
		producer_timing.finish();
		producer_timing.ops = sent;
		local.publish(sanity);
	});
	std::thread consumer([&] {
		LocalSanity local;
		Handoff item;
		uint64_t received = 0;

		pin_current_thread(consumer_cpu);
		barrier.wait();
		consumer_timing.begin();
		for (;;) {
			if (!ring.pop(&item)) {
				cpu_relax();
				continue;
			}
			if (item.ptr == nullptr) {
				break;
			}
			local.bad_tags += !stamped(item.ptr, item.bytes, received);
			a.free(a.ctx, item.ptr);
			received++;
		}
		consumer_timing.finish();
		consumer_timing.ops = received;
		local.publish(sanity);
	});
	barrier.wait();
	std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
	stop.store(true, std::memory_order_relaxed);
	producer.join();
	consumer.join();

	double wall = seconds_between(std::min(producer_timing.start, consumer_timing.start),
				      consumer_timing.end);
	return {(double)consumer_timing.ops / wall,
		std::max(producer_timing.waiting_share(), consumer_timing.waiting_share()),
		consumer_timing.ops_per_cpu_second()};
}

double core_to_core_round_trip_ns(int cpu_a, int cpu_b, int round_trips)
{
	/* The median over batches, so one preemption spoils one batch only. */
	constexpr int kBatches = 21;
	const int per_batch = std::max(1, round_trips / kBatches);
	struct alignas(64) Flag {
		std::atomic<int> turn{0};
	};
	Flag flag;
	StartBarrier barrier(2);
	std::vector<double> batch_ns;

	std::thread echo([&] {
		pin_current_thread(cpu_b);
		barrier.wait();
		for (int i = 0; i < kBatches * per_batch; i++) {
			while (flag.turn.load(std::memory_order_acquire) != 1) {
				cpu_relax();
			}
			flag.turn.store(0, std::memory_order_release);
		}
	});
	pin_current_thread(cpu_a);
	barrier.wait();
	for (int b = 0; b < kBatches; b++) {
		Clock::time_point start = Clock::now();
		for (int i = 0; i < per_batch; i++) {
			flag.turn.store(1, std::memory_order_release);
			while (flag.turn.load(std::memory_order_acquire) != 0) {
				cpu_relax();
			}
		}
		batch_ns.push_back(seconds_between(start, Clock::now()) * 1e9 / per_batch);
	}
	echo.join();
	std::nth_element(batch_ns.begin(), batch_ns.begin() + kBatches / 2, batch_ns.end());
	return batch_ns[kBatches / 2];
}

FillOutcome run_fill_to_failure(size_t heap_bytes, unsigned cache_percent, uint32_t min_bytes,
				uint32_t max_bytes, int rounds, uint64_t seed, int alloc_cpu,
				int free_cpu, Sanity *sanity)
{
	FillOutcome outcome = {0, 0, 0, 0, 0, false};
	std::string error;
	auto inst = KheapInstance::create(heap_bytes, cache_percent, &error);

	if (!inst) {
		std::printf("fill-to-failure: cannot set up a %zu-byte heap: %s\n", heap_bytes,
			    error.c_str());
		return outcome;
	}

	const Allocator a = inst->as_allocator("fill");

	LocalSanity local;
	std::vector<LiveBlock> live;
	uint64_t state = seed;
	uint64_t next_tag = 0;
	size_t requested = 0;

	std::vector<double> cached_at_failure;
	struct sys_memory_stats empty = {};
	k_heap_runtime_stats_get(inst->heap(), &empty);
	outcome.empty_free_percent = 100.0 * (double)empty.free_bytes / (double)heap_bytes;

	pin_current_thread(alloc_cpu);
	auto fill = [&] {
		LiveBlock block;
		LocalSanity failures;

		while (place(a, &block, uniform(&state, min_bytes, max_bytes), next_tag++,
			     &failures)) {
			requested += block.bytes;
			live.push_back(block);
		}
		local.misaligned += failures.misaligned;
		struct sys_memory_stats stats = {};
		k_heap_runtime_stats_get(inst->heap(), &stats);
		cached_at_failure.push_back((double)stats.cached_bytes);
		return 100.0 * (double)requested / (double)heap_bytes;
	};
	auto free_tail = [&](size_t from) {
		for (size_t i = from; i < live.size(); i++) {
			requested -= live[i].bytes;
			retire(a, &live[i], &local);
		}
	};

	outcome.first_fill_percent = fill();
	std::vector<double> refills;
	for (int r = 0; r < rounds; r++) {
		for (size_t i = live.size(); i > 1; i--) {
			std::swap(live[i - 1], live[splitmix64(&state) % i]);
		}
		size_t keep = live.size() - live.size() / 2;
		if (free_cpu >= 0) {
			std::thread freer([&] {
				pin_current_thread(free_cpu);
				free_tail(keep);
			});
			freer.join();
		} else {
			free_tail(keep);
		}
		live.resize(keep);
		refills.push_back(fill());
	}
	if (refills.empty()) {
		refills.push_back(outcome.first_fill_percent);
	}
	outcome.mean_refill_percent = 0;
	for (double percent : refills) {
		outcome.mean_refill_percent += percent / (double)refills.size();
	}
	outcome.min_refill_percent = *std::min_element(refills.begin(), refills.end());
	outcome.mean_cached_at_failure = 0;
	for (double bytes : cached_at_failure) {
		outcome.mean_cached_at_failure += bytes / (double)cached_at_failure.size();
	}
	free_tail(0);
	local.publish(sanity);

	struct sys_memory_stats stats = {};
	outcome.heap_ok = k_heap_runtime_stats_get(inst->heap(), &stats) == 0 &&
			  stats.allocated_bytes == 0 && sys_heap_validate(&inst->heap()->heap) &&
			  inst->release();
	return outcome;
}
