// Cost of each hardening level (enum sys_heap_hardening) on a k_heap:
// alloc+free of one block, and a window of live blocks replaced at random.
#include <benchmark/benchmark.h>

#include <kheap/kheap.h>

#include <random>
#include <vector>

namespace
{

constexpr size_t kHeapBytes = 64 << 20;
alignas(64) char g_region[kHeapBytes];

struct k_heap *HeapAt(enum sys_heap_hardening level)
{
	static struct k_heap heap;
	if (k_heap_init(&heap, g_region, kHeapBytes) != 0 ||
	    k_heap_set_hardening(&heap, level) != 0)
		return nullptr;
	return &heap;
}

void BM_AllocFreePair(benchmark::State &state)
{
	auto level = static_cast<enum sys_heap_hardening>(state.range(0));
	struct k_heap *heap = HeapAt(level);
	if (heap == nullptr) {
		state.SkipWithError("heap init failed");
		return;
	}
	size_t bytes = static_cast<size_t>(state.range(1));
	for (auto _ : state) {
		void *p = k_heap_alloc(heap, bytes, K_NO_WAIT);
		benchmark::DoNotOptimize(p);
		k_heap_free(heap, p);
	}
}

void BM_Window(benchmark::State &state)
{
	auto level = static_cast<enum sys_heap_hardening>(state.range(0));
	struct k_heap *heap = HeapAt(level);
	if (heap == nullptr) {
		state.SkipWithError("heap init failed");
		return;
	}
	std::mt19937 rng(7);
	std::vector<void *> window(1000);
	for (auto &p : window)
		p = k_heap_alloc(heap, 16 + rng() % 1009, K_NO_WAIT);
	for (auto _ : state) {
		size_t slot = rng() % window.size();
		k_heap_free(heap, window[slot]);
		window[slot] = k_heap_alloc(heap, 16 + rng() % 1009, K_NO_WAIT);
		benchmark::DoNotOptimize(window[slot]);
	}
	for (void *p : window)
		k_heap_free(heap, p);
}

void Levels(benchmark::internal::Benchmark *b)
{
	for (int level = SYS_HEAP_HARDENING_NONE; level <= SYS_HEAP_HARDENING_EXTREME; level++)
		b->Args({level, 64});
	b->ArgNames({"level", "bytes"});
}

BENCHMARK(BM_AllocFreePair)->Apply(Levels);
BENCHMARK(BM_Window)->Apply(Levels);

} // namespace

BENCHMARK_MAIN();
