/*
 * Unit tests for sys_heap: every public call, the chunk layout the header
 * documents, the stats identities, and misuse reporting.
 *
 * Layout facts the tests hold the heap to: memory is handed out in 8-byte
 * units; a block of k units carries a header of H bytes (H = 4 or 8) and
 * offers k * 8 - H usable bytes; a request of n bytes takes
 * max(min_units, ceil((n + H) / 8)) units; freeing merges with both free
 * neighbours. Stats identities checked after every kind of operation:
 * allocated_bytes is the sum of usable sizes of live blocks, and
 * fresh free_bytes - free_bytes - allocated_bytes is H per chunk beyond the
 * first, where free chunks are never adjacent.
 *
 * Most tests run once per chunk header format. A recording fault handler is
 * installed for each test and the previous one restored afterwards; a test
 * that provokes a fault asserts its exact kind, then that the heap still
 * validates and its stats did not move. Faults no test asked for fail the
 * test.
 */
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <kheap/fault.h>
#include <kheap/sys_heap.h>

#include "heap/heap_testing.h"
#include "tests/support/test_support.h"

static bool operator==(const z_heap_stress_result &a, const z_heap_stress_result &b)
{
	return a.total_allocs == b.total_allocs && a.successful_allocs == b.successful_allocs &&
	       a.total_frees == b.total_frees &&
	       a.accumulated_in_use_bytes == b.accumulated_in_use_bytes;
}

static std::ostream &operator<<(std::ostream &os, const z_heap_stress_result &r)
{
	return os << "{allocs " << r.total_allocs << ", ok " << r.successful_allocs << ", frees "
		  << r.total_frees << ", in use " << r.accumulated_in_use_bytes << "}";
}

namespace
{

using namespace kheap_test;

constexpr size_t kUnit = 8;
constexpr size_t kRegionBytes = 32 * 1024;

size_t expected_header_bytes(z_heap_header_width width)
{
	return width == Z_HEAP_HEADER_SMALL ? 4 : 8;
}

std::string width_name(const ::testing::TestParamInfo<z_heap_header_width> &info)
{
	return info.param == Z_HEAP_HEADER_SMALL ? "SmallHeaders" : "BigHeaders";
}

/* Init refusals report nothing but the heap being unusable. */
void expect_only_bad_heap_faults()
{
	for (const Fault &f : TakeFaults())
		EXPECT_EQ(KHEAP_FAULT_BAD_HEAP, f.kind) << f.detail;
}

size_t lowest_set_bit(const void *p)
{
	uintptr_t v = reinterpret_cast<uintptr_t>(p);
	return v & (~v + 1);
}

/* Runs `body` with stdout redirected to a temporary file; returns the output. */
std::string capture_stdout(const std::function<void()> &body)
{
	fflush(stdout);
	FILE *sink = tmpfile();
	if (sink == nullptr) {
		ADD_FAILURE() << "tmpfile: " << strerror(errno);
		return "";
	}
	int saved = dup(STDOUT_FILENO);
	dup2(fileno(sink), STDOUT_FILENO);
	body();
	fflush(stdout);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	std::string out;
	rewind(sink);
	char chunk[4096];
	size_t got;
	while ((got = fread(chunk, 1, sizeof(chunk), sink)) > 0)
		out.append(chunk, got);
	fclose(sink);
	return out;
}

size_t count_lines(const std::string &s)
{
	return static_cast<size_t>(std::count(s.begin(), s.end(), '\n'));
}

/* The fixture: one heap of kRegionBytes in the header format under test. */
class SysHeapTest : public ::testing::TestWithParam<z_heap_header_width>
{
      protected:
	SysHeapTest() : region_(kRegionBytes)
	{
	}

	void SetUp() override
	{
		ASSERT_NO_FATAL_FAILURE(reinit());
	}

	void TearDown() override
	{
		ExpectNoFaults();
		EXPECT_TRUE(region_.guards_intact()) << "heap wrote outside its region";
	}

	/* Formats the region afresh and records the fresh heap's stats. */
	void reinit()
	{
		ASSERT_EQ(0, z_heap_init_with_headers(&heap_, region_.start(), region_.bytes(),
						      GetParam()));
		header_ = z_heap_header_bytes(&heap_);
		ASSERT_EQ(expected_header_bytes(GetParam()), header_);
		fresh_ = stats();
	}

	sys_memory_stats stats()
	{
		return Stats(&heap_);
	}

	size_t units_for(size_t bytes) const
	{
		size_t min_units = header_ == 8 ? 2 : 1;
		return std::max(min_units, (bytes + header_ + kUnit - 1) / kUnit);
	}

	size_t expected_usable(size_t bytes) const
	{
		return units_for(bytes) * kUnit - header_;
	}

	size_t usable(const void *p)
	{
		return sys_heap_usable_size(&heap_, const_cast<void *>(p));
	}

	uint8_t *alloc(size_t bytes)
	{
		return static_cast<uint8_t *>(sys_heap_alloc(&heap_, bytes));
	}

	/*
	 * Allocates one block per size from a fresh heap and returns them sorted
	 * by address; blocks carved from one free chunk must be adjacent.
	 */
	void alloc_adjacent(const std::vector<size_t> &sizes, std::vector<uint8_t *> *blocks)
	{
		blocks->clear();
		for (size_t n : sizes) {
			uint8_t *p = alloc(n);
			ASSERT_NE(nullptr, p) << "alloc " << n;
			blocks->push_back(p);
		}
		std::sort(blocks->begin(), blocks->end());
		for (size_t i = 0; i + 1 < blocks->size(); i++)
			ASSERT_EQ((*blocks)[i] + usable((*blocks)[i]) + header_, (*blocks)[i + 1])
			    << "blocks " << i << " and " << i + 1 << " are not adjacent";
	}

	/* The stats identities for the given set of live blocks, plus validate. */
	void expect_accounting(const std::vector<void *> &live)
	{
		sys_memory_stats s = stats();
		size_t sum = 0;
		for (void *p : live)
			sum += usable(p);
		EXPECT_EQ(sum, s.allocated_bytes);
		EXPECT_EQ(0u, s.cached_bytes);
		EXPECT_GE(s.max_allocated_bytes, s.allocated_bytes);
		ASSERT_GE(fresh_.free_bytes, s.free_bytes + s.allocated_bytes) << s;
		size_t overhead = fresh_.free_bytes - s.free_bytes - s.allocated_bytes;
		EXPECT_EQ(0u, overhead % header_) << "free+allocated lost bytes: " << s;
		size_t chunks = overhead / header_ + 1;
		EXPECT_GE(chunks, live.size()) << s;
		EXPECT_LE(chunks, 2 * live.size() + 1) << s;
		EXPECT_TRUE(sys_heap_validate(&heap_));
	}

	/* Everything freed: the free memory is one chunk again. */
	void expect_empty()
	{
		EXPECT_TRUE(sys_heap_validate(&heap_));
		sys_memory_stats s = stats();
		EXPECT_EQ(fresh_.free_bytes, s.free_bytes);
		EXPECT_EQ(0u, s.allocated_bytes);
	}

	void expect_untouched(const sys_memory_stats &before)
	{
		EXPECT_TRUE(sys_heap_validate(&heap_));
		EXPECT_EQ(before, stats());
	}

	FaultRecorder recorder_;
	Region region_;
	sys_heap heap_;
	size_t header_ = 0;
	sys_memory_stats fresh_;
};

INSTANTIATE_TEST_SUITE_P(HeaderFormats, SysHeapTest,
			 ::testing::Values(Z_HEAP_HEADER_SMALL, Z_HEAP_HEADER_BIG), width_name);

/* ---- init ---- */

TEST_P(SysHeapTest, FreshHeapIsOneFreeChunkSpanningNearlyTheRegion)
{
	EXPECT_EQ(region_.start(), heap_.init_mem);
	EXPECT_EQ(region_.bytes(), heap_.init_bytes);
	EXPECT_EQ(0u, fresh_.allocated_bytes);
	EXPECT_EQ(0u, fresh_.max_allocated_bytes);
	EXPECT_EQ(0u, fresh_.cached_bytes);
	EXPECT_EQ(0u, (fresh_.free_bytes + header_) % kUnit);
	EXPECT_LE(fresh_.free_bytes + header_, kRegionBytes);
	EXPECT_GT(fresh_.free_bytes, kRegionBytes - kRegionBytes / 16) << "metadata too large";
	EXPECT_TRUE(sys_heap_validate(&heap_));

	uint8_t *whole = alloc(fresh_.free_bytes);
	ASSERT_NE(nullptr, whole);
	EXPECT_EQ(fresh_.free_bytes, usable(whole));
	EXPECT_TRUE(region_.contains(whole - header_, fresh_.free_bytes + header_));
	memset(whole, 0xc3, fresh_.free_bytes);
	sys_memory_stats full = stats();
	EXPECT_EQ(0u, full.free_bytes);
	EXPECT_EQ(fresh_.free_bytes, full.allocated_bytes);
	EXPECT_EQ(nullptr, alloc(1));
	sys_heap_free(&heap_, whole);
	EXPECT_EQ(fresh_.free_bytes, stats().free_bytes);
	EXPECT_EQ(0u, stats().allocated_bytes);
	EXPECT_TRUE(sys_heap_validate(&heap_));
}

TEST_P(SysHeapTest, ReinitFormatsAUsedHeapAfresh)
{
	for (int i = 0; i < 10; i++)
		ASSERT_NE(nullptr, alloc(100 + i));
	ASSERT_NO_FATAL_FAILURE(reinit());
	EXPECT_EQ(0u, fresh_.allocated_bytes);
	EXPECT_EQ(0u, fresh_.max_allocated_bytes);
	EXPECT_NE(nullptr, alloc(fresh_.free_bytes));
}

TEST_P(SysHeapTest, InitRejectsNullArguments)
{
	EXPECT_EQ(-EINVAL, z_heap_init_with_headers(nullptr, region_.start(), 4096, GetParam()));
	EXPECT_EQ(-EINVAL, z_heap_init_with_headers(&heap_, nullptr, 4096, GetParam()));
	EXPECT_EQ(nullptr, sys_heap_alloc(&heap_, 8));
	EXPECT_EQ(nullptr, sys_heap_aligned_alloc(&heap_, 64, 8));
	sys_memory_stats s;
	EXPECT_EQ(-EINVAL, sys_heap_runtime_stats_get(&heap_, &s));
	expect_only_bad_heap_faults();
}

/*
 * Every size below some minimum is refused, every size from it on is
 * accepted, and the minimum region holds at least one smallest block.
 */
TEST_P(SysHeapTest, InitRefusesRegionsTooSmallForMetadataAndOneBlock)
{
	for (size_t offset : {0, 4, 3}) {
		SCOPED_TRACE(::testing::Message() << "start offset " << offset);
		Region small(2048, offset);
		size_t smallest_accepted = 0;
		for (size_t bytes = 0; bytes <= small.bytes(); bytes++) {
			sys_heap h;
			memset(&h, 0xa5, sizeof(h));
			int rc = z_heap_init_with_headers(&h, small.start(), bytes, GetParam());
			if (rc != 0) {
				ASSERT_EQ(-EINVAL, rc) << bytes;
				ASSERT_EQ(0u, smallest_accepted)
				    << "refused " << bytes << " after accepting "
				    << smallest_accepted;
				ASSERT_EQ(nullptr, sys_heap_alloc(&h, 1)) << bytes;
				ASSERT_EQ(nullptr, sys_heap_aligned_alloc(&h, 8, 1)) << bytes;
				ASSERT_EQ(nullptr, sys_heap_noalign_alloc(&h, 8, 1)) << bytes;
				ASSERT_EQ(nullptr, sys_heap_realloc(&h, nullptr, 1)) << bytes;
				continue;
			}
			if (smallest_accepted == 0) {
				smallest_accepted = bytes;
				void *p = sys_heap_alloc(&h, 1);
				ASSERT_NE(nullptr, p) << "smallest accepted region " << bytes
						      << " cannot hold one block";
				EXPECT_TRUE(small.contains(p, sys_heap_usable_size(&h, p)));
				EXPECT_TRUE(IsAligned(p, kUnit));
			}
		}
		EXPECT_GT(smallest_accepted, 0u) << "a 2 KiB region must be accepted";
		EXPECT_GE(smallest_accepted, 2 * kUnit);
		EXPECT_TRUE(small.guards_intact());
		expect_only_bad_heap_faults();
	}
}

TEST_P(SysHeapTest, RefusedReinitLeavesTheHeapUnusable)
{
	ASSERT_NE(nullptr, alloc(64));
	EXPECT_EQ(-EINVAL, z_heap_init_with_headers(&heap_, region_.start(), 1, GetParam()));
	EXPECT_EQ(nullptr, alloc(8));
	EXPECT_EQ(nullptr, sys_heap_aligned_alloc(&heap_, 16, 8));
	std::string info = capture_stdout([&] { sys_heap_print_info(&heap_, true); });
	EXPECT_FALSE(info.empty());
	expect_only_bad_heap_faults();
}

/*
 * Unaligned starts and odd lengths: every block is 8-byte aligned and lies
 * inside the region, and filling the whole heap never writes outside it.
 */
TEST_P(SysHeapTest, UnalignedStartsAndOddLengthsStayInsideTheRegion)
{
	std::mt19937_64 rng(1234);
	for (size_t offset : {0, 1, 2, 3, 4, 5, 7}) {
		for (size_t bytes : {1001, 4096, 4097, 4099, 8191, 12347}) {
			SCOPED_TRACE(::testing::Message()
				     << "offset " << offset << " bytes " << bytes);
			Region odd(bytes, offset);
			sys_heap h;
			ASSERT_EQ(0, z_heap_init_with_headers(&h, odd.start(), bytes, GetParam()));
			sys_memory_stats before = Stats(&h);
			EXPECT_GT(before.free_bytes, bytes / 2);
			std::vector<void *> blocks;
			for (size_t n = 1 + rng() % 300;; n = 1 + rng() % 300) {
				void *p = sys_heap_alloc(&h, n);
				if (p == nullptr && (p = sys_heap_alloc(&h, 1)) == nullptr)
					break;
				size_t u = sys_heap_usable_size(&h, p);
				ASSERT_TRUE(IsAligned(p, kUnit)) << p;
				ASSERT_TRUE(odd.contains(p, u)) << p << " + " << u;
				memset(p, 0xc3, u);
				blocks.push_back(p);
			}
			EXPECT_TRUE(sys_heap_validate(&h));
			for (void *p : blocks)
				sys_heap_free(&h, p);
			sys_memory_stats after = Stats(&h);
			EXPECT_EQ(before.free_bytes, after.free_bytes);
			EXPECT_EQ(0u, after.allocated_bytes);
			EXPECT_TRUE(sys_heap_validate(&h));

			void *whole = sys_heap_alloc(&h, before.free_bytes);
			ASSERT_NE(nullptr, whole);
			EXPECT_TRUE(odd.contains(whole, before.free_bytes));
			memset(whole, 0xc3, before.free_bytes);
			EXPECT_EQ(nullptr, sys_heap_alloc(&h, 1));
			sys_heap_free(&h, whole);
			EXPECT_TRUE(odd.guards_intact());
		}
	}
}

TEST(SysHeapInitTest, RejectsNullArgumentsWithDefaultHeaders)
{
	FaultRecorder recorder;
	Region region(4096);
	sys_heap heap;
	EXPECT_EQ(-EINVAL, sys_heap_init(nullptr, region.start(), region.bytes()));
	EXPECT_EQ(-EINVAL, sys_heap_init(&heap, nullptr, region.bytes()));
	EXPECT_EQ(nullptr, sys_heap_alloc(&heap, 8));
	EXPECT_EQ(-EINVAL, sys_heap_runtime_stats_get(nullptr, nullptr));
	EXPECT_EQ(-EINVAL, sys_heap_runtime_stats_reset_max(nullptr));
	expect_only_bad_heap_faults();
}

TEST(SysHeapInitTest, StatsRefuseAnUninitialisedHeap)
{
	FaultRecorder recorder;
	sys_heap never_initialised = {};
	sys_memory_stats s;
	EXPECT_EQ(-EINVAL, sys_heap_runtime_stats_get(&never_initialised, &s));
	EXPECT_EQ(-EINVAL, sys_heap_runtime_stats_reset_max(&never_initialised));
	EXPECT_EQ(nullptr, sys_heap_alloc(&never_initialised, 8));
	expect_only_bad_heap_faults();
}

TEST(SysHeapInitTest, DefaultHeaderWidthFollowsPointerSize)
{
	Region region(kRegionBytes);
	sys_heap heap;
	ASSERT_EQ(0, sys_heap_init(&heap, region.start(), region.bytes()));
	EXPECT_EQ(sizeof(void *) > 4 ? 8u : 4u, z_heap_header_bytes(&heap));
	void *p = sys_heap_alloc(&heap, 100);
	ASSERT_NE(nullptr, p);
	EXPECT_TRUE(IsAligned(p, kUnit));
	sys_heap_free(&heap, p);
	EXPECT_TRUE(sys_heap_validate(&heap));
}

TEST(SysHeapInitTest, SmallHeadersOnlyBelow16384Units)
{
	FaultRecorder recorder;
	const size_t limit = 16384 * kUnit;
	Region region(limit + 8 * kUnit);
	sys_heap heap;
	EXPECT_EQ(-EINVAL, z_heap_init_with_headers(&heap, region.start(), limit + 8 * kUnit,
						    Z_HEAP_HEADER_SMALL));
	EXPECT_EQ(-EINVAL, z_heap_init_with_headers(&heap, region.start(), limit + kUnit,
						    Z_HEAP_HEADER_SMALL));
	EXPECT_EQ(nullptr, sys_heap_alloc(&heap, 8));
	TakeFaults();

	ASSERT_EQ(
	    0, z_heap_init_with_headers(&heap, region.start(), limit - kUnit, Z_HEAP_HEADER_SMALL));
	EXPECT_EQ(4u, z_heap_header_bytes(&heap));
	sys_memory_stats s;
	ASSERT_EQ(0, sys_heap_runtime_stats_get(&heap, &s));
	void *whole = sys_heap_alloc(&heap, s.free_bytes);
	ASSERT_NE(nullptr, whole);
	EXPECT_TRUE(region.contains(whole, s.free_bytes));
	sys_heap_free(&heap, whole);

	ASSERT_EQ(0, z_heap_init_with_headers(&heap, region.start(), limit, Z_HEAP_HEADER_BIG));
	EXPECT_EQ(8u, z_heap_header_bytes(&heap));
	EXPECT_TRUE(TakeFaults().empty());
}

/* Regions beyond 8 GiB are refused before any of their memory is touched. */
TEST(SysHeapInitTest, RefusesRegionsBeyondTheChunkFormat)
{
	if (sizeof(void *) < 8)
		GTEST_SKIP() << "needs a 64-bit address space";
	const size_t reserve = static_cast<size_t>(uint64_t{64} << 30);
	void *map = mmap(nullptr, reserve, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (map == MAP_FAILED)
		GTEST_SKIP() << "cannot reserve 64 GiB of address space";
	FaultRecorder recorder;
	sys_heap heap;
	EXPECT_EQ(-E2BIG, sys_heap_init(&heap, map, reserve));
	EXPECT_EQ(nullptr, sys_heap_alloc(&heap, 8));
	EXPECT_EQ(-E2BIG, sys_heap_init(&heap, map, static_cast<size_t>(uint64_t{8} << 30) + 4096));
	EXPECT_EQ(-E2BIG, z_heap_init_with_headers(&heap, map, reserve, Z_HEAP_HEADER_BIG));
	EXPECT_EQ(nullptr, sys_heap_alloc(&heap, 8));
	expect_only_bad_heap_faults();
	munmap(map, reserve);
}

/* ---- alloc ---- */

TEST_P(SysHeapTest, AllocTakesExactlyTheUnitsTheLayoutPrescribes)
{
	std::map<void *, size_t> pattern_of;
	std::vector<void *> live;
	for (size_t n = 1; n <= 160; n++) {
		SCOPED_TRACE(::testing::Message() << "request " << n);
		sys_memory_stats before = stats();
		uint8_t *p = alloc(n);
		ASSERT_NE(nullptr, p);
		EXPECT_TRUE(IsAligned(p, kUnit)) << static_cast<void *>(p);
		EXPECT_EQ(expected_usable(n), usable(p));
		EXPECT_GE(usable(p), n);
		EXPECT_TRUE(region_.contains(p - header_, usable(p) + header_));
		sys_memory_stats after = stats();
		EXPECT_EQ(before.free_bytes - units_for(n) * kUnit, after.free_bytes);
		EXPECT_EQ(before.allocated_bytes + usable(p), after.allocated_bytes);
		EXPECT_EQ(after.allocated_bytes, after.max_allocated_bytes);
		FillPattern(p, usable(p), n);
		pattern_of[p] = n;
		live.push_back(p);
	}
	std::vector<void *> sorted = live;
	std::sort(sorted.begin(), sorted.end());
	for (size_t i = 0; i + 1 < sorted.size(); i++)
		ASSERT_LE(static_cast<uint8_t *>(sorted[i]) + usable(sorted[i]) + header_,
			  static_cast<uint8_t *>(sorted[i + 1]))
		    << "blocks overlap";
	ASSERT_NO_FATAL_FAILURE(expect_accounting(live));

	std::mt19937_64 rng(99);
	std::shuffle(live.begin(), live.end(), rng);
	while (!live.empty()) {
		void *p = live.back();
		live.pop_back();
		ASSERT_TRUE(HasPattern(p, usable(p), pattern_of[p])) << p;
		sys_heap_free(&heap_, p);
		ASSERT_NO_FATAL_FAILURE(expect_accounting(live));
	}
	EXPECT_EQ(fresh_.free_bytes, stats().free_bytes);
}

TEST_P(SysHeapTest, ZeroBytesIsRefusedWithoutTouchingTheHeap)
{
	EXPECT_EQ(nullptr, alloc(0));
	EXPECT_EQ(nullptr, sys_heap_aligned_alloc(&heap_, 0, 0));
	EXPECT_EQ(nullptr, sys_heap_aligned_alloc(&heap_, 64, 0));
	EXPECT_EQ(nullptr, sys_heap_noalign_alloc(&heap_, 0, 0));
	EXPECT_EQ(nullptr, sys_heap_realloc(&heap_, nullptr, 0));
	expect_untouched(fresh_);
}

TEST_P(SysHeapTest, EdgeSizes)
{
	uint8_t *one = alloc(1);
	ASSERT_NE(nullptr, one);
	EXPECT_EQ(expected_usable(1), usable(one));
	sys_heap_free(&heap_, one);
	expect_empty();

	sys_memory_stats before = stats();
	EXPECT_EQ(nullptr, alloc(kRegionBytes));
	EXPECT_EQ(nullptr, alloc(fresh_.free_bytes + 1));
	expect_untouched(before);

	/* Near-whole-heap requests: exact fit, and a one-unit remainder. */
	for (size_t n : {fresh_.free_bytes, fresh_.free_bytes - 1, fresh_.free_bytes - kUnit,
			 fresh_.free_bytes - 2 * kUnit}) {
		SCOPED_TRACE(::testing::Message() << "request " << n);
		uint8_t *p = alloc(n);
		ASSERT_NE(nullptr, p);
		EXPECT_GE(usable(p), n);
		EXPECT_TRUE(region_.contains(p, usable(p)));
		memset(p, 0xc3, usable(p));
		ASSERT_NO_FATAL_FAILURE(expect_accounting({p}));
		sys_heap_free(&heap_, p);
		EXPECT_EQ(fresh_.free_bytes, stats().free_bytes);
		EXPECT_EQ(0u, stats().allocated_bytes);
	}
	ASSERT_EQ(0, sys_heap_runtime_stats_reset_max(&heap_));
	expect_untouched(fresh_);

	/* A tail of exactly one smallest chunk is split off and serves alloc(1). */
	size_t min_units = header_ == 8 ? 2 : 1;
	size_t leave_smallest = fresh_.free_bytes - min_units * kUnit;
	uint8_t *most = alloc(leave_smallest);
	ASSERT_NE(nullptr, most);
	EXPECT_EQ(leave_smallest, usable(most));
	EXPECT_EQ(min_units * kUnit - header_, stats().free_bytes);
	uint8_t *smallest = alloc(1);
	ASSERT_NE(nullptr, smallest);
	EXPECT_EQ(expected_usable(1), usable(smallest));
	EXPECT_EQ(0u, stats().free_bytes);
	ASSERT_NO_FATAL_FAILURE(expect_accounting({most, smallest}));
}

/* Sizes whose unit count overflows size_t or a 32-bit chunk offset. */
TEST_P(SysHeapTest, OverflowingSizesAreRefusedWithoutTouchingTheHeap)
{
	uint8_t *keep = alloc(200);
	ASSERT_NE(nullptr, keep);
	FillPattern(keep, usable(keep), 17);
	sys_memory_stats before = stats();
	std::vector<size_t> huge = {
	    SIZE_MAX,	  SIZE_MAX - 1,	    SIZE_MAX - 3,     SIZE_MAX - 4,
	    SIZE_MAX - 7, SIZE_MAX - 8,	    SIZE_MAX - 15,    SIZE_MAX - 4096,
	    SIZE_MAX / 2, SIZE_MAX / 2 + 1, SIZE_MAX / kUnit, SIZE_MAX / kUnit + 1,
	};
	// Sizes that overflow a 32-bit unit count exist only where size_t is wider.
	if (sizeof(size_t) > sizeof(uint32_t)) {
		for (uint64_t wide :
		     {uint64_t{UINT32_MAX}, uint64_t{UINT32_MAX} + 1, uint64_t{UINT32_MAX} * kUnit,
		      (uint64_t{UINT32_MAX} + 1) * kUnit, (uint64_t{UINT32_MAX} + 1) * kUnit - 4})
			huge.push_back(static_cast<size_t>(wide));
	}
	for (size_t n : huge) {
		SCOPED_TRACE(::testing::Message() << "request " << n);
		EXPECT_EQ(nullptr, alloc(n));
		EXPECT_EQ(nullptr, sys_heap_noalign_alloc(&heap_, 8, n));
		for (size_t align : {0, 8, 64, 4096})
			EXPECT_EQ(nullptr, sys_heap_aligned_alloc(&heap_, align, n)) << align;
		EXPECT_EQ(nullptr, sys_heap_realloc(&heap_, nullptr, n));
		EXPECT_EQ(nullptr, sys_heap_realloc(&heap_, keep, n));
		EXPECT_EQ(nullptr, sys_heap_aligned_realloc(&heap_, keep, 4096, n));
		ASSERT_NO_FATAL_FAILURE(expect_untouched(before));
	}
	EXPECT_TRUE(HasPattern(keep, usable(keep), 17));
}

/* ---- aligned alloc ---- */

TEST_P(SysHeapTest, AlignedAllocHonoursEveryPowerOfTwo)
{
	for (size_t align = 8; align <= 4096; align *= 2) {
		for (size_t n : {1, 8, 40, 200, 1000}) {
			SCOPED_TRACE(::testing::Message() << "align " << align << " request " << n);
			uint8_t *p =
			    static_cast<uint8_t *>(sys_heap_aligned_alloc(&heap_, align, n));
			ASSERT_NE(nullptr, p);
			EXPECT_TRUE(IsAligned(p, align)) << static_cast<void *>(p);
			EXPECT_GE(usable(p), n);
			EXPECT_TRUE(region_.contains(p - header_, usable(p) + header_));
			memset(p, 0xc3, usable(p));
			ASSERT_NO_FATAL_FAILURE(expect_accounting({p}));
			sys_heap_free(&heap_, p);
			EXPECT_EQ(fresh_.free_bytes, stats().free_bytes);
			EXPECT_EQ(0u, stats().allocated_bytes);
		}
	}
}

/*
 * A prefix block moves the free chunk's start off the alignment, so the
 * aligned block must split a prefix off; that prefix returns to the free
 * memory and everything merges back when both blocks are freed.
 */
TEST_P(SysHeapTest, AlignedAllocAfterAPrefixSplitsThePaddingOff)
{
	for (size_t prefix_bytes : {1, 24, 100, 1000}) {
		for (size_t align = 8; align <= 4096; align *= 2) {
			for (size_t n : {1, 40, 1000}) {
				SCOPED_TRACE(::testing::Message()
					     << "prefix " << prefix_bytes << " align " << align
					     << " request " << n);
				ASSERT_NO_FATAL_FAILURE(reinit());
				uint8_t *prefix = alloc(prefix_bytes);
				ASSERT_NE(nullptr, prefix);
				FillPattern(prefix, usable(prefix), 5);
				uint8_t *p = static_cast<uint8_t *>(
				    sys_heap_aligned_alloc(&heap_, align, n));
				ASSERT_NE(nullptr, p);
				EXPECT_TRUE(IsAligned(p, align)) << static_cast<void *>(p);
				EXPECT_GE(usable(p), n);
				EXPECT_TRUE(region_.contains(p - header_, usable(p) + header_));
				EXPECT_TRUE(p >= prefix + usable(prefix) + header_ ||
					    p + usable(p) + header_ <= prefix)
				    << "aligned block overlaps the prefix block";
				memset(p, 0xc3, usable(p));
				EXPECT_TRUE(HasPattern(prefix, usable(prefix), 5));
				ASSERT_NO_FATAL_FAILURE(expect_accounting({prefix, p}));
				sys_heap_free(&heap_, p);
				ASSERT_NO_FATAL_FAILURE(expect_accounting({prefix}));
				sys_heap_free(&heap_, prefix);
				EXPECT_EQ(fresh_.free_bytes, stats().free_bytes);
				EXPECT_EQ(0u, stats().allocated_bytes);
			}
		}
	}
}

/*
 * Shifting the free chunk's start one unit at a time hits every distance to
 * the next aligned address, including prefixes too small to stand as a chunk.
 */
TEST_P(SysHeapTest, AlignedAllocHandlesEveryPrefixLength)
{
	for (size_t align = 16; align <= 512; align *= 2) {
		for (size_t shift_units = 0; shift_units <= align / kUnit; shift_units++) {
			SCOPED_TRACE(::testing::Message() << "align " << align << " prefix of "
							  << shift_units << " units");
			ASSERT_NO_FATAL_FAILURE(reinit());
			std::vector<void *> live;
			if (shift_units > 0) {
				uint8_t *prefix = alloc(kUnit * shift_units + kUnit - header_);
				ASSERT_NE(nullptr, prefix);
				live.push_back(prefix);
			}
			uint8_t *p =
			    static_cast<uint8_t *>(sys_heap_aligned_alloc(&heap_, align, 24));
			ASSERT_NE(nullptr, p);
			EXPECT_TRUE(IsAligned(p, align)) << static_cast<void *>(p);
			EXPECT_EQ(expected_usable(24), usable(p));
			memset(p, 0xc3, usable(p));
			live.push_back(p);
			ASSERT_NO_FATAL_FAILURE(expect_accounting(live));
			uint8_t *after = alloc(8);
			ASSERT_NE(nullptr, after);
			live.push_back(after);
			ASSERT_NO_FATAL_FAILURE(expect_accounting(live));
			for (void *q : live)
				sys_heap_free(&heap_, q);
			ASSERT_NO_FATAL_FAILURE(expect_empty());
		}
	}
}

/* Alignment 0 (and anything up to the 8-byte guarantee) is a plain alloc. */
TEST_P(SysHeapTest, SmallAlignmentsBehaveLikePlainAlloc)
{
	uint8_t *plain = alloc(100);
	ASSERT_NE(nullptr, plain);
	sys_memory_stats plain_stats = stats();
	sys_heap_free(&heap_, plain);
	for (size_t align : {0, 1, 2, 4, 8}) {
		SCOPED_TRACE(::testing::Message() << "align " << align);
		ASSERT_NO_FATAL_FAILURE(reinit());
		void *p = sys_heap_aligned_alloc(&heap_, align, 100);
		EXPECT_EQ(plain, p);
		EXPECT_EQ(expected_usable(100), usable(p));
		EXPECT_EQ(plain_stats, stats());
		sys_heap_free(&heap_, p);
	}
}

TEST_P(SysHeapTest, NonPowerOfTwoAlignmentIsRefusedWithoutTouchingTheHeap)
{
	uint8_t *keep = alloc(64);
	ASSERT_NE(nullptr, keep);
	FillPattern(keep, usable(keep), 3);
	sys_memory_stats before = stats();
	for (size_t align : {size_t{3}, size_t{5}, size_t{6}, size_t{12}, size_t{24}, size_t{48},
			     size_t{100}, size_t{4095}, size_t{4097}, size_t{(1 << 20) + 8},
			     SIZE_MAX, SIZE_MAX - 1, SIZE_MAX / 2}) {
		SCOPED_TRACE(::testing::Message() << "align " << align);
		EXPECT_EQ(nullptr, sys_heap_aligned_alloc(&heap_, align, 16));
		EXPECT_EQ(nullptr, sys_heap_aligned_realloc(&heap_, nullptr, align, 16));
		EXPECT_EQ(nullptr, sys_heap_aligned_realloc(&heap_, keep, align, 16));
		ASSERT_NO_FATAL_FAILURE(expect_untouched(before));
	}
	EXPECT_TRUE(HasPattern(keep, usable(keep), 3));
}

/* No address in the region has these alignments, so nothing can be served. */
TEST_P(SysHeapTest, UnsatisfiableAlignmentIsRefusedWithoutTouchingTheHeap)
{
	if (sizeof(void *) < 8)
		GTEST_SKIP() << "needs 64-bit pointers";
	for (uint64_t wide : {uint64_t{1} << 40, uint64_t{1} << 62, uint64_t{1} << 63}) {
		size_t align = static_cast<size_t>(wide);
		SCOPED_TRACE(::testing::Message() << "align " << align);
		uintptr_t start = reinterpret_cast<uintptr_t>(region_.start());
		if ((start + align - 1) / align * align < start + kRegionBytes)
			continue;
		for (size_t n : {size_t{1}, size_t{64}, SIZE_MAX - align + 1, SIZE_MAX})
			EXPECT_EQ(nullptr, sys_heap_aligned_alloc(&heap_, align, n)) << n;
		ASSERT_NO_FATAL_FAILURE(expect_untouched(fresh_));
	}
}

TEST_P(SysHeapTest, NoalignAllocIgnoresTheAlignment)
{
	uint8_t *plain = alloc(100);
	sys_memory_stats plain_stats = stats();
	sys_heap_free(&heap_, plain);
	for (size_t align : {size_t{0}, size_t{3}, size_t{4096}, SIZE_MAX}) {
		SCOPED_TRACE(::testing::Message() << "align " << align);
		ASSERT_NO_FATAL_FAILURE(reinit());
		void *p = sys_heap_noalign_alloc(&heap_, align, 100);
		EXPECT_EQ(plain, p);
		EXPECT_EQ(expected_usable(100), usable(p));
		EXPECT_EQ(plain_stats, stats());
		sys_heap_free(&heap_, p);
	}
	EXPECT_EQ(nullptr, sys_heap_noalign_alloc(&heap_, 64, 0));
}

/* ---- free ---- */

TEST_P(SysHeapTest, FreeNullIsANoOp)
{
	uint8_t *p = alloc(64);
	sys_memory_stats before = stats();
	sys_heap_free(&heap_, nullptr);
	expect_untouched(before);
	sys_heap_free(&heap_, p);
	before = stats();
	sys_heap_free(&heap_, nullptr);
	expect_untouched(before);
	expect_empty();
}

/*
 * Between used neighbours a freed block becomes a chunk of its own; with a
 * free neighbour it merges and its header becomes free space too.
 */
TEST_P(SysHeapTest, FreeMergesWithBothFreeNeighbours)
{
	std::vector<uint8_t *> b;
	ASSERT_NO_FATAL_FAILURE(alloc_adjacent({64, 100, 200, 300, 64}, &b));
	ASSERT_NO_FATAL_FAILURE(expect_accounting({b[0], b[1], b[2], b[3], b[4]}));
	size_t u1 = usable(b[1]), u2 = usable(b[2]), u3 = usable(b[3]);

	size_t free_before = stats().free_bytes;
	sys_heap_free(&heap_, b[1]);
	EXPECT_EQ(free_before + u1, stats().free_bytes);
	ASSERT_NO_FATAL_FAILURE(expect_accounting({b[0], b[2], b[3], b[4]}));

	free_before = stats().free_bytes;
	sys_heap_free(&heap_, b[3]);
	EXPECT_EQ(free_before + u3, stats().free_bytes);
	ASSERT_NO_FATAL_FAILURE(expect_accounting({b[0], b[2], b[4]}));

	free_before = stats().free_bytes;
	sys_heap_free(&heap_, b[2]);
	EXPECT_EQ(free_before + u2 + 2 * header_, stats().free_bytes);
	ASSERT_NO_FATAL_FAILURE(expect_accounting({b[0], b[4]}));

	/* The merged hole serves one request of its whole size, in place. */
	size_t hole = u1 + u2 + u3 + 2 * header_;
	uint8_t *again = alloc(hole);
	EXPECT_EQ(b[1], again);
	EXPECT_EQ(hole, usable(again));
	ASSERT_NO_FATAL_FAILURE(expect_accounting({b[0], again, b[4]}));

	sys_heap_free(&heap_, again);
	sys_heap_free(&heap_, b[0]);
	sys_heap_free(&heap_, b[4]);
	EXPECT_EQ(fresh_.free_bytes, stats().free_bytes);
	EXPECT_EQ(0u, stats().allocated_bytes);
	EXPECT_NE(nullptr, alloc(fresh_.free_bytes));
}

/* ---- realloc ---- */

TEST_P(SysHeapTest, ReallocNullAllocates)
{
	void *p = sys_heap_realloc(&heap_, nullptr, 100);
	ASSERT_NE(nullptr, p);
	EXPECT_EQ(expected_usable(100), usable(p));
	ASSERT_NO_FATAL_FAILURE(expect_accounting({p}));
	void *q = sys_heap_aligned_realloc(&heap_, nullptr, 256, 100);
	ASSERT_NE(nullptr, q);
	EXPECT_TRUE(IsAligned(q, 256));
	ASSERT_NO_FATAL_FAILURE(expect_accounting({p, q}));
	sys_heap_free(&heap_, p);
	sys_heap_free(&heap_, q);
	EXPECT_TRUE(sys_heap_validate(&heap_));
	EXPECT_EQ(fresh_.free_bytes, stats().free_bytes);
}

TEST_P(SysHeapTest, ReallocToZeroFreesAndReturnsNull)
{
	void *p = alloc(100);
	void *q = alloc(300);
	ASSERT_NE(nullptr, p);
	ASSERT_NE(nullptr, q);
	EXPECT_EQ(nullptr, sys_heap_realloc(&heap_, p, 0));
	ASSERT_NO_FATAL_FAILURE(expect_accounting({q}));
	EXPECT_EQ(nullptr, sys_heap_aligned_realloc(&heap_, q, 64, 0));
	ASSERT_NO_FATAL_FAILURE(expect_accounting({}));
	EXPECT_EQ(fresh_.free_bytes, stats().free_bytes);
}

TEST_P(SysHeapTest, ReallocGrowsInPlaceIntoAFreeRightNeighbour)
{
	std::vector<uint8_t *> b;
	ASSERT_NO_FATAL_FAILURE(alloc_adjacent({100, 200, 100}, &b));
	sys_memory_stats all_live = stats();
	size_t u0 = usable(b[0]), u1 = usable(b[1]);
	FillPattern(b[0], u0, 31);
	sys_heap_free(&heap_, b[1]);

	uint8_t *grown = static_cast<uint8_t *>(sys_heap_realloc(&heap_, b[0], u0 + 40));
	ASSERT_EQ(b[0], grown);
	EXPECT_EQ(expected_usable(u0 + 40), usable(grown));
	EXPECT_TRUE(HasPattern(grown, u0, 31));
	ASSERT_NO_FATAL_FAILURE(expect_accounting({grown, b[2]}));

	/* Taking the whole neighbour restores the layout of three live blocks. */
	size_t whole = u0 + u1 + header_;
	grown = static_cast<uint8_t *>(sys_heap_realloc(&heap_, b[0], whole));
	ASSERT_EQ(b[0], grown);
	EXPECT_EQ(whole, usable(grown));
	EXPECT_EQ(all_live.free_bytes, stats().free_bytes);
	EXPECT_EQ(all_live.allocated_bytes + header_, stats().allocated_bytes);
	EXPECT_TRUE(HasPattern(grown, u0, 31));
	ASSERT_NO_FATAL_FAILURE(expect_accounting({grown, b[2]}));

	/* One byte more does not fit before the used block: it must move. */
	FillPattern(grown, whole, 32);
	uint8_t *moved = static_cast<uint8_t *>(sys_heap_realloc(&heap_, grown, whole + 1));
	ASSERT_NE(nullptr, moved);
	EXPECT_NE(grown, moved);
	EXPECT_TRUE(HasPattern(moved, whole, 32));
	EXPECT_GE(usable(moved), whole + 1);
	ASSERT_NO_FATAL_FAILURE(expect_accounting({moved, b[2]}));
}

/*
 * With no other free memory, the tail a shrink gives back is the only free
 * chunk: the stats show it and the next allocation of its size lands there.
 */
TEST_P(SysHeapTest, ReallocShrinksInPlaceAndReturnsTheTail)
{
	uint8_t *p = alloc(2048);
	ASSERT_NE(nullptr, p);
	size_t old_usable = usable(p);
	FillPattern(p, old_usable, 77);
	uint8_t *rest = alloc(stats().free_bytes);
	ASSERT_NE(nullptr, rest);
	ASSERT_EQ(0u, stats().free_bytes);

	sys_memory_stats before = stats();
	ASSERT_EQ(p, sys_heap_realloc(&heap_, p, old_usable - 1));
	EXPECT_EQ(old_usable, usable(p)) << "less than a unit cannot be given back";
	EXPECT_EQ(before, stats());

	ASSERT_EQ(p, sys_heap_realloc(&heap_, p, 64));
	EXPECT_EQ(expected_usable(64), usable(p));
	EXPECT_TRUE(HasPattern(p, 64, 77));
	size_t tail = old_usable - usable(p);
	sys_memory_stats shrunk = stats();
	EXPECT_EQ(before.allocated_bytes - tail, shrunk.allocated_bytes);
	EXPECT_EQ(tail - header_, shrunk.free_bytes);
	EXPECT_EQ(before.max_allocated_bytes, shrunk.max_allocated_bytes);
	ASSERT_NO_FATAL_FAILURE(expect_accounting({p, rest}));

	uint8_t *reuse = alloc(tail - header_);
	ASSERT_NE(nullptr, reuse);
	EXPECT_EQ(p + usable(p) + header_, reuse);
	EXPECT_EQ(0u, stats().free_bytes);
	ASSERT_NO_FATAL_FAILURE(expect_accounting({p, rest, reuse}));
	EXPECT_TRUE(HasPattern(p, 64, 77));
}

TEST_P(SysHeapTest, ReallocShrinkMergesTheTailWithAFreeRightNeighbour)
{
	std::vector<uint8_t *> b;
	ASSERT_NO_FATAL_FAILURE(alloc_adjacent({1000, 100, 100}, &b));
	sys_heap_free(&heap_, b[1]);
	size_t old_usable = usable(b[0]);
	sys_memory_stats before = stats();
	ASSERT_EQ(b[0], sys_heap_realloc(&heap_, b[0], 16));
	size_t tail = old_usable - usable(b[0]);
	EXPECT_GT(tail, 0u);
	EXPECT_EQ(before.free_bytes + tail, stats().free_bytes);
	EXPECT_EQ(before.allocated_bytes - tail, stats().allocated_bytes);
	ASSERT_NO_FATAL_FAILURE(expect_accounting({b[0], b[2]}));
}

TEST_P(SysHeapTest, ReallocMovesWhenBlockedAndPreservesContent)
{
	std::vector<uint8_t *> b;
	ASSERT_NO_FATAL_FAILURE(alloc_adjacent({100, 100}, &b));
	size_t u0 = usable(b[0]);
	FillPattern(b[0], u0, 9);
	sys_memory_stats before = stats();
	uint8_t *moved = static_cast<uint8_t *>(sys_heap_realloc(&heap_, b[0], 1000));
	ASSERT_NE(nullptr, moved);
	EXPECT_NE(b[0], moved);
	EXPECT_EQ(expected_usable(1000), usable(moved));
	EXPECT_TRUE(HasPattern(moved, u0, 9));
	sys_memory_stats after = stats();
	EXPECT_EQ(before.allocated_bytes - u0 + usable(moved), after.allocated_bytes);
	EXPECT_GE(after.max_allocated_bytes, after.allocated_bytes);
	ASSERT_NO_FATAL_FAILURE(expect_accounting({moved, b[1]}));
}

TEST_P(SysHeapTest, FailedReallocLeavesTheBlockUntouched)
{
	uint8_t *p = alloc(1000);
	ASSERT_NE(nullptr, p);
	FillPattern(p, usable(p), 123);
	sys_memory_stats before = stats();
	for (size_t n : {fresh_.free_bytes + 1, kRegionBytes * 2, SIZE_MAX - 7, SIZE_MAX}) {
		SCOPED_TRACE(::testing::Message() << "request " << n);
		EXPECT_EQ(nullptr, sys_heap_realloc(&heap_, p, n));
		EXPECT_EQ(nullptr, sys_heap_aligned_realloc(&heap_, p, 64, n));
		EXPECT_TRUE(HasPattern(p, usable(p), 123));
		ASSERT_NO_FATAL_FAILURE(expect_untouched(before));
	}

	/* Fill the rest of the heap: growing can neither extend nor move. */
	uint8_t *rest = alloc(stats().free_bytes);
	ASSERT_NE(nullptr, rest);
	before = stats();
	EXPECT_EQ(nullptr, sys_heap_realloc(&heap_, p, usable(p) + 1));
	EXPECT_EQ(nullptr, sys_heap_aligned_realloc(&heap_, p, lowest_set_bit(p) * 2, 10));
	EXPECT_TRUE(HasPattern(p, usable(p), 123));
	ASSERT_NO_FATAL_FAILURE(expect_untouched(before));
	sys_heap_free(&heap_, p);
	sys_heap_free(&heap_, rest);
	EXPECT_TRUE(sys_heap_validate(&heap_));
	EXPECT_EQ(fresh_.free_bytes, stats().free_bytes);
}

TEST_P(SysHeapTest, AlignedReallocStaysInPlaceWhenAlreadyAligned)
{
	uint8_t *p = static_cast<uint8_t *>(sys_heap_aligned_alloc(&heap_, 256, 100));
	ASSERT_NE(nullptr, p);
	FillPattern(p, 100, 55);
	EXPECT_EQ(p, sys_heap_aligned_realloc(&heap_, p, 256, 50));
	EXPECT_EQ(p, sys_heap_aligned_realloc(&heap_, p, 16, 40));
	EXPECT_EQ(p, sys_heap_aligned_realloc(&heap_, p, lowest_set_bit(p), 30));
	EXPECT_EQ(p, sys_heap_aligned_realloc(&heap_, p, 0, 30));
	EXPECT_TRUE(HasPattern(p, 30, 55));
	ASSERT_NO_FATAL_FAILURE(expect_accounting({p}));

	/* Growing into a free right neighbour also keeps an aligned pointer. */
	std::vector<uint8_t *> b;
	ASSERT_NO_FATAL_FAILURE(reinit());
	ASSERT_NO_FATAL_FAILURE(alloc_adjacent({64, 512, 64}, &b));
	sys_heap_free(&heap_, b[1]);
	FillPattern(b[0], usable(b[0]), 56);
	size_t align = std::min<size_t>(lowest_set_bit(b[0]), 4096);
	EXPECT_EQ(b[0], sys_heap_aligned_realloc(&heap_, b[0], align, 300));
	EXPECT_TRUE(HasPattern(b[0], 64, 56));
	ASSERT_NO_FATAL_FAILURE(expect_accounting({b[0], b[2]}));
}

/* Same size, smaller and larger: a pointer lacking the alignment always moves. */
TEST_P(SysHeapTest, AlignedReallocMovesAMisalignedPointer)
{
	for (size_t n : {100, 40, 500}) {
		ASSERT_NO_FATAL_FAILURE(reinit());
		std::vector<void *> live;
		uint8_t *p = nullptr;
		while (p == nullptr) {
			uint8_t *q = alloc(100);
			ASSERT_NE(nullptr, q);
			if (lowest_set_bit(q) <= 256)
				p = q;
			else
				live.push_back(q);
		}
		size_t align = lowest_set_bit(p) * 2;
		SCOPED_TRACE(::testing::Message() << "align " << align << " request " << n);
		FillPattern(p, 100, 66);
		uint8_t *r = static_cast<uint8_t *>(sys_heap_aligned_realloc(&heap_, p, align, n));
		ASSERT_NE(nullptr, r);
		EXPECT_NE(p, r);
		EXPECT_TRUE(IsAligned(r, align)) << static_cast<void *>(r);
		EXPECT_GE(usable(r), n);
		EXPECT_TRUE(HasPattern(r, std::min<size_t>(n, 100), 66));
		live.push_back(r);
		ASSERT_NO_FATAL_FAILURE(expect_accounting(live));
	}
}

/* ---- usable size, stats, validate ---- */

TEST_P(SysHeapTest, UsableSizeCoversTheRequestAndIsFullyWritable)
{
	EXPECT_EQ(0u, sys_heap_usable_size(&heap_, nullptr));
	const size_t requests[] = {1, 3, 4, 5, 7, 8, 9, 12, 13, 16, 17, 255, 256, 257, 4000};
	std::vector<void *> live;
	for (size_t n : requests) {
		uint8_t *p = alloc(n);
		ASSERT_NE(nullptr, p) << n;
		EXPECT_GE(usable(p), n);
		EXPECT_EQ(expected_usable(n), usable(p)) << n;
		FillPattern(p, usable(p), n);
		live.push_back(p);
	}
	for (size_t i = 0; i < live.size(); i++)
		EXPECT_TRUE(HasPattern(live[i], usable(live[i]), requests[i]))
		    << "block of " << requests[i] << " was overwritten by a neighbour";
	ASSERT_NO_FATAL_FAILURE(expect_accounting(live));
}

TEST_P(SysHeapTest, MaxAllocatedIsAHighWaterMarkThatResetLowers)
{
	uint8_t *a = alloc(1000);
	uint8_t *b = alloc(2000);
	size_t ua = usable(a), ub = usable(b);
	EXPECT_EQ(ua + ub, stats().max_allocated_bytes);
	sys_heap_free(&heap_, a);
	EXPECT_EQ(ub, stats().allocated_bytes);
	EXPECT_EQ(ua + ub, stats().max_allocated_bytes);

	sys_memory_stats before_reset = stats();
	ASSERT_EQ(0, sys_heap_runtime_stats_reset_max(&heap_));
	sys_memory_stats after_reset = stats();
	EXPECT_EQ(ub, after_reset.max_allocated_bytes);
	EXPECT_EQ(before_reset.free_bytes, after_reset.free_bytes);
	EXPECT_EQ(before_reset.allocated_bytes, after_reset.allocated_bytes);

	uint8_t *c = alloc(100);
	EXPECT_EQ(ub + usable(c), stats().max_allocated_bytes);
	sys_heap_free(&heap_, c);
	sys_heap_free(&heap_, b);
	EXPECT_EQ(ub + expected_usable(100), stats().max_allocated_bytes);
	ASSERT_EQ(0, sys_heap_runtime_stats_reset_max(&heap_));
	EXPECT_EQ(0u, stats().max_allocated_bytes);
	expect_untouched(fresh_);

	/* Growing in place raises the high-water mark too. */
	std::vector<uint8_t *> d;
	ASSERT_NO_FATAL_FAILURE(alloc_adjacent({64, 64, 64}, &d));
	sys_heap_free(&heap_, d[1]);
	ASSERT_EQ(0, sys_heap_runtime_stats_reset_max(&heap_));
	ASSERT_EQ(d[0], sys_heap_realloc(&heap_, d[0], 120));
	EXPECT_EQ(stats().allocated_bytes, stats().max_allocated_bytes);
}

TEST_P(SysHeapTest, ValidateHoldsThroughOrdinaryUse)
{
	EXPECT_TRUE(sys_heap_validate(&heap_));
	std::mt19937_64 rng(7);
	std::vector<void *> live;
	for (int i = 0; i < 2000; i++) {
		if (live.empty() || rng() % 3 != 0) {
			void *p = sys_heap_aligned_alloc(&heap_, size_t{1} << (rng() % 8),
							 1 + rng() % 700);
			if (p != nullptr)
				live.push_back(p);
		} else {
			size_t victim = rng() % live.size();
			sys_heap_free(&heap_, live[victim]);
			live[victim] = live.back();
			live.pop_back();
		}
		if (i % 50 == 0) {
			SCOPED_TRACE(::testing::Message() << "op " << i);
			ASSERT_NO_FATAL_FAILURE(expect_accounting(live));
		}
	}
	ASSERT_NO_FATAL_FAILURE(expect_accounting(live));
}

/* ---- stress ---- */

/*
 * Wraps sys_heap alloc/free to record what a stress run asked for, and
 * recomputes its in-use accounting: each of the first `ops` calls is one
 * stress operation; calls after those free the leftovers.
 */
struct StressRecorder {
	sys_heap *heap = nullptr;
	const uint8_t *base = nullptr;
	uint32_t ops = 0;
	std::map<void *, size_t> live;
	size_t requested_in_use = 0;
	size_t usable_in_use = 0;
	uint64_t accumulated_in_use = 0;
	uint32_t calls = 0;
	uint32_t alloc_calls = 0;
	uint32_t non_null_allocs = 0;
	uint32_t free_calls = 0;
	uint32_t unknown_frees = 0;
	uint32_t stats_mismatches = 0;
	size_t max_live = 0;
	std::vector<int64_t> trace;

	static void *alloc_hook(void *arg, size_t bytes)
	{
		auto *rec = static_cast<StressRecorder *>(arg);
		void *p = sys_heap_alloc(rec->heap, bytes);
		rec->alloc_calls++;
		rec->trace.push_back(static_cast<int64_t>(bytes));
		rec->trace.push_back(p ? static_cast<const uint8_t *>(p) - rec->base : -1);
		if (p != nullptr) {
			rec->non_null_allocs++;
			rec->live[p] = bytes;
			rec->requested_in_use += bytes;
			rec->usable_in_use += sys_heap_usable_size(rec->heap, p);
		}
		rec->after_call();
		return p;
	}

	static void free_hook(void *arg, void *p)
	{
		auto *rec = static_cast<StressRecorder *>(arg);
		rec->free_calls++;
		rec->trace.push_back(-2);
		rec->trace.push_back(static_cast<const uint8_t *>(p) - rec->base);
		auto it = rec->live.find(p);
		if (it == rec->live.end()) {
			rec->unknown_frees++;
		} else {
			rec->requested_in_use -= it->second;
			rec->usable_in_use -= sys_heap_usable_size(rec->heap, p);
			rec->live.erase(it);
		}
		sys_heap_free(rec->heap, p);
		rec->after_call();
	}

	void after_call()
	{
		if (calls++ < ops)
			accumulated_in_use += requested_in_use;
		max_live = std::max(max_live, live.size());
		sys_memory_stats s;
		if (sys_heap_runtime_stats_get(heap, &s) != 0 || s.allocated_bytes != usable_in_use)
			stats_mismatches++;
	}
};

class SysHeapStressTest : public SysHeapTest
{
      protected:
	static constexpr uint32_t kOps = 5000;
	static constexpr int kTargetPercent = 50;
	static constexpr size_t kScratchBlocks = 4096;

	void run(bool seeded, uint64_t seed, StressRecorder *rec, z_heap_stress_result *result,
		 size_t scratch_blocks = kScratchBlocks)
	{
		ASSERT_NO_FATAL_FAILURE(reinit());
		rec->heap = &heap_;
		rec->base = region_.start();
		rec->ops = kOps;
		// A live-block record is a pointer and a size: two words.
		std::vector<uintptr_t> scratch(2 * scratch_blocks);
		size_t scratch_bytes = scratch.size() * sizeof(scratch[0]);
		memset(result, 0xee, sizeof(*result));
		if (seeded)
			sys_heap_stress_seeded(&StressRecorder::alloc_hook,
					       &StressRecorder::free_hook, rec, kRegionBytes, kOps,
					       scratch.data(), scratch_bytes, kTargetPercent, seed,
					       result);
		else
			sys_heap_stress(&StressRecorder::alloc_hook, &StressRecorder::free_hook,
					rec, kRegionBytes, kOps, scratch.data(), scratch_bytes,
					kTargetPercent, result);
	}

	void expect_consistent(const StressRecorder &rec, const z_heap_stress_result &result)
	{
		EXPECT_EQ(kOps, result.total_allocs + result.total_frees);
		EXPECT_EQ(rec.alloc_calls, result.total_allocs);
		EXPECT_EQ(rec.non_null_allocs, result.successful_allocs);
		EXPECT_LE(result.total_frees, result.successful_allocs);
		EXPECT_EQ(rec.non_null_allocs, rec.free_calls) << "leftover blocks not freed";
		EXPECT_TRUE(rec.live.empty());
		EXPECT_EQ(0u, rec.unknown_frees) << "stress freed a pointer it never got";
		EXPECT_EQ(rec.accumulated_in_use, result.accumulated_in_use_bytes);
		EXPECT_EQ(0u, rec.stats_mismatches) << "allocated_bytes disagreed mid-run";
		EXPECT_GT(result.successful_allocs, 0u);
		EXPECT_GT(result.total_frees, 0u);
		ASSERT_NO_FATAL_FAILURE(expect_empty());
	}
};

INSTANTIATE_TEST_SUITE_P(HeaderFormats, SysHeapStressTest,
			 ::testing::Values(Z_HEAP_HEADER_SMALL, Z_HEAP_HEADER_BIG), width_name);

TEST_P(SysHeapStressTest, ResultAgreesWithWhatTheCallbacksSaw)
{
	StressRecorder rec;
	z_heap_stress_result result;
	ASSERT_NO_FATAL_FAILURE(run(true, 12345, &rec, &result));
	ASSERT_NO_FATAL_FAILURE(expect_consistent(rec, result));
	uint64_t average_in_use = result.accumulated_in_use_bytes / kOps;
	EXPECT_LE(average_in_use, kRegionBytes);
	EXPECT_GE(average_in_use, kRegionBytes * kTargetPercent / 100 / 4)
	    << "stress stayed far below its target use";
}

TEST_P(SysHeapStressTest, LiveBlocksNeverExceedTheScratchSpace)
{
	StressRecorder rec;
	z_heap_stress_result result;
	ASSERT_NO_FATAL_FAILURE(run(true, 7, &rec, &result, 8));
	EXPECT_LE(rec.max_live, 8u);
	EXPECT_EQ(8u, rec.max_live) << "a 50% target should fill all 8 slots";
	ASSERT_NO_FATAL_FAILURE(expect_consistent(rec, result));
}

TEST_P(SysHeapStressTest, SameSeedReplaysTheSameRun)
{
	StressRecorder first, second, other;
	z_heap_stress_result r1, r2, r3;
	ASSERT_NO_FATAL_FAILURE(run(true, 42, &first, &r1));
	ASSERT_NO_FATAL_FAILURE(run(true, 42, &second, &r2));
	ASSERT_NO_FATAL_FAILURE(run(true, 43, &other, &r3));
	EXPECT_EQ(r1, r2);
	EXPECT_TRUE(first.trace == second.trace) << "same seed, different operations";
	EXPECT_FALSE(first.trace == other.trace) << "different seeds, same operations";
	ASSERT_NO_FATAL_FAILURE(expect_consistent(other, r3));
}

TEST_P(SysHeapStressTest, DefaultSeedIsFixed)
{
	StressRecorder first, second;
	z_heap_stress_result r1, r2;
	ASSERT_NO_FATAL_FAILURE(run(false, 0, &first, &r1));
	ASSERT_NO_FATAL_FAILURE(run(false, 0, &second, &r2));
	EXPECT_EQ(r1, r2);
	EXPECT_TRUE(first.trace == second.trace);
	ASSERT_NO_FATAL_FAILURE(expect_consistent(second, r2));
}

/* ---- print_info ---- */

TEST_P(SysHeapTest, PrintInfoReportsTotalsAndDumpsEveryChunk)
{
	std::string fresh_dump = capture_stdout([&] { sys_heap_print_info(&heap_, true); });
	std::vector<void *> live;
	std::vector<void *> all;
	for (int i = 0; i < 41; i++)
		all.push_back(alloc(64));
	for (size_t i = 0; i < all.size(); i++) {
		if (i % 2 == 0)
			live.push_back(all[i]);
		else
			sys_heap_free(&heap_, all[i]);
	}
	sys_memory_stats before = stats();

	std::string summary = capture_stdout([&] { sys_heap_print_info(&heap_, false); });
	std::string dump = capture_stdout([&] { sys_heap_print_info(&heap_, true); });
	EXPECT_FALSE(summary.empty());
	EXPECT_NE(std::string::npos, summary.find(std::to_string(before.allocated_bytes)))
	    << "totals do not mention the " << before.allocated_bytes << " allocated bytes:\n"
	    << summary;
	EXPECT_NE(std::string::npos, summary.find(std::to_string(before.free_bytes)))
	    << "totals do not mention the " << before.free_bytes << " free bytes:\n"
	    << summary;
	EXPECT_GT(dump.size(), summary.size());
	EXPECT_GE(count_lines(dump), count_lines(summary) + all.size())
	    << "expected a line per chunk:\n"
	    << dump;
	EXPECT_GE(count_lines(dump), count_lines(fresh_dump) + all.size() - 1);
	expect_untouched(before);
	ASSERT_NO_FATAL_FAILURE(expect_accounting(live));
}

/* ---- misuse ---- */

TEST_P(SysHeapTest, DoubleFreeOfABlockBetweenUsedNeighbours)
{
	std::vector<uint8_t *> b;
	ASSERT_NO_FATAL_FAILURE(alloc_adjacent({64, 64, 64}, &b));
	sys_heap_free(&heap_, b[1]);
	sys_memory_stats before = stats();
	sys_heap_free(&heap_, b[1]);
	ASSERT_NO_FATAL_FAILURE(ExpectOneFault(KHEAP_FAULT_DOUBLE_FREE, &heap_, b[1]));
	expect_untouched(before);
	EXPECT_EQ(nullptr, sys_heap_realloc(&heap_, b[1], 10));
	ASSERT_NO_FATAL_FAILURE(ExpectOneFault(KHEAP_FAULT_DOUBLE_FREE, &heap_, b[1]));
	expect_untouched(before);
}

TEST_P(SysHeapTest, DoubleFreeOfABlockMergedWithItsRightNeighbour)
{
	std::vector<uint8_t *> b;
	ASSERT_NO_FATAL_FAILURE(alloc_adjacent({64, 64, 64, 64}, &b));
	sys_heap_free(&heap_, b[2]);
	sys_heap_free(&heap_, b[1]);
	sys_memory_stats before = stats();
	sys_heap_free(&heap_, b[1]);
	ASSERT_NO_FATAL_FAILURE(ExpectOneFault(KHEAP_FAULT_DOUBLE_FREE, &heap_, b[1]));
	expect_untouched(before);
}

/* The block's header now lies inside a larger free chunk; either name fits. */
TEST_P(SysHeapTest, DoubleFreeOfABlockMergedIntoItsLeftNeighbour)
{
	std::vector<uint8_t *> b;
	ASSERT_NO_FATAL_FAILURE(alloc_adjacent({64, 64, 64, 64}, &b));
	sys_heap_free(&heap_, b[1]);
	sys_heap_free(&heap_, b[2]);
	sys_memory_stats before = stats();
	sys_heap_free(&heap_, b[2]);
	std::vector<Fault> faults = TakeFaults();
	ASSERT_EQ(1u, faults.size());
	EXPECT_TRUE(faults[0].kind == KHEAP_FAULT_DOUBLE_FREE ||
		    faults[0].kind == KHEAP_FAULT_INTERIOR_POINTER)
	    << kheap_fault_name(faults[0].kind);
	EXPECT_EQ(static_cast<void *>(b[2]), faults[0].ptr);
	expect_untouched(before);
}

TEST_P(SysHeapTest, PointersOutsideTheHeapAreForeign)
{
	uint8_t *live = alloc(64);
	sys_memory_stats before = stats();
	uint64_t on_stack[4] = {0x100, 0x200, 0x300, 0x400};
	std::unique_ptr<uint64_t[]> from_malloc(new uint64_t[16]());
	void *outside[] = {
	    &on_stack[2],
	    from_malloc.get() + 2,
	    region_.start() + kRegionBytes,
	    region_.start() + kRegionBytes + 64,
	    region_.start() - 64,
	    region_.start() - kUnit,
	};
	for (void *p : outside) {
		SCOPED_TRACE(::testing::Message() << "pointer " << p);
		sys_heap_free(&heap_, p);
		ASSERT_NO_FATAL_FAILURE(ExpectOneFault(KHEAP_FAULT_FOREIGN_POINTER, &heap_, p));
		expect_untouched(before);
		EXPECT_EQ(nullptr, sys_heap_realloc(&heap_, p, 32));
		ASSERT_NO_FATAL_FAILURE(ExpectOneFault(KHEAP_FAULT_FOREIGN_POINTER, &heap_, p));
		expect_untouched(before);
	}
	EXPECT_EQ(0x300u, on_stack[2]);
	sys_heap_free(&heap_, live);
}

TEST_P(SysHeapTest, BlocksFreedIntoTheWrongHeapAreForeign)
{
	Region other_region(kRegionBytes);
	sys_heap other;
	ASSERT_EQ(0,
		  z_heap_init_with_headers(&other, other_region.start(), kRegionBytes, GetParam()));
	uint8_t *mine = alloc(100);
	void *theirs = sys_heap_alloc(&other, 100);
	ASSERT_NE(nullptr, mine);
	ASSERT_NE(nullptr, theirs);
	sys_memory_stats my_before = stats();
	sys_memory_stats their_before = Stats(&other);

	sys_heap_free(&heap_, theirs);
	ASSERT_NO_FATAL_FAILURE(ExpectOneFault(KHEAP_FAULT_FOREIGN_POINTER, &heap_, theirs));
	sys_heap_free(&other, mine);
	ASSERT_NO_FATAL_FAILURE(ExpectOneFault(KHEAP_FAULT_FOREIGN_POINTER, &other, mine));
	EXPECT_EQ(nullptr, sys_heap_realloc(&other, mine, 300));
	ASSERT_NO_FATAL_FAILURE(ExpectOneFault(KHEAP_FAULT_FOREIGN_POINTER, &other, mine));

	expect_untouched(my_before);
	EXPECT_TRUE(sys_heap_validate(&other));
	EXPECT_EQ(their_before, Stats(&other));
	sys_heap_free(&other, theirs);
	sys_heap_free(&heap_, mine);
	EXPECT_EQ(fresh_.free_bytes, stats().free_bytes);
}

/* Whatever the block holds, the bytes before an interior pointer are no header. */
TEST_P(SysHeapTest, InteriorPointersAreReported)
{
	for (int fill : {0xa5, 0x00, 0xff}) {
		SCOPED_TRACE(::testing::Message() << "block filled with " << fill);
		ASSERT_NO_FATAL_FAILURE(reinit());
		uint8_t *guard_before = alloc(64);
		uint8_t *p = alloc(1024);
		uint8_t *guard_after = alloc(64);
		ASSERT_NE(nullptr, p);
		memset(p, fill, usable(p));
		sys_memory_stats before = stats();
		for (size_t offset : {8, 16, 3, 1, 512, 1016}) {
			SCOPED_TRACE(::testing::Message() << "p + " << offset);
			sys_heap_free(&heap_, p + offset);
			ASSERT_NO_FATAL_FAILURE(
			    ExpectOneFault(KHEAP_FAULT_INTERIOR_POINTER, &heap_, p + offset));
			expect_untouched(before);
			EXPECT_EQ(nullptr, sys_heap_realloc(&heap_, p + offset, 10));
			ASSERT_NO_FATAL_FAILURE(
			    ExpectOneFault(KHEAP_FAULT_INTERIOR_POINTER, &heap_, p + offset));
			expect_untouched(before);
		}
		sys_heap_free(&heap_, p);
		sys_heap_free(&heap_, guard_before);
		sys_heap_free(&heap_, guard_after);
		EXPECT_EQ(fresh_.free_bytes, stats().free_bytes);
	}
}

/*
 * Writing past the end of a block lands on the next block's header; freeing
 * (or reallocating) the overflowing block must notice. Restoring the bytes
 * shows the abandoned operation changed nothing.
 */
TEST_P(SysHeapTest, OverrunIntoTheNextHeaderIsReportedAtFree)
{
	for (size_t overrun : {size_t{1}, header_}) {
		SCOPED_TRACE(::testing::Message() << "overrun of " << overrun << " bytes");
		ASSERT_NO_FATAL_FAILURE(reinit());
		std::vector<uint8_t *> b;
		ASSERT_NO_FATAL_FAILURE(alloc_adjacent({100, 100, 100}, &b));
		uint8_t *victim_header = b[0] + usable(b[0]);
		ASSERT_EQ(b[1] - header_, victim_header);
		std::vector<uint8_t> saved(victim_header, victim_header + overrun);
		sys_memory_stats before = stats();

		for (size_t i = 0; i < overrun; i++)
			victim_header[i] = static_cast<uint8_t>(~saved[i]);
		sys_heap_free(&heap_, b[0]);
		ASSERT_NO_FATAL_FAILURE(
		    ExpectOneFault(KHEAP_FAULT_HEADER_OVERWRITTEN, &heap_, b[0]));
		EXPECT_EQ(nullptr, sys_heap_realloc(&heap_, b[0], 1000));
		ASSERT_NO_FATAL_FAILURE(
		    ExpectOneFault(KHEAP_FAULT_HEADER_OVERWRITTEN, &heap_, b[0]));

		memcpy(victim_header, saved.data(), overrun);
		expect_untouched(before);
		sys_heap_free(&heap_, b[0]);
		ASSERT_NO_FATAL_FAILURE(expect_accounting({b[1], b[2]}));
	}
}

/*
 * Corruption is scribbled and validated in a forked child: the parent heap
 * stays intact, and a validator that crashes on bad metadata fails only the
 * test at hand.
 */
class SysHeapCorruptionDeathTest : public SysHeapTest
{
      protected:
	/* In the child: scribble, validate, and exit 0 only on a clean report. */
	void scribble_then_validate(const std::function<void()> &scribble)
	{
		scribble();
		bool passed = sys_heap_validate(&heap_);
		std::vector<Fault> faults = TakeFaults();
		if (passed) {
			fprintf(stderr, "validate returned true on a corrupted heap\n");
			_exit(1);
		}
		if (faults.size() != 1 || faults[0].kind != KHEAP_FAULT_CORRUPT_HEAP ||
		    faults[0].heap != &heap_) {
			fprintf(stderr, "expected one corrupt-heap fault naming the heap, got %zu:",
				faults.size());
			for (const Fault &f : faults)
				fprintf(stderr, " [%s: %s]", kheap_fault_name(f.kind),
					f.detail.c_str());
			fprintf(stderr, "\n");
			_exit(2);
		}
		_exit(0);
	}

	void expect_validate_reports(const std::function<void()> &scribble)
	{
		sys_memory_stats before = stats();
		EXPECT_EXIT(scribble_then_validate(scribble), ::testing::ExitedWithCode(0), "");
		expect_untouched(before);
	}
};

INSTANTIATE_TEST_SUITE_P(HeaderFormats, SysHeapCorruptionDeathTest,
			 ::testing::Values(Z_HEAP_HEADER_SMALL, Z_HEAP_HEADER_BIG), width_name);

TEST_P(SysHeapCorruptionDeathTest, ValidateDetectsAScribbledFreeChunkHeader)
{
	std::vector<uint8_t *> b;
	ASSERT_NO_FATAL_FAILURE(alloc_adjacent({64, 200, 64}, &b));
	sys_heap_free(&heap_, b[1]);
	uint8_t *header = b[1] - header_;
	for (uint8_t scribble : {0xa5, 0x00}) {
		SCOPED_TRACE(::testing::Message() << "header set to " << int{scribble});
		expect_validate_reports([&] { memset(header, scribble, header_); });
	}
}

TEST_P(SysHeapCorruptionDeathTest, ValidateDetectsScribbledFreeListLinks)
{
	std::vector<uint8_t *> b;
	ASSERT_NO_FATAL_FAILURE(alloc_adjacent({64, 200, 64}, &b));
	sys_heap_free(&heap_, b[1]);
	for (uint8_t scribble : {0xa5, 0x00, 0x5a}) {
		SCOPED_TRACE(::testing::Message() << "links set to " << int{scribble});
		expect_validate_reports([&] { memset(b[1], scribble, 8); });
	}
}

TEST_P(SysHeapCorruptionDeathTest, ValidateDetectsAScribbledUsedChunkHeader)
{
	std::vector<uint8_t *> b;
	ASSERT_NO_FATAL_FAILURE(alloc_adjacent({64, 200, 64}, &b));
	uint8_t *header = b[1] - header_;
	expect_validate_reports([&] {
		for (size_t i = 0; i < header_; i++)
			header[i] = static_cast<uint8_t>(~header[i]);
	});
}

TEST(SysHeapFaultTest, FaultNamesAreDistinctAndNonEmpty)
{
	const enum kheap_fault all[] = {
	    KHEAP_FAULT_FOREIGN_POINTER,    KHEAP_FAULT_INTERIOR_POINTER, KHEAP_FAULT_DOUBLE_FREE,
	    KHEAP_FAULT_HEADER_OVERWRITTEN, KHEAP_FAULT_CORRUPT_HEAP,	  KHEAP_FAULT_BAD_HEAP,
	};
	std::set<std::string> names;
	for (enum kheap_fault f : all) {
		const char *name = kheap_fault_name(f);
		ASSERT_NE(nullptr, name);
		EXPECT_STRNE("", name);
		names.insert(name);
	}
	EXPECT_EQ(std::size(all), names.size());
	EXPECT_NE(std::string::npos,
		  std::string(kheap_fault_name(KHEAP_FAULT_DOUBLE_FREE)).find("double"));
}

int counted_faults;

void count_fault(enum kheap_fault, const void *, const void *, const char *)
{
	counted_faults++;
}

TEST(SysHeapFaultTest, InstallingAHandlerReturnsThePreviousOne)
{
	FaultRecorder recorder;
	Region region(4096);
	sys_heap heap;
	ASSERT_EQ(0, sys_heap_init(&heap, region.start(), region.bytes()));
	uint64_t not_from_heap = 0;

	kheap_fault_handler_t recording = kheap_set_fault_handler(&count_fault);
	ASSERT_NE(nullptr, recording);
	counted_faults = 0;
	sys_heap_free(&heap, &not_from_heap);
	EXPECT_EQ(1, counted_faults);
	EXPECT_EQ(&count_fault, kheap_set_fault_handler(recording));
	sys_heap_free(&heap, &not_from_heap);
	EXPECT_EQ(1, counted_faults);
	std::vector<Fault> faults = TakeFaults();
	ASSERT_EQ(1u, faults.size());
	EXPECT_EQ(KHEAP_FAULT_FOREIGN_POINTER, faults[0].kind);
}

/* The default handler prints one line naming fault, heap and pointer, then aborts. */
TEST(SysHeapFaultDeathTest, DefaultHandlerReportsAndAborts)
{
	Region region(4096);
	sys_heap heap;
	ASSERT_EQ(0, sys_heap_init(&heap, region.start(), region.bytes()));
	void *p = sys_heap_alloc(&heap, 64);
	ASSERT_NE(nullptr, p);
	sys_heap_free(&heap, p);
	char ptr_text[32], heap_text[32];
	snprintf(ptr_text, sizeof(ptr_text), "%p", p);
	snprintf(heap_text, sizeof(heap_text), "%p", static_cast<void *>(&heap));
	for (const char *expected :
	     {kheap_fault_name(KHEAP_FAULT_DOUBLE_FREE), static_cast<const char *>(ptr_text),
	      static_cast<const char *>(heap_text)}) {
		EXPECT_EXIT(
		    {
			    kheap_set_fault_handler(nullptr);
			    sys_heap_free(&heap, p);
		    },
		    ::testing::KilledBySignal(SIGABRT), expected);
	}
}

} // namespace
