/*
 * The heap fuzz harness (input format and checks: heap_fuzz.h), and the
 * libFuzzer entry point that aborts on the first broken check.
 *
 * One run owns one region, one heap and the model of its live blocks; no
 * state survives between runs, so every input replays the same way. The
 * calling thread is pinned to its first allowed CPU at the start of a run
 * (per-CPU caches make a k_heap's behaviour depend on the CPU) and moved only
 * by the migrate operation; its affinity and the fault handler are restored
 * when the run ends.
 */
#include "tests/fuzz/heap_fuzz.h"

#include <sched.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <map>
#include <vector>

#include <kheap/kheap.h>

#include "heap/heap_testing.h"

namespace
{

constexpr size_t kUnit = 8;
constexpr size_t kMaxOps = 4096;
constexpr size_t kNoBlock = SIZE_MAX;
/* Sizes that any init must accept or must refuse (see heap_fuzz.h). */
constexpr size_t kNeverFormats = 24;
constexpr size_t kSysAlwaysFormats = 512;
constexpr size_t kSmallHeaderLimit = 131056;
constexpr size_t kKHeapAlwaysFormats = 4096;

enum class HeapKind { SysSmall, SysBig, KCached, KNoCache };

enum Op {
	kAlloc0,
	kAlloc1,
	kAlignedAlloc,
	kRealloc,
	kAlignedReallocOrCalloc,
	kFree0,
	kFree1,
	kFree2,
	kValidate,
	kStats,
	kResetMax,
	kCheckAll,
	kMigrate,
	kDrain,
	kFreeAll,
	kBurst,
	kOpCount,
};

const char *const kOpNames[kOpCount] = {
    "alloc",	 "alloc",     "aligned_alloc", "realloc",  "aligned_realloc/calloc",
    "free",	 "free",      "free",	       "validate", "stats",
    "reset_max", "check_all", "migrate",       "drain",	   "free_all",
    "burst",
};

/* The first fault of the current run; the handler is installed per run. */
std::string first_fault;

void record_fault(enum kheap_fault fault, const void *, const void *, const char *detail)
{
	if (first_fault.empty())
		first_fault = std::string(kheap_fault_name(fault)) + ": " + (detail ? detail : "");
}

class Reader
{
      public:
	Reader(const uint8_t *data, size_t size) : next_(data), end_(data + size)
	{
	}

	bool at_end() const
	{
		return next_ >= end_;
	}

	uint8_t byte()
	{
		return next_ < end_ ? *next_++ : 0;
	}

	uint16_t pair()
	{
		uint16_t first = byte();
		return static_cast<uint16_t>(first << 8 | byte());
	}

      private:
	const uint8_t *next_;
	const uint8_t *end_;
};

/* Pins the thread for a run and restores its affinity afterwards. */
class CpuPin
{
      public:
	CpuPin()
	{
		CPU_ZERO(&saved_);
		saved_ok_ = sched_getaffinity(0, sizeof(saved_), &saved_) == 0;
		if (!saved_ok_)
			return;
		for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
			if (CPU_ISSET(cpu, &saved_))
				cpus_.push_back(cpu);
		move_to(0);
	}

	~CpuPin()
	{
		if (saved_ok_)
			sched_setaffinity(0, sizeof(saved_), &saved_);
	}

	CpuPin(const CpuPin &) = delete;
	CpuPin &operator=(const CpuPin &) = delete;

	void move_to(size_t pick)
	{
		if (cpus_.empty())
			return;
		cpu_set_t one;
		CPU_ZERO(&one);
		CPU_SET(cpus_[pick % cpus_.size()], &one);
		sched_setaffinity(0, sizeof(one), &one);
	}

      private:
	cpu_set_t saved_;
	bool saved_ok_ = false;
	std::vector<int> cpus_;
};

uint64_t pattern_word(uint32_t tag, size_t word)
{
	uint64_t x = (uint64_t{tag} + 1) * 0x9e3779b97f4a7c15ull + word * 0xbf58476d1ce4e5b9ull;
	return x ^ (x >> 31);
}

void fill_pattern(uint8_t *p, size_t len, uint32_t tag)
{
	for (size_t word = 0; word * kUnit < len; word++) {
		uint64_t v = pattern_word(tag, word);
		memcpy(p + word * kUnit, &v, std::min(kUnit, len - word * kUnit));
	}
}

/* Offset of the first byte of p[0, len) that differs from the pattern, or len. */
size_t pattern_mismatch(const uint8_t *p, size_t len, uint32_t tag)
{
	for (size_t word = 0; word * kUnit < len; word++) {
		uint64_t v = pattern_word(tag, word);
		size_t n = std::min(kUnit, len - word * kUnit);
		if (memcmp(p + word * kUnit, &v, n) != 0) {
			size_t at = word * kUnit;
			while (p[at] == reinterpret_cast<const uint8_t *>(&v)[at % kUnit])
				at++;
			return at;
		}
	}
	return len;
}

bool is_power_of_two(size_t v)
{
	return v != 0 && (v & (v - 1)) == 0;
}

std::string describe(const sys_memory_stats &s)
{
	return "{free " + std::to_string(s.free_bytes) + ", allocated " +
	       std::to_string(s.allocated_bytes) + ", max " +
	       std::to_string(s.max_allocated_bytes) + ", cached " +
	       std::to_string(s.cached_bytes) + "}";
}

struct Block {
	uint8_t *mem;
	size_t requested;
	size_t usable;
	uint32_t tag;
};

struct WalkTally {
	const uint8_t *region;
	size_t header;
	size_t free_bytes = 0;
	size_t cached_bytes = 0;
	bool cpu_ok = true;
	/* Chunk start -> usable bytes of every USED chunk. */
	std::map<const uint8_t *, size_t> used;
};

void tally_chunk(void *arg, size_t offset, size_t bytes, enum k_heap_chunk_state state, int cpu)
{
	WalkTally *t = static_cast<WalkTally *>(arg);
	size_t usable = bytes - t->header;

	if ((state == K_HEAP_CHUNK_CACHED) != (cpu >= 0 || cpu == K_HEAP_WALK_DEPOT))
		t->cpu_ok = false;
	if (state == K_HEAP_CHUNK_FREE)
		t->free_bytes += usable;
	else if (state == K_HEAP_CHUNK_CACHED)
		t->cached_bytes += usable;
	else if (state == K_HEAP_CHUNK_USED)
		t->used[t->region + offset] = usable;
}

class Run
{
      public:
	explicit Run(std::string *failure) : failure_(failure)
	{
		first_fault.clear();
		previous_handler_ = kheap_set_fault_handler(record_fault);
	}

	~Run()
	{
		kheap_set_fault_handler(previous_handler_);
		free(buffer_);
	}

	Run(const Run &) = delete;
	Run &operator=(const Run &) = delete;

	bool execute(Reader &in)
	{
		bool usable_heap = false;

		op_name_ = "init";
		if (!setup(in, &usable_heap))
			return false;
		if (!usable_heap)
			return true;
		while (!in.at_end() && op_index_ < kMaxOps) {
			op_index_++;
			if (!step(in) || !after_op())
				return false;
		}
		op_index_++;
		op_name_ = "finish";
		return finish();
	}

      private:
	bool fail(const std::string &what)
	{
		*failure_ = "op " + std::to_string(op_index_) + " (" + op_name_ + ") on " +
			    kind_name() + " heap of " + std::to_string(bytes_) + " bytes: " + what;
		return false;
	}

	std::string kind_name() const
	{
		switch (kind_) {
		case HeapKind::SysSmall:
			return "small-header sys_heap";
		case HeapKind::SysBig:
			return "big-header sys_heap";
		case HeapKind::KCached:
			return "cached k_heap";
		case HeapKind::KNoCache:
			return "uncached k_heap";
		}
		return "?";
	}

	/* Addresses in messages are offsets from the region: stable across runs. */
	std::string at(const void *p) const
	{
		if (p == nullptr)
			return "NULL";
		return "@" + std::to_string(static_cast<const uint8_t *>(p) - region_);
	}

	bool is_k() const
	{
		return kind_ == HeapKind::KCached || kind_ == HeapKind::KNoCache;
	}

	struct sys_heap *inner()
	{
		return is_k() ? &kh_.heap : &sys_;
	}

	size_t min_units() const
	{
		return header_ == 8 ? 2 : 1;
	}

	static k_timeout_t decode_wait(uint8_t w)
	{
		return w < 224 ? K_NO_WAIT : K_USEC(w - 224);
	}

	static size_t decode_align(uint8_t a)
	{
		if (a >= 0xf0)
			return 3 * (a & 15u) + 3;
		return a % 16 == 0 ? 0 : size_t{1} << (a % 16 - 1);
	}

	size_t decode_size(uint16_t v) const
	{
		unsigned s0 = v >> 8, s1 = v & 0xffu, low14 = v & 0x3fffu;

		switch (s0 >> 6) {
		case 0:
			return s1 % 64;
		case 1:
			return low14 % 1100;
		case 2:
			return low14;
		default:
			return s1 == 255 ? SIZE_MAX - (s0 & 63u) : bytes_ * s1 / 240;
		}
	}

	/* A live block's index, or kNoBlock for the NULL pointer. */
	size_t decode_slot(uint8_t s) const
	{
		if (s == 255 || live_.empty())
			return kNoBlock;
		return s % live_.size();
	}

	/* Whether an empty heap must serve this request. */
	bool fits_empty_heap(size_t n, size_t align) const
	{
		if (align <= kUnit)
			return n <= capacity_;
		return n <= capacity_ && align <= capacity_ && n + align + 2 * kUnit <= capacity_;
	}

	void *do_heap_alloc(size_t n, k_timeout_t wait)
	{
		return is_k() ? k_heap_alloc(&kh_, n, wait) : sys_heap_alloc(&sys_, n);
	}

	void *do_heap_aligned_alloc(size_t align, size_t n, k_timeout_t wait)
	{
		return is_k() ? k_heap_aligned_alloc(&kh_, align, n, wait)
			      : sys_heap_aligned_alloc(&sys_, align, n);
	}

	void do_heap_free(void *p)
	{
		if (is_k())
			k_heap_free(&kh_, p);
		else
			sys_heap_free(&sys_, p);
	}

	size_t usable_size(void *p)
	{
		return is_k() ? k_heap_usable_size(&kh_, p) : sys_heap_usable_size(&sys_, p);
	}

	bool read_stats(sys_memory_stats *s)
	{
		memset(s, 0xff, sizeof(*s));
		int rc = is_k() ? k_heap_runtime_stats_get(&kh_, s)
				: sys_heap_runtime_stats_get(&sys_, s);
		if (rc != 0)
			return fail("stats refused with " + std::to_string(rc));
		return true;
	}

	bool setup(Reader &in, bool *usable_heap)
	{
		kind_ = static_cast<HeapKind>(in.byte() % 4);
		uint32_t selector = in.byte();
		selector |= uint32_t{in.byte()} << 8;
		selector |= uint32_t{in.byte()} << 16;
		size_t offset = in.byte() % 8;
		unsigned percent = 1 + in.byte() % 100;

		if (kind_ == HeapKind::KCached)
			bytes_ = 65536 + selector % 196608;
		else if (selector & 0x800000u)
			bytes_ = selector % 2048;
		else
			bytes_ = selector % 131072;
		buffer_ = static_cast<uint8_t *>(malloc(bytes_ + offset + 1));
		region_ = buffer_ + offset;

		int rc;
		if (is_k()) {
			struct k_heap_config config = {kind_ == HeapKind::KCached ? percent : 0};
			memset(&kh_, 0, sizeof(kh_));
			rc = k_heap_init_config(&kh_, region_, bytes_, &config);
			if (rc != 0 && bytes_ >= kKHeapAlwaysFormats)
				return fail("k_heap_init refused with " + std::to_string(rc));
		} else {
			enum z_heap_header_width width =
			    kind_ == HeapKind::SysSmall ? Z_HEAP_HEADER_SMALL : Z_HEAP_HEADER_BIG;
			rc = z_heap_init_with_headers(&sys_, region_, bytes_, width);
			bool must_format =
			    bytes_ >= kSysAlwaysFormats &&
			    (width == Z_HEAP_HEADER_BIG || bytes_ <= kSmallHeaderLimit);
			if (rc != 0 && must_format)
				return fail("sys_heap_init refused with " + std::to_string(rc));
			if (rc != 0 && (sys_heap_alloc(&sys_, 1) != nullptr ||
					sys_heap_aligned_alloc(&sys_, 64, 1) != nullptr))
				return fail("a refused heap handed out memory");
		}
		if (rc == 0 && bytes_ < kNeverFormats)
			return fail("a region too small for any heap was accepted");
		if (rc != 0)
			return true;
		*usable_heap = true;
		header_ = z_heap_header_bytes(inner());
		if (!read_stats(&fresh_))
			return false;
		if (fresh_.allocated_bytes != 0 || fresh_.max_allocated_bytes != 0 ||
		    fresh_.cached_bytes != 0)
			return fail("fresh heap stats " + describe(fresh_));
		return measure_capacity();
	}

	/*
	 * The largest request the fresh heap serves. A sys_heap starts as one
	 * free chunk, so that is its free_bytes; a k_heap's control block may
	 * split its region, so it is searched for.
	 */
	bool measure_capacity()
	{
		if (!is_k()) {
			capacity_ = fresh_.free_bytes;
		} else {
			size_t fits = 0, too_big = fresh_.free_bytes + 1;
			while (too_big - fits > 1) {
				size_t mid = fits + (too_big - fits) / 2;
				void *p = k_heap_alloc(&kh_, mid, K_NO_WAIT);
				if (p == nullptr) {
					too_big = mid;
				} else {
					fits = mid;
					k_heap_free(&kh_, p);
				}
			}
			capacity_ = fits;
			k_heap_drain_caches(&kh_);
			if (sys_heap_runtime_stats_reset_max(&kh_.heap) != 0)
				return fail("reset_max refused");
		}
		if (capacity_ == 0)
			return fail("fresh heap serves nothing");
		return expect_fresh("after measuring capacity");
	}

	/* No live blocks: the heap must look as it did right after init. */
	bool expect_fresh(const char *when)
	{
		sys_memory_stats s;
		if (!read_stats(&s))
			return false;
		if (s.free_bytes != fresh_.free_bytes || s.allocated_bytes != 0 ||
		    s.cached_bytes != 0)
			return fail(std::string(when) + ": stats " + describe(s) + ", fresh " +
				    describe(fresh_));
		if (!sys_heap_validate(inner()))
			return fail(std::string(when) + ": validate failed");
		void *whole = do_heap_alloc(capacity_, K_NO_WAIT);
		if (whole == nullptr)
			return fail(std::string(when) + ": cannot allocate the fresh capacity " +
				    std::to_string(capacity_));
		bool more = do_heap_alloc(capacity_ + 1, K_NO_WAIT) != nullptr;
		do_heap_free(whole);
		if (more)
			return fail(std::string(when) + ": served more than the fresh capacity");
		if (is_k())
			k_heap_drain_caches(&kh_);
		return true;
	}

	bool step(Reader &in)
	{
		Op op = static_cast<Op>(in.byte() % kOpCount);

		op_name_ = kOpNames[op];
		switch (op) {
		case kAlloc0:
		case kAlloc1: {
			size_t n = decode_size(in.pair());
			return alloc_one(false, 0, n, decode_wait(in.byte()));
		}
		case kAlignedAlloc: {
			size_t align = decode_align(in.byte());
			size_t n = decode_size(in.pair());
			return alloc_one(true, align, n, decode_wait(in.byte()));
		}
		case kRealloc: {
			size_t slot = decode_slot(in.byte());
			size_t n = decode_size(in.pair());
			return realloc_one(slot, false, 0, n, decode_wait(in.byte()));
		}
		case kAlignedReallocOrCalloc:
			if (is_k()) {
				size_t count = in.byte();
				size_t n = decode_size(in.pair());
				return calloc_one(count, n, decode_wait(in.byte()));
			} else {
				size_t slot = decode_slot(in.byte());
				size_t align = decode_align(in.byte());
				size_t n = decode_size(in.pair());
				return realloc_one(slot, true, align, n, K_NO_WAIT);
			}
		case kFree0:
		case kFree1:
		case kFree2:
			return free_one(decode_slot(in.byte()));
		case kValidate:
			if (!sys_heap_validate(inner()))
				return fail("validate failed");
			return true;
		case kStats:
			return check_stats();
		case kResetMax:
			return reset_max();
		case kCheckAll:
			for (const Block &b : live_)
				if (!check_contents(b, b.usable))
					return false;
			return true;
		case kMigrate:
			cpu_.move_to(in.byte());
			return true;
		case kDrain:
			return drain();
		case kFreeAll:
			return free_all();
		case kBurst: {
			size_t count = in.byte() % 32;
			size_t n = decode_size(in.pair());
			for (size_t i = 0; i < count; i++)
				if (!alloc_one(false, 0, n, K_NO_WAIT))
					return false;
			return true;
		}
		case kOpCount:
			break;
		}
		return fail("unknown operation");
	}

	bool after_op()
	{
		if (!first_fault.empty())
			return fail("fault reported: " + first_fault);
		model_max_ = std::max(model_max_, live_bytes_);
		return true;
	}

	bool check_contents(const Block &b, size_t len)
	{
		size_t bad = pattern_mismatch(b.mem, len, b.tag);
		if (bad != len)
			return fail("block " + at(b.mem) + " (asked " +
				    std::to_string(b.requested) + ", usable " +
				    std::to_string(b.usable) + ") changed at byte " +
				    std::to_string(bad));
		return true;
	}

	/* Checks a block just handed out against the model, then records it. */
	bool adopt(void *p, size_t requested, size_t align, bool zeroed)
	{
		uint8_t *mem = static_cast<uint8_t *>(p);
		uintptr_t addr = reinterpret_cast<uintptr_t>(mem);
		size_t usable = usable_size(mem);

		if (addr % kUnit != 0 || (is_power_of_two(align) && addr % align != 0))
			return fail("block " + at(mem) + " misaligned for " +
				    std::to_string(align));
		if (usable < requested)
			return fail("usable " + std::to_string(usable) + " < requested " +
				    std::to_string(requested));
		if ((usable + header_) % kUnit != 0)
			return fail("usable " + std::to_string(usable) +
				    " is not whole units minus a header");
		/* A per-CPU cache serves at least two-unit blocks (its links need
		 * eight body bytes), so with 4-byte headers a one-unit request may
		 * come back one unit larger.
		 */
		size_t cached_floor = kind_ == HeapKind::KCached ? 2 * kUnit - header_ : 0;
		if (usable - requested >= min_units() * kUnit && usable > cached_floor)
			return fail("usable " + std::to_string(usable) +
				    " keeps a splittable tail beyond a " +
				    std::to_string(requested) + "-byte request");
		const uint8_t *start = mem - header_;
		const uint8_t *end = mem + usable;
		if (start < region_ || end > region_ + bytes_)
			return fail("block " + at(mem) + "+" + std::to_string(usable) +
				    " leaves the region");
		auto next = extents_.lower_bound(start);
		if (next != extents_.end() && next->first < end)
			return fail("block " + at(mem) + "+" + std::to_string(usable) +
				    " overlaps " + at(next->first + header_));
		if (next != extents_.begin() && std::prev(next)->second > start)
			return fail("block " + at(mem) + " overlaps " +
				    at(std::prev(next)->first + header_));
		if (zeroed)
			for (size_t i = 0; i < requested; i++)
				if (mem[i] != 0)
					return fail("calloc block " + at(mem) + " not zero at " +
						    std::to_string(i));
		uint32_t tag = next_tag_++;
		fill_pattern(mem, usable, tag);
		extents_[start] = end;
		live_.push_back(Block{mem, requested, usable, tag});
		live_bytes_ += usable;
		return true;
	}

	void forget(size_t index)
	{
		extents_.erase(live_[index].mem - header_);
		live_bytes_ -= live_[index].usable;
		live_[index] = live_.back();
		live_.pop_back();
	}

	/* A refused request must leave what users hold untouched. */
	bool expect_unchanged(const sys_memory_stats &before)
	{
		sys_memory_stats after;
		if (!read_stats(&after))
			return false;
		bool same = after.allocated_bytes == before.allocated_bytes &&
			    after.max_allocated_bytes == before.max_allocated_bytes;
		/* A k_heap drains its caches before failing, which moves cached
		 * bytes to the free lists; a sys_heap changes nothing at all.
		 */
		if (!is_k())
			same = same && after.free_bytes == before.free_bytes;
		if (!same)
			return fail("refused request changed stats " + describe(before) + " -> " +
				    describe(after));
		return true;
	}

	bool alloc_one(bool aligned, size_t align, size_t n, k_timeout_t wait)
	{
		sys_memory_stats before;
		if (!read_stats(&before))
			return false;
		void *p = aligned ? do_heap_aligned_alloc(align, n, wait) : do_heap_alloc(n, wait);
		bool bad_align = aligned && align != 0 && !is_power_of_two(align);
		bool must_refuse = n == 0 || n > capacity_ || bad_align;

		if (p == nullptr) {
			if (!must_refuse && live_.empty() && fits_empty_heap(n, align))
				return fail("empty heap refused " + std::to_string(n) +
					    " bytes aligned " + std::to_string(align) +
					    " (capacity " + std::to_string(capacity_) + ")");
			return expect_unchanged(before);
		}
		if (must_refuse)
			return fail("request of " + std::to_string(n) + " aligned " +
				    std::to_string(align) + " should be refused, got " + at(p));
		return adopt(p, n, aligned ? align : 0, false);
	}

	bool calloc_one(size_t count, size_t n, k_timeout_t wait)
	{
		size_t total;
		bool overflow = __builtin_mul_overflow(count, n, &total);
		sys_memory_stats before;
		if (!read_stats(&before))
			return false;
		void *p = k_heap_calloc(&kh_, count, n, wait);

		if (p == nullptr)
			return expect_unchanged(before);
		if (overflow || total == 0 || total > capacity_)
			return fail("calloc(" + std::to_string(count) + ", " + std::to_string(n) +
				    ") should be refused");
		return adopt(p, total, 0, true);
	}

	bool realloc_one(size_t slot, bool aligned, size_t align, size_t n, k_timeout_t wait)
	{
		/* A bad alignment is refused before anything else, even a free. */
		bool bad_align = aligned && align != 0 && !is_power_of_two(align);
		uint8_t *old_mem = slot == kNoBlock ? nullptr : live_[slot].mem;
		sys_memory_stats before;
		if (slot != kNoBlock && !check_contents(live_[slot], live_[slot].usable))
			return false;
		if (!read_stats(&before))
			return false;
		void *p = aligned  ? sys_heap_aligned_realloc(&sys_, old_mem, align, n)
			  : is_k() ? k_heap_realloc(&kh_, old_mem, n, wait)
				   : sys_heap_realloc(&sys_, old_mem, n);

		if (slot == kNoBlock) {
			if (p == nullptr)
				return expect_unchanged(before);
			if (n == 0 || n > capacity_ || bad_align)
				return fail("realloc(NULL, " + std::to_string(n) +
					    ") should be refused");
			return adopt(p, n, align, false);
		}
		Block old = live_[slot];
		if (n == 0 && !bad_align) {
			if (p != nullptr)
				return fail("realloc to 0 bytes returned " + at(p));
			forget(slot);
			return true;
		}
		if (p == nullptr) {
			if (!check_contents(old, old.usable))
				return false;
			if (usable_size(old.mem) != old.usable)
				return fail("failed realloc changed the block's usable size");
			return expect_unchanged(before);
		}
		if (n > capacity_ || bad_align)
			return fail("realloc to " + std::to_string(n) + " aligned " +
				    std::to_string(align) + " should be refused");
		Block moved = old;
		moved.mem = static_cast<uint8_t *>(p);
		if (!check_contents(moved, std::min(old.usable, n)))
			return false;
		forget(slot);
		return adopt(p, n, align, false);
	}

	bool free_one(size_t slot)
	{
		if (slot == kNoBlock) {
			do_heap_free(nullptr);
			return true;
		}
		Block b = live_[slot];
		if (!check_contents(b, b.usable))
			return false;
		forget(slot);
		do_heap_free(b.mem);
		return true;
	}

	bool check_stats()
	{
		sys_memory_stats s;
		if (!read_stats(&s))
			return false;
		size_t held = 0;
		for (const Block &b : live_) {
			size_t usable = usable_size(b.mem);
			if (usable != b.usable)
				return fail("usable size of " + at(b.mem) + " went from " +
					    std::to_string(b.usable) + " to " +
					    std::to_string(usable));
			held += usable;
		}
		if (s.allocated_bytes != held)
			return fail("allocated_bytes " + std::to_string(s.allocated_bytes) +
				    ", users hold " + std::to_string(held));
		if (!is_k() && s.cached_bytes != 0)
			return fail("a sys_heap reports cached bytes");
		if (s.max_allocated_bytes < s.allocated_bytes + s.cached_bytes ||
		    s.max_allocated_bytes < model_max_)
			return fail("max_allocated_bytes " + std::to_string(s.max_allocated_bytes) +
				    " below the high-water mark " + std::to_string(model_max_) +
				    " or the current use");
		size_t accounted = s.free_bytes + s.allocated_bytes + s.cached_bytes;
		if (accounted > fresh_.free_bytes || (fresh_.free_bytes - accounted) % header_ != 0)
			return fail("stats " + describe(s) + " do not add up to the fresh " +
				    describe(fresh_) + " less whole headers");
		/* Every live block costs at most two headers: its own and a free
		 * chunk's beside it.
		 */
		if (!is_k() && (fresh_.free_bytes - accounted) / header_ > 2 * live_.size())
			return fail("stats " + describe(s) +
				    " lose more than two headers per block");
		return is_k() ? check_walk(s) : true;
	}

	bool check_walk(const sys_memory_stats &s)
	{
		WalkTally tally;
		tally.region = region_;
		tally.header = header_;
		if (k_heap_walk(&kh_, tally_chunk, &tally) != 0)
			return fail("walk refused");
		if (!tally.cpu_ok)
			return fail("walk reported a CPU for a chunk that is not cached, or none "
				    "for a cached one");
		if (tally.free_bytes != s.free_bytes || tally.cached_bytes != s.cached_bytes)
			return fail("walk counts free " + std::to_string(tally.free_bytes) +
				    ", cached " + std::to_string(tally.cached_bytes) + "; stats " +
				    describe(s));
		if (tally.used.size() != live_.size())
			return fail("walk sees " + std::to_string(tally.used.size()) +
				    " used chunks, users hold " + std::to_string(live_.size()));
		for (const Block &b : live_) {
			auto it = tally.used.find(b.mem - header_);
			if (it == tally.used.end() || it->second != b.usable)
				return fail("walk does not see block " + at(b.mem) + " as used");
		}
		sys_memory_stats inner_stats;
		memset(&inner_stats, 0xff, sizeof(inner_stats));
		if (sys_heap_runtime_stats_get(&kh_.heap, &inner_stats) != 0 ||
		    inner_stats.free_bytes != s.free_bytes ||
		    inner_stats.allocated_bytes != s.allocated_bytes ||
		    inner_stats.cached_bytes != s.cached_bytes)
			return fail("sys_heap stats of the k_heap's inner heap " +
				    describe(inner_stats) + " differ from " + describe(s));
		return true;
	}

	bool reset_max()
	{
		if (sys_heap_runtime_stats_reset_max(inner()) != 0)
			return fail("reset_max refused");
		sys_memory_stats s;
		if (!read_stats(&s))
			return false;
		if (s.max_allocated_bytes != s.allocated_bytes + s.cached_bytes)
			return fail("after reset_max: " + describe(s));
		model_max_ = live_bytes_;
		return true;
	}

	bool drain()
	{
		if (!is_k())
			return true;
		k_heap_drain_caches(&kh_);
		sys_memory_stats s;
		if (!read_stats(&s))
			return false;
		if (s.cached_bytes != 0)
			return fail("cached bytes after a drain: " + describe(s));
		return true;
	}

	bool free_all()
	{
		while (!live_.empty())
			if (!free_one(live_.size() - 1))
				return false;
		if (is_k())
			k_heap_drain_caches(&kh_);
		return expect_fresh("after freeing everything");
	}

	bool finish()
	{
		if (!check_stats() || !free_all())
			return false;
		if (!first_fault.empty())
			return fail("fault reported: " + first_fault);
		if (!is_k())
			return true;
		if (k_heap_waiter_count(&kh_) != 0)
			return fail("waiters left on an idle heap");
		int rc = k_heap_deinit(&kh_);
		if (rc != 0)
			return fail("deinit of an idle heap returned " + std::to_string(rc));
		return true;
	}

	std::string *failure_;
	kheap_fault_handler_t previous_handler_;
	CpuPin cpu_;
	HeapKind kind_ = HeapKind::SysBig;
	size_t bytes_ = 0;
	uint8_t *buffer_ = nullptr;
	uint8_t *region_ = nullptr;
	struct sys_heap sys_ = {};
	struct k_heap kh_ = {};
	size_t header_ = kUnit;
	sys_memory_stats fresh_ = {};
	size_t capacity_ = 0;
	std::vector<Block> live_;
	/* Chunk start (header included) -> end of usable memory, per live block. */
	std::map<const uint8_t *, const uint8_t *> extents_;
	size_t live_bytes_ = 0;
	size_t model_max_ = 0;
	uint32_t next_tag_ = 0;
	size_t op_index_ = 0;
	const char *op_name_ = "";
};

} // namespace

bool heap_fuzz_run(const uint8_t *data, size_t size, std::string *failure)
{
	Reader in(data, size);
	Run run(failure);
	return run.execute(in);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	std::string failure;

	if (!heap_fuzz_run(data, size, &failure)) {
		fprintf(stderr, "heap_fuzz: %s\n", failure.c_str());
		abort();
	}
	return 0;
}
