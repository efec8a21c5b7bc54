// What the end-to-end tests of the heapstress binary share: running it
// (natively, or under the emulator named by KHEAP_TEST_LAUNCHER), capturing
// its output, and reading its JSON report, plus the consistency every
// passing report must show.
//
// Invariants: each run gets its own output files under TEST_TMPDIR; a report
// that does not parse fails the test that asked for it.
#ifndef KHEAP_TESTS_TOOLS_HEAPSTRESS_TOOL_H
#define KHEAP_TESTS_TOOLS_HEAPSTRESS_TOOL_H

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace heapstress_test
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

std::string ReadFile(const std::string &path);

// The command line that starts the tool: empty natively; under a cross
// build, the emulator (and its options) that runs target binaries, from
// KHEAP_TEST_LAUNCHER (words separated by spaces), set per config in .bazelrc.
std::vector<std::string> ToolCommand();

std::string TempPath(const std::string &name);

struct RunResult {
	int status = -1;
	std::string out;
	std::string err;
	std::string command;
};

// Runs heapstress with `args`, stdout and stderr captured in files.
RunResult RunTool(const std::vector<std::string> &args);

// Runs the tool with `args` and expects bad usage: exit 2, nothing on stdout,
// and on stderr one "heapstress: " line plus one pointing at --help.
void ExpectUsageError(const std::vector<std::string> &args);

// Runs heapstress with `args` and --json, and returns the parsed report.
Json RunForJson(std::vector<std::string> args, const std::string &name, RunResult *result);

// Every workload but storm.
extern const std::vector<std::string> kNoStorm;

std::vector<std::string> With(std::vector<std::string> a, const std::vector<std::string> &b);

// The report's own numbers must agree with each other, and every check pass.
void ExpectConsistent(const Json &j);

} // namespace heapstress_test

#endif
