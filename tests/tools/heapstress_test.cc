// End-to-end tests of the heapstress binary: short seeded runs whose reports
// must add up, exact replay of a single-threaded op-count run, planted
// corruption that must fail the run, bad usage that must exit 2 with one line,
// and well-formed SVG, JSON and terminal output.
#include <gtest/gtest.h>

#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "tests/tools/heapstress_tool.h"

namespace
{

using heapstress_test::ExpectConsistent;
using heapstress_test::ExpectUsageError;
using heapstress_test::Json;
using heapstress_test::kNoStorm;
using heapstress_test::ReadFile;
using heapstress_test::RunForJson;
using heapstress_test::RunResult;
using heapstress_test::RunTool;
using heapstress_test::TempPath;
using heapstress_test::ToolCommand;
using heapstress_test::With;

TEST(Heapstress, SeededMixedRunAddsUp)
{
	RunResult r;
	Json j = RunForJson({"--duration", "1", "--seed", "1234"}, "mixed.json", &r);
	SCOPED_TRACE(r.command);

	ASSERT_EQ(r.status, 0) << r.out << r.err;
	EXPECT_NE(r.out.find("seed 1234"), std::string::npos);
	EXPECT_NE(r.out.find("heapstress: PASS"), std::string::npos);
	EXPECT_NE(r.out.find("per-CPU throughput"), std::string::npos);
	EXPECT_NE(r.out.find("p99.9"), std::string::npos);
	EXPECT_EQ(j["seed"].num(), 1234);
	ExpectConsistent(j);
	EXPECT_GT(j["storm_thread_ops"]["blocking_allocs"].num(), 0);
	EXPECT_GT(j["ops"]["produced"].num(), 0);
	EXPECT_GT(j["ops"]["realloc_moves"].num(), 0);
	// Without a terminal, progress comes as plain lines on stderr.
	EXPECT_NE(r.err.find("ops/s"), std::string::npos);
	EXPECT_EQ(r.err.find('\r'), std::string::npos);
}

TEST(Heapstress, OpCountRunDoesExactlyThatManyOps)
{
	RunResult r;
	Json j =
	    RunForJson(With({"--threads", "2", "--ops", "60000", "--seed", "5", "-q"}, kNoStorm),
		       "ops.json", &r);
	SCOPED_TRACE(r.command);

	ASSERT_EQ(r.status, 0) << r.out << r.err;
	ExpectConsistent(j);
	EXPECT_EQ(j["worker_ops"]["total"].num(), 60000);
	EXPECT_EQ(j["ops"]["total"].num(), 60000);
}

TEST(Heapstress, PinsThreadsToTheCpusAsked)
{
	RunResult r;
	Json j = RunForJson({"--cpus", "0", "--threads", "3", "--ops", "30000", "--workload",
			     "random,prodcons", "--seed", "3", "-q"},
			    "pinned.json", &r);
	SCOPED_TRACE(r.command);

	ASSERT_EQ(r.status, 0) << r.err;
	ExpectConsistent(j);
	ASSERT_EQ(j["per_cpu"].items.size(), 1u);
	const Json &cpu = j["per_cpu"].items[0];
	EXPECT_EQ(cpu["cpu"].num(), 0);
	EXPECT_EQ(cpu["workers"].num(), 3);
	EXPECT_EQ(cpu["ops"].num(), 30000);
	EXPECT_EQ(j["config"]["unpinned_threads"].num(), 0);
}

TEST(Heapstress, SameSeedReplaysTheSameOpCounts)
{
	const std::vector<std::string> args = With(
	    {"--threads", "1", "--ops", "150000", "--validate-interval", "0.02", "-q"}, kNoStorm);
	const char *fields[] = {"allocs",   "alloc_failures", "aligned_allocs", "aligned_failures",
				"reallocs", "realloc_moves",  "frees",		"cleanup_frees",
				"produced", "bytes_checked"};
	RunResult r1, r2, r3;
	Json a = RunForJson(With(args, {"--seed", "77"}), "replay1.json", &r1);
	Json b = RunForJson(With(args, {"--seed", "77"}), "replay2.json", &r2);
	Json c = RunForJson(With(args, {"--seed", "78"}), "replay3.json", &r3);

	ASSERT_EQ(r1.status, 0) << r1.err;
	ASSERT_EQ(r2.status, 0) << r2.err;
	ASSERT_EQ(r3.status, 0) << r3.err;
	bool all_same_as_other_seed = true;
	for (const char *field : fields) {
		SCOPED_TRACE(field);
		EXPECT_EQ(a["ops"][field].num(), b["ops"][field].num()) << "seed 77 did not replay";
		all_same_as_other_seed &= a["ops"][field].num() == c["ops"][field].num();
	}
	EXPECT_EQ(a["cache"]["hits"].num(), b["cache"]["hits"].num());
	EXPECT_FALSE(all_same_as_other_seed) << "seeds 77 and 78 gave identical runs";
}

TEST(Heapstress, PlantedDataCorruptionFailsTheRun)
{
	for (const std::vector<std::string> &args :
	     {std::vector<std::string>{"--threads", "1", "--ops", "40000", "--seed", "11"},
	      std::vector<std::string>{"--duration", "1", "--seed", "12"}}) {
		RunResult r = RunTool(With(args, {"-q", "--inject-corruption=pattern"}));
		SCOPED_TRACE(r.command);

		EXPECT_EQ(r.status, 1) << r.out << r.err;
		EXPECT_NE(r.err.find("planted corruption"), std::string::npos) << r.err;
		EXPECT_NE(r.err.find("corrupted at byte"), std::string::npos) << r.err;
		EXPECT_NE(r.err.find("heap offset +0x"), std::string::npos) << r.err;
		EXPECT_NE(r.out.find("heapstress: FAIL"), std::string::npos) << r.out;
	}
}

TEST(Heapstress, PlantedHeaderOverrunIsCaughtByTheHeap)
{
	for (const std::vector<std::string> &args :
	     {std::vector<std::string>{"--threads", "1", "--ops", "40000", "--seed", "13"},
	      std::vector<std::string>{"--duration", "1", "--seed", "14"}}) {
		RunResult r;
		Json j =
		    RunForJson(With(args, {"-q", "--inject-corruption=header"}), "header.json", &r);
		SCOPED_TRACE(r.command);

		EXPECT_EQ(r.status, 1) << r.out << r.err;
		EXPECT_NE(r.err.find("heap fault"), std::string::npos) << r.err;
		EXPECT_EQ(j["status"].text, "fail");
		EXPECT_GE(j["faults"].num(), 1);
		EXPECT_FALSE(j["errors"].items.empty());
	}
}

TEST(Heapstress, BadUsageExitsTwoWithOneLine)
{
	const std::vector<std::vector<std::string>> bad = {
	    {"--no-such-option"},    {"--heap-size", "64K", "--threads", "64"},
	    {"--cpus", "1000"},	     {"--heap-size", "lots"},
	    {"--workload", "chaos"}, {"--json", "/nonexistent-dir/report.json"},
	    {"--heap-size", "200G"},
	};
	for (const auto &args : bad)
		ExpectUsageError(args);
	RunResult help = RunTool({"--help"});
	EXPECT_EQ(help.status, 0);
	EXPECT_NE(help.out.find("Usage: heapstress"), std::string::npos);
}

// Minimal well-formedness: balanced tags, quoted attributes, escaped text.
bool WellFormedXml(const std::string &s, std::string *why, std::map<std::string, int> *counts)
{
	std::vector<std::string> open;
	size_t i = 0;
	bool seen_root = false;

	while (i < s.size()) {
		if (s[i] == '&') {
			static const char *entities[] = {"&amp;",  "&lt;",   "&gt;",
							 "&quot;", "&apos;", "&#"};
			bool ok = false;
			for (const char *e : entities) {
				ok |= s.compare(i, strlen(e), e) == 0;
			}
			if (!ok) {
				*why = "bare & at " + std::to_string(i);
				return false;
			}
			i++;
			continue;
		}
		if (s[i] != '<') {
			if (open.empty() && !isspace(static_cast<unsigned char>(s[i]))) {
				*why = "text outside the root at " + std::to_string(i);
				return false;
			}
			i++;
			continue;
		}
		bool closing = i + 1 < s.size() && s[i + 1] == '/';
		size_t name_start = i + (closing ? 2 : 1);
		size_t name_end = name_start;
		while (name_end < s.size() && (isalnum(static_cast<unsigned char>(s[name_end])) ||
					       s[name_end] == '-' || s[name_end] == ':')) {
			name_end++;
		}
		std::string name = s.substr(name_start, name_end - name_start);
		if (name.empty()) {
			*why = "bad tag at " + std::to_string(i);
			return false;
		}
		size_t j = name_end;
		char quote = 0;
		while (j < s.size() && (quote != 0 || s[j] != '>')) {
			if (quote == 0 && (s[j] == '"' || s[j] == '\'')) {
				quote = s[j];
			} else if (quote != 0 && s[j] == quote) {
				quote = 0;
			} else if (quote != 0 && s[j] == '<') {
				*why = "< inside an attribute at " + std::to_string(j);
				return false;
			}
			j++;
		}
		if (j >= s.size()) {
			*why = "unterminated tag " + name;
			return false;
		}
		if (closing) {
			if (open.empty() || open.back() != name) {
				*why = "</" + name + "> does not close " +
				       (open.empty() ? "anything" : open.back());
				return false;
			}
			open.pop_back();
		} else {
			if (open.empty()) {
				if (seen_root) {
					*why = "second root element " + name;
					return false;
				}
				seen_root = true;
			}
			std::string tag = s.substr(i, j - i);
			(*counts)[name]++;
			if (name == "rect" && tag.find("class=\"chunk") != std::string::npos) {
				(*counts)["chunk"]++;
				if (tag.find("chunk used") != std::string::npos) {
					(*counts)["chunk used"]++;
				}
				if (tag.find("chunk free") != std::string::npos) {
					(*counts)["chunk free"]++;
				}
			}
			if (s[j - 1] != '/') {
				open.push_back(name);
			}
		}
		i = j + 1;
	}
	if (!open.empty()) {
		*why = "unclosed <" + open.back() + ">";
		return false;
	}
	return seen_root;
}

TEST(Heapstress, SvgIsWellFormedAndShowsEveryChunk)
{
	std::string svg_path = TempPath("map.svg");
	RunResult r;
	Json j =
	    RunForJson(With({"--duration", "1", "--seed", "21", "-q", "--svg", svg_path}, kNoStorm),
		       "map.json", &r);
	SCOPED_TRACE(r.command);

	ASSERT_EQ(r.status, 0) << r.err;
	std::string svg = ReadFile(svg_path);
	ASSERT_EQ(svg.rfind("<svg", 0), 0u) << svg.substr(0, 80);
	std::string why;
	std::map<std::string, int> counts;
	ASSERT_TRUE(WellFormedXml(svg, &why, &counts)) << why;
	EXPECT_GT(counts["chunk used"], 0);
	EXPECT_GT(counts["chunk free"], 0);
	EXPECT_GE(counts["polyline"], 4);
	EXPECT_GT(counts["text"], 10);
	const Json &heap = j["heap"];
	if (heap["chunks"].num() <= 20000) {
		// One rect per chunk, plus one per row a chunk spills into.
		EXPECT_GE(counts["chunk"], heap["chunks"].num());
		EXPECT_LE(counts["chunk"], heap["chunks"].num() + 64);
	}
}

TEST(Heapstress, CachesOffAndTinyHeapsStillAddUp)
{
	RunResult r1, r2;
	Json off = RunForJson({"--duration", "0.5", "--caches", "off", "--seed", "31", "-q"},
			      "off.json", &r1);
	Json tiny = RunForJson({"--duration", "0.5", "--heap-size", "48K", "--sizes", "8-256",
				"--threads", "4", "--seed", "32", "-q"},
			       "tiny.json", &r2);

	ASSERT_EQ(r1.status, 0) << r1.command << r1.err;
	ExpectConsistent(off);
	EXPECT_EQ(off["cache"]["hits"].num(), 0);
	ASSERT_EQ(r2.status, 0) << r2.command << r2.err;
	ExpectConsistent(tiny);
	EXPECT_GT(tiny["ops"]["alloc_failures"].num() + tiny["ops"]["blocking_timeouts"].num(), 0)
	    << "a 48K heap under 4 workers and a storm should run out of memory at times";
}

TEST(Heapstress, TerminalGetsALiveProgressLine)
{
	int master = -1;
	std::vector<std::string> command = ToolCommand();
	for (const char *arg :
	     {"--duration", "1.2", "--seed", "41", "--workload", "random,prodcons"})
		command.push_back(arg);
	std::vector<char *> argv;
	for (auto &word : command)
		argv.push_back(&word[0]);
	argv.push_back(nullptr);
	pid_t pid = forkpty(&master, nullptr, nullptr, nullptr);

	ASSERT_GE(pid, 0);
	if (pid == 0) {
		execvp(argv[0], argv.data());
		_exit(127);
	}
	std::string screen;
	char buf[4096];
	ssize_t n;
	while ((n = read(master, buf, sizeof(buf))) > 0) {
		screen.append(buf, static_cast<size_t>(n));
	}
	close(master);
	int wstatus = 0;
	ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
	ASSERT_TRUE(WIFEXITED(wstatus));
	EXPECT_EQ(WEXITSTATUS(wstatus), 0) << screen;
	// Updated in place: carriage returns and erase-to-end-of-line, no line per update.
	EXPECT_NE(screen.find("\r["), std::string::npos) << screen;
	EXPECT_NE(screen.find("\033[K"), std::string::npos) << screen;
	EXPECT_NE(screen.find("waiters"), std::string::npos) << screen;
	EXPECT_NE(screen.find("heapstress: PASS"), std::string::npos) << screen;
}

} // namespace
