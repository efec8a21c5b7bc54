/*
 * What kheap's GoogleTest suites share: the seed of a randomized test
 * (KHEAP_TEST_SEED replays one), tagged byte patterns, the recording fault
 * handler, guarded regions, stats and counters, bounded waits for another
 * thread, first-failure records for worker threads, filling and emptying a
 * k_heap, and the fixture of a test that owns one k_heap.
 *
 * Invariants it keeps:
 * - while a FaultRecorder lives, every fault is recorded instead of
 *   aborting, and is seen by exactly one TakeFaults() call; the handler it
 *   replaced is restored when it dies;
 * - a Region's guard bytes on both sides keep their value unless something
 *   writes outside [start(), start() + bytes());
 * - a wait for a state another thread must reach gives up after a limit, and
 *   a Watchdog aborts the binary, so a lost wake-up fails a test rather than
 *   hanging it.
 */
#ifndef KHEAP_TESTS_SUPPORT_TEST_SUPPORT_H
#define KHEAP_TESTS_SUPPORT_TEST_SUPPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <kheap/kheap.h>

/* Stats compare field by field, and print as {free, allocated, max, cached}. */
bool operator==(const struct sys_memory_stats &a, const struct sys_memory_stats &b);
std::ostream &operator<<(std::ostream &os, const struct sys_memory_stats &stats);

namespace kheap_test
{

/* ---- seeds ---- */

/* KHEAP_TEST_SEED (decimal or 0x-hex) when set and not empty; fails the test if garbled. */
std::optional<uint64_t> SeedFromEnvironment();

/* The seed from KHEAP_TEST_SEED if it names one, else a fresh random seed. */
uint64_t TestSeed();

/* For SCOPED_TRACE: the seed, and how to replay it. */
std::string SeedTrace(uint64_t seed);

/* ---- patterns ---- */

/* Fills `bytes` at `mem` with a pattern that differs between tags at every offset. */
void FillPattern(void *mem, size_t bytes, uint64_t tag);
bool HasPattern(const void *mem, size_t bytes, uint64_t tag);

/* A block its owner filled with the pattern of `tag`. */
struct TaggedBlock {
	void *mem;
	size_t bytes;
	uint64_t tag;
};

bool HasPattern(const TaggedBlock &block);

bool IsZero(const void *mem, size_t bytes);
bool IsAligned(const void *mem, size_t align);

/* ---- faults ---- */

struct Fault {
	enum kheap_fault kind;
	const void *heap;
	const void *ptr;
	std::string detail;
};

std::ostream &operator<<(std::ostream &os, const Fault &fault);

/* Records faults instead of aborting while it lives. */
class FaultRecorder
{
      public:
	/* Installs the recording handler and drops faults left from before. */
	FaultRecorder();
	~FaultRecorder();
	FaultRecorder(const FaultRecorder &) = delete;
	FaultRecorder &operator=(const FaultRecorder &) = delete;

      private:
	kheap_fault_handler_t previous_;
};

/* The faults recorded since the last call, oldest first. */
std::vector<Fault> TakeFaults();

/* Expects exactly one fault since the last take: `kind` on `heap` for `ptr`. */
void ExpectOneFault(enum kheap_fault kind, const void *heap, const void *ptr);

/* Fails the test once for each fault recorded since the last take. */
void ExpectNoFaults();

/* ---- regions ---- */

/*
 * Heap memory with guard bytes on both sides, so a test can check that
 * nothing outside [start(), start() + bytes()) was ever written. The start
 * lies `start_offset` bytes past a page boundary.
 */
class Region
{
      public:
	explicit Region(size_t bytes, size_t start_offset = 0);

	uint8_t *start() const
	{
		return start_;
	}

	size_t bytes() const
	{
		return bytes_;
	}

	/* True when [p, p + n) lies inside the region. */
	bool contains(const void *p, size_t n) const;
	bool guards_intact() const;

      private:
	size_t total_;
	std::unique_ptr<uint8_t, decltype(&free)> base_;
	uint8_t *start_;
	size_t bytes_;
};

/* ---- stats ---- */

/* Stats and counters of a heap, expecting the call to succeed. */
struct sys_memory_stats Stats(struct k_heap *heap);
struct sys_memory_stats Stats(struct sys_heap *heap);
struct k_heap_counters Counters(struct k_heap *heap);

/* ---- waiting for other threads ---- */

using Clock = std::chrono::steady_clock;

int64_t MicrosSince(Clock::time_point start);

/* How long a test waits for another thread to reach a state it must reach. */
constexpr std::chrono::milliseconds kStateLimit(20000);

/* Polls `done` until it holds or `limit` passes; true if it held. */
bool WaitFor(const std::function<bool()> &done, std::chrono::milliseconds limit = kStateLimit);

/* Waits until exactly `count` threads are blocked on `heap`; true if they were. */
bool WaitForWaiters(struct k_heap *heap, unsigned int count);

/* Aborts the binary if not destroyed within `limit`: a hang is a failure. */
class Watchdog
{
      public:
	explicit Watchdog(std::string what, std::chrono::seconds limit = std::chrono::seconds(45));
	~Watchdog();

      private:
	void Run(std::chrono::seconds limit);

	std::string what_;
	std::mutex mutex_;
	std::condition_variable cv_;
	bool disarmed_ = false;
	std::thread thread_;
};

/* Records the first of possibly many failures seen by worker threads. */
class Failures
{
      public:
	void Add(const std::string &what);
	int count() const;
	std::string first() const;

      private:
	mutable std::mutex mutex_;
	int count_ = 0;
	std::string first_;
};

/* ---- filling and emptying a k_heap ---- */

/* Allocates blocks of `bytes` without waiting until refused; sorted by address. */
std::vector<void *> AllocUntilRefused(struct k_heap *heap, size_t bytes);

/*
 * A heap filled to the brim: `blocks` of the requested size in address order,
 * then 8-byte `filler` blocks for the tail. The last refused K_NO_WAIT
 * request drained every cache, so no free chunk can serve even 8 bytes.
 */
struct FilledHeap {
	std::vector<void *> blocks;
	std::vector<void *> filler;
};

FilledHeap FillHeap(struct k_heap *heap, size_t block_bytes);

/* Frees every block and empties the list. */
void FreeAll(struct k_heap *heap, std::vector<void *> *blocks);
void FreeAll(struct k_heap *heap, FilledHeap *filled);

/* ---- the k_heap fixture ---- */

/*
 * One k_heap on a fresh region per test, with faults recorded. TearDown
 * checks that an initialised heap validates and that k_heap_deinit() returns
 * 0, which proves nothing leaked and nobody waits, and that no fault was left
 * unexamined.
 */
class KHeapFixture : public ::testing::Test
{
      protected:
	void TearDown() override;

	/* Formats a fresh region of `bytes` with per-CPU caches of `cache_percent`. */
	bool Init(size_t bytes, unsigned int cache_percent);

	FaultRecorder recorder_;
	std::optional<Region> region_;
	struct k_heap heap_ = {};
	size_t bytes_ = 0;
	/* The heap is initialised, so TearDown must check and deinit it. */
	bool ready_ = false;
	/* Stats of the empty heap right after init. */
	struct sys_memory_stats initial_ = {};
};

/* Names the instances of a suite run with caches on (non-zero percent) and off. */
std::string CacheSettingName(const ::testing::TestParamInfo<unsigned int> &info);

} // namespace kheap_test

#endif
