// End-to-end tests of heapstress when a worker process dies: --kill-one=parked
// SIGKILLs one halfway through a run, once its threads finished their heap
// calls and parked holding their blocks, and the parent must reclaim exactly
// those blocks while the others keep running; a process that crashes unasked
// must fail the run with its signal. Native only (see BUILD): qemu-user
// neither supports robust futexes nor shows a process its true start time.
#include <gtest/gtest.h>

#include <signal.h>

#include <string>
#include <vector>

#include "tests/tools/heapstress_tool.h"

namespace
{

using heapstress_test::ExpectConsistent;
using heapstress_test::Json;
using heapstress_test::RunForJson;
using heapstress_test::RunResult;

bool CheckPassed(const Json &report, const std::string &name, std::string *detail)
{
	for (const Json &check : report["checks"].items) {
		if (check["name"].text == name) {
			*detail = check["detail"].text;
			return check["passed"].boolean;
		}
	}
	*detail = "no such check";
	return false;
}

// The report of a --kill-one=parked run of three processes with two workers each.
void ExpectKilledAndReclaimed(const Json &j)
{
	const Json &procs = j["processes"];
	std::string detail;

	ExpectConsistent(j);
	EXPECT_TRUE(j["config"]["kill_one"].boolean);
	EXPECT_TRUE(j["config"]["kill_parked"].boolean);
	ASSERT_EQ(procs["per_process"].items.size(), 3u);
	EXPECT_EQ(procs["killed_process"].num(), 2);
	EXPECT_TRUE(procs["distinct_mappings"].boolean);

	const Json &victim = procs["per_process"].items[2];
	EXPECT_EQ(victim["end"].text, "killed");
	EXPECT_EQ(victim["signal"].num(), SIGKILL);
	EXPECT_GT(victim["ended_at_s"].num(), 0);
	EXPECT_LT(victim["ended_at_s"].num(), j["elapsed_s"].num());
	EXPECT_GT(victim["ops"].num(), 0) << "killed before it did anything";
	// It took no part in passing blocks, so all it held was its own.
	EXPECT_EQ(victim["cross_process_sent"].num(), 0);
	EXPECT_EQ(victim["cross_process_received"].num(), 0);
	EXPECT_EQ(victim["reclaimed"]["processes"].num(), 1);
	// Parked, it held its live blocks and nothing was half done.
	EXPECT_GT(victim["reclaimed"]["blocks"].num(), 0);
	EXPECT_EQ(victim["reclaimed"]["waiters"].num(), 0);
	EXPECT_GT(victim["reclaimed"]["bytes"].num(), 0);
	EXPECT_EQ(procs["reclaimed"]["blocks"].num(), victim["reclaimed"]["blocks"].num());
	EXPECT_EQ(procs["reclaimed_at_exit"]["processes"].num(), 0);
	EXPECT_EQ(procs["reclaimed_at_exit"]["blocks"].num(), 0);

	for (int i = 0; i < 2; i++) {
		const Json &survivor = procs["per_process"].items[i];
		EXPECT_EQ(survivor["end"].text, "exited") << "process " << i;
		EXPECT_EQ(survivor["exit_code"].num(), 0) << "process " << i;
		EXPECT_GT(survivor["cross_process_received"].num(), 0) << "process " << i;
	}
	EXPECT_GT(procs["cross_process_blocks"].num(), 0);
	EXPECT_EQ(procs["wakeup_relay"]["served_across_processes"].num(), 2);
	EXPECT_EQ(j["validation"]["failures"].num(), 0);
	for (const char *name :
	     {"heap validates after the kill", "the killed process's blocks were reclaimed",
	      "used chunks == blocks held", "no leaked bytes", "free space fully restored",
	      "every process lived to the end", "no process left attached"}) {
		EXPECT_TRUE(CheckPassed(j, name, &detail)) << name << ": " << detail;
	}
}

TEST(HeapstressKill, KilledProcessIsReclaimedWhileTheOthersRun)
{
	RunResult r;
	Json j = RunForJson({"--processes", "3", "--kill-one=parked", "--threads", "2",
			     "--duration", "2", "--seed", "61", "--validate-interval", "0.25"},
			    "kill.json", &r);
	SCOPED_TRACE(r.command);

	ASSERT_EQ(r.status, 0) << r.out << r.err;
	EXPECT_NE(r.out.find("SIGKILL at"), std::string::npos) << r.out;
	EXPECT_NE(r.out.find("reclaimed from dead processes: 1 process"), std::string::npos)
	    << r.out;
	ExpectKilledAndReclaimed(j);
}

TEST(HeapstressKill, KillInAnOpCountRunLeavesOutTheVictimsShare)
{
	RunResult r;
	Json j = RunForJson({"--processes", "3", "--kill-one=parked", "--threads", "2", "--ops",
			     "240000", "--seed", "62", "-q"},
			    "kill_ops.json", &r);
	SCOPED_TRACE(r.command);

	ASSERT_EQ(r.status, 0) << r.err;
	ExpectKilledAndReclaimed(j);
	// Six workers share the ops; the two of the killed process are left out.
	EXPECT_EQ(j["worker_ops"]["total"].num(), 160000);
}

TEST(HeapstressKill, ACrashedProcessFailsTheRunWithItsSignal)
{
	RunResult r;
	Json j = RunForJson({"--processes", "2", "--crash-one", "--threads", "2", "--duration", "2",
			     "--seed", "63", "-q"},
			    "crash.json", &r);
	SCOPED_TRACE(r.command);

	EXPECT_EQ(r.status, 1) << r.out << r.err;
	EXPECT_NE(r.err.find("worker process 0 (pid "), std::string::npos) << r.err;
	EXPECT_NE(r.err.find("was killed by signal 11"), std::string::npos) << r.err;
	EXPECT_NE(r.out.find("heapstress: FAIL"), std::string::npos) << r.out;
	EXPECT_EQ(j["status"].text, "fail");
	ASSERT_EQ(j["processes"]["per_process"].items.size(), 2u);
	const Json &crashed = j["processes"]["per_process"].items[0];
	EXPECT_EQ(crashed["end"].text, "died");
	EXPECT_EQ(crashed["signal"].num(), SIGSEGV);
	EXPECT_EQ(j["processes"]["per_process"].items[1]["end"].text, "exited");
	std::string detail;
	EXPECT_FALSE(CheckPassed(j, "every process lived to the end", &detail)) << detail;
	EXPECT_NE(detail.find("signal 11"), std::string::npos) << detail;
	bool named = false;
	for (const Json &error : j["errors"].items) {
		named |= error.text.find("worker process 0 (pid ") != std::string::npos &&
			 error.text.find("signal 11") != std::string::npos;
	}
	EXPECT_TRUE(named) << "no error names the crashed process and its signal";
}

} // namespace
