/*
 * kheap_bench: kheap's k_heap against glibc malloc, jemalloc, tcmalloc and
 * mimalloc, on the same workloads, in one process, with ratios computed
 * inside the run.
 *
 * Each figure is the median of several repetitions; repetitions are
 * interleaved across allocators (rep 1 of every allocator, then rep 2, ...)
 * after one unrecorded warm-up, so a burst of noise on the shared machine
 * hits every contender alike instead of one row. Every request sequence
 * comes from a fixed seed.
 *
 * Exit status: 0 when every loaded allocator produced sane results (no NULL
 * from an unbounded heap, no corrupted block, finite positive figures, kheap
 * heaps empty and valid afterwards), 1 otherwise, 2 on a usage error.
 */
#include <sched.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <kheap/k_heap.h>

#include "tools/bench/allocators.h"
#include "tools/bench/results.h"
#include "tools/bench/workloads.h"

namespace
{

struct Settings {
	int reps = 5;
	double pair_seconds = 0.04;
	double window_seconds = 0.06;
	double thread_seconds = 0.25;
	double handoff_seconds = 0.25;
	int fill_rounds = 300;
	uint64_t seed = 0x6b68656170ULL;
	std::string mode = "full";
	std::string csv_path;
	std::vector<int> workloads;
	AllocatorChoice allocators;
	std::vector<std::string> report_files;
};

constexpr size_t kBenchHeapBytes = 256u << 20;
constexpr uint32_t kWindowBlocks = 1000;
constexpr size_t kFillHeapBytes = 1u << 20;
/* Flag bounces per core-to-core round-trip probe (a few milliseconds). */
constexpr int kRoundTrips = 20000;
/* Above this share of time waiting for a CPU, a wall-clock figure says more
 * about the machine than about the allocator.
 */
constexpr double kBusyWaitingPercent = 5;

void usage(FILE *out)
{
	std::fprintf(out,
		     "usage: kheap_bench [--quick | --smoke] [--reps=N] [--seed=N] [--csv=FILE]\n"
		     "                   [--workloads=1,2,...] [--allocators=name,...]\n"
		     "       kheap_bench --report FILE...\n"
		     "  --quick       shorter timings, 3 reps (about a quarter of a full run)\n"
		     "  --smoke       every workload once, briefly; exit 0 only if all sane\n"
		     "  --csv=FILE    also write the figures as CSV (for --report)\n"
		     "  --report      print the cell-by-cell median of several CSV runs\n"
		     "  workloads: 1 alloc+free pair, 2 window, 3 threads, 4 producer/consumer,\n"
		     "             5 fill-to-failure (kheap only)\n"
		     "  allocators: kheap kheap-nocache glibc jemalloc tcmalloc mimalloc\n"
		     "  (runs of --allocators / --workloads are for exploring: a figure is only\n"
		     "  comparable with others measured in the same run)\n");
}

std::vector<std::string> split_list(const std::string &text)
{
	std::vector<std::string> items;
	size_t start = 0;

	while (start <= text.size()) {
		size_t comma = text.find(',', start);
		if (comma == std::string::npos) {
			comma = text.size();
		}
		if (comma > start) {
			items.push_back(text.substr(start, comma - start));
		}
		start = comma + 1;
	}
	return items;
}

bool parse_args(int argc, char **argv, Settings *s)
{
	bool reading_reports = false;
	bool reps_given = false;

	for (int i = 1; i < argc; i++) {
		std::string arg = argv[i];
		auto value = [&](const char *prefix) -> const char * {
			size_t n = std::strlen(prefix);
			return arg.compare(0, n, prefix) == 0 ? argv[i] + n : nullptr;
		};
		const char *v;

		if (reading_reports && arg.compare(0, 2, "--") != 0) {
			s->report_files.push_back(arg);
		} else if (arg == "--report") {
			reading_reports = true;
		} else if (arg == "--smoke") {
			s->mode = "smoke";
		} else if (arg == "--quick") {
			s->mode = "quick";
		} else if ((v = value("--reps="))) {
			s->reps = std::atoi(v);
			reps_given = true;
			if (s->reps < 1) {
				return false;
			}
		} else if ((v = value("--seed="))) {
			s->seed = std::strtoull(v, nullptr, 0);
		} else if ((v = value("--csv="))) {
			s->csv_path = v;
		} else if ((v = value("--workloads="))) {
			for (const std::string &w : split_list(v)) {
				int n = std::atoi(w.c_str());
				if (n < 1 || n > 5) {
					return false;
				}
				s->workloads.push_back(n);
			}
		} else if ((v = value("--allocators="))) {
			s->allocators.names = split_list(v);
			for (const std::string &name : s->allocators.names) {
				if (!is_allocator_name(name)) {
					return false;
				}
			}
		} else {
			return false;
		}
	}
	if (reading_reports && s->report_files.empty()) {
		return false;
	}
	if (s->mode == "quick") {
		s->reps = reps_given ? s->reps : 3;
		s->pair_seconds /= 4;
		s->window_seconds /= 4;
		s->thread_seconds /= 4;
		s->handoff_seconds /= 4;
		s->fill_rounds = 100;
	} else if (s->mode == "smoke") {
		s->reps = reps_given ? s->reps : 1;
		s->pair_seconds = 0.002;
		s->window_seconds = 0.003;
		s->thread_seconds = 0.01;
		s->handoff_seconds = 0.01;
		s->fill_rounds = 10;
	}
	return true;
}

bool runs_workload(const Settings &s, int n)
{
	return s.workloads.empty() ||
	       std::find(s.workloads.begin(), s.workloads.end(), n) != s.workloads.end();
}

/* The first two CPUs this process may run on (one twice on a 1-CPU box). */
std::vector<int> pick_cpus()
{
	cpu_set_t set;
	std::vector<int> cpus;

	if (sched_getaffinity(0, sizeof(set), &set) == 0) {
		for (int c = 0; c < CPU_SETSIZE && cpus.size() < 2; c++) {
			if (CPU_ISSET(c, &set)) {
				cpus.push_back(c);
			}
		}
	}
	if (cpus.empty()) {
		cpus.push_back(0);
	}
	if (cpus.size() == 1) {
		std::printf("note: only CPU %d is available; two-thread workloads share it\n",
			    cpus[0]);
		cpus.push_back(cpus[0]);
	}
	return cpus;
}

/*
 * Runs `measure(allocator)` for one warm-up and `reps` recorded rounds,
 * interleaved across allocators; returns each allocator's recorded samples.
 */
template <typename Measure>
auto interleaved_samples(const std::vector<Allocator> &allocators, int reps, Measure measure)
    -> std::vector<std::vector<decltype(measure(allocators[0]))>>
{
	std::vector<std::vector<decltype(measure(allocators[0]))>> samples(allocators.size());

	for (int rep = -1; rep < reps; rep++) {
		for (size_t i = 0; i < allocators.size(); i++) {
			auto sample = measure(allocators[i]);
			if (rep >= 0) {
				samples[i].push_back(sample);
			}
		}
	}
	return samples;
}

/* The median of `field(sample)` over one allocator's samples. */
template <typename Sample, typename Field>
double median_of(const std::vector<Sample> &samples, Field field)
{
	std::vector<double> values;

	for (const Sample &s : samples) {
		values.push_back(field(s));
	}
	return Results::median(values);
}

double cpu_ns(const OpCost &c)
{
	return c.cpu_ns;
}

double cost_waiting_percent(const OpCost &c)
{
	return 100 * c.waiting_share;
}

double rate_millions(const Throughput &t)
{
	return t.per_second / 1e6;
}

double waiting_percent(const Throughput &t)
{
	return 100 * t.waiting_share;
}

class Bench
{
      public:
	Bench(const Settings &settings, const std::vector<Allocator> &allocators,
	      const std::vector<int> &cpus)
	    : s_(settings), allocators_(allocators), cpus_(cpus)
	{
	}

	void run()
	{
		waiting_.add_table("waiting",
				   "time the measuring thread (for [3] and [4] the worst worker) "
				   "was runnable but waiting for a CPU, % of wall time (median; "
				   "[1]: highest over its sizes). 0 on a quiet machine; above a "
				   "few % other processes took the CPU: [1] and [2] count CPU "
				   "time only and stay comparable, the wall-clock rates of [3] "
				   "and [4] understate the allocator",
				   1);
		counters_.add_table("counters",
				    "kheap (caches on): per-CPU cache events per workload, "
				    "warm-up included",
				    1);
		if (runs_workload(s_, 1)) {
			run_guarded("pair", [this] { alloc_free_pair(); });
		}
		if (runs_workload(s_, 2)) {
			run_guarded("window", [this] { window(); });
		}
		if (runs_workload(s_, 3)) {
			run_guarded("threads", [this] { threads(); });
		}
		if (runs_workload(s_, 4)) {
			run_guarded("handoff", [this] { producer_consumer(); });
		}
		if (runs_workload(s_, 5)) {
			fill_to_failure();
		}
		results_.append(waiting_);
		results_.append(counters_);
	}

	const Results &results() const
	{
		return results_;
	}

	/* Every recorded figure finite and positive, and no sanity failure. */
	bool sane() const
	{
		bool ok = true;

		for (const std::string &problem : problems_) {
			std::printf("FAILED: %s\n", problem.c_str());
			ok = false;
		}
		if (sanity_.total() != 0) {
			std::printf("FAILED: %llu NULL allocations, %llu corrupted blocks, "
				    "%llu misaligned blocks\n",
				    (unsigned long long)sanity_.null_allocs.load(),
				    (unsigned long long)sanity_.bad_tags.load(),
				    (unsigned long long)sanity_.misaligned.load());
			ok = false;
		}
		return ok;
	}

	/* The highest waiting-for-a-CPU share (percent) of a wall-clock figure. */
	double highest_waiting_percent() const
	{
		double highest = 0;
		double v;

		for (const Allocator &a : allocators_) {
			for (const char *col : {"[3] 1T", "[3] 2T", "[4] handoff"}) {
				if (waiting_.get("waiting", a.name, col, &v)) {
					highest = std::max(highest, v);
				}
			}
		}
		return highest;
	}

      private:
	/* A negative share means the kernel did not report it: left blank. */
	void record_waiting(const std::string &row, const std::string &col, double percent)
	{
		if (percent >= 0) {
			waiting_.set("waiting", row, col, percent);
		}
	}

	std::string reps_note() const
	{
		return "median of " + std::to_string(s_.reps) + " reps";
	}

	void record(const std::string &table, const std::string &row, const std::string &col,
		    double value)
	{
		if (!std::isfinite(value) || value <= 0) {
			problems_.push_back(table + " " + row + " " + col + ": figure " +
					    std::to_string(value));
		}
		results_.set(table, row, col, value);
	}

	/*
	 * Runs one workload and then checks every kheap row: the heap must be
	 * back to zero user bytes and pass validation. Also records how the
	 * caches behaved during it.
	 */
	void run_guarded(const std::string &workload, const std::function<void()> &body)
	{
		std::map<std::string, struct k_heap_counters> before;

		for (const Allocator &a : allocators_) {
			if (a.kheap != nullptr) {
				k_heap_counters_get(a.kheap, &before[a.name]);
			}
		}
		body();
		for (const Allocator &a : allocators_) {
			struct sys_memory_stats stats = {};
			struct k_heap_counters after = {};

			if (a.kheap == nullptr) {
				continue;
			}
			if (k_heap_runtime_stats_get(a.kheap, &stats) != 0 ||
			    stats.allocated_bytes != 0) {
				problems_.push_back(a.name + " after " + workload + ": " +
						    std::to_string(stats.allocated_bytes) +
						    " bytes still allocated");
			}
			if (!sys_heap_validate(&a.kheap->heap)) {
				problems_.push_back(a.name + " after " + workload +
						    ": sys_heap_validate failed");
			}
			if (a.name != "kheap" || k_heap_counters_get(a.kheap, &after) != 0) {
				continue;
			}
			const struct k_heap_counters &b = before[a.name];
			uint64_t hits = after.cache_hits - b.cache_hits;
			uint64_t misses = after.cache_misses - b.cache_misses;
			double hit_percent = hits + misses ? 100.0 * hits / (hits + misses) : 0;
			counters_.set("counters", workload, "hit %", hit_percent);
			counters_.set("counters", workload, "refills", after.refills - b.refills);
			counters_.set("counters", workload, "flushes", after.flushes - b.flushes);
			counters_.set("counters", workload, "drains", after.drains - b.drains);
		}
	}

	/* Adds, for each non-kheap row, kheap's figure divided by that row's. */
	void ratio_rows(const std::string &from, const std::string &to, const std::string &col,
			const std::string &to_col)
	{
		double mine;

		if (!results_.get(from, "kheap", col, &mine)) {
			return;
		}
		for (const Allocator &a : allocators_) {
			double theirs;
			if (a.name != "kheap" && results_.get(from, a.name, col, &theirs)) {
				results_.set(to, "vs " + a.name, to_col, mine / theirs);
			}
		}
	}

	void alloc_free_pair()
	{
		const std::vector<std::pair<std::string, RequestTable>> cases = {
		    {"16B", RequestTable::constant(16)},
		    {"64B", RequestTable::constant(64)},
		    {"256B", RequestTable::constant(256)},
		    {"512B", RequestTable::constant(512)},
		    {"16-512B", RequestTable::random(s_.seed, 16, 512, 0)},
		};

		results_.add_table("pair",
				   "[1] alloc+free of one block: ns of CPU time per pair (" +
				       reps_note() + "; lower is better)",
				   1);
		results_.add_table("pair_ratio",
				   "[1] kheap time / other time (below 1: kheap faster)", 2);
		for (const auto &c : cases) {
			auto ns =
			    interleaved_samples(allocators_, s_.reps, [&](const Allocator &a) {
				    return run_alloc_free_pair(a, c.second, s_.pair_seconds,
							       &sanity_);
			    });
			for (size_t i = 0; i < allocators_.size(); i++) {
				const std::string &name = allocators_[i].name;
				double share = median_of(ns[i], cost_waiting_percent);
				double highest;

				record("pair", name, c.first, median_of(ns[i], cpu_ns));
				if (!waiting_.get("waiting", name, "[1]", &highest) ||
				    share > highest) {
					record_waiting(name, "[1]", share);
				}
			}
			ratio_rows("pair", "pair_ratio", c.first, c.first);
		}
	}

	void window()
	{
		const RequestTable requests =
		    RequestTable::random(s_.seed + 1, 16, 1024, kWindowBlocks);

		results_.add_table("window",
				   "[2] window of 1000 live blocks, 16-1024 B, replaced at "
				   "random: ns of CPU time per replacement (free+alloc; " +
				       reps_note() + ")",
				   1);
		results_.add_table("window_ratio", "[2] kheap time / other time", 2);
		auto ns = interleaved_samples(allocators_, s_.reps, [&](const Allocator &a) {
			return run_window(a, requests, kWindowBlocks, s_.window_seconds, &sanity_);
		});
		for (size_t i = 0; i < allocators_.size(); i++) {
			record("window", allocators_[i].name, "ns/repl", median_of(ns[i], cpu_ns));
			record_waiting(allocators_[i].name, "[2]",
				       median_of(ns[i], cost_waiting_percent));
		}
		ratio_rows("window", "window_ratio", "ns/repl", "kheap/other");
	}

	void threads()
	{
		const std::vector<RequestTable> requests = {
		    RequestTable::random(s_.seed + 2, 16, 1024, kWindowBlocks),
		    RequestTable::random(s_.seed + 3, 16, 1024, kWindowBlocks),
		};
		const std::vector<int> one_cpu = {cpus_[0]};

		results_.add_table("threads",
				   "[3] window on 1 and 2 threads sharing one heap (CPUs " +
				       std::to_string(cpus_[0]) + "," + std::to_string(cpus_[1]) +
				       "): million replacements/s (" + reps_note() +
				       "); 2T/1T CPU-time: the same ratio from operations per "
				       "second of each thread's CPU time; c2c RTT: core-to-core "
				       "cache-line round trip measured just before each rep",
				   2);
		results_.add_table("threads_ratio",
				   "[3] kheap throughput / other throughput (above 1: kheap "
				   "faster)",
				   2);
		struct Sample {
			Throughput one;
			Throughput two;
			double round_trip_ns;
		};
		auto runs = interleaved_samples(allocators_, s_.reps, [&](const Allocator &a) {
			Sample sample;

			sample.round_trip_ns =
			    core_to_core_round_trip_ns(cpus_[0], cpus_[1], kRoundTrips);
			sample.one = run_window_threads(a, requests, kWindowBlocks, one_cpu,
							s_.thread_seconds, &sanity_);
			sample.two = run_window_threads(a, requests, kWindowBlocks, cpus_,
							s_.thread_seconds, &sanity_);
			return sample;
		});
		for (size_t i = 0; i < allocators_.size(); i++) {
			const std::string &name = allocators_[i].name;
			const std::vector<Sample> &r = runs[i];
			double m1 =
			    median_of(r, [](const Sample &s) { return rate_millions(s.one); });
			double m2 =
			    median_of(r, [](const Sample &s) { return rate_millions(s.two); });
			double c1 =
			    median_of(r, [](const Sample &s) { return s.one.per_cpu_second; });
			double c2 =
			    median_of(r, [](const Sample &s) { return s.two.per_cpu_second; });

			record("threads", name, "1T Mops/s", m1);
			record("threads", name, "2T Mops/s", m2);
			record("threads", name, "2T/1T", m2 / m1);
			record("threads", name, "2T/1T CPU-time", c2 / c1);
			record("threads", name, "c2c RTT ns",
			       median_of(r, [](const Sample &s) { return s.round_trip_ns; }));
			record_waiting(name, "[3] 1T", median_of(r, [](const Sample &s) {
					       return waiting_percent(s.one);
				       }));
			record_waiting(name, "[3] 2T", median_of(r, [](const Sample &s) {
					       return waiting_percent(s.two);
				       }));
		}
		ratio_rows("threads", "threads_ratio", "1T Mops/s", "1T");
		ratio_rows("threads", "threads_ratio", "2T Mops/s", "2T");
	}

	void producer_consumer()
	{
		const RequestTable requests = RequestTable::random(s_.seed + 4, 16, 512, 0);

		results_.add_table("handoff",
				   "[4] producer on CPU " + std::to_string(cpus_[0]) +
				       " allocates 16-512 B, consumer on CPU " +
				       std::to_string(cpus_[1]) +
				       " frees (SPSC ring): million blocks/s (" + reps_note() +
				       "); c2c RTT: core-to-core cache-line round trip measured "
				       "just before each rep",
				   2);
		results_.add_table("handoff_ratio", "[4] kheap throughput / other throughput", 2);
		using Sample = std::pair<Throughput, double>;
		auto runs = interleaved_samples(allocators_, s_.reps, [&](const Allocator &a) {
			double round_trip_ns =
			    core_to_core_round_trip_ns(cpus_[0], cpus_[1], kRoundTrips);
			return Sample(run_producer_consumer(a, requests, cpus_[0], cpus_[1],
							    s_.handoff_seconds, &sanity_),
				      round_trip_ns);
		});
		for (size_t i = 0; i < allocators_.size(); i++) {
			const std::string &name = allocators_[i].name;

			record("handoff", name, "Mblocks/s",
			       median_of(runs[i],
					 [](const Sample &s) { return rate_millions(s.first); }));
			record("handoff", name, "c2c RTT ns",
			       median_of(runs[i], [](const Sample &s) { return s.second; }));
			record_waiting(name, "[4] handoff", median_of(runs[i], [](const Sample &s) {
					       return waiting_percent(s.first);
				       }));
		}
		ratio_rows("handoff", "handoff_ratio", "Mblocks/s", "kheap/other");
	}

	void fill_to_failure()
	{
		const struct {
			const char *row;
			unsigned cache_percent;
			bool cross_cpu;
		} variants[] = {
		    {"caches on", KHEAP_DEFAULT_CACHE_PERCENT, false},
		    {"caches off", 0, false},
		    {"caches on / frees on other CPU", KHEAP_DEFAULT_CACHE_PERCENT, true},
		    {"caches off / frees on other CPU", 0, true},
		    /* How the loss follows the cache bound. */
		    {"cache_percent=1", 1, false},
		    {"cache_percent=3", 3, false},
		    {"cache_percent=12", 12, false},
		};

		if (!s_.allocators.wants("kheap") && !s_.allocators.wants("kheap-nocache")) {
			return;
		}
		results_.add_table("fill",
				   "[5] fill-to-failure of a 1 MiB k_heap, sizes 8-2048 B: "
				   "requested bytes / heap bytes, % (" +
				       std::to_string(s_.fill_rounds) +
				       " free-half-and-refill rounds)",
				   2);
		results_.add_table("fill_delta", "[5] caches on minus caches off, points", 2);
		results_.add_table("fill_cached",
				   "[5] bytes left in per-CPU caches just after a failed "
				   "allocation (mean over fills; should be 0)",
				   0);
		for (const auto &v : variants) {
			FillOutcome out = run_fill_to_failure(
			    kFillHeapBytes, v.cache_percent, 8, 2048, s_.fill_rounds, s_.seed + 5,
			    cpus_[0], v.cross_cpu ? cpus_[1] : -1, &sanity_);
			if (!out.heap_ok) {
				problems_.push_back(std::string("fill-to-failure ") + v.row +
						    ": heap not empty or invalid afterwards");
			}
			record("fill", v.row, "first fill", out.first_fill_percent);
			record("fill", v.row, "mean refill", out.mean_refill_percent);
			record("fill", v.row, "min refill", out.min_refill_percent);
			results_.set("fill", v.row, "empty heap free", out.empty_free_percent);
			results_.set("fill_cached", v.row, "bytes", out.mean_cached_at_failure);
			if (out.mean_refill_percent > 100) {
				problems_.push_back(std::string("fill-to-failure ") + v.row +
						    ": utilisation above 100%");
			}
		}
		for (const char *col : {"first fill", "mean refill"}) {
			double on;
			double off;
			if (results_.get("fill", "caches on", col, &on) &&
			    results_.get("fill", "caches off", col, &off)) {
				results_.set("fill_delta", "same CPU", col, on - off);
			}
			if (results_.get("fill", "caches on / frees on other CPU", col, &on) &&
			    results_.get("fill", "caches off / frees on other CPU", col, &off)) {
				results_.set("fill_delta", "frees on other CPU", col, on - off);
			}
		}
	}

	const Settings &s_;
	const std::vector<Allocator> &allocators_;
	const std::vector<int> cpus_;
	Results results_;
	/* Kept apart while measuring so these tables print after the figures. */
	Results waiting_;
	Results counters_;
	Sanity sanity_;
	std::vector<std::string> problems_;
};

int report(const Settings &s)
{
	std::vector<Results> runs;

	for (const std::string &path : s.report_files) {
		Results r;
		std::string error;

		if (!r.read_csv(path, &error)) {
			std::fprintf(stderr, "%s\n", error.c_str());
			return 2;
		}
		runs.push_back(r);
	}
	std::printf("medians over %zu runs, cell by cell (ratios: median of per-run ratios)\n",
		    runs.size());
	Results::merge_median(runs).print(stdout);
	return 0;
}

/* The 1, 5 and 15 minute load averages, to judge how busy the machine was. */
std::string load_average()
{
	char text[64] = "unknown";
	FILE *f = std::fopen("/proc/loadavg", "r");
	double one;
	double five;
	double fifteen;

	if (f != nullptr) {
		if (std::fscanf(f, "%lf %lf %lf", &one, &five, &fifteen) == 3) {
			std::snprintf(text, sizeof(text), "%.2f %.2f %.2f", one, five, fifteen);
		}
		std::fclose(f);
	}
	return text;
}

} // namespace

int main(int argc, char **argv)
{
	Settings s;

	if (!parse_args(argc, argv, &s)) {
		usage(stderr);
		return 2;
	}
	if (!s.report_files.empty()) {
		return report(s);
	}
	ensure_static_tls_for_dlopen(argv);
	setvbuf(stdout, nullptr, _IOLBF, 0);

	std::vector<int> cpus = pick_cpus();
	std::vector<std::unique_ptr<KheapInstance>> kheaps;
	std::vector<std::string> skipped;
	std::vector<Allocator> allocators =
	    load_allocators(s.allocators, kBenchHeapBytes, &kheaps, &skipped);

	std::printf("kheap_bench: mode %s, %d reps, seed 0x%llx, CPUs %d and %d, load average %s\n",
		    s.mode.c_str(), s.reps, (unsigned long long)s.seed, cpus[0], cpus[1],
		    load_average().c_str());
	for (const std::string &why : skipped) {
		std::printf("SKIPPED %s\n", why.c_str());
	}
	std::printf("core-to-core cache-line round trip, CPU %d <-> CPU %d: %.0f ns\n", cpus[0],
		    cpus[1], core_to_core_round_trip_ns(cpus[0], cpus[1], kRoundTrips));
	std::printf("allocators (each proven to be its own code):\n");
	if (allocators.empty() || !verify_distinct(allocators)) {
		std::printf("FAILED: no distinct allocators to compare\n");
		return 1;
	}
	pin_current_thread(cpus[0]);

	Bench bench(s, allocators, cpus);
	bench.run();
	bench.results().print(stdout);
	std::printf("\nload average at the end: %s; core-to-core round trip: %.0f ns\n",
		    load_average().c_str(),
		    core_to_core_round_trip_ns(cpus[0], cpus[1], kRoundTrips));
	if (bench.highest_waiting_percent() > kBusyWaitingPercent) {
		std::printf("WARNING: a worker thread waited for a CPU %.0f%% of the time: the "
			    "machine was busy and the threaded figures understate the allocators\n",
			    bench.highest_waiting_percent());
	}
	if (!s.csv_path.empty()) {
		FILE *csv = std::fopen(s.csv_path.c_str(), "w");
		if (csv == nullptr) {
			std::fprintf(stderr, "cannot write %s\n", s.csv_path.c_str());
			return 1;
		}
		bench.results().write_csv(csv);
		std::fclose(csv);
	}
	if (!bench.sane()) {
		return 1;
	}
	std::printf("\nall %zu allocators produced sane results\n", allocators.size());
	return 0;
}
