/*
 * The allocators under comparison, behind one calling convention.
 *
 * Every allocator is reached through the same two indirect calls
 * (alloc(ctx, n), free(ctx, p)), so no contender gets a cheaper call path than
 * another. kheap rows are k_heaps over a private mmap region; the others are
 * shared libraries loaded with dlopen(RTLD_LOCAL), so the benchmark's own
 * malloc stays glibc's and each contender only sees calls made on purpose.
 *
 * Invariants: an Allocator's functions were proven (by dladdr) to live in the
 * library it is named after; an allocator that cannot be loaded or proven is
 * skipped with a message, never replaced by another one.
 */
#ifndef KHEAP_TOOLS_BENCH_ALLOCATORS_H
#define KHEAP_TOOLS_BENCH_ALLOCATORS_H

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

struct k_heap;

struct Allocator {
	std::string name;
	/* Where the code comes from: a library path or the kheap settings. */
	std::string origin;
	void *(*alloc)(void *ctx, size_t bytes);
	void (*free)(void *ctx, void *ptr);
	size_t (*usable_size)(void *ctx, void *ptr);
	/* Whether `ptr` came from this allocator; null when it cannot tell. */
	bool (*owns)(void *ctx, const void *ptr);
	void *ctx;
	/* Set for kheap rows, so the harness can read stats and validate. */
	struct k_heap *kheap;
};

/* A k_heap over its own anonymous mapping; unmapped on destruction. */
class KheapInstance
{
      public:
	/* Returns nullptr (and fills *error) when mmap or init fails. */
	static std::unique_ptr<KheapInstance> create(size_t bytes, unsigned cache_percent,
						     std::string *error);
	~KheapInstance();
	KheapInstance(const KheapInstance &) = delete;
	KheapInstance &operator=(const KheapInstance &) = delete;

	struct k_heap *heap() const
	{
		return heap_.get();
	}
	void *region() const
	{
		return region_;
	}
	size_t bytes() const
	{
		return bytes_;
	}
	/* This heap behind the common calling convention, named `name`. */
	Allocator as_allocator(const std::string &name) const;
	/* Runs k_heap_deinit; false when the heap still holds user blocks. */
	bool release();

      private:
	KheapInstance() = default;
	std::unique_ptr<struct k_heap> heap_;
	void *region_ = nullptr;
	size_t bytes_ = 0;
	unsigned cache_percent_ = 0;
	bool initialised_ = false;
};

/* Whether `name` is one of the allocators load_allocators knows. */
bool is_allocator_name(const std::string &name);

/* What the user asked to compare; empty means every allocator. */
struct AllocatorChoice {
	std::vector<std::string> names;
	bool wants(const std::string &name) const;
};

/*
 * Builds the contenders in a fixed order: kheap, kheap-nocache, glibc,
 * jemalloc, tcmalloc, mimalloc. Kheap instances are kept alive in *kheaps.
 * Each skipped allocator adds one line to *skipped saying why.
 */
std::vector<Allocator> load_allocators(const AllocatorChoice &choice, size_t kheap_bytes,
				       std::vector<std::unique_ptr<KheapInstance>> *kheaps,
				       std::vector<std::string> *skipped);

/*
 * Proves the loaded allocators are distinct at run time: each hands out a
 * usable block, no two blocks overlap, and every allocator that can tell
 * (kheap by region, mimalloc by asking it) claims its own block and no
 * other. Prints one line per allocator; false, with the reason, on failure.
 */
bool verify_distinct(const std::vector<Allocator> &allocators);

/*
 * jemalloc's library needs more static TLS than glibc keeps for dlopen. This
 * re-executes the program once with the glibc tunable that reserves it.
 * Returns only if no re-execution was needed or it failed.
 */
void ensure_static_tls_for_dlopen(char **argv);

#endif
