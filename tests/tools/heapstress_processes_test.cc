// End-to-end tests of heapstress --processes: worker processes that each map
// one shared heap at an address of their own, pass blocks to each other as
// heap offsets, serve each other's blocked allocations, and are accounted for
// by the parent; and the usage errors of the multi-process options. These
// run natively and under the emulator (KHEAP_TEST_LAUNCHER).
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "tests/tools/heapstress_tool.h"

namespace
{

using heapstress_test::ExpectConsistent;
using heapstress_test::ExpectUsageError;
using heapstress_test::Json;
using heapstress_test::RunForJson;
using heapstress_test::RunResult;
using heapstress_test::RunTool;

const Json *FindCheck(const Json &report, const std::string &name)
{
	for (const Json &check : report["checks"].items) {
		if (check["name"].text == name) {
			return &check;
		}
	}
	return nullptr;
}

void ExpectCheckPassed(const Json &report, const std::string &name)
{
	const Json *check = FindCheck(report, name);

	ASSERT_NE(check, nullptr) << "no check named '" << name << "'";
	EXPECT_TRUE((*check)["passed"].boolean) << name << ": " << (*check)["detail"].text;
}

TEST(HeapstressProcesses, TwoProcessesShareOneHeap)
{
	RunResult r;
	Json j = RunForJson({"--processes", "2", "--threads", "2", "--duration", "1.5", "--seed",
			     "51", "--validate-interval", "0.5"},
			    "two.json", &r);
	SCOPED_TRACE(r.command);

	ASSERT_EQ(r.status, 0) << r.out << r.err;
	ExpectConsistent(j);
	EXPECT_NE(r.out.find("2 processes on one heap in shared memory"), std::string::npos)
	    << r.out;
	EXPECT_EQ(j["config"]["processes"].num(), 2);
	const Json &procs = j["processes"];
	ASSERT_EQ(procs.kind, Json::kObject);
	EXPECT_EQ(procs["count"].num(), 2);
	ASSERT_EQ(procs["per_process"].items.size(), 2u);

	// Each process mapped the heap at its own address, none at the parent's.
	std::set<std::string> mappings = {procs["parent"]["mapping"].text};
	std::set<double> pids = {procs["parent"]["pid"].num()};
	std::set<double> tags;
	double ops = 0;
	for (const Json &p : procs["per_process"].items) {
		EXPECT_EQ(p["end"].text, "exited");
		EXPECT_EQ(p["exit_code"].num(), 0);
		EXPECT_EQ(p["mapping"].text.rfind("0x", 0), 0u) << p["mapping"].text;
		mappings.insert(p["mapping"].text);
		pids.insert(p["pid"].num());
		tags.insert(p["owner_tag"].num());
		EXPECT_NE(p["owner_tag"].num(), 0);
		EXPECT_EQ(p["workers"].num(), 2);
		// Blocks really crossed, both ways.
		EXPECT_GT(p["cross_process_sent"].num(), 0);
		EXPECT_GT(p["cross_process_received"].num(), 0);
		ops += p["ops"].num();
	}
	EXPECT_EQ(mappings.size(), 3u) << "mappings not distinct";
	EXPECT_EQ(pids.size(), 3u);
	EXPECT_EQ(tags.size(), 2u);
	EXPECT_TRUE(procs["distinct_mappings"].boolean);
	EXPECT_EQ(ops, j["ops"]["total"].num());

	EXPECT_GT(procs["cross_process_blocks"].num(), 0);
	EXPECT_EQ(j["ops"]["cross_process_sent"].num(), j["ops"]["cross_process_received"].num());
	EXPECT_EQ(procs["cross_process_blocks"].num(), j["ops"]["cross_process_received"].num());
	EXPECT_EQ(procs["per_process"].items[0]["cross_process_sent"].num(),
		  procs["per_process"].items[1]["cross_process_received"].num());

	// Each process blocked on a full heap and was served by the other's free.
	const Json &relay = procs["wakeup_relay"];
	EXPECT_EQ(relay["steps"].num(), 2);
	EXPECT_EQ(relay["served_across_processes"].num(), 2);
	for (const Json &step : relay["by_step"].items) {
		EXPECT_NE(step["filler"].num(), step["waiter"].num());
		EXPECT_TRUE(step["waiter_seen_queued"].boolean);
		EXPECT_TRUE(step["served"].boolean);
		EXPECT_TRUE(step["owner_tags_ok"].boolean);
	}
	EXPECT_GT(j["storm_thread_ops"]["blocking_allocs"].num(), 0);
	EXPECT_GT(j["blocking"]["waits"].num(), 0);

	EXPECT_EQ(procs["killed_process"].num(), -1);
	EXPECT_EQ(procs["reclaimed"]["blocks"].num(), 0);
	EXPECT_EQ(procs["reclaimed_at_exit"]["processes"].num(), 0);
	EXPECT_GE(j["validation"]["runs"].num(), 3);
	EXPECT_EQ(j["validation"]["failures"].num(), 0);
	for (const char *name :
	     {"each process maps the heap at its own address", "every process lived to the end",
	      "every block sent to another process was received",
	      "a blocked allocation is served from another process", "no process left attached",
	      "used chunks == blocks held", "no leaked bytes", "the parent detaches last"}) {
		ExpectCheckPassed(j, name);
	}
}

TEST(HeapstressProcesses, OpCountIsSplitOverEveryProcessesWorkers)
{
	RunResult r;
	Json j = RunForJson({"--processes", "3", "--threads", "2", "--ops", "60000", "--workload",
			     "random,prodcons", "--seed", "52", "-q"},
			    "ops3.json", &r);
	SCOPED_TRACE(r.command);

	ASSERT_EQ(r.status, 0) << r.err;
	ExpectConsistent(j);
	EXPECT_EQ(j["worker_ops"]["total"].num(), 60000);
	EXPECT_EQ(j["storm_thread_ops"]["total"].num(), 0);
	ASSERT_EQ(j["processes"]["per_process"].items.size(), 3u);
	for (const Json &p : j["processes"]["per_process"].items) {
		EXPECT_EQ(p["ops"].num(), 20000) << "process " << p["index"].num();
		EXPECT_GT(p["cross_process_received"].num(), 0) << "process " << p["index"].num();
	}
	EXPECT_EQ(j["processes"]["wakeup_relay"]["served_across_processes"].num(), 3);
	ExpectCheckPassed(j, "worker ops == --ops");
}

TEST(HeapstressProcesses, BadUsageExitsTwoWithOneLine)
{
	const std::vector<std::vector<std::string>> bad = {
	    {"--processes", "0"},
	    {"--processes", "-2"},
	    {"--processes", "two"},
	    {"--processes", "64"},
	    {"--processes", "1000"},
	    {"--kill-one"},
	    {"--processes", "2", "--kill-one"},
	    {"--crash-one"},
	    {"--processes", "2", "--inject-corruption=pattern"},
	    {"--processes", "2", "--heap-size", "64K", "--sizes", "8-256"},
	    {"--processes", "63", "--threads", "64"},
	};
	for (const auto &args : bad)
		ExpectUsageError(args);
	RunResult help = RunTool({"--help"});
	EXPECT_EQ(help.status, 0);
	EXPECT_NE(help.out.find("--processes N"), std::string::npos);
	EXPECT_NE(help.out.find("--kill-one"), std::string::npos);
}

} // namespace
