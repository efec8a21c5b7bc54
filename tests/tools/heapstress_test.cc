// End-to-end tests of the heapstress binary: short seeded runs whose reports
// must add up, exact replay of a single-threaded op-count run, planted
// corruption that must fail the run, bad usage that must exit 2 with one line,
// and well-formed SVG, JSON and terminal output.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <pty.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

extern char **environ;

namespace
{

// A parsed JSON value; enough of JSON to read heapstress's report.
struct Json {
	enum Kind { kNull, kBool, kNumber, kString, kArray, kObject } kind = kNull;
	bool boolean = false;
	double number = 0;
	std::string text;
	std::vector<Json> items;
	std::map<std::string, Json> members;

	const Json &operator[](const std::string &key) const
	{
		static const Json missing;
		auto it = members.find(key);
		return it == members.end() ? missing : it->second;
	}
	double num() const
	{
		EXPECT_EQ(kind, kNumber);
		return number;
	}
};

class JsonParser
{
      public:
	explicit JsonParser(const std::string &text) : s_(text)
	{
	}

	// Parses the whole text; false on any syntax error or trailing garbage.
	bool Parse(Json *out)
	{
		bool ok = Value(out);
		Space();
		return ok && pos_ == s_.size();
	}

      private:
	void Space()
	{
		while (pos_ < s_.size() && isspace(static_cast<unsigned char>(s_[pos_]))) {
			pos_++;
		}
	}
	bool Eat(char c)
	{
		Space();
		if (pos_ < s_.size() && s_[pos_] == c) {
			pos_++;
			return true;
		}
		return false;
	}
	bool Literal(const char *word)
	{
		size_t n = strlen(word);
		if (s_.compare(pos_, n, word) != 0) {
			return false;
		}
		pos_ += n;
		return true;
	}
	bool String(std::string *out)
	{
		if (!Eat('"')) {
			return false;
		}
		while (pos_ < s_.size() && s_[pos_] != '"') {
			char c = s_[pos_++];
			if (static_cast<unsigned char>(c) < 0x20) {
				return false;
			}
			if (c == '\\') {
				if (pos_ >= s_.size()) {
					return false;
				}
				char e = s_[pos_++];
				if (e == 'u') {
					if (pos_ + 4 > s_.size()) {
						return false;
					}
					pos_ += 4;
					c = '?';
				} else if (std::string("\"\\/bfnrt").find(e) == std::string::npos) {
					return false;
				} else {
					c = e;
				}
			}
			out->push_back(c);
		}
		return Eat('"');
	}
	bool Number(double *out)
	{
		size_t start = pos_;
		if (pos_ < s_.size() && s_[pos_] == '-') {
			pos_++;
		}
		if (pos_ >= s_.size() || !isdigit(static_cast<unsigned char>(s_[pos_]))) {
			return false;
		}
		while (pos_ < s_.size() && (isdigit(static_cast<unsigned char>(s_[pos_])) ||
					    strchr(".eE+-", s_[pos_]) != nullptr)) {
			pos_++;
		}
		*out = strtod(s_.substr(start, pos_ - start).c_str(), nullptr);
		return true;
	}
	bool Value(Json *out)
	{
		Space();
		if (pos_ >= s_.size()) {
			return false;
		}
		char c = s_[pos_];
		if (c == '{') {
			out->kind = Json::kObject;
			pos_++;
			if (Eat('}')) {
				return true;
			}
			do {
				std::string key;
				Json value;
				if (!String(&key) || !Eat(':') || !Value(&value)) {
					return false;
				}
				out->members[key] = value;
			} while (Eat(','));
			return Eat('}');
		}
		if (c == '[') {
			out->kind = Json::kArray;
			pos_++;
			if (Eat(']')) {
				return true;
			}
			do {
				Json value;
				if (!Value(&value)) {
					return false;
				}
				out->items.push_back(value);
			} while (Eat(','));
			return Eat(']');
		}
		if (c == '"') {
			out->kind = Json::kString;
			return String(&out->text);
		}
		if (Literal("true") || Literal("false")) {
			out->kind = Json::kBool;
			out->boolean = s_[pos_ - 1] == 'e' && s_[pos_ - 2] == 'u';
			return true;
		}
		if (Literal("null")) {
			out->kind = Json::kNull;
			return true;
		}
		out->kind = Json::kNumber;
		return Number(&out->number);
	}

	const std::string &s_;
	size_t pos_ = 0;
};

std::string ReadFile(const std::string &path)
{
	std::ifstream in(path, std::ios::binary);
	std::stringstream ss;
	ss << in.rdbuf();
	return ss.str();
}

std::string Binary()
{
	const char *path = getenv("HEAPSTRESS");
	if (path != nullptr && access(path, X_OK) == 0) {
		return path;
	}
	return std::string(getenv("TEST_SRCDIR")) + "/kheap/tools/heapstress/heapstress";
}

// The command line that starts the tool: empty natively; under a cross
// build, the emulator (and its options) that runs target binaries, from
// KHEAP_TEST_LAUNCHER (words separated by spaces), set per config in .bazelrc.
std::vector<std::string> ToolCommand()
{
	std::vector<std::string> words;
	if (const char *launcher = getenv("KHEAP_TEST_LAUNCHER")) {
		std::istringstream in(launcher);
		for (std::string word; in >> word;)
			words.push_back(word);
	}
	words.push_back(Binary());
	return words;
}

std::string TempPath(const std::string &name)
{
	const char *dir = getenv("TEST_TMPDIR");
	return std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
}

struct RunResult {
	int status = -1;
	std::string out;
	std::string err;
	std::string command;
};

// Runs heapstress with `args`, stdout and stderr captured in files.
RunResult RunTool(const std::vector<std::string> &args)
{
	static int serial;
	RunResult r;
	std::string out_path = TempPath("out." + std::to_string(++serial));
	std::string err_path = TempPath("err." + std::to_string(serial));
	std::vector<std::string> full = ToolCommand();
	full.insert(full.end(), args.begin(), args.end());
	std::vector<char *> argv;
	for (auto &a : full) {
		argv.push_back(&a[0]);
		r.command += a + " ";
	}
	argv.push_back(nullptr);

	posix_spawn_file_actions_t actions;
	posix_spawn_file_actions_init(&actions);
	posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(),
					 O_WRONLY | O_CREAT | O_TRUNC, 0644);
	posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(),
					 O_WRONLY | O_CREAT | O_TRUNC, 0644);
	pid_t pid;
	int rc = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
	posix_spawn_file_actions_destroy(&actions);
	EXPECT_EQ(rc, 0) << "cannot start " << argv[0];
	if (rc != 0) {
		return r;
	}
	int wstatus = 0;
	EXPECT_EQ(waitpid(pid, &wstatus, 0), pid);
	r.status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
	r.out = ReadFile(out_path);
	r.err = ReadFile(err_path);
	return r;
}

Json RunForJson(std::vector<std::string> args, const std::string &name, RunResult *result)
{
	std::string path = TempPath(name);
	args.push_back("--json");
	args.push_back(path);
	*result = RunTool(args);
	Json report;
	std::string text = ReadFile(path);
	EXPECT_TRUE(JsonParser(text).Parse(&report)) << "JSON does not parse:\n" << text;
	return report;
}

const std::vector<std::string> kNoStorm = {"--workload",
					   "random,powerlaw,prodcons,frag,realloc,aligned"};

std::vector<std::string> With(std::vector<std::string> a, const std::vector<std::string> &b)
{
	a.insert(a.end(), b.begin(), b.end());
	return a;
}

// The report's own numbers must agree with each other.
void ExpectConsistent(const Json &j)
{
	const Json &ops = j["ops"];
	double by_cpu = 0, by_workload = 0;

	EXPECT_EQ(j["status"].text, "pass");
	for (const Json &cpu : j["per_cpu"].items) {
		by_cpu += cpu["ops"].num();
	}
	for (const auto &wl : ops["by_workload"].members) {
		by_workload += wl.second.num();
	}
	EXPECT_EQ(by_cpu, ops["total"].num());
	EXPECT_EQ(by_workload, ops["total"].num());
	EXPECT_EQ(ops["total"].num(),
		  j["worker_ops"]["total"].num() + j["storm_thread_ops"]["total"].num());
	EXPECT_EQ(ops["total"].num(), ops["allocs"].num() + ops["aligned_allocs"].num() +
					  ops["blocking_allocs"].num() + ops["reallocs"].num() +
					  ops["frees"].num() - ops["cleanup_frees"].num());
	EXPECT_EQ(ops["outstanding_blocks"].num(), 0);
	EXPECT_EQ(ops["produced"].num(), ops["consumed"].num());
	EXPECT_EQ(ops["allocs"].num() - ops["alloc_failures"].num() + ops["aligned_allocs"].num() -
		      ops["aligned_failures"].num() + ops["blocking_allocs"].num() -
		      ops["blocking_timeouts"].num(),
		  ops["frees"].num());
	const Json &lat = j["latency_ns"];
	EXPECT_EQ(lat["alloc"]["count"].num(), ops["allocs"].num() + ops["aligned_allocs"].num());
	EXPECT_EQ(lat["free"]["count"].num(), ops["frees"].num());
	EXPECT_EQ(lat["realloc"]["count"].num(), ops["reallocs"].num());
	EXPECT_EQ(lat["wait"]["count"].num(), ops["blocking_allocs"].num());
	for (const char *kind : {"alloc", "free"}) {
		EXPECT_LE(lat[kind]["p50"].num(), lat[kind]["p99"].num()) << kind;
		EXPECT_LE(lat[kind]["p99"].num(), lat[kind]["p999"].num()) << kind;
		EXPECT_LE(lat[kind]["p999"].num(), lat[kind]["max"].num()) << kind;
	}
	EXPECT_TRUE(j["heap"]["map_available"].boolean);
	EXPECT_LE(j["heap"]["peak_allocated"].num(), j["heap"]["size"].num());
	EXPECT_GT(j["checks"].items.size(), 8u);
	for (const Json &check : j["checks"].items) {
		EXPECT_TRUE(check["passed"].boolean)
		    << check["name"].text << ": " << check["detail"].text;
	}
	EXPECT_TRUE(j["errors"].items.empty());
	EXPECT_FALSE(j["samples"].items.empty());
}

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
	for (const auto &args : bad) {
		RunResult r = RunTool(args);
		SCOPED_TRACE(r.command);

		EXPECT_EQ(r.status, 2);
		EXPECT_EQ(r.err.rfind("heapstress: ", 0), 0u) << r.err;
		EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 2) << r.err;
		EXPECT_NE(r.err.find("--help"), std::string::npos) << r.err;
		EXPECT_TRUE(r.out.empty()) << r.out;
	}
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
	for (const char *arg : {"--duration", "1.2", "--seed", "41", "--workload", "random,prodcons"})
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
