// Running the heapstress binary and reading its JSON report (heapstress_tool.h).
#include "tests/tools/heapstress_tool.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

extern char **environ;

namespace heapstress_test
{
namespace
{

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

std::string Binary()
{
	const char *path = getenv("HEAPSTRESS");
	if (path != nullptr && access(path, X_OK) == 0) {
		return path;
	}
	return std::string(getenv("TEST_SRCDIR")) + "/kheap/tools/heapstress/heapstress";
}

} // namespace

std::string ReadFile(const std::string &path)
{
	std::ifstream in(path, std::ios::binary);
	std::stringstream ss;
	ss << in.rdbuf();
	return ss.str();
}

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

void ExpectUsageError(const std::vector<std::string> &args)
{
	RunResult r = RunTool(args);
	SCOPED_TRACE(r.command);

	EXPECT_EQ(r.status, 2);
	EXPECT_EQ(r.err.rfind("heapstress: ", 0), 0u) << r.err;
	EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 2) << r.err;
	EXPECT_NE(r.err.find("--help"), std::string::npos) << r.err;
	EXPECT_TRUE(r.out.empty()) << r.out;
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

} // namespace heapstress_test
