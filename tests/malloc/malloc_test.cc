/*
 * Tests of the malloc replacement (malloc/kheap_malloc.h), linked into this
 * binary, so every allocation of the process goes through it: GoogleTest's,
 * libstdc++'s and glibc's own as well as the test's.
 *
 * Covered: each function's results, alignment and errno values at its edge
 * cases; heap blocks against mapped blocks and the release of large blocks'
 * pages; misuse reaching the fault handler; dlerror's strings; and the
 * process-level properties: threads that exit, many threads at once, fork()
 * while other threads allocate, signals arriving during allocation.
 *
 * Built with -fno-builtin so that the compiler keeps every call it sees
 * (it may otherwise drop a malloc/free pair or fold a failing size check).
 * Randomized tests print their seed; KHEAP_TEST_SEED replays one.
 */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <kheap/kheap.h>

#include "malloc/kheap_malloc.h"

extern char **environ;

namespace
{

constexpr size_t kAlign = alignof(max_align_t);
constexpr size_t kMmapThreshold = KHEAP_MALLOC_MMAP_THRESHOLD;
/* Passes every size check but is more than the system will ever map: 1 PiB
 * on 64-bit targets; on 32-bit ones the largest size, refused outright.
 */
constexpr size_t kUnmappable =
    sizeof(size_t) >= 8 ? static_cast<size_t>(UINT64_C(1) << 50) : SIZE_MAX / 2;

/* Hides a constant from the compiler, which would warn about a call it can
 * prove will fail (and the test wants exactly that call).
 */
size_t Opaque(size_t n)
{
	volatile size_t hidden = n;
	return hidden;
}

size_t PageBytes()
{
	return static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

uint64_t TestSeed()
{
	const char *env = getenv("KHEAP_TEST_SEED");
	if (env != nullptr) {
		return strtoull(env, nullptr, 0);
	}
	std::random_device device;
	return (static_cast<uint64_t>(device()) << 32) ^ device();
}

std::string SeedTrace(uint64_t seed)
{
	return "seed " + std::to_string(seed) +
	       " (replay with --test_env=KHEAP_TEST_SEED=" + std::to_string(seed) + ")";
}

uint8_t PatternByte(uint64_t tag, size_t i)
{
	uint64_t mixed = (tag + 1) * 0x9e3779b97f4a7c15ull;
	return static_cast<uint8_t>((mixed >> ((i % 8) * 8)) ^ (i / 8) ^ 0x5a);
}

/* The offsets a pattern covers: every byte of a block up to 16 KiB; of a
 * larger one its first and last 4 KiB and one byte in 64 between (whole
 * pages lost or mixed up still show, and big blocks stay cheap to check).
 */
size_t NextPatternOffset(size_t i, size_t bytes)
{
	if (bytes <= 16384 || i < 4096 || i + 4096 >= bytes) {
		return i + 1;
	}
	return std::min(i + 64, bytes - 4096);
}

void FillPattern(void *mem, size_t bytes, uint64_t tag)
{
	uint8_t *p = static_cast<uint8_t *>(mem);
	for (size_t i = 0; i < bytes; i = NextPatternOffset(i, bytes)) {
		p[i] = PatternByte(tag, i);
	}
}

/* Where the first `bytes` of a block filled for `filled` bytes differ from
 * the pattern, or `bytes` if they do not.
 */
size_t PatternMismatch(const void *mem, size_t bytes, uint64_t tag, size_t filled)
{
	const uint8_t *p = static_cast<const uint8_t *>(mem);
	for (size_t i = 0; i < bytes; i = NextPatternOffset(i, filled)) {
		if (p[i] != PatternByte(tag, i)) {
			return i;
		}
	}
	return bytes;
}

size_t PatternMismatch(const void *mem, size_t bytes, uint64_t tag)
{
	return PatternMismatch(mem, bytes, tag, bytes);
}

bool InRegion(const void *p)
{
	struct k_heap *heap = kheap_malloc_heap();
	if (heap == nullptr) {
		return false;
	}
	uintptr_t start = reinterpret_cast<uintptr_t>(heap->heap.init_mem);
	return reinterpret_cast<uintptr_t>(p) - start < heap->heap.init_bytes;
}

bool Aligned(const void *p, size_t align)
{
	return (reinterpret_cast<uintptr_t>(p) & (align - 1)) == 0;
}

struct kheap_malloc_stats Stats()
{
	struct kheap_malloc_stats stats;
	EXPECT_EQ(kheap_malloc_stats_get(&stats), 0);
	return stats;
}

/* Installs a recording fault handler for its lifetime. */
class FaultCatcher
{
      public:
	FaultCatcher()
	{
		count_ = 0;
		previous_ = kheap_set_fault_handler(Record);
	}
	~FaultCatcher()
	{
		kheap_set_fault_handler(previous_);
	}
	int count() const
	{
		return count_.load();
	}
	enum kheap_fault last() const
	{
		return static_cast<enum kheap_fault>(last_.load());
	}
	const void *pointer() const
	{
		return pointer_.load();
	}
	/* The last fault, for failure messages. */
	std::string last_report() const
	{
		std::lock_guard<std::mutex> guard(report_lock_);
		return report_;
	}

      private:
	static void Record(enum kheap_fault fault, const void *, const void *ptr,
			   const char *detail)
	{
		last_ = fault;
		pointer_ = ptr;
		count_++;
		std::lock_guard<std::mutex> guard(report_lock_);
		char pointer[32];
		snprintf(pointer, sizeof(pointer), "%p", ptr);
		report_ = std::string(kheap_fault_name(fault)) + " at " + pointer + ": " + detail;
	}
	static std::mutex report_lock_;
	static std::string report_;
	static std::atomic<int> count_;
	static std::atomic<int> last_;
	static std::atomic<const void *> pointer_;
	kheap_fault_handler_t previous_;
};

std::atomic<int> FaultCatcher::count_;
std::atomic<int> FaultCatcher::last_;
std::atomic<const void *> FaultCatcher::pointer_;
std::mutex FaultCatcher::report_lock_;
std::string FaultCatcher::report_;

TEST(Malloc, ReturnsAlignedUsableHeapBlocks)
{
	std::vector<std::pair<void *, size_t>> blocks;
	for (size_t bytes = 0; bytes < 4096; bytes += bytes < 64 ? 1 : 37) {
		void *p = malloc(bytes);
		ASSERT_NE(p, nullptr) << bytes;
		EXPECT_TRUE(Aligned(p, kAlign)) << p << " for " << bytes;
		EXPECT_TRUE(InRegion(p)) << bytes;
		size_t usable = malloc_usable_size(p);
		EXPECT_GE(usable, bytes);
		FillPattern(p, usable, blocks.size());
		blocks.emplace_back(p, usable);
	}
	for (size_t i = 0; i < blocks.size(); i++) {
		EXPECT_EQ(PatternMismatch(blocks[i].first, blocks[i].second, i), blocks[i].second);
		free(blocks[i].first);
	}
	EXPECT_TRUE(sys_heap_validate(&kheap_malloc_heap()->heap));
}

TEST(Malloc, ZeroBytesGivesDistinctFreeablePointers)
{
	std::vector<void *> blocks;
	for (int i = 0; i < 100; i++) {
		void *p = malloc(Opaque(0));
		ASSERT_NE(p, nullptr);
		EXPECT_TRUE(Aligned(p, kAlign));
		blocks.push_back(p);
	}
	std::vector<void *> sorted = blocks;
	std::sort(sorted.begin(), sorted.end());
	EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end());
	for (void *p : blocks) {
		free(p);
	}
}

TEST(Malloc, ImpossibleSizesFailWithEnomem)
{
	const size_t sizes[] = {SIZE_MAX,
				SIZE_MAX - 7,
				SIZE_MAX - kAlign,
				static_cast<size_t>(PTRDIFF_MAX) + 1,
				static_cast<size_t>(PTRDIFF_MAX),
				kUnmappable};
	for (size_t bytes : sizes) {
		errno = 0;
		EXPECT_EQ(malloc(Opaque(bytes)), nullptr) << bytes;
		EXPECT_EQ(errno, ENOMEM) << bytes;
	}
}

TEST(Malloc, FreeOfNullIsANoOpAndFreeKeepsErrno)
{
	errno = EDOM;
	free(nullptr);
	EXPECT_EQ(errno, EDOM);
	for (size_t bytes :
	     {size_t{16}, size_t{5000}, size_t{KHEAP_MALLOC_RELEASE_BYTES}, kMmapThreshold + 1}) {
		void *p = malloc(bytes);
		ASSERT_NE(p, nullptr);
		memset(p, 1, bytes);
		errno = EDOM;
		free(p);
		EXPECT_EQ(errno, EDOM) << bytes;
	}
}

TEST(Calloc, ZeroesReusedMemoryAndRefusesOverflow)
{
	for (size_t bytes : {size_t{24}, size_t{1000}, size_t{100000}, kMmapThreshold * 2}) {
		void *dirty = malloc(bytes);
		ASSERT_NE(dirty, nullptr);
		memset(dirty, 0xff, bytes);
		free(dirty);
		unsigned char *p = static_cast<unsigned char *>(calloc(bytes / 8, 8));
		ASSERT_NE(p, nullptr);
		EXPECT_EQ(std::count(p, p + bytes, 0), static_cast<long>(bytes)) << bytes;
		free(p);
	}
	const std::pair<size_t, size_t> overflowing[] = {{SIZE_MAX / 2 + 1, 2},
							 {SIZE_MAX, SIZE_MAX},
							 {2, SIZE_MAX / 2 + 1},
							 {65536, SIZE_MAX / 65536 + 1}};
	for (auto [count, size] : overflowing) {
		errno = 0;
		EXPECT_EQ(calloc(Opaque(count), Opaque(size)), nullptr) << count << " x " << size;
		EXPECT_EQ(errno, ENOMEM);
	}
	void *empty = calloc(Opaque(0), 16);
	EXPECT_NE(empty, nullptr);
	free(empty);
}

TEST(Realloc, KeepsContentsAcrossEverySizeChange)
{
	uint64_t seed = TestSeed();
	SCOPED_TRACE(SeedTrace(seed));
	std::mt19937_64 random(seed);
	std::uniform_int_distribution<int> kind(0, 9);

	size_t bytes = 1;
	uint8_t *p = static_cast<uint8_t *>(malloc(bytes));
	ASSERT_NE(p, nullptr);
	FillPattern(p, bytes, 0);
	for (uint64_t step = 1; step <= 400; step++) {
		size_t next;
		switch (kind(random)) {
		case 0:
			next = kMmapThreshold + random() % (2 * kMmapThreshold);
			break;
		case 1:
			next = KHEAP_MALLOC_RELEASE_BYTES + random() % kMmapThreshold;
			break;
		case 2:
		case 3:
			next = 1 + random() % 64;
			break;
		default:
			next = 1 + random() % 8192;
			break;
		}
		uint8_t *q = static_cast<uint8_t *>(realloc(p, next));
		ASSERT_NE(q, nullptr) << bytes << " -> " << next;
		ASSERT_TRUE(Aligned(q, kAlign));
		ASSERT_EQ(InRegion(q), next < kMmapThreshold) << next;
		size_t kept = std::min(bytes, next);
		ASSERT_EQ(PatternMismatch(q, kept, step - 1, bytes), kept)
		    << "step " << step << ": " << bytes << " -> " << next;
		ASSERT_GE(malloc_usable_size(q), next);
		FillPattern(q, next, step);
		p = q;
		bytes = next;
	}
	free(p);
	EXPECT_TRUE(sys_heap_validate(&kheap_malloc_heap()->heap));
}

TEST(Realloc, NullAllocatesAndZeroFreesWithoutTouchingErrno)
{
	void *p = realloc(nullptr, 100);
	ASSERT_NE(p, nullptr);
	EXPECT_GE(malloc_usable_size(p), 100u);
	k_heap_drain_caches(kheap_malloc_heap());
	size_t held = Stats().heap_allocated_bytes;
	errno = EDOM;
	EXPECT_EQ(realloc(p, Opaque(0)), nullptr);
	EXPECT_EQ(errno, EDOM);
	EXPECT_LT(Stats().heap_allocated_bytes, held);

	void *mapped = malloc(kMmapThreshold);
	ASSERT_NE(mapped, nullptr);
	size_t live = Stats().mapped_blocks;
	EXPECT_EQ(realloc(mapped, Opaque(0)), nullptr);
	EXPECT_EQ(Stats().mapped_blocks, live - 1);

	void *fresh = realloc(nullptr, Opaque(0));
	EXPECT_NE(fresh, nullptr);
	free(fresh);
}

TEST(Realloc, FailureLeavesTheBlockIntact)
{
	for (size_t bytes : {size_t{100}, size_t{20000}, kMmapThreshold + 5}) {
		void *p = malloc(bytes);
		ASSERT_NE(p, nullptr);
		FillPattern(p, bytes, bytes);
		for (size_t huge : {SIZE_MAX, SIZE_MAX / 2, kUnmappable}) {
			errno = 0;
			EXPECT_EQ(realloc(p, Opaque(huge)), nullptr) << bytes << " -> " << huge;
			EXPECT_EQ(errno, ENOMEM);
			EXPECT_EQ(PatternMismatch(p, bytes, bytes), bytes);
		}
		free(p);
	}
}

TEST(Reallocarray, RefusesOverflowAndOtherwiseActsAsRealloc)
{
	int *p = static_cast<int *>(reallocarray(nullptr, 10, sizeof(int)));
	ASSERT_NE(p, nullptr);
	for (int i = 0; i < 10; i++) {
		p[i] = i;
	}
	errno = 0;
	EXPECT_EQ(reallocarray(p, Opaque(SIZE_MAX / 2), sizeof(int)), nullptr);
	EXPECT_EQ(errno, ENOMEM);
	int *q = static_cast<int *>(reallocarray(p, 1000, sizeof(int)));
	ASSERT_NE(q, nullptr);
	for (int i = 0; i < 10; i++) {
		EXPECT_EQ(q[i], i);
	}
	errno = EDOM;
	EXPECT_EQ(reallocarray(q, Opaque(0), sizeof(int)), nullptr);
	EXPECT_EQ(errno, EDOM);
}

TEST(Memalign, AlignsAndRoundsAlignmentUpToAPowerOfTwo)
{
	for (size_t align = 1; align <= (size_t{4} << 20); align *= 2) {
		for (size_t bytes : {size_t{0}, size_t{1}, size_t{100}, size_t{70000}}) {
			void *p = memalign(align, bytes);
			ASSERT_NE(p, nullptr) << align << " " << bytes;
			EXPECT_TRUE(Aligned(p, std::max(align, kAlign))) << align;
			EXPECT_GE(malloc_usable_size(p), bytes);
			memset(p, 0xab, bytes);
			free(p);
		}
	}
	const std::pair<size_t, size_t> rounded[] = {{24, 32}, {48, 64}, {100, 128}, {5000, 8192}};
	for (auto [asked, expected] : rounded) {
		void *p = memalign(Opaque(asked), 10);
		ASSERT_NE(p, nullptr) << asked;
		EXPECT_TRUE(Aligned(p, expected)) << asked;
		free(p);
	}
	for (size_t align : {size_t{64}, size_t{4096}}) {
		void *p = memalign(align, 100);
		ASSERT_NE(p, nullptr);
		FillPattern(p, 100, align);
		void *q = realloc(p, 50000);
		ASSERT_NE(q, nullptr);
		EXPECT_EQ(PatternMismatch(q, 100, align), 100u);
		EXPECT_TRUE(Aligned(q, kAlign));
		free(q);
	}
	errno = 0;
	EXPECT_EQ(memalign(Opaque(SIZE_MAX / 2 + 2), 10), nullptr);
	EXPECT_EQ(errno, EINVAL);
	errno = 0;
	EXPECT_EQ(memalign(64, Opaque(SIZE_MAX - 100)), nullptr);
	EXPECT_EQ(errno, ENOMEM);
}

TEST(PosixMemalign, ReturnsErrorsWithoutTouchingErrnoOrThePointer)
{
	void *const untouched = reinterpret_cast<void *>(0x1234);
	for (size_t align : {size_t{0}, size_t{1}, size_t{2}, sizeof(void *) / 2, size_t{12},
			     size_t{24}, size_t{48}, SIZE_MAX}) {
		void *p = untouched;
		errno = EDOM;
		EXPECT_EQ(posix_memalign(&p, Opaque(align), 16), EINVAL) << align;
		EXPECT_EQ(p, untouched);
		EXPECT_EQ(errno, EDOM);
	}
	void *p = untouched;
	errno = EDOM;
	EXPECT_EQ(posix_memalign(&p, 64, Opaque(SIZE_MAX / 2)), ENOMEM);
	EXPECT_EQ(p, untouched);
	EXPECT_EQ(errno, EDOM);

	for (size_t align = sizeof(void *); align <= (size_t{2} << 20); align *= 4) {
		for (size_t bytes : {size_t{0}, size_t{3}, size_t{4096}, kMmapThreshold}) {
			void *q = nullptr;
			ASSERT_EQ(posix_memalign(&q, align, bytes), 0) << align << " " << bytes;
			ASSERT_NE(q, nullptr);
			EXPECT_TRUE(Aligned(q, align));
			EXPECT_GE(malloc_usable_size(q), bytes);
			memset(q, 0x3c, bytes);
			free(q);
		}
	}
}

TEST(AlignedAlloc, RefusesAlignmentsThatAreNotPowersOfTwo)
{
	for (size_t align : {size_t{0}, size_t{3}, size_t{24}, size_t{1000}}) {
		errno = 0;
		EXPECT_EQ(aligned_alloc(Opaque(align), 64), nullptr) << align;
		EXPECT_EQ(errno, EINVAL);
	}
	for (size_t align : {size_t{1}, size_t{2}, size_t{64}, size_t{4096}, size_t{1} << 20}) {
		void *p = aligned_alloc(align, 100);
		ASSERT_NE(p, nullptr) << align;
		EXPECT_TRUE(Aligned(p, std::max(align, kAlign)));
		free(p);
	}
	errno = 0;
	EXPECT_EQ(aligned_alloc(64, Opaque(SIZE_MAX - 63)), nullptr);
	EXPECT_EQ(errno, ENOMEM);
}

TEST(Valloc, VallocAndPvallocArePageAlignedAndPvallocRoundsUp)
{
	size_t page = PageBytes();
	for (size_t bytes : {size_t{1}, page - 1, page + 1, 3 * page}) {
		void *v = valloc(bytes);
		ASSERT_NE(v, nullptr);
		EXPECT_TRUE(Aligned(v, page));
		EXPECT_GE(malloc_usable_size(v), bytes);
		free(v);
		void *pv = pvalloc(bytes);
		ASSERT_NE(pv, nullptr);
		EXPECT_TRUE(Aligned(pv, page));
		EXPECT_GE(malloc_usable_size(pv), (bytes + page - 1) / page * page);
		memset(pv, 7, (bytes + page - 1) / page * page);
		free(pv);
	}
	errno = 0;
	EXPECT_EQ(pvalloc(Opaque(SIZE_MAX - 1)), nullptr);
	EXPECT_EQ(errno, ENOMEM);
}

TEST(MallocUsableSize, NullIsZeroAndEveryUsableByteIsWritable)
{
	EXPECT_EQ(malloc_usable_size(nullptr), 0u);
	std::vector<void *> blocks;
	for (size_t bytes = 1; bytes < 3 * kMmapThreshold; bytes = bytes * 3 + 1) {
		void *p = malloc(bytes);
		ASSERT_NE(p, nullptr);
		size_t usable = malloc_usable_size(p);
		EXPECT_GE(usable, bytes);
		EXPECT_LT(usable, bytes + std::max<size_t>(64, PageBytes()));
		memset(p, 0xee, usable);
		blocks.push_back(p);
	}
	for (void *p : blocks) {
		free(p);
	}
	EXPECT_TRUE(sys_heap_validate(&kheap_malloc_heap()->heap));
}

TEST(Mapped, LargeRequestsGetTheirOwnMappingAndGiveItBack)
{
	struct kheap_malloc_stats before = Stats();
	void *p = malloc(kMmapThreshold);
	ASSERT_NE(p, nullptr);
	EXPECT_FALSE(InRegion(p));
	EXPECT_TRUE(Aligned(p, PageBytes()));
	EXPECT_EQ(malloc_usable_size(p), kMmapThreshold);
	struct kheap_malloc_stats during = Stats();
	EXPECT_EQ(during.mapped_blocks, before.mapped_blocks + 1);
	EXPECT_EQ(during.mapped_total, before.mapped_total + 1);

	void *aligned = memalign(size_t{8} << 20, 3 * kMmapThreshold);
	ASSERT_NE(aligned, nullptr);
	EXPECT_TRUE(Aligned(aligned, size_t{8} << 20));
	memset(aligned, 1, 3 * kMmapThreshold);

	unsigned char *zeroed = static_cast<unsigned char *>(calloc(1, 5 * kMmapThreshold));
	ASSERT_NE(zeroed, nullptr);
	EXPECT_EQ(std::count(zeroed, zeroed + 5 * kMmapThreshold, 0),
		  static_cast<long>(5 * kMmapThreshold));

	free(p);
	free(aligned);
	free(zeroed);
	struct kheap_malloc_stats after = Stats();
	EXPECT_EQ(after.mapped_blocks, before.mapped_blocks);
	EXPECT_EQ(after.mapped_bytes, before.mapped_bytes);
	/* The mapping is gone: mincore on it fails with ENOMEM. */
	unsigned char resident;
	EXPECT_EQ(mincore(p, PageBytes(), &resident), -1);
	EXPECT_EQ(errno, ENOMEM);
}

TEST(Mapped, ManyLiveMappedBlocksStayFindable)
{
	std::vector<void *> blocks;
	for (int i = 0; i < 300; i++) {
		void *p = malloc(kMmapThreshold + static_cast<size_t>(i) * 4096);
		ASSERT_NE(p, nullptr);
		*static_cast<int *>(p) = i;
		blocks.push_back(p);
	}
	for (size_t i = 0; i < blocks.size(); i += 2) {
		free(blocks[i]);
	}
	for (size_t i = 1; i < blocks.size(); i += 2) {
		EXPECT_EQ(malloc_usable_size(blocks[i]),
			  (kMmapThreshold + i * 4096 + PageBytes() - 1) / PageBytes() *
			      PageBytes());
		EXPECT_EQ(*static_cast<int *>(blocks[i]), static_cast<int>(i));
		free(blocks[i]);
	}
}

TEST(Release, FreeingALargeHeapBlockGivesItsPagesBack)
{
	size_t page = PageBytes();
	size_t bytes = std::min<size_t>(4 * KHEAP_MALLOC_RELEASE_BYTES, kMmapThreshold - 1);
	ASSERT_GE(bytes, KHEAP_MALLOC_RELEASE_BYTES);
	unsigned char *p = static_cast<unsigned char *>(malloc(bytes));
	ASSERT_NE(p, nullptr);
	ASSERT_TRUE(InRegion(p));
	memset(p, 0x77, bytes);
	unsigned char *first = reinterpret_cast<unsigned char *>(
	    (reinterpret_cast<uintptr_t>(p) + page - 1) & ~(page - 1));
	size_t pages = (bytes - page) / page;
	std::vector<unsigned char> resident(pages);
	ASSERT_EQ(mincore(first, pages * page, resident.data()), 0);
	EXPECT_EQ(
	    std::count_if(resident.begin(), resident.end(), [](unsigned char r) { return r & 1; }),
	    static_cast<long>(pages));

	uint64_t released = Stats().released_bytes;
	free(p);
	EXPECT_GE(Stats().released_bytes - released, pages * page);
	ASSERT_EQ(mincore(first, pages * page, resident.data()), 0);
	EXPECT_EQ(
	    std::count_if(resident.begin(), resident.end(), [](unsigned char r) { return r & 1; }),
	    0);
}

TEST(Misuse, ForeignPointersReachTheFaultHandler)
{
	FaultCatcher faults;
	int local = 0;
	static int in_data = 0;
	void *mapped =
	    mmap(nullptr, PageBytes(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(mapped, MAP_FAILED);
	void *const foreign[] = {&local, &in_data, mapped, static_cast<char *>(mapped) + 16};
	int expected = 0;
	for (void *p : foreign) {
		free(p);
		EXPECT_EQ(faults.count(), ++expected);
		EXPECT_EQ(faults.last(), KHEAP_FAULT_FOREIGN_POINTER);
		EXPECT_EQ(faults.pointer(), p);
		errno = 0;
		EXPECT_EQ(realloc(p, 10), nullptr);
		EXPECT_EQ(errno, EINVAL);
		EXPECT_EQ(faults.count(), ++expected);
		EXPECT_EQ(malloc_usable_size(p), 0u);
		EXPECT_EQ(faults.count(), ++expected);
	}
	munmap(mapped, PageBytes());
	EXPECT_EQ(local, 0);
}

TEST(Misuse, DoubleFreesAndInteriorPointersReachTheFaultHandler)
{
	FaultCatcher faults;
	std::vector<void *> keep;
	/* Both halves of the shift: blocks at 16k and at 16k + 8 in the heap. */
	for (int i = 0; i < 16; i++) {
		void *p = malloc(48);
		ASSERT_NE(p, nullptr);
		keep.push_back(malloc(40));
		free(p);
		int before = faults.count();
		free(p);
		EXPECT_EQ(faults.count(), before + 1) << i;
		EXPECT_TRUE(faults.last() == KHEAP_FAULT_DOUBLE_FREE ||
			    faults.last() == KHEAP_FAULT_INTERIOR_POINTER)
		    << kheap_fault_name(faults.last());
	}
	for (void *p : keep) {
		free(p);
	}

	char *block = static_cast<char *>(calloc(1, 512));
	ASSERT_NE(block, nullptr);
	for (size_t offset : {size_t{1}, size_t{8}, size_t{16}, size_t{256}}) {
		int before = faults.count();
		free(block + offset);
		EXPECT_EQ(faults.count(), before + 1) << offset;
		EXPECT_TRUE(faults.last() == KHEAP_FAULT_INTERIOR_POINTER ||
			    faults.last() == KHEAP_FAULT_DOUBLE_FREE)
		    << offset << ": " << kheap_fault_name(faults.last());
	}
	free(block);

	void *mapped = malloc(kMmapThreshold);
	ASSERT_NE(mapped, nullptr);
	free(mapped);
	int before = faults.count();
	free(mapped);
	EXPECT_EQ(faults.count(), before + 1);
	EXPECT_EQ(faults.last(), KHEAP_FAULT_FOREIGN_POINTER);
	EXPECT_TRUE(sys_heap_validate(&kheap_malloc_heap()->heap));
}

TEST(MisuseDeathTest, DefaultHandlerReportsAndAborts)
{
	int local = 0;
	EXPECT_DEATH(free(&local), "kheap: foreign pointer: .*not returned by malloc");
	void *p = malloc(64);
	ASSERT_NE(p, nullptr);
	free(p);
	EXPECT_DEATH(free(static_cast<char *>(p) + 3), "kheap: interior pointer");
}

TEST(Glibc, DlerrorStringsAreAllocatedAndFreedHere)
{
	FaultCatcher faults;
	for (int i = 0; i < 50; i++) {
		void *handle = dlopen("/nonexistent/libkheap-missing.so", RTLD_NOW);
		EXPECT_EQ(handle, nullptr);
		const char *message = dlerror();
		ASSERT_NE(message, nullptr);
		EXPECT_NE(strstr(message, "libkheap-missing"), nullptr);
		EXPECT_EQ(dlsym(RTLD_DEFAULT, "kheap_no_such_symbol_anywhere"), nullptr);
		EXPECT_NE(dlerror(), nullptr);
	}
	EXPECT_EQ(faults.count(), 0);
}

/* Random allocations with a pattern per block, checked before each free. */
struct Block {
	uint8_t *p;
	size_t bytes;
	uint64_t tag;
};

size_t RandomSize(std::mt19937_64 &random)
{
	uint64_t pick = random() % 100;
	if (pick < 70) {
		return random() % 257;
	}
	if (pick < 98) {
		return random() % 65536;
	}
	return KHEAP_MALLOC_RELEASE_BYTES + random() % (2 * kMmapThreshold);
}

bool CheckAndFree(const Block &block)
{
	bool intact = PatternMismatch(block.p, block.bytes, block.tag) == block.bytes;
	free(block.p);
	return intact;
}

TEST(Threads, ThreadsThatExitLoseNothing)
{
	uint64_t seed = TestSeed();
	SCOPED_TRACE(SeedTrace(seed));
	struct k_heap *heap = kheap_malloc_heap();
	struct sys_memory_stats before, after;
	k_heap_drain_caches(heap);
	ASSERT_EQ(k_heap_runtime_stats_get(heap, &before), 0);

	std::mutex handed_lock;
	std::vector<Block> handed;
	std::atomic<int> damaged{0};
	for (int wave = 0; wave < 4; wave++) {
		std::vector<std::thread> threads;
		for (int t = 0; t < 16; t++) {
			threads.emplace_back([&, t, wave] {
				std::mt19937_64 random(seed + static_cast<uint64_t>(wave * 16 + t));
				std::vector<Block> live;
				uint64_t tag = static_cast<uint64_t>(wave * 16 + t) << 32;
				for (int op = 0; op < 4000; op++) {
					if (live.size() < 64 &&
					    (live.empty() || random() % 2 == 0)) {
						size_t bytes = random() % 2048;
						uint8_t *p = static_cast<uint8_t *>(malloc(bytes));
						if (p == nullptr) {
							damaged++;
							continue;
						}
						FillPattern(p, bytes, tag);
						live.push_back({p, bytes, tag++});
					} else {
						size_t i = random() % live.size();
						damaged += CheckAndFree(live[i]) ? 0 : 1;
						live[i] = live.back();
						live.pop_back();
					}
				}
				std::lock_guard<std::mutex> guard(handed_lock);
				handed.insert(handed.end(), live.begin(), live.end());
			});
		}
		for (std::thread &thread : threads) {
			thread.join();
		}
	}
	/* Blocks allocated by threads that are gone are freed by this one. */
	for (const Block &block : handed) {
		damaged += CheckAndFree(block) ? 0 : 1;
	}
	handed.clear();
	handed.shrink_to_fit();
	EXPECT_EQ(damaged.load(), 0);

	/* Whatever the exited threads freed sits in CPU caches, not with them:
	 * one drain returns all of it to the heap.
	 */
	k_heap_drain_caches(heap);
	ASSERT_EQ(k_heap_runtime_stats_get(heap, &after), 0);
	EXPECT_EQ(after.cached_bytes, 0u);
	EXPECT_LT(after.allocated_bytes, before.allocated_bytes + 256 * 1024)
	    << "bytes still held after every thread's blocks were freed";
	EXPECT_TRUE(sys_heap_validate(&heap->heap));
}

TEST(Threads, ManyThreadsMixingSizesAndFreeingEachOthersBlocks)
{
	uint64_t seed = TestSeed();
	SCOPED_TRACE(SeedTrace(seed));
	FaultCatcher faults;
	constexpr int kThreads = 16;
	std::mutex exchange_lock;
	std::vector<Block> exchange;
	std::atomic<int> damaged{0}, failed{0};
	pthread_barrier_t start;
	pthread_barrier_init(&start, nullptr, kThreads);

	std::vector<std::thread> threads;
	for (int t = 0; t < kThreads; t++) {
		threads.emplace_back([&, t] {
			std::mt19937_64 random(seed * 31 + static_cast<uint64_t>(t));
			std::vector<Block> live;
			uint64_t tag = static_cast<uint64_t>(t) << 40;
			pthread_barrier_wait(&start);
			for (int op = 0; op < 6000; op++) {
				uint64_t pick = random() % 10;
				if (live.empty() || pick < 4) {
					size_t bytes = RandomSize(random);
					uint8_t *p = static_cast<uint8_t *>(
					    random() % 8 == 0 ? calloc(1, bytes) : malloc(bytes));
					if (p == nullptr) {
						failed++;
						continue;
					}
					FillPattern(p, bytes, tag);
					live.push_back({p, bytes, tag++});
				} else if (pick < 6) {
					Block &block = live[random() % live.size()];
					size_t bytes = RandomSize(random) + 1;
					size_t kept = std::min(block.bytes, bytes);
					uint8_t *p =
					    static_cast<uint8_t *>(realloc(block.p, bytes));
					if (p == nullptr) {
						failed++;
						continue;
					}
					damaged +=
					    PatternMismatch(p, kept, block.tag, block.bytes) == kept
						? 0
						: 1;
					FillPattern(p, bytes, tag);
					block = {p, bytes, tag++};
				} else if (pick < 8) {
					size_t i = random() % live.size();
					std::lock_guard<std::mutex> guard(exchange_lock);
					exchange.push_back(live[i]);
					live[i] = live.back();
					live.pop_back();
				} else {
					Block block{};
					{
						std::lock_guard<std::mutex> guard(exchange_lock);
						if (!exchange.empty()) {
							block = exchange.back();
							exchange.pop_back();
						}
					}
					if (block.p == nullptr) {
						size_t i = random() % live.size();
						block = live[i];
						live[i] = live.back();
						live.pop_back();
					}
					damaged += CheckAndFree(block) ? 0 : 1;
				}
			}
			for (const Block &block : live) {
				damaged += CheckAndFree(block) ? 0 : 1;
			}
		});
	}
	for (std::thread &thread : threads) {
		thread.join();
	}
	pthread_barrier_destroy(&start);
	for (const Block &block : exchange) {
		damaged += CheckAndFree(block) ? 0 : 1;
	}
	EXPECT_EQ(damaged.load(), 0);
	EXPECT_EQ(failed.load(), 0);
	EXPECT_EQ(faults.count(), 0) << faults.last_report();
	EXPECT_TRUE(sys_heap_validate(&kheap_malloc_heap()->heap));
}

/* In a forked child: allocate across every path, validate, report by status. */
int ChildAllocates(uint64_t seed)
{
	alarm(30);
	std::mt19937_64 random(seed);
	std::vector<Block> live;
	for (int op = 0; op < 1500; op++) {
		if (live.size() < 100 && random() % 3 != 0) {
			size_t bytes = RandomSize(random);
			uint8_t *p = static_cast<uint8_t *>(malloc(bytes));
			if (p == nullptr) {
				return 2;
			}
			FillPattern(p, bytes, static_cast<uint64_t>(op));
			live.push_back({p, bytes, static_cast<uint64_t>(op)});
		} else if (!live.empty()) {
			size_t i = random() % live.size();
			if (!CheckAndFree(live[i])) {
				return 3;
			}
			live[i] = live.back();
			live.pop_back();
		}
	}
	for (const Block &block : live) {
		if (!CheckAndFree(block)) {
			return 3;
		}
	}
	return sys_heap_validate(&kheap_malloc_heap()->heap) ? 0 : 4;
}

TEST(Fork, ChildAllocatesWhileParentThreadsKeepAllocating)
{
	uint64_t seed = TestSeed();
	SCOPED_TRACE(SeedTrace(seed));
	std::atomic<bool> stop{false};
	std::atomic<uint64_t> churned{0};
	std::vector<std::thread> threads;
	for (int t = 0; t < 4; t++) {
		threads.emplace_back([&, t] {
			std::mt19937_64 random(seed + 100 + static_cast<uint64_t>(t));
			std::vector<void *> live;
			while (!stop.load(std::memory_order_relaxed)) {
				if (live.size() < 32) {
					void *p = malloc(RandomSize(random));
					if (p != nullptr) {
						live.push_back(p);
					}
				} else {
					size_t i = random() % live.size();
					free(live[i]);
					live[i] = live.back();
					live.pop_back();
				}
				churned.fetch_add(1, std::memory_order_relaxed);
			}
			for (void *p : live) {
				free(p);
			}
		});
	}
	for (int round = 0; round < 16; round++) {
		uint64_t seen = churned.load();
		while (churned.load() < seen + 200) {
			std::this_thread::yield();
		}
		pid_t child = fork();
		ASSERT_GE(child, 0);
		if (child == 0) {
			_exit(ChildAllocates(seed + static_cast<uint64_t>(round)));
		}
		int status = 0;
		ASSERT_EQ(waitpid(child, &status, 0), child);
		ASSERT_TRUE(WIFEXITED(status)) << "round " << round << ": child died of signal "
					       << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
		EXPECT_EQ(WEXITSTATUS(status), 0) << "round " << round;
	}
	stop = true;
	for (std::thread &thread : threads) {
		thread.join();
	}
	EXPECT_TRUE(sys_heap_validate(&kheap_malloc_heap()->heap));
}

std::atomic<unsigned long> g_signals_handled;

void CountSignal(int)
{
	g_signals_handled.fetch_add(1, std::memory_order_relaxed);
}

TEST(Signals, SignalsArrivingDuringAllocationCorruptNothing)
{
	uint64_t seed = TestSeed();
	SCOPED_TRACE(SeedTrace(seed));
	struct sigaction action = {}, previous = {};
	action.sa_handler = CountSignal;
	sigemptyset(&action.sa_mask);
	ASSERT_EQ(sigaction(SIGUSR1, &action, &previous), 0);
	g_signals_handled = 0;

	constexpr int kWorkers = 6;
	std::atomic<bool> stop{false};
	std::atomic<int> damaged{0}, failed{0}, ready{0};
	std::vector<pthread_t> ids(kWorkers);
	std::vector<std::thread> workers;
	for (int t = 0; t < kWorkers; t++) {
		workers.emplace_back([&, t] {
			ids[static_cast<size_t>(t)] = pthread_self();
			ready++;
			std::mt19937_64 random(seed + 500 + static_cast<uint64_t>(t));
			std::vector<Block> live;
			uint64_t tag = static_cast<uint64_t>(t) << 40;
			while (!stop.load(std::memory_order_relaxed)) {
				if (live.size() < 48 && random() % 2 == 0) {
					size_t bytes = RandomSize(random);
					uint8_t *p = static_cast<uint8_t *>(malloc(bytes));
					if (p == nullptr) {
						failed++;
						continue;
					}
					FillPattern(p, bytes, tag);
					live.push_back({p, bytes, tag++});
				} else if (!live.empty()) {
					size_t i = random() % live.size();
					damaged += CheckAndFree(live[i]) ? 0 : 1;
					live[i] = live.back();
					live.pop_back();
				}
			}
			for (const Block &block : live) {
				damaged += CheckAndFree(block) ? 0 : 1;
			}
		});
	}
	while (ready.load() < kWorkers) {
		std::this_thread::yield();
	}
	for (int i = 0; i < 20000; i++) {
		ASSERT_EQ(pthread_kill(ids[static_cast<size_t>(i % kWorkers)], SIGUSR1), 0);
		if (i % 64 == 0) {
			std::this_thread::yield();
		}
	}
	stop = true;
	for (std::thread &worker : workers) {
		worker.join();
	}
	ASSERT_EQ(sigaction(SIGUSR1, &previous, nullptr), 0);
	EXPECT_GT(g_signals_handled.load(), 0u);
	EXPECT_EQ(damaged.load(), 0);
	EXPECT_EQ(failed.load(), 0);
	EXPECT_TRUE(sys_heap_validate(&kheap_malloc_heap()->heap));
}

std::string ProbePath()
{
	const char *srcdir = getenv("TEST_SRCDIR");
	const char *workspace = getenv("TEST_WORKSPACE");
	return std::string(srcdir == nullptr ? "." : srcdir) + "/" +
	       (workspace == nullptr ? "kheap" : workspace) + "/tests/malloc/malloc_env_probe";
}

/*
 * Runs the environment probe with one extra variable (none if empty) and
 * returns its output. *ran is false if the probe could not be executed at
 * all (exit status 127: under user-mode emulation without binfmt_misc a
 * child of another architecture cannot start).
 */
std::string RunProbe(const std::string &assignment, bool *ran)
{
	std::string probe = ProbePath();
	std::vector<std::string> env_strings;
	for (char **e = environ; *e != nullptr; e++) {
		if (strncmp(*e, "KHEAP_MALLOC_", 13) != 0) {
			env_strings.emplace_back(*e);
		}
	}
	if (!assignment.empty()) {
		env_strings.push_back(assignment);
	}
	std::vector<char *> envp;
	for (std::string &s : env_strings) {
		envp.push_back(s.data());
	}
	envp.push_back(nullptr);
	int out[2];
	*ran = false;
	if (pipe(out) != 0) {
		return "pipe failed";
	}
	posix_spawn_file_actions_t actions;
	posix_spawn_file_actions_init(&actions);
	posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
	posix_spawn_file_actions_addclose(&actions, out[0]);
	char *argv[] = {probe.data(), nullptr};
	pid_t pid;
	int rc = posix_spawn(&pid, probe.c_str(), &actions, nullptr, argv, envp.data());
	posix_spawn_file_actions_destroy(&actions);
	close(out[1]);
	std::string output;
	char buffer[256];
	ssize_t got;
	while ((got = read(out[0], buffer, sizeof(buffer))) > 0) {
		output.append(buffer, static_cast<size_t>(got));
	}
	close(out[0]);
	if (rc != 0) {
		return "spawn of " + probe + " failed: " + strerror(rc);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	*ran = !(WIFEXITED(status) && WEXITSTATUS(status) == 127);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		output += " (probe failed)";
	}
	return output;
}

std::string ProbeLine(size_t heap_bytes)
{
	return "heap_bytes=" + std::to_string(heap_bytes) + " early_in_heap=1\n";
}

TEST(Environment, HeapSizeIsReadBeforeConstructorsRun)
{
	bool ran = false;
	std::string plain = RunProbe("", &ran);
	if (!ran && access(ProbePath().c_str(), X_OK) == 0) {
		GTEST_SKIP() << ProbePath() << " exists but cannot be executed here";
	}
	EXPECT_EQ(plain, ProbeLine(KHEAP_MALLOC_DEFAULT_HEAP_BYTES));
	const std::pair<const char *, size_t> settings[] = {
	    {"KHEAP_MALLOC_HEAP_SIZE=64M", size_t{64} << 20},
	    {"KHEAP_MALLOC_HEAP_SIZE=1g", size_t{1} << 30},
	    {"KHEAP_MALLOC_HEAP_SIZE=20000k", size_t{20000} << 10},
	    {"KHEAP_MALLOC_HEAP_SIZE=33554433", size_t{32} << 20},
	    {"KHEAP_MALLOC_HEAP_SIZE=1", KHEAP_MALLOC_MIN_HEAP_BYTES},
	    {"KHEAP_MALLOC_HEAP_SIZE=900G", KHEAP_MALLOC_MAX_HEAP_BYTES},
	    {"KHEAP_MALLOC_HEAP_SIZE=99999999999999999999999", KHEAP_MALLOC_MAX_HEAP_BYTES},
	    {"KHEAP_MALLOC_HEAP_SIZE=", KHEAP_MALLOC_DEFAULT_HEAP_BYTES},
	    {"KHEAP_MALLOC_HEAP_SIZE=big", KHEAP_MALLOC_DEFAULT_HEAP_BYTES},
	    {"KHEAP_MALLOC_HEAP_SIZE=12Q", KHEAP_MALLOC_DEFAULT_HEAP_BYTES},
	    {"KHEAP_MALLOC_HEAP_SIZE=64MB", KHEAP_MALLOC_DEFAULT_HEAP_BYTES},
	    {"KHEAP_MALLOC_HEAP_SIZEX=64M", KHEAP_MALLOC_DEFAULT_HEAP_BYTES},
	};
	for (auto [assignment, expected] : settings) {
		EXPECT_EQ(RunProbe(assignment, &ran), ProbeLine(expected)) << assignment;
	}
}

} // namespace
