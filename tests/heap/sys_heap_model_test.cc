/*
 * Randomized model test for sys_heap: long seeded sequences of alloc,
 * aligned_alloc, realloc, aligned_realloc and free, checked against a
 * reference model (a map of live blocks: address -> requested size, usable
 * size, content tag).
 *
 * Invariants checked after every operation: live blocks (headers included)
 * never overlap and lie inside the region; alignment is honoured; usable
 * size covers the request; every block keeps the content last written to
 * it until it is freed or reallocated (realloc keeps the common prefix);
 * a block never keeps a tail big enough to stand as a chunk of its own;
 * allocated_bytes equals the sum of usable sizes; free and allocated bytes
 * plus one header per extra chunk add up to the fresh heap's free bytes;
 * refused requests leave the stats untouched; no fault is reported.
 * validate() runs every kValidateEvery operations. At the end, with
 * everything freed, the heap serves one block as large as the largest a
 * fresh heap serves (found by binary search).
 *
 * Seeds: KHEAP_TEST_SEED if set (decimal or 0x-hex), else kDefaultSeeds.
 * Every failure message names the seed.
 */
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <map>
#include <optional>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <kheap/fault.h>
#include <kheap/sys_heap.h>

#include "heap/heap_testing.h"
#include "tests/support/test_support.h"

namespace
{

using namespace kheap_test;

constexpr size_t kUnit = 8;
constexpr uint32_t kOpsPerSeed = 20000;
constexpr uint32_t kValidateEvery = 256;
constexpr uint32_t kResetMaxEvery = 1500;
constexpr uint64_t kDefaultSeeds[] = {1, 2, 0x5eed, 0xdeadbeef, 20240611, 0x9e3779b97f4a7c15};
constexpr size_t kPatternSlack = 256;

struct HeapShape {
	z_heap_header_width width;
	size_t bytes;
	size_t start_offset;
	/* 0: sizes up to a third of the heap; else mostly 1..max_request, so
	 * thousands of blocks are live at once.
	 */
	size_t max_request;
};

void PrintTo(const HeapShape &shape, std::ostream *os)
{
	*os << (shape.width == Z_HEAP_HEADER_SMALL ? "small" : "big") << " headers, " << shape.bytes
	    << " bytes at offset " << shape.start_offset;
	if (shape.max_request != 0)
		*os << ", requests up to " << shape.max_request;
}

std::string shape_name(const ::testing::TestParamInfo<HeapShape> &info)
{
	return std::string(info.param.width == Z_HEAP_HEADER_SMALL ? "Small" : "Big") +
	       std::to_string(info.param.bytes) + "Offset" +
	       std::to_string(info.param.start_offset) +
	       (info.param.max_request ? "UpTo" + std::to_string(info.param.max_request) : "");
}

std::vector<uint64_t> seeds_to_run()
{
	std::optional<uint64_t> seed = SeedFromEnvironment();
	if (seed)
		return {*seed};
	return std::vector<uint64_t>(std::begin(kDefaultSeeds), std::end(kDefaultSeeds));
}

bool is_power_of_two(size_t v)
{
	return v != 0 && (v & (v - 1)) == 0;
}

/* One seeded run over one heap: the heap, its region and the model. */
class ModelRun
{
      public:
	ModelRun(const HeapShape &shape, uint64_t seed)
	    : shape_(shape), rng_(seed), region_(shape.bytes, shape.start_offset),
	      start_(region_.start()), pattern_(shape.bytes + kPatternSlack)
	{
		for (uint8_t &b : pattern_)
			b = static_cast<uint8_t>(rng_());
	}

	/* Largest single allocation a fresh heap serves, by binary search. */
	::testing::AssertionResult measure_fresh_capacity()
	{
		if (z_heap_init_with_headers(&heap_, start_, shape_.bytes, shape_.width) != 0)
			return ::testing::AssertionFailure() << "init refused";
		size_t fits = 0, too_big = shape_.bytes + 1;
		while (too_big - fits > 1) {
			size_t mid = fits + (too_big - fits) / 2;
			void *p = sys_heap_alloc(&heap_, mid);
			if (p == nullptr) {
				too_big = mid;
			} else {
				fits = mid;
				sys_heap_free(&heap_, p);
			}
		}
		if (fits == 0)
			return ::testing::AssertionFailure() << "fresh heap serves nothing";
		largest_fresh_ = fits;
		return ::testing::AssertionSuccess();
	}

	::testing::AssertionResult start()
	{
		if (z_heap_init_with_headers(&heap_, start_, shape_.bytes, shape_.width) != 0)
			return ::testing::AssertionFailure() << "init refused";
		header_ = z_heap_header_bytes(&heap_);
		if (sys_heap_runtime_stats_get(&heap_, &fresh_) != 0)
			return ::testing::AssertionFailure() << "stats refused";
		if (fresh_.free_bytes != largest_fresh_)
			return ::testing::AssertionFailure()
			       << "fresh free_bytes " << fresh_.free_bytes
			       << " but the largest allocation is " << largest_fresh_;
		return ::testing::AssertionSuccess();
	}

	::testing::AssertionResult step(uint32_t op_index)
	{
		unsigned fill_percent = static_cast<unsigned>(
		    100 * allocated_ / std::max<size_t>(1, fresh_.free_bytes));
		unsigned roll = static_cast<unsigned>(rng_() % 100);
		::testing::AssertionResult result = ::testing::AssertionSuccess();
		if (live_.empty() || roll >= 25 + fill_percent / 2) {
			result = roll % 3 == 0 ? do_alloc(true) : do_alloc(false);
		} else if (roll < 10) {
			result = do_realloc(false);
		} else if (roll < 16) {
			result = do_realloc(true);
		} else {
			result = do_free();
		}
		if (!result)
			return result;
		if (!(result = check_accounting()))
			return result;
		if (!(result = check_no_fault()))
			return result;
		if (op_index % kValidateEvery == 0 && !sys_heap_validate(&heap_))
			return ::testing::AssertionFailure() << "validate failed";
		if (op_index % kResetMaxEvery == 0) {
			if (sys_heap_runtime_stats_reset_max(&heap_) != 0)
				return ::testing::AssertionFailure() << "reset_max refused";
			high_water_ = allocated_;
			sys_memory_stats s = stats();
			if (s.max_allocated_bytes != allocated_)
				return ::testing::AssertionFailure() << "after reset_max: " << s;
		}
		return ::testing::AssertionSuccess();
	}

	/* Frees everything, then checks the whole capacity is one block again. */
	::testing::AssertionResult finish()
	{
		::testing::AssertionResult result = ::testing::AssertionSuccess();
		while (!live_.empty() && (result = do_free())) {
			if (!(result = check_accounting()))
				return result;
		}
		if (!result)
			return result;
		if (!sys_heap_validate(&heap_))
			return ::testing::AssertionFailure() << "validate failed after freeing all";
		sys_memory_stats s = stats();
		if (s.free_bytes != fresh_.free_bytes || s.allocated_bytes != 0)
			return ::testing::AssertionFailure()
			       << "empty heap " << s << " vs fresh " << fresh_;
		void *whole = sys_heap_alloc(&heap_, largest_fresh_);
		if (whole == nullptr)
			return ::testing::AssertionFailure()
			       << "cannot allocate the fresh capacity " << largest_fresh_
			       << " again";
		if (sys_heap_alloc(&heap_, 1) != nullptr)
			return ::testing::AssertionFailure()
			       << "memory left beside the whole block";
		sys_heap_free(&heap_, whole);
		if (sys_heap_alloc(&heap_, largest_fresh_ + 1) != nullptr)
			return ::testing::AssertionFailure() << "more than the fresh capacity";
		return check_no_fault();
	}

	const std::string &last_op() const
	{
		return last_op_;
	}

      private:
	struct Block {
		size_t requested;
		size_t usable;
		uint32_t tag;
	};

	sys_memory_stats stats()
	{
		return Stats(&heap_);
	}

	size_t random_size()
	{
		size_t capacity = fresh_.free_bytes;
		unsigned roll = static_cast<unsigned>(rng_() % 1000);
		if (shape_.max_request != 0 && roll < 970)
			return 1 + rng_() % shape_.max_request;
		if (roll < 400)
			return 1 + rng_() % 64;
		if (roll < 700)
			return 65 + rng_() % 448;
		if (roll < 900)
			return 513 + rng_() % std::max<size_t>(1, capacity / 16);
		if (roll < 970)
			return 1 + rng_() % std::max<size_t>(1, capacity / 3);
		if (roll < 980)
			return 0;
		if (roll < 990)
			return capacity + 1 + rng_() % capacity;
		return SIZE_MAX - rng_() % 64;
	}

	size_t random_align()
	{
		unsigned roll = static_cast<unsigned>(rng_() % 100);
		if (roll < 3)
			return size_t{3} << (rng_() % 10);
		if (roll < 12)
			return 0;
		return size_t{1} << (rng_() % 13);
	}

	/* The first live block at or after a random address (wrapping around). */
	std::map<uintptr_t, Block>::iterator random_live()
	{
		uintptr_t probe = reinterpret_cast<uintptr_t>(start_) + rng_() % shape_.bytes;
		auto it = live_.lower_bound(probe);
		return it == live_.end() ? live_.begin() : it;
	}

	/* The smallest chunk; a tail at least this large is split off. */
	size_t min_units() const
	{
		return header_ == 8 ? 2 : 1;
	}

	const uint8_t *pattern_for(uint32_t tag) const
	{
		return pattern_.data() + tag % kPatternSlack;
	}

	/* Addresses in messages are offsets from the region start: stable across runs. */
	std::string at(uintptr_t addr) const
	{
		if (addr == 0)
			return "NULL";
		return "@" + std::to_string(addr - reinterpret_cast<uintptr_t>(start_));
	}

	::testing::AssertionResult check_contents(uintptr_t addr, const Block &b, size_t bytes)
	{
		if (memcmp(reinterpret_cast<void *>(addr), pattern_for(b.tag), bytes) != 0)
			return ::testing::AssertionFailure()
			       << "content of block " << at(addr) << " (asked " << b.requested
			       << ", usable " << b.usable << ") changed";
		return ::testing::AssertionSuccess();
	}

	/* A block just handed out: shape, placement, no overlap with the model. */
	::testing::AssertionResult check_new_block(void *p, size_t requested, size_t align)
	{
		uintptr_t addr = reinterpret_cast<uintptr_t>(p);
		size_t usable = sys_heap_usable_size(&heap_, p);
		uintptr_t lo = reinterpret_cast<uintptr_t>(start_);
		if (addr % kUnit != 0 || (align != 0 && addr % align != 0))
			return ::testing::AssertionFailure()
			       << "block " << at(addr) << " misaligned for " << align;
		if (usable < requested)
			return ::testing::AssertionFailure()
			       << "usable " << usable << " < requested " << requested;
		if ((usable + header_) % kUnit != 0)
			return ::testing::AssertionFailure()
			       << "usable " << usable << " is not whole units minus a header";
		if (usable - requested >= min_units() * kUnit)
			return ::testing::AssertionFailure()
			       << "usable " << usable << " wastes a splittable tail of a "
			       << requested << "-byte request";
		if (addr - header_ < lo || addr + usable > lo + shape_.bytes)
			return ::testing::AssertionFailure()
			       << "block " << at(addr) << "+" << usable << " outside the region";
		auto next = live_.lower_bound(addr);
		if (next != live_.end() && addr + usable > next->first - header_)
			return ::testing::AssertionFailure()
			       << "block " << at(addr) << "+" << usable << " overlaps "
			       << at(next->first);
		if (next != live_.begin()) {
			auto prev = std::prev(next);
			if (prev->first + prev->second.usable > addr - header_)
				return ::testing::AssertionFailure()
				       << "block " << at(addr) << " overlaps " << at(prev->first)
				       << "+" << prev->second.usable;
		}
		return ::testing::AssertionSuccess();
	}

	void adopt(void *p, size_t requested)
	{
		Block b{requested, sys_heap_usable_size(&heap_, p), next_tag_++};
		memcpy(p, pattern_for(b.tag), b.usable);
		live_[reinterpret_cast<uintptr_t>(p)] = b;
		allocated_ += b.usable;
		high_water_ = std::max(high_water_, allocated_);
	}

	::testing::AssertionResult expect_refused(void *p, const sys_memory_stats &before)
	{
		if (p != nullptr)
			return ::testing::AssertionFailure() << "request should have been refused";
		sys_memory_stats after = stats();
		if (!(before == after))
			return ::testing::AssertionFailure()
			       << "refused request changed stats " << before << " -> " << after;
		return ::testing::AssertionSuccess();
	}

	::testing::AssertionResult do_alloc(bool aligned)
	{
		size_t n = random_size();
		size_t align = aligned ? random_align() : 0;
		last_op_ = (aligned ? "aligned_alloc(" + std::to_string(align) + ", " : "alloc(") +
			   std::to_string(n) + ")";
		sys_memory_stats before = stats();
		void *p =
		    aligned ? sys_heap_aligned_alloc(&heap_, align, n) : sys_heap_alloc(&heap_, n);
		bool must_refuse =
		    n == 0 || n > fresh_.free_bytes || (align != 0 && !is_power_of_two(align));
		if (must_refuse || p == nullptr) {
			if (!must_refuse && live_.empty() && align <= kUnit)
				return ::testing::AssertionFailure() << "empty heap refused " << n;
			return expect_refused(p, before);
		}
		::testing::AssertionResult ok = check_new_block(p, n, align);
		if (ok)
			adopt(p, n);
		return ok;
	}

	::testing::AssertionResult do_realloc(bool aligned)
	{
		unsigned roll = static_cast<unsigned>(rng_() % 100);
		size_t n = roll < 4 ? 0 : random_size();
		size_t align = aligned && n != 0 ? random_align() : 0;
		bool from_null = roll >= 96;
		auto it = from_null ? live_.end() : random_live();
		void *old = from_null ? nullptr : reinterpret_cast<void *>(it->first);
		last_op_ = "aligned_realloc(" + at(reinterpret_cast<uintptr_t>(old)) + ", " +
			   std::to_string(align) + ", " + std::to_string(n) + ")";
		Block old_block{};
		if (!from_null) {
			old_block = it->second;
			::testing::AssertionResult ok =
			    check_contents(it->first, old_block, old_block.usable);
			if (!ok)
				return ok;
		}
		sys_memory_stats before = stats();
		void *p = sys_heap_aligned_realloc(&heap_, old, align, n);

		if (n == 0) {
			if (p != nullptr)
				return ::testing::AssertionFailure()
				       << "realloc to 0 returned "
				       << at(reinterpret_cast<uintptr_t>(p));
			if (!from_null) {
				live_.erase(it);
				allocated_ -= old_block.usable;
			}
			return ::testing::AssertionSuccess();
		}
		bool bad_align = align != 0 && !is_power_of_two(align);
		if (bad_align || n > fresh_.free_bytes || p == nullptr) {
			if (!from_null && !bad_align && n <= old_block.usable &&
			    (align == 0 || reinterpret_cast<uintptr_t>(old) % align == 0))
				return ::testing::AssertionFailure() << "an in-place shrink failed";
			::testing::AssertionResult ok = expect_refused(p, before);
			if (ok && !from_null)
				ok = check_contents(it->first, old_block, old_block.usable);
			return ok;
		}
		if (!from_null) {
			bool old_aligned =
			    align == 0 || reinterpret_cast<uintptr_t>(old) % align == 0;
			if (!old_aligned && p == old)
				return ::testing::AssertionFailure() << "kept a misaligned pointer";
			if (old_aligned && n <= old_block.usable && p != old)
				return ::testing::AssertionFailure() << "a shrink moved the block";
			live_.erase(it);
			allocated_ -= old_block.usable;
		}
		::testing::AssertionResult ok = check_new_block(p, n, align);
		if (!ok)
			return ok;
		if (!from_null) {
			size_t kept = std::min(old_block.usable, n);
			ok = check_contents(reinterpret_cast<uintptr_t>(p), old_block, kept);
			if (!ok)
				return ok << " (realloc lost content)";
		}
		adopt(p, n);
		return ::testing::AssertionSuccess();
	}

	::testing::AssertionResult do_free()
	{
		auto it = random_live();
		last_op_ = "free(" + at(it->first) + ")";
		::testing::AssertionResult ok =
		    check_contents(it->first, it->second, it->second.usable);
		if (!ok)
			return ok;
		sys_heap_free(&heap_, reinterpret_cast<void *>(it->first));
		allocated_ -= it->second.usable;
		live_.erase(it);
		return ::testing::AssertionSuccess();
	}

	/* The model never misuses the heap, so any fault is a failure. */
	static ::testing::AssertionResult check_no_fault()
	{
		std::vector<Fault> faults = TakeFaults();
		if (!faults.empty())
			return ::testing::AssertionFailure() << "fault: " << faults[0];
		return ::testing::AssertionSuccess();
	}

	::testing::AssertionResult check_accounting()
	{
		sys_memory_stats s = stats();
		if (s.allocated_bytes != allocated_ || s.cached_bytes != 0)
			return ::testing::AssertionFailure()
			       << s << " but the model holds " << allocated_ << " usable bytes";
		if (s.max_allocated_bytes < high_water_ ||
		    s.max_allocated_bytes > fresh_.free_bytes)
			return ::testing::AssertionFailure()
			       << s << " but the high-water mark is at least " << high_water_;
		if (s.free_bytes + s.allocated_bytes > fresh_.free_bytes)
			return ::testing::AssertionFailure()
			       << s << " exceeds the fresh capacity " << fresh_.free_bytes;
		size_t overhead = fresh_.free_bytes - s.free_bytes - s.allocated_bytes;
		size_t chunks = overhead / header_ + 1;
		if (overhead % header_ != 0 || chunks < live_.size() ||
		    chunks > 2 * live_.size() + 1)
			return ::testing::AssertionFailure()
			       << s << ": " << overhead << " bytes unaccounted with "
			       << live_.size() << " live blocks";
		return ::testing::AssertionSuccess();
	}

	HeapShape shape_;
	std::mt19937_64 rng_;
	Region region_;
	uint8_t *start_;
	std::vector<uint8_t> pattern_;
	sys_heap heap_;
	size_t header_ = 0;
	sys_memory_stats fresh_{};
	size_t largest_fresh_ = 0;
	std::map<uintptr_t, Block> live_;
	size_t allocated_ = 0;
	size_t high_water_ = 0;
	uint32_t next_tag_ = 0;
	std::string last_op_;
};

/* Faults are recorded, so that a run reports the first as its failure. */
class SysHeapModelTest : public ::testing::TestWithParam<HeapShape>
{
      protected:
	FaultRecorder recorder_;
};

TEST_P(SysHeapModelTest, RandomOperationsMatchTheModel)
{
	for (uint64_t seed : seeds_to_run()) {
		SCOPED_TRACE(SeedTrace(seed));
		ModelRun run(GetParam(), seed);
		ASSERT_TRUE(run.measure_fresh_capacity());
		ASSERT_TRUE(run.start());
		for (uint32_t op = 1; op <= kOpsPerSeed; op++)
			ASSERT_TRUE(run.step(op)) << "op " << op << ": " << run.last_op();
		ASSERT_TRUE(run.finish()) << "after " << kOpsPerSeed << " ops";
	}
}

INSTANTIATE_TEST_SUITE_P(Shapes, SysHeapModelTest,
			 ::testing::Values(HeapShape{Z_HEAP_HEADER_SMALL, 4096, 0, 0},
					   HeapShape{Z_HEAP_HEADER_SMALL, 49155, 3, 0},
					   HeapShape{Z_HEAP_HEADER_SMALL, 126 * 1024, 4, 0},
					   HeapShape{Z_HEAP_HEADER_BIG, 4096, 0, 0},
					   HeapShape{Z_HEAP_HEADER_BIG, 49155, 5, 0},
					   HeapShape{Z_HEAP_HEADER_BIG, 1 << 20, 0, 0},
					   HeapShape{Z_HEAP_HEADER_SMALL, 120 * 1024, 0, 96},
					   HeapShape{Z_HEAP_HEADER_BIG, 1 << 20, 4, 300}),
			 shape_name);

} // namespace
