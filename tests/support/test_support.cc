/*
 * The shared helpers of kheap's GoogleTest suites (see test_support.h). The
 * recorded faults live in one process-wide list behind a mutex, because the
 * fault handler is a plain function that any thread may call at any time.
 */
#include "tests/support/test_support.h"

#include <stdio.h>
#include <string.h>

#include <algorithm>
#include <random>

bool operator==(const struct sys_memory_stats &a, const struct sys_memory_stats &b)
{
	return a.free_bytes == b.free_bytes && a.allocated_bytes == b.allocated_bytes &&
	       a.max_allocated_bytes == b.max_allocated_bytes && a.cached_bytes == b.cached_bytes;
}

std::ostream &operator<<(std::ostream &os, const struct sys_memory_stats &stats)
{
	return os << "{free " << stats.free_bytes << ", allocated " << stats.allocated_bytes
		  << ", max " << stats.max_allocated_bytes << ", cached " << stats.cached_bytes
		  << "}";
}

namespace kheap_test
{

std::optional<uint64_t> SeedFromEnvironment()
{
	const char *env = getenv("KHEAP_TEST_SEED");
	if (env == nullptr || *env == '\0') {
		return std::nullopt;
	}
	char *end = nullptr;
	uint64_t seed = strtoull(env, &end, 0);
	if (*end != '\0') {
		ADD_FAILURE() << "KHEAP_TEST_SEED=" << env << " is not a number";
	}
	return seed;
}

uint64_t TestSeed()
{
	std::optional<uint64_t> chosen = SeedFromEnvironment();
	if (chosen) {
		return *chosen;
	}
	std::random_device device;
	return (static_cast<uint64_t>(device()) << 32) ^ device();
}

std::string SeedTrace(uint64_t seed)
{
	return "seed " + std::to_string(seed) +
	       " (replay with --test_env=KHEAP_TEST_SEED=" + std::to_string(seed) + ")";
}

static uint8_t PatternByte(uint64_t tag, size_t i)
{
	uint64_t mixed = (tag + 1) * 0x9e3779b97f4a7c15ull;
	return static_cast<uint8_t>((mixed >> ((i % 8) * 8)) ^ (i / 8));
}

void FillPattern(void *mem, size_t bytes, uint64_t tag)
{
	uint8_t *p = static_cast<uint8_t *>(mem);
	for (size_t i = 0; i < bytes; i++) {
		p[i] = PatternByte(tag, i);
	}
}

bool HasPattern(const void *mem, size_t bytes, uint64_t tag)
{
	const uint8_t *p = static_cast<const uint8_t *>(mem);
	for (size_t i = 0; i < bytes; i++) {
		if (p[i] != PatternByte(tag, i)) {
			return false;
		}
	}
	return true;
}

bool HasPattern(const TaggedBlock &block)
{
	return HasPattern(block.mem, block.bytes, block.tag);
}

bool IsZero(const void *mem, size_t bytes)
{
	const uint8_t *p = static_cast<const uint8_t *>(mem);
	return std::all_of(p, p + bytes, [](uint8_t b) { return b == 0; });
}

bool IsAligned(const void *mem, size_t align)
{
	return reinterpret_cast<uintptr_t>(mem) % align == 0;
}

std::ostream &operator<<(std::ostream &os, const Fault &fault)
{
	return os << kheap_fault_name(fault.kind) << " on heap " << fault.heap << " at "
		  << fault.ptr << ": " << fault.detail;
}

static std::mutex g_fault_mutex;
static std::vector<Fault> g_faults;

static void RecordFault(enum kheap_fault kind, const void *heap, const void *ptr,
			const char *detail)
{
	std::lock_guard<std::mutex> lock(g_fault_mutex);
	g_faults.push_back({kind, heap, ptr, detail != nullptr ? detail : ""});
}

FaultRecorder::FaultRecorder() : previous_(kheap_set_fault_handler(RecordFault))
{
	TakeFaults();
}

FaultRecorder::~FaultRecorder()
{
	kheap_set_fault_handler(previous_);
}

std::vector<Fault> TakeFaults()
{
	std::lock_guard<std::mutex> lock(g_fault_mutex);
	std::vector<Fault> taken;
	taken.swap(g_faults);
	return taken;
}

void ExpectOneFault(enum kheap_fault kind, const void *heap, const void *ptr)
{
	std::vector<Fault> faults = TakeFaults();
	ASSERT_EQ(faults.size(), 1u) << "expected one " << kheap_fault_name(kind) << " fault";
	EXPECT_EQ(faults[0].kind, kind) << "got " << faults[0];
	EXPECT_EQ(faults[0].heap, heap);
	EXPECT_EQ(faults[0].ptr, ptr);
}

void ExpectNoFaults()
{
	for (const Fault &fault : TakeFaults()) {
		ADD_FAILURE() << "unexpected fault " << fault;
	}
}

static constexpr size_t kGuardBytes = 4096;
static constexpr uint8_t kGuardByte = 0x5a;

static size_t RoundUpToGuard(size_t n)
{
	return (n + kGuardBytes - 1) / kGuardBytes * kGuardBytes;
}

Region::Region(size_t bytes, size_t start_offset)
    : total_(bytes + start_offset + 2 * kGuardBytes),
      base_(static_cast<uint8_t *>(aligned_alloc(kGuardBytes, RoundUpToGuard(total_))), &free),
      start_(base_.get() + kGuardBytes + start_offset), bytes_(bytes)
{
	memset(base_.get(), kGuardByte, total_);
}

bool Region::contains(const void *p, size_t n) const
{
	const uint8_t *b = static_cast<const uint8_t *>(p);
	return b >= start_ && b + n <= start_ + bytes_;
}

bool Region::guards_intact() const
{
	const uint8_t *base = base_.get();
	auto is_guard = [](uint8_t b) { return b == kGuardByte; };
	return std::all_of(base, static_cast<const uint8_t *>(start_), is_guard) &&
	       std::all_of(static_cast<const uint8_t *>(start_ + bytes_), base + total_, is_guard);
}

/* Filled with 0xff first, so a refused call cannot pass for an empty heap. */
struct sys_memory_stats Stats(struct k_heap *heap)
{
	struct sys_memory_stats stats;
	memset(&stats, 0xff, sizeof(stats));
	EXPECT_EQ(k_heap_runtime_stats_get(heap, &stats), 0);
	return stats;
}

struct sys_memory_stats Stats(struct sys_heap *heap)
{
	struct sys_memory_stats stats;
	memset(&stats, 0xff, sizeof(stats));
	EXPECT_EQ(sys_heap_runtime_stats_get(heap, &stats), 0);
	return stats;
}

struct k_heap_counters Counters(struct k_heap *heap)
{
	struct k_heap_counters counters = {};
	EXPECT_EQ(k_heap_counters_get(heap, &counters), 0);
	return counters;
}

int64_t MicrosSince(Clock::time_point start)
{
	return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
}

bool WaitFor(const std::function<bool()> &done, std::chrono::milliseconds limit)
{
	Clock::time_point deadline = Clock::now() + limit;
	while (!done()) {
		if (Clock::now() > deadline) {
			return false;
		}
		std::this_thread::sleep_for(std::chrono::microseconds(200));
	}
	return true;
}

bool WaitForWaiters(struct k_heap *heap, unsigned int count)
{
	return WaitFor([heap, count] { return k_heap_waiter_count(heap) == count; });
}

Watchdog::Watchdog(std::string what, std::chrono::seconds limit)
    : what_(std::move(what)), thread_([this, limit] { Run(limit); })
{
}

Watchdog::~Watchdog()
{
	{
		std::lock_guard<std::mutex> lock(mutex_);
		disarmed_ = true;
	}
	cv_.notify_all();
	thread_.join();
}

void Watchdog::Run(std::chrono::seconds limit)
{
	std::unique_lock<std::mutex> lock(mutex_);
	if (!cv_.wait_for(lock, limit, [this] { return disarmed_; })) {
		fprintf(stderr,
			"watchdog: %s did not finish within %lld s (a lost wake-up or a "
			"deadlock?)\n",
			what_.c_str(), static_cast<long long>(limit.count()));
		abort();
	}
}

void Failures::Add(const std::string &what)
{
	std::lock_guard<std::mutex> lock(mutex_);
	if (count_++ == 0) {
		first_ = what;
	}
}

int Failures::count() const
{
	std::lock_guard<std::mutex> lock(mutex_);
	return count_;
}

std::string Failures::first() const
{
	std::lock_guard<std::mutex> lock(mutex_);
	return first_;
}

std::vector<void *> AllocUntilRefused(struct k_heap *heap, size_t bytes)
{
	std::vector<void *> blocks;
	for (;;) {
		void *mem = k_heap_alloc(heap, bytes, K_NO_WAIT);
		if (mem == nullptr) {
			break;
		}
		blocks.push_back(mem);
	}
	std::sort(blocks.begin(), blocks.end());
	return blocks;
}

FilledHeap FillHeap(struct k_heap *heap, size_t block_bytes)
{
	FilledHeap filled;
	filled.blocks = AllocUntilRefused(heap, block_bytes);
	filled.filler = AllocUntilRefused(heap, 8);
	return filled;
}

void FreeAll(struct k_heap *heap, std::vector<void *> *blocks)
{
	for (void *mem : *blocks) {
		k_heap_free(heap, mem);
	}
	blocks->clear();
}

void FreeAll(struct k_heap *heap, FilledHeap *filled)
{
	FreeAll(heap, &filled->blocks);
	FreeAll(heap, &filled->filler);
}

void KHeapFixture::TearDown()
{
	if (ready_) {
		EXPECT_TRUE(sys_heap_validate(&heap_.heap));
		EXPECT_EQ(k_heap_deinit(&heap_), 0) << "a block or a waiter outlived the test";
	}
	ExpectNoFaults();
}

bool KHeapFixture::Init(size_t bytes, unsigned int cache_percent)
{
	region_.emplace(bytes);
	bytes_ = bytes;
	struct k_heap_config config = {cache_percent};
	int ret = k_heap_init_config(&heap_, region_->start(), bytes, &config);
	EXPECT_EQ(ret, 0);
	ready_ = ret == 0;
	if (ready_) {
		initial_ = Stats(&heap_);
	}
	return ready_;
}

std::string CacheSettingName(const ::testing::TestParamInfo<unsigned int> &info)
{
	return info.param != 0 ? "CachesOn" : "CachesOff";
}

} // namespace kheap_test
