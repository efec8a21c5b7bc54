/*
 * Runs the fuzz harness (heap_fuzz.h) in the normal suite: every file of the
 * committed seed corpus, then a batch of seeded random inputs. A crash found
 * by run_fuzz.sh becomes a regression test by copying its reproducer into
 * tests/fuzz/corpus/.
 *
 * Seed for the random inputs: KHEAP_TEST_SEED if set (decimal or 0x-hex),
 * else kDefaultSeed; every failure message names it.
 */
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/fuzz/heap_fuzz.h"

namespace
{

/* Relative to the test's runfiles directory (the workspace root). */
constexpr char kCorpusDir[] = "tests/fuzz/corpus";
/* The corpus generator writes this many; fewer means files went missing. */
constexpr size_t kMinCorpusFiles = 40;
constexpr uint64_t kDefaultSeed = 0x5eedf022;
constexpr int kRandomInputs = 1000;
constexpr size_t kMaxRandomLength = 600;

std::vector<std::filesystem::path> corpus_files()
{
	std::vector<std::filesystem::path> files;
	for (const auto &entry : std::filesystem::directory_iterator(kCorpusDir))
		if (entry.is_regular_file())
			files.push_back(entry.path());
	std::sort(files.begin(), files.end());
	return files;
}

std::vector<uint8_t> read_file(const std::filesystem::path &path)
{
	std::ifstream in(path, std::ios::binary);
	return std::vector<uint8_t>(std::istreambuf_iterator<char>(in),
				    std::istreambuf_iterator<char>());
}

uint64_t seed_to_use()
{
	const char *env = getenv("KHEAP_TEST_SEED");
	if (env == nullptr || *env == '\0')
		return kDefaultSeed;
	return strtoull(env, nullptr, 0);
}

TEST(HeapFuzzCorpusTest, EveryCorpusFilePasses)
{
	std::vector<std::filesystem::path> files = corpus_files();
	ASSERT_GE(files.size(), kMinCorpusFiles) << "corpus in " << kCorpusDir << " is incomplete";
	for (const auto &path : files) {
		std::vector<uint8_t> input = read_file(path);
		ASSERT_FALSE(input.empty()) << path;
		std::string failure;
		EXPECT_TRUE(heap_fuzz_run(input.data(), input.size(), &failure))
		    << path.filename().string() << ": " << failure;
	}
}

TEST(HeapFuzzCorpusTest, SeededRandomInputsPass)
{
	uint64_t seed = seed_to_use();
	std::mt19937_64 rng(seed);
	for (int i = 0; i < kRandomInputs; i++) {
		std::vector<uint8_t> input(8 + rng() % kMaxRandomLength);
		for (uint8_t &b : input)
			b = static_cast<uint8_t>(rng());
		std::string failure;
		ASSERT_TRUE(heap_fuzz_run(input.data(), input.size(), &failure))
		    << "KHEAP_TEST_SEED=" << seed << ", input " << i << ": " << failure;
	}
}

} // namespace
