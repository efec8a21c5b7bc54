// Compares the ways of finding the current CPU that arch/ can use: the rseq
// area glibc registers (one TLS load) and sched_getcpu() (a vDSO call). The
// cache fast path pays this on every allocation and free.
#include <benchmark/benchmark.h>

extern "C" {
#include "arch/arch.h"
}

namespace
{

void BM_CurrentCpuRseq(benchmark::State &state)
{
	(void)kheap_current_cpu();
	if (kheap_cpu_lookup_method() != KHEAP_CPU_LOOKUP_RSEQ) {
		state.SkipWithError("rseq is not registered on this machine");
		return;
	}
	for (auto _ : state)
		benchmark::DoNotOptimize(kheap_current_cpu());
}
BENCHMARK(BM_CurrentCpuRseq);

void BM_CurrentCpuSchedGetcpu(benchmark::State &state)
{
	for (auto _ : state)
		benchmark::DoNotOptimize(kheap_current_cpu_getcpu());
}
BENCHMARK(BM_CurrentCpuSchedGetcpu);

void BM_CycleCounter(benchmark::State &state)
{
	for (auto _ : state)
		benchmark::DoNotOptimize(kheap_cycles());
}
BENCHMARK(BM_CycleCounter);

} // namespace

BENCHMARK_MAIN();
