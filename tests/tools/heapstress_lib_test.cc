// Unit tests for heapstress's building blocks: the number, size, CPU-list and
// time parsers, option parsing and its one-line errors, the block patterns,
// and the log-linear latency histogram.
#include <gtest/gtest.h>

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "tests/tools/hist_probe.h"

extern "C" {
#include "tools/heapstress/options.h"
#include "tools/heapstress/pattern.h"
}

namespace
{

TEST(ParseBytes, AcceptsPlainNumbersAndBinarySuffixes)
{
	const struct {
		const char *text;
		uint64_t bytes;
	} cases[] = {
	    {"123", 123},      {"64K", 64 << 10},  {"64k", 64 << 10},
	    {"16M", 16 << 20}, {"1G", 1ull << 30}, {"2KiB", 2 << 10},
	    {"3MB", 3 << 20},  {"7B", 7},	   {"1T", 1ull << 40},
	};
	for (const auto &c : cases) {
		uint64_t bytes = 0;
		SCOPED_TRACE(c.text);
		ASSERT_EQ(hs_parse_bytes(c.text, &bytes), 0);
		EXPECT_EQ(bytes, c.bytes);
	}
}

TEST(ParseBytes, RejectsMalformedOrOverflowingSizes)
{
	for (const char *text : {"", "K", "12Q", "-5", "1.5M", "16 M", "16MM",
				 "99999999999999999999", "20000000000T"}) {
		uint64_t bytes = 0;
		SCOPED_TRACE(text);
		EXPECT_EQ(hs_parse_bytes(text, &bytes), -1);
	}
}

TEST(ParseCpuList, ExpandsRangesSortedWithoutDuplicates)
{
	int cpus[HS_MAX_CPUS];

	ASSERT_EQ(hs_parse_cpu_list("6,0-3,2", cpus, HS_MAX_CPUS), 5);
	EXPECT_EQ(std::vector<int>(cpus, cpus + 5), (std::vector<int>{0, 1, 2, 3, 6}));
	ASSERT_EQ(hs_parse_cpu_list("1023", cpus, HS_MAX_CPUS), 1);
	EXPECT_EQ(cpus[0], 1023);
}

TEST(ParseCpuList, RejectsMalformedLists)
{
	int cpus[HS_MAX_CPUS];

	for (const char *text : {"", "a", "3-1", "1,", ",1", "0-", "1024", "1;2", "-1"}) {
		SCOPED_TRACE(text);
		EXPECT_EQ(hs_parse_cpu_list(text, cpus, HS_MAX_CPUS), -1);
	}
}

TEST(ParseCpuList, FormatsBackAsRanges)
{
	const int cpus[] = {0, 1, 2, 3, 6, 8, 9};
	char text[64];

	hs_format_cpu_list(cpus, 7, text, sizeof(text));
	EXPECT_STREQ(text, "0-3,6,8-9");
}

TEST(ParseSeconds, AcceptsUnits)
{
	double s = 0;

	ASSERT_EQ(hs_parse_seconds("10", &s), 0);
	EXPECT_DOUBLE_EQ(s, 10.0);
	ASSERT_EQ(hs_parse_seconds("2.5s", &s), 0);
	EXPECT_DOUBLE_EQ(s, 2.5);
	ASSERT_EQ(hs_parse_seconds("500ms", &s), 0);
	EXPECT_DOUBLE_EQ(s, 0.5);
	ASSERT_EQ(hs_parse_seconds("2m", &s), 0);
	EXPECT_DOUBLE_EQ(s, 120.0);
	for (const char *text : {"", "x", "-1", "1h", "1 s", "nan", "inf"}) {
		SCOPED_TRACE(text);
		EXPECT_EQ(hs_parse_seconds(text, &s), -1);
	}
}

// Parses a command line, capturing what would go to stdout and stderr.
struct ParseOutcome {
	enum hs_parse_result result;
	std::string out;
	std::string err;
	struct hs_options opt;
};

std::string ReadAll(FILE *f)
{
	std::string text;
	char buf[512];
	size_t n;

	rewind(f);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
		text.append(buf, n);
	}
	fclose(f);
	return text;
}

ParseOutcome Parse(std::vector<std::string> args)
{
	ParseOutcome outcome;
	std::vector<char *> argv;
	FILE *out = tmpfile();
	FILE *err = tmpfile();

	args.insert(args.begin(), "heapstress");
	for (auto &a : args) {
		argv.push_back(&a[0]);
	}
	argv.push_back(nullptr);
	outcome.result =
	    hs_options_parse(&outcome.opt, static_cast<int>(args.size()), argv.data(), out, err);
	outcome.out = ReadAll(out);
	outcome.err = ReadAll(err);
	return outcome;
}

unsigned int UsableCpus()
{
	cpu_set_t set;

	EXPECT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
	return static_cast<unsigned int>(CPU_COUNT(&set));
}

TEST(Options, DefaultsUseEveryCpuForTenSecondsWithEveryWorkload)
{
	ParseOutcome p = Parse({});

	ASSERT_EQ(p.result, HS_PARSE_RUN) << p.err;
	EXPECT_EQ(p.opt.ncpus, UsableCpus());
	EXPECT_EQ(p.opt.threads, UsableCpus());
	EXPECT_DOUBLE_EQ(p.opt.duration_s, 10.0);
	EXPECT_EQ(p.opt.ops, 0u);
	EXPECT_EQ(p.opt.workloads, HS_WL_ALL);
	EXPECT_TRUE(p.opt.caches);
	EXPECT_GE(p.opt.storm_threads, 8);
	EXPECT_GE(p.opt.heap_size, 16u << 20);
	EXPECT_TRUE(p.err.empty());
}

TEST(Options, ExplicitValuesAreKept)
{
	ParseOutcome p = Parse({"--workload",
				"random,frag",
				"--threads",
				"3",
				"--cpus",
				"0",
				"--heap-size",
				"2M",
				"--sizes",
				"powerlaw:16-1K",
				"--ops",
				"500",
				"--seed",
				"0x10",
				"--caches",
				"off",
				"--validate-interval",
				"250ms",
				"--storm-threads",
				"0",
				"-q"});

	ASSERT_EQ(p.result, HS_PARSE_RUN) << p.err;
	EXPECT_EQ(p.opt.workloads, (1u << HS_WL_RANDOM) | (1u << HS_WL_FRAG));
	EXPECT_EQ(p.opt.threads, 3u);
	ASSERT_EQ(p.opt.ncpus, 1u);
	EXPECT_EQ(p.opt.cpus[0], 0);
	EXPECT_EQ(p.opt.heap_size, 2u << 20);
	EXPECT_EQ(p.opt.size_dist, HS_DIST_POWERLAW);
	EXPECT_EQ(p.opt.size_min, 16u);
	EXPECT_EQ(p.opt.size_max, 1024u);
	EXPECT_EQ(p.opt.ops, 500u);
	EXPECT_EQ(p.opt.seed, 16u);
	EXPECT_TRUE(p.opt.seed_given);
	EXPECT_FALSE(p.opt.caches);
	EXPECT_DOUBLE_EQ(p.opt.validate_interval_s, 0.25);
	EXPECT_EQ(p.opt.storm_threads, 0);
	EXPECT_TRUE(p.opt.quiet);
}

TEST(Options, ProcessesDefaultToOneAndScaleTheDefaultHeap)
{
	ParseOutcome one = Parse({"--threads", "4", "--sizes", "8-64K"});
	ParseOutcome four = Parse({"--threads", "4", "--sizes", "8-64K", "--processes", "4"});

	ASSERT_EQ(one.result, HS_PARSE_RUN) << one.err;
	ASSERT_EQ(four.result, HS_PARSE_RUN) << four.err;
	EXPECT_EQ(one.opt.processes, 1u);
	EXPECT_FALSE(one.opt.kill_one);
	EXPECT_EQ(four.opt.processes, 4u);
	// Sixteen workers of 64K requests need more than the 16M default.
	EXPECT_EQ(one.opt.heap_size, 16u << 20);
	EXPECT_EQ(four.opt.heap_size, 17u << 20);
	EXPECT_EQ(four.opt.threads, 4u);
}

TEST(Options, KillOneTakesAnOptionalParked)
{
	ParseOutcome anywhere = Parse({"--processes", "3", "--kill-one"});
	ParseOutcome parked = Parse({"--processes", "63", "--kill-one=parked", "--threads", "1"});

	ASSERT_EQ(anywhere.result, HS_PARSE_RUN) << anywhere.err;
	EXPECT_TRUE(anywhere.opt.kill_one);
	EXPECT_FALSE(anywhere.opt.kill_parked);
	ASSERT_EQ(parked.result, HS_PARSE_RUN) << parked.err;
	EXPECT_TRUE(parked.opt.kill_one);
	EXPECT_TRUE(parked.opt.kill_parked);
	EXPECT_EQ(parked.opt.processes, 63u);
}

TEST(Options, HelpGoesToStdout)
{
	ParseOutcome p = Parse({"--help"});

	EXPECT_EQ(p.result, HS_PARSE_HELP);
	EXPECT_NE(p.out.find("Usage: heapstress"), std::string::npos);
	EXPECT_NE(p.out.find("--heap-size"), std::string::npos);
	EXPECT_TRUE(p.err.empty());
}

TEST(Options, EveryRefusalIsOneLinePlusUsageHint)
{
	const std::vector<std::vector<std::string>> bad = {
	    {"--bogus"},
	    {"-z"},
	    {"--threads"},
	    {"--threads", "0"},
	    {"--threads", "many"},
	    {"--heap-size", "12Q"},
	    {"--cpus", "4096"},
	    {"--cpus", "1023"},
	    {"--workload", "random,nope"},
	    {"--sizes", "100-10"},
	    {"--sizes", "fixed:8-16"},
	    {"--duration", "0"},
	    {"--duration", "1", "--ops", "5"},
	    {"--caches", "maybe"},
	    {"--validate-interval", "-1"},
	    {"--inject-corruption", "everything"},
	    {"--heap-size", "8K", "--sizes", "4K"},
	    {"--workload", "random", "--storm-threads", "4"},
	    {"stray"},
	    {"--processes", "0"},
	    {"--processes", "64"},
	    {"--processes", "3x"},
	    {"--kill-one"},
	    {"--processes", "2", "--kill-one"},
	    {"--processes", "3", "--kill-one=soon"},
	    {"--crash-one"},
	    {"--processes", "2", "--inject-corruption", "header"},
	    {"--processes", "2", "--heap-size", "64K", "--sizes", "8-1K"},
	    {"--processes", "63", "--threads", "16", "--storm-threads", "64"},
	};
	for (const auto &args : bad) {
		std::string joined;
		for (const auto &a : args) {
			joined += a + " ";
		}
		SCOPED_TRACE(joined);
		ParseOutcome p = Parse(args);
		EXPECT_EQ(p.result, HS_PARSE_ERROR);
		EXPECT_EQ(p.err.rfind("heapstress: ", 0), 0u) << p.err;
		ASSERT_EQ(std::count(p.err.begin(), p.err.end(), '\n'), 2) << p.err;
		EXPECT_NE(p.err.find("\nTry 'heapstress --help'"), std::string::npos) << p.err;
		EXPECT_TRUE(p.out.empty());
	}
}

TEST(Pattern, RoundTripsForEverySmallSize)
{
	std::vector<unsigned char> block(80);

	for (size_t size = 0; size < 72; size++) {
		struct hs_mismatch m;
		uint64_t key = hs_pattern_key(42, size);

		hs_pattern_fill(block.data(), size, key);
		EXPECT_TRUE(hs_pattern_check(block.data(), size, key, &m)) << "size " << size;
	}
}

TEST(Pattern, PinpointsAnyFlippedByte)
{
	std::vector<unsigned char> block(67);
	uint64_t key = hs_pattern_key(7, 1234);

	for (size_t at = 0; at < block.size(); at++) {
		struct hs_mismatch m;

		hs_pattern_fill(block.data(), block.size(), key);
		unsigned char good = block[at];
		block[at] ^= 0x10;
		ASSERT_FALSE(hs_pattern_check(block.data(), block.size(), key, &m)) << at;
		EXPECT_EQ(m.offset, at);
		EXPECT_EQ(m.expected, good);
		EXPECT_EQ(m.found, static_cast<unsigned char>(good ^ 0x10));
	}
}

TEST(Pattern, BlocksAndSeedsGetDifferentPatterns)
{
	std::vector<unsigned char> a(64), b(64);
	struct hs_mismatch m;

	hs_pattern_fill(a.data(), a.size(), hs_pattern_key(1, 100));
	EXPECT_FALSE(hs_pattern_check(a.data(), a.size(), hs_pattern_key(1, 101), &m));
	EXPECT_FALSE(hs_pattern_check(a.data(), a.size(), hs_pattern_key(2, 100), &m));
	hs_pattern_fill(b.data(), b.size(), hs_pattern_key(1, 100));
	EXPECT_EQ(a, b);
}

TEST(Histogram, BucketsTileTheRangeAndIndexRoundTrips)
{
	unsigned int n = hist_probe_buckets();

	EXPECT_EQ(hist_probe_low(0), 0u);
	for (unsigned int i = 0; i < n; i++) {
		SCOPED_TRACE(i);
		ASSERT_LE(hist_probe_low(i), hist_probe_high(i));
		EXPECT_EQ(hist_probe_index(hist_probe_low(i)), i);
		EXPECT_EQ(hist_probe_index(hist_probe_high(i)), i);
		if (i + 1 < n) {
			EXPECT_EQ(hist_probe_high(i) + 1, hist_probe_low(i + 1));
		}
		// Log-linear: a bucket is never wider than 1/16 of its lower bound.
		if (hist_probe_low(i) >= 16) {
			EXPECT_LE(hist_probe_high(i) - hist_probe_low(i) + 1,
				  hist_probe_low(i) / 16);
		}
	}
	EXPECT_EQ(hist_probe_index(UINT64_MAX), n - 1);
}

TEST(Histogram, PercentilesAreWithinBucketPrecision)
{
	const uint64_t seed = 20240611;
	std::mt19937_64 rng(seed);
	std::lognormal_distribution<double> latency(6.0, 1.5);
	std::vector<uint64_t> values(200000);

	for (auto &v : values) {
		v = static_cast<uint64_t>(latency(rng));
	}
	std::vector<uint64_t> sorted = values;
	std::sort(sorted.begin(), sorted.end());
	EXPECT_EQ(hist_probe_count(values.data(), values.size()), values.size());
	for (double q : {0.5, 0.9, 0.99, 0.999}) {
		SCOPED_TRACE(::testing::Message() << "seed " << seed << " q " << q);
		uint64_t exact = sorted[static_cast<size_t>(std::ceil(q * sorted.size())) - 1];
		uint64_t got = hist_probe_percentile(values.data(), values.size(), q);
		EXPECT_GE(got, exact);
		EXPECT_LE(static_cast<double>(got), static_cast<double>(exact) * 1.0625 + 1);
	}
	EXPECT_EQ(hist_probe_percentile(values.data(), values.size(), 1.0), sorted.back());
}

TEST(Histogram, EmptyAndSingleValue)
{
	const uint64_t one[] = {12345};

	EXPECT_EQ(hist_probe_percentile(nullptr, 0, 0.5), 0u);
	EXPECT_EQ(hist_probe_percentile(one, 1, 0.5), 12345u);
	EXPECT_EQ(hist_probe_percentile(one, 1, 0.999), 12345u);
}

} // namespace
