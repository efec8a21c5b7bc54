/*
 * Tests of k_heap heaps in shared memory, across real processes. The test
 * formats a heap in a memfd and starts shared_heap_child with fork and exec
 * (through KHEAP_TEST_LAUNCHER under an emulator); each child maps the memfd
 * at an address of its own, attaches, and runs the commands the test sends
 * over a socket (the protocol is described in shared_heap_child.c). Blocks
 * travel between processes as offsets from the region's start.
 *
 * What the suite covers: concurrent allocation and freeing from several
 * processes and threads with blocks freed by processes other than their
 * owners; cross-process blocking and timeouts; attach refusals; reclaiming
 * the blocks and waits of processes that died or detached; recovery from a
 * process killed while holding the heap lock (idle, or halfway through an
 * allocation, which is repaired) or a cache lock (idle, or halfway through a
 * pop, which is undone), and the heap refusing service everywhere once a
 * process died leaving it damaged beyond repair; the fork rule; and a seeded
 * randomized churn.
 *
 * Invariants each test keeps: every child is gone (exited or killed and
 * reaped) before its test ends; every wait for a child is bounded (a child
 * that does not answer fails the test), and a Watchdog aborts a test that
 * hangs in the heap itself; synchronisation with children is by their
 * replies and by the heap's own waiter count, never by sleeping; a test that
 * ends with a usable heap checks that it validates, that its stats are back
 * to the empty heap's and that no fault was left unexamined.
 *
 * Tests that kill a process while it holds a lock need the kernel to hand
 * the next locker the dead owner's lock (robust futex lists); qemu-user does
 * not implement them, so those tests skip themselves there.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <kheap/kheap.h>

#include "heap/shared_testing.h"
#include "tests/heap/shared_heap_pattern.h"
#include "tests/support/test_support.h"

namespace
{

using namespace kheap_test;

/* A heap's allocation unit: a chunk is at most a unit of rounding and an
 * 8-byte trailer beyond its block's usable bytes.
 */
constexpr size_t kChunkUnitBytes = 8;

constexpr size_t kSmallRegion = 256 * 1024;
constexpr size_t kLargeRegion = 2 * 1024 * 1024;
/* A request above KHEAP_CACHE_MAX_BYTES: it always takes the heap lock. */
constexpr size_t kUncachedBytes = 4096;

std::vector<std::string> Split(const std::string &line)
{
	std::istringstream in(line);
	std::vector<std::string> words;
	for (std::string word; in >> word;)
		words.push_back(word);
	return words;
}

uint64_t Number(const std::string &word)
{
	return strtoull(word.c_str(), nullptr, 0);
}

struct Block {
	size_t offset;
	size_t usable;
};

/* "OFF:USABLE" words from `first` on. */
std::vector<Block> ParseBlocks(const std::vector<std::string> &words, size_t first)
{
	std::vector<Block> blocks;
	for (size_t i = first; i < words.size(); i++) {
		size_t colon = words[i].find(':');
		EXPECT_NE(colon, std::string::npos) << "not OFF:USABLE: " << words[i];
		if (colon == std::string::npos)
			continue;
		blocks.push_back({static_cast<size_t>(Number(words[i].substr(0, colon))),
				  static_cast<size_t>(Number(words[i].substr(colon + 1)))});
	}
	return blocks;
}

size_t UsableTotal(const std::vector<Block> &blocks)
{
	size_t total = 0;
	for (const Block &b : blocks)
		total += b.usable;
	return total;
}

std::string OffsetList(const std::vector<size_t> &offsets)
{
	std::string text;
	for (size_t offset : offsets)
		text += " " + std::to_string(offset);
	return text;
}

std::vector<size_t> OffsetsOf(const std::vector<Block> &blocks)
{
	std::vector<size_t> offsets;
	for (const Block &b : blocks)
		offsets.push_back(b.offset);
	return offsets;
}

std::vector<int> AllowedCpus()
{
	cpu_set_t set;
	CPU_ZERO(&set);
	std::vector<int> cpus;
	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return cpus;
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (CPU_ISSET(cpu, &set))
			cpus.push_back(cpu);
	}
	return cpus;
}

/* Runs `body` on a thread pinned to `cpu` and waits for it. */
void OnCpu(int cpu, const std::function<void()> &body)
{
	std::thread worker([cpu, &body] {
		cpu_set_t one;
		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		ASSERT_EQ(0, pthread_setaffinity_np(pthread_self(), sizeof(one), &one));
		body();
	});
	worker.join();
}

/* Whether a lock whose owner died is handed to the next locker. */
bool DeadLockOwnersAreDetected()
{
	void *head = nullptr;
	size_t length = 0;
	return syscall(SYS_get_robust_list, 0, &head, &length) == 0;
}

#define SKIP_WITHOUT_ROBUST_LOCKS()                                                                \
	do {                                                                                       \
		if (!DeadLockOwnersAreDetected())                                                  \
			GTEST_SKIP() << "this kernel (or emulator) keeps no robust futex lists, "  \
					"so a lock's dead owner is never detected";                \
	} while (0)

std::string ChildBinary()
{
	const char *path = getenv("SHARED_HEAP_CHILD");
	if (path != nullptr && access(path, X_OK) == 0)
		return path;
	return std::string(getenv("TEST_SRCDIR")) + "/kheap/tests/heap/shared_heap_child";
}

/* The emulator and its options under a cross build (see .bazelrc), then the child. */
std::vector<std::string> ChildCommand()
{
	std::vector<std::string> words;
	if (const char *launcher = getenv("KHEAP_TEST_LAUNCHER"))
		words = Split(launcher);
	words.push_back(ChildBinary());
	return words;
}

/* A memfd every process maps; this process's mapping of it. */
class SharedRegion
{
      public:
	explicit SharedRegion(size_t bytes) : bytes_(bytes)
	{
		fd_ = memfd_create("kheap-shared-heap-test", MFD_CLOEXEC);
		EXPECT_GE(fd_, 0) << strerror(errno);
		EXPECT_EQ(0, ftruncate(fd_, static_cast<off_t>(bytes)));
		void *mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
		EXPECT_NE(mem, MAP_FAILED) << strerror(errno);
		mem_ = mem == MAP_FAILED ? nullptr : static_cast<uint8_t *>(mem);
	}

	~SharedRegion()
	{
		if (mem_ != nullptr)
			munmap(mem_, bytes_);
		close(fd_);
	}

	SharedRegion(const SharedRegion &) = delete;
	SharedRegion &operator=(const SharedRegion &) = delete;

	int fd() const
	{
		return fd_;
	}
	uint8_t *mem() const
	{
		return mem_;
	}
	size_t bytes() const
	{
		return bytes_;
	}
	void *At(size_t offset) const
	{
		return mem_ + offset;
	}
	size_t OffsetOf(const void *p) const
	{
		return static_cast<size_t>(static_cast<const uint8_t *>(p) - mem_);
	}

      private:
	int fd_ = -1;
	uint8_t *mem_ = nullptr;
	size_t bytes_;
};

/* A running shared_heap_child and the socket to it. */
class Child
{
      public:
	/* Starts the child on `region`, mapping `map_bytes` of it (all by
	 * default), and waits for its ready line.
	 */
	Child(const SharedRegion &region, unsigned int index, size_t map_bytes = 0)
	{
		int sockets[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sockets) != 0) {
			ADD_FAILURE() << "socketpair: " << strerror(errno);
			return;
		}
		std::vector<std::string> args = ChildCommand();
		args.push_back(std::to_string(region.fd()));
		args.push_back(std::to_string(map_bytes != 0 ? map_bytes : region.bytes()));
		args.push_back(std::to_string(sockets[1]));
		args.push_back(std::to_string(reinterpret_cast<uintptr_t>(region.mem())));
		args.push_back(std::to_string(index));
		std::vector<char *> argv;
		for (std::string &arg : args)
			argv.push_back(&arg[0]);
		argv.push_back(nullptr);

		pid_ = fork();
		if (pid_ == 0) {
			/* Only async-signal-safe calls between fork and exec. */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			fcntl(sockets[1], F_SETFD, 0);
			fcntl(region.fd(), F_SETFD, 0);
			execvp(argv[0], argv.data());
			_exit(127);
		}
		close(sockets[1]);
		socket_ = sockets[0];
		if (pid_ < 0) {
			ADD_FAILURE() << "fork: " << strerror(errno);
			return;
		}
		std::vector<std::string> ready = Split(Receive());
		if (ready.size() != 4 || ready[0] != "ready") {
			ADD_FAILURE() << "child " << index << " did not start";
			return;
		}
		attach_rc_ = static_cast<int>(strtol(ready[1].c_str(), nullptr, 0));
		address_ = static_cast<uintptr_t>(Number(ready[2]));
		tag_ = static_cast<uint32_t>(Number(ready[3]));
	}

	~Child()
	{
		if (pid_ > 0)
			Kill();
		if (socket_ >= 0)
			close(socket_);
	}

	Child(const Child &) = delete;
	Child &operator=(const Child &) = delete;

	int attach_rc() const
	{
		return attach_rc_;
	}
	uintptr_t address() const
	{
		return address_;
	}
	uint32_t tag() const
	{
		return tag_;
	}

	void Send(const std::string &command)
	{
		std::string line = command + "\n";
		size_t sent = 0;
		while (sent < line.size()) {
			ssize_t n =
			    send(socket_, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				ADD_FAILURE()
				    << "cannot send '" << command << "': " << strerror(errno);
				return;
			}
			sent += static_cast<size_t>(n);
		}
	}

	/* The next reply line; "" (and a failure) if none comes in time. */
	std::string Receive()
	{
		Clock::time_point deadline = Clock::now() + kStateLimit;
		for (;;) {
			size_t newline = buffered_.find('\n');
			if (newline != std::string::npos) {
				std::string line = buffered_.substr(0, newline);
				buffered_.erase(0, newline + 1);
				return line;
			}
			int64_t left = std::chrono::duration_cast<std::chrono::milliseconds>(
					   deadline - Clock::now())
					   .count();
			struct pollfd p = {socket_, POLLIN, 0};
			int ready = left > 0 ? poll(&p, 1, static_cast<int>(left)) : 0;
			if (ready < 0 && errno == EINTR)
				continue;
			if (ready <= 0) {
				ADD_FAILURE() << "child " << pid_ << " did not reply in time";
				return "";
			}
			char chunk[4096];
			ssize_t n = read(socket_, chunk, sizeof(chunk));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				ADD_FAILURE() << "child " << pid_ << " closed its socket";
				return "";
			}
			buffered_.append(chunk, static_cast<size_t>(n));
		}
	}

	/* True when a reply is waiting to be read. */
	bool ReplyPending()
	{
		if (buffered_.find('\n') != std::string::npos)
			return true;
		struct pollfd p = {socket_, POLLIN, 0};
		return poll(&p, 1, 0) == 1;
	}

	std::string Call(const std::string &command)
	{
		Send(command);
		return Receive();
	}

	/* Runs `command`, expecting a reply that starts with "ok"; its words. */
	std::vector<std::string> Ok(const std::string &command)
	{
		std::string reply = Call(command);
		std::vector<std::string> words = Split(reply);
		EXPECT_TRUE(!words.empty() && words[0] == "ok")
		    << "'" << command.substr(0, 80) << "' got '" << reply << "'";
		return words;
	}

	std::vector<Block> Alloc(size_t count, size_t bytes)
	{
		return ParseBlocks(
		    Ok("alloc " + std::to_string(count) + " " + std::to_string(bytes)), 1);
	}

	void ExpectNoFaults()
	{
		std::vector<std::string> faults = Ok("faults");
		EXPECT_EQ("0", faults.size() > 1 ? faults[1] : "") << "child " << pid_;
	}

	/* Detaches (expecting success unless told otherwise) and exits. */
	void Exit(bool expect_detached = true)
	{
		std::vector<std::string> reply = Ok("exit");
		if (expect_detached) {
			EXPECT_EQ("0", reply.size() > 1 ? reply[1] : "")
			    << "k_heap_detach in the child";
		}
		ExpectExitStatus(0);
	}

	/* Kills the child with SIGKILL and reaps it. */
	void Kill()
	{
		ASSERT_GT(pid_, 0);
		ASSERT_EQ(0, kill(pid_, SIGKILL));
		int status = 0;
		ASSERT_EQ(pid_, waitpid(pid_, &status, 0));
		pid_ = -1;
		EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
		    << "status " << status;
	}

      private:
	void ExpectExitStatus(int expected)
	{
		int status = 0;
		ASSERT_EQ(pid_, waitpid(pid_, &status, 0));
		pid_ = -1;
		EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == expected)
		    << "status " << status;
	}

	pid_t pid_ = -1;
	int socket_ = -1;
	std::string buffered_;
	int attach_rc_ = -1;
	uintptr_t address_ = 0;
	uint32_t tag_ = 0;
};

/* A child's "validate" reply, and this process's view in the same shape. */
struct HeapView {
	bool valid;
	struct sys_memory_stats stats;
};

HeapView ParseView(const std::vector<std::string> &words)
{
	HeapView view = {};
	EXPECT_EQ(words.size(), 6u);
	if (words.size() != 6)
		return view;
	view.valid = words[1] == "1";
	view.stats.free_bytes = Number(words[2]);
	view.stats.allocated_bytes = Number(words[3]);
	view.stats.max_allocated_bytes = Number(words[4]);
	view.stats.cached_bytes = Number(words[5]);
	return view;
}

struct ForkResult {
	int inherited_alloc_succeeded;
	unsigned int faults_from_alloc;
	unsigned int faults_from_free;
	int attach_rc;
	uint32_t tag;
	int alloc_succeeded;
	uint32_t new_block_owner;
	uint32_t old_block_owner;
	int valid;
	int detach_rc;
	unsigned int faults_after_attach;
};

std::atomic<unsigned int> g_forked_faults{0};

void CountForkedFault(enum kheap_fault, const void *, const void *, const char *)
{
	g_forked_faults.fetch_add(1);
}

class SharedHeapTest : public ::testing::Test
{
      protected:
	void TearDown() override
	{
		if (attached_) {
			EXPECT_TRUE(sys_heap_validate(&heap_.heap));
			EXPECT_EQ(0, k_heap_detach(&heap_));
		}
		ExpectNoFaults();
	}

	/* Formats a fresh memfd of `bytes` as a shared heap attached here. */
	bool Format(size_t bytes, unsigned int cache_percent = KHEAP_DEFAULT_CACHE_PERCENT)
	{
		region_.emplace(bytes);
		struct k_heap_config config = {cache_percent};
		int rc = k_heap_init_shared(&heap_, region_->mem(), bytes, &config);
		EXPECT_EQ(0, rc);
		attached_ = rc == 0;
		if (attached_)
			initial_ = Stats(&heap_);
		return attached_;
	}

	std::unique_ptr<Child> Start(unsigned int index)
	{
		auto child = std::make_unique<Child>(*region_, index);
		EXPECT_EQ(0, child->attach_rc()) << "child " << index << " could not attach";
		EXPECT_NE(0u, child->tag());
		EXPECT_NE(reinterpret_cast<uintptr_t>(region_->mem()), child->address())
		    << "the child mapped the heap where this process did";
		return child;
	}

	void *At(size_t offset)
	{
		return region_->At(offset);
	}

	/* Checks, from this process, a block another process filled. */
	void ExpectFilledBy(size_t offset, uint32_t tag)
	{
		void *mem = At(offset);
		EXPECT_EQ(tag, k_heap_block_owner(&heap_, mem)) << "block at " << offset;
		EXPECT_TRUE(shared_heap_check(mem, k_heap_usable_size(&heap_, mem), tag))
		    << "block at " << offset << " lost its pattern";
	}

	/* Every cached block back in the heap, nothing held, nothing lost. */
	void ExpectEmptyHeap()
	{
		k_heap_drain_caches(&heap_);
		struct sys_memory_stats now = Stats(&heap_);
		EXPECT_EQ(initial_.allocated_bytes, now.allocated_bytes);
		EXPECT_EQ(0u, now.cached_bytes);
		EXPECT_EQ(initial_.free_bytes + initial_.cached_bytes, now.free_bytes);
		EXPECT_TRUE(sys_heap_validate(&heap_.heap));
		EXPECT_EQ(0u, k_heap_waiter_count(&heap_));
	}

	/*
	 * A reclaim freed exactly `blocks`: as many, at least their usable
	 * bytes (out.bytes counts whole chunks, trailers included, as
	 * k_heap.h defines it), and allocated_bytes fell by exactly what it
	 * reported from `allocated_before`.
	 */
	void ExpectReclaimed(const struct k_heap_reclaimed &out, const std::vector<Block> &blocks,
			     size_t allocated_before)
	{
		EXPECT_EQ(blocks.size(), out.blocks);
		EXPECT_GE(out.bytes, UsableTotal(blocks))
		    << "reclaimed bytes are less than the blocks' usable sizes";
		EXPECT_LE(out.bytes, UsableTotal(blocks) + blocks.size() * 2 * kChunkUnitBytes)
		    << "reclaimed bytes are more than the blocks' chunks";
		EXPECT_EQ(allocated_before - out.bytes, Stats(&heap_).allocated_bytes)
		    << "allocated_bytes did not fall by the reclaimed bytes";
	}

	/* Every child and this process validate the heap and read equal stats. */
	void ExpectAllAgree(const std::vector<Child *> &children)
	{
		HeapView mine = {sys_heap_validate(&heap_.heap), Stats(&heap_)};
		EXPECT_TRUE(mine.valid);
		for (Child *child : children) {
			HeapView theirs = ParseView(child->Ok("validate"));
			EXPECT_TRUE(theirs.valid) << "child with tag " << child->tag();
			EXPECT_EQ(mine.stats, theirs.stats) << "child with tag " << child->tag();
		}
	}

	FaultRecorder recorder_;
	Watchdog watchdog_{"a shared-heap test", std::chrono::seconds(90)};
	std::optional<SharedRegion> region_;
	struct k_heap heap_ = {};
	bool attached_ = false;
	struct sys_memory_stats initial_ = {};

	/*
	 * A process holding `lost_count` blocks dies after `hold_command` left it
	 * holding the heap lock with the heap recoverable. The next process to lock
	 * the heap repairs it and goes on; reclaiming the dead process then finds
	 * exactly the blocks it had finished allocating (a half-allocated chunk went
	 * back to the heap untagged), and a newcomer can still attach.
	 */
	void ExpectRecoveryAfterDeath(const char *hold_command, size_t lost_count)
	{
		struct k_heap *heap = &heap_;
		auto victim = Start(0);
		auto survivor = Start(1);
		std::vector<Block> lost = victim->Alloc(lost_count, 300);
		ASSERT_EQ(lost_count, lost.size());
		EXPECT_EQ("held", victim->Call(hold_command));
		victim->Kill();

		std::vector<Block> after = survivor->Alloc(1, kUncachedBytes);
		EXPECT_EQ(1u, after.size()) << "the surviving process could not allocate";
		survivor->ExpectNoFaults();
		void *mine = k_heap_alloc(heap, kUncachedBytes, K_NO_WAIT);
		EXPECT_NE(nullptr, mine);
		EXPECT_TRUE(sys_heap_validate(&heap->heap));
		ExpectNoFaults();
		EXPECT_EQ(1u, Counters(heap).recoveries)
		    << "the lock was not counted as taken over";

		size_t held = Stats(heap).allocated_bytes;
		struct k_heap_reclaimed out = {};
		ASSERT_EQ(0, k_heap_reclaim_dead(heap, &out));
		EXPECT_EQ(1u, out.processes);
		ExpectReclaimed(out, lost, held);

		k_heap_free(heap, mine);
		EXPECT_EQ("ok", survivor->Call("free" + OffsetList(OffsetsOf(after))));
		auto newcomer = Start(2);
		EXPECT_EQ(0, newcomer->attach_rc());
		ExpectAllAgree({survivor.get(), newcomer.get()});
		survivor->Exit();
		newcomer->Exit();
		ExpectEmptyHeap();
	}

	/*
	 * A child pinned to `cpu` allocates six 64-byte blocks, keeps two
	 * (*lost) and frees four into that CPU's cache, then runs `hold` on
	 * the cache of `cpu` and is killed holding its lock.
	 */
	void KillCacheLockHolder(int cpu, const std::string &hold, std::vector<Block> *lost)
	{
		auto victim = Start(0);
		EXPECT_EQ("ok", victim->Call("pin " + std::to_string(cpu)));
		std::vector<Block> blocks = victim->Alloc(6, 64);
		ASSERT_EQ(6u, blocks.size());
		lost->assign(blocks.begin(), blocks.begin() + 2);
		std::vector<Block> cached(blocks.begin() + 2, blocks.end());
		EXPECT_EQ("ok", victim->Call("free" + OffsetList(OffsetsOf(cached))));
		ASSERT_GT(Stats(&heap_).cached_bytes, 0u) << "nothing parked in the caches";
		ASSERT_EQ("held", victim->Call(hold + " " + std::to_string(cpu)));
		victim->Kill();
	}

	/* 64 allocations and frees from `cpu`, every one served. */
	void ChurnOnCpu(int cpu)
	{
		OnCpu(cpu, [&] {
			for (int i = 0; i < 64; i++) {
				void *mem = k_heap_alloc(&heap_, 64, K_NO_WAIT);
				ASSERT_NE(nullptr, mem) << "allocation " << i << " on CPU " << cpu;
				k_heap_free(&heap_, mem);
			}
		});
	}
};

/* ---- formatting and attaching ---- */

TEST_F(SharedHeapTest, InitSharedRefusesBadArguments)
{
	SharedRegion region(kSmallRegion);
	struct k_heap heap = {};
	EXPECT_EQ(-EINVAL, k_heap_init_shared(nullptr, region.mem(), region.bytes(), nullptr));
	EXPECT_EQ(-EINVAL, k_heap_init_shared(&heap, nullptr, region.bytes(), nullptr));
	EXPECT_EQ(-EINVAL,
		  k_heap_init_shared(&heap, region.mem() + 8, region.bytes() - 64, nullptr))
	    << "a region that is not 64-byte aligned";
	EXPECT_EQ(-EINVAL,
		  k_heap_init_shared(&heap, region.mem(), KHEAP_SHARED_MIN_BYTES - 64, nullptr))
	    << "a region below KHEAP_SHARED_MIN_BYTES";
	EXPECT_EQ(-EINVAL, k_heap_init_shared(&heap, region.mem(), 4096, nullptr));
	ASSERT_EQ(0, k_heap_init_shared(&heap, region.mem(), KHEAP_SHARED_MIN_BYTES, nullptr))
	    << "the smallest region it accepts";
	void *mem = k_heap_alloc(&heap, 64, K_NO_WAIT);
	EXPECT_NE(nullptr, mem);
	k_heap_free(&heap, mem);
	EXPECT_TRUE(sys_heap_validate(&heap.heap));
	EXPECT_EQ(0, k_heap_detach(&heap));
	ExpectNoFaults();
}

TEST_F(SharedHeapTest, OwnerFunctionsRefuseAPrivateHeap)
{
	Region memory(64 * 1024);
	struct k_heap heap;
	ASSERT_EQ(0, k_heap_init(&heap, memory.start(), memory.bytes()));
	void *mem = k_heap_alloc(&heap, 64, K_NO_WAIT);
	ASSERT_NE(nullptr, mem);
	struct k_heap_reclaimed out;
	EXPECT_EQ(0u, k_heap_owner_tag(&heap));
	EXPECT_EQ(0u, k_heap_block_owner(&heap, mem));
	EXPECT_EQ(-EINVAL, k_heap_reclaim_owner(&heap, 1, &out));
	EXPECT_EQ(-EINVAL, k_heap_reclaim_dead(&heap, &out));
	EXPECT_EQ(-EINVAL, k_heap_detach(&heap));
	k_heap_free(&heap, mem);
	EXPECT_EQ(0, k_heap_deinit(&heap));
	ExpectNoFaults();
}

TEST_F(SharedHeapTest, AttachRefusesWhatIsNotAHeap)
{
	SharedRegion zeros(kSmallRegion);
	struct k_heap heap = {};
	EXPECT_EQ(-EINVAL, k_heap_attach(&heap, zeros.mem(), zeros.bytes()));

	uint64_t seed = TestSeed();
	SCOPED_TRACE(SeedTrace(seed));
	SharedRegion noise(kSmallRegion);
	std::mt19937_64 rng(seed);
	for (size_t i = 0; i < noise.bytes(); i += 8) {
		uint64_t word = rng();
		memcpy(noise.mem() + i, &word, sizeof(word));
	}
	EXPECT_EQ(-EINVAL, k_heap_attach(&heap, noise.mem(), noise.bytes()));

	ASSERT_TRUE(Format(kSmallRegion));
	struct k_heap other = {};
	EXPECT_EQ(-EINVAL, k_heap_attach(nullptr, region_->mem(), region_->bytes()));
	EXPECT_EQ(-EINVAL, k_heap_attach(&other, nullptr, region_->bytes()));
	EXPECT_EQ(-EINVAL, k_heap_detach(&other)) << "a handle that never attached";
	ExpectNoFaults();
}

TEST_F(SharedHeapTest, AttachRefusesAMappingSmallerThanTheHeap)
{
	ASSERT_TRUE(Format(kSmallRegion));
	/* A shorter view of the same memfd at another address, in this process. */
	size_t half = kSmallRegion / 2;
	void *view = mmap(nullptr, half, PROT_READ | PROT_WRITE, MAP_SHARED, region_->fd(), 0);
	ASSERT_NE(MAP_FAILED, view);
	struct k_heap short_handle = {};
	EXPECT_EQ(-ERANGE, k_heap_attach(&short_handle, view, half));
	munmap(view, half);

	/* And in another process. */
	Child child(*region_, 0, half);
	EXPECT_EQ(-ERANGE, child.attach_rc());
	child.Exit();
	EXPECT_TRUE(sys_heap_validate(&heap_.heap));
}

/*
 * Where the region header keeps its fields. k_heap.h documents the first
 * two: the magic "kheapSM1" (8 bytes) at 0 and the layout version (32 bits)
 * at 8. The others mirror struct shared_header in heap/shared.c: the
 * region's size (8 bytes) at 16, which the header's check word covers, and
 * the state word at 60, whose value while formatting is one less than when
 * ready.
 */
constexpr size_t kMagicOffset = 0;
constexpr size_t kVersionOffset = 8;
constexpr size_t kRegionBytesOffset = 16;
constexpr size_t kStateOffset = 60;
constexpr uint32_t kReadyToFormatting = UINT32_MAX;

/* Adds `delta` to the header word of type T at `offset` while it lives. */
template <typename T> class HeaderTamper
{
      public:
	HeaderTamper(uint8_t *region, size_t offset, T delta) : at_(region + offset)
	{
		memcpy(&saved_, at_, sizeof(saved_));
		T changed = static_cast<T>(saved_ + delta);
		memcpy(at_, &changed, sizeof(changed));
	}
	~HeaderTamper()
	{
		memcpy(at_, &saved_, sizeof(saved_));
	}

      private:
	uint8_t *at_;
	T saved_;
};

TEST_F(SharedHeapTest, AttachRefusesAHeaderItCannotTrust)
{
	ASSERT_TRUE(Format(kSmallRegion));
	ASSERT_EQ(0, memcmp(region_->mem() + kMagicOffset, "kheapSM1", 8));
	uint32_t version_word;
	memcpy(&version_word, region_->mem() + kVersionOffset, sizeof(version_word));
	ASSERT_EQ(KHEAP_SHARED_VERSION, version_word);
	struct k_heap other = {};
	{
		HeaderTamper<uint32_t> version(region_->mem(), kVersionOffset, 1);
		EXPECT_EQ(-EPROTO, k_heap_attach(&other, region_->mem(), region_->bytes()));
		Child child(*region_, 0);
		EXPECT_EQ(-EPROTO, child.attach_rc()) << "another layout version";
		child.Exit();
	}
	{
		HeaderTamper<uint64_t> size(region_->mem(), kRegionBytesOffset, 4096);
		EXPECT_EQ(-EINVAL, k_heap_attach(&other, region_->mem(), region_->bytes()))
		    << "a header whose check word does not match it";
	}
	{
		HeaderTamper<uint32_t> state(region_->mem(), kStateOffset, kReadyToFormatting);
		EXPECT_EQ(-EAGAIN, k_heap_attach(&other, region_->mem(), region_->bytes()))
		    << "a region still being formatted";
	}
	{
		HeaderTamper<uint64_t> magic(region_->mem(), kMagicOffset, 1);
		EXPECT_EQ(-EINVAL, k_heap_attach(&other, region_->mem(), region_->bytes()))
		    << "a bad magic";
	}
	/* Restored, the header is accepted again. */
	auto child = Start(1);
	EXPECT_EQ(0, child->attach_rc());
	child->Exit();
	ExpectEmptyHeap();
}

/* A process forked from this one: attaches with a handle of its own, reports
 * the result, and detaches and exits when told to.
 */
class ForkedAttacher
{
      public:
	ForkedAttacher(void *mem, size_t bytes)
	{
		int report[2], release[2];
		EXPECT_EQ(0, pipe2(report, O_CLOEXEC));
		EXPECT_EQ(0, pipe2(release, O_CLOEXEC));
		pid_ = fork();
		if (pid_ == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			struct k_heap mine = {};
			int rc = k_heap_attach(&mine, mem, bytes);
			char go;
			if (write(report[1], &rc, sizeof(rc)) != sizeof(rc) ||
			    read(release[0], &go, 1) != 1)
				_exit(2);
			_exit(rc == 0 && k_heap_detach(&mine) != 0 ? 1 : 0);
		}
		close(report[1]);
		close(release[0]);
		release_ = release[1];
		if (read(report[0], &attach_rc_, sizeof(attach_rc_)) != sizeof(attach_rc_))
			ADD_FAILURE() << "a forked attacher died before reporting";
		close(report[0]);
	}

	~ForkedAttacher()
	{
		if (pid_ > 0)
			Release();
		close(release_);
	}

	int attach_rc() const
	{
		return attach_rc_;
	}

	/* Lets it detach and exit, and reaps it. */
	void Release()
	{
		char go = 1;
		EXPECT_EQ(1, write(release_, &go, 1));
		int status = 0;
		EXPECT_EQ(pid_, waitpid(pid_, &status, 0));
		EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
		pid_ = -1;
	}

	void Kill()
	{
		EXPECT_EQ(0, kill(pid_, SIGKILL));
		EXPECT_EQ(pid_, waitpid(pid_, nullptr, 0));
		pid_ = -1;
	}

      private:
	pid_t pid_ = -1;
	int release_ = -1;
	int attach_rc_ = -1;
};

TEST_F(SharedHeapTest, AttachLimitCountsProcesses)
{
	ASSERT_TRUE(Format(kSmallRegion));
	std::vector<std::unique_ptr<ForkedAttacher>> attached;
	/* This process is attached already. */
	for (int i = 1; i < KHEAP_SHARED_MAX_PROCESSES; i++) {
		attached.push_back(
		    std::make_unique<ForkedAttacher>(region_->mem(), region_->bytes()));
		ASSERT_EQ(0, attached.back()->attach_rc()) << "process " << i + 1;
	}
	ForkedAttacher refused(region_->mem(), region_->bytes());
	EXPECT_EQ(-EUSERS, refused.attach_rc());
	refused.Release();

	/* A process that detaches frees its place. */
	attached.back()->Release();
	attached.pop_back();
	ForkedAttacher replacement(region_->mem(), region_->bytes());
	EXPECT_EQ(0, replacement.attach_rc());

	/* So does a dead one, once reclaimed. */
	attached.back()->Kill();
	attached.pop_back();
	struct k_heap_reclaimed out = {};
	ASSERT_EQ(0, k_heap_reclaim_dead(&heap_, &out));
	EXPECT_EQ(1u, out.processes);
	EXPECT_EQ(0u, out.blocks);
	ForkedAttacher after_reclaim(region_->mem(), region_->bytes());
	EXPECT_EQ(0, after_reclaim.attach_rc());

	replacement.Release();
	after_reclaim.Release();
	for (auto &process : attached)
		process->Release();
	ASSERT_EQ(0, k_heap_reclaim_dead(&heap_, &out));
	EXPECT_EQ(0u, out.processes) << "a process that detached was counted as dead";
	ExpectEmptyHeap();
}

TEST_F(SharedHeapTest, ForkedChildMustAttachItself)
{
	ASSERT_TRUE(Format(kLargeRegion));
	void *parent_block = k_heap_alloc(&heap_, 128, K_NO_WAIT);
	ASSERT_NE(nullptr, parent_block);
	uint32_t parent_tag = k_heap_owner_tag(&heap_);
	ASSERT_NE(0u, parent_tag);
	shared_heap_fill(parent_block, k_heap_usable_size(&heap_, parent_block), parent_tag, 1);

	int report[2];
	ASSERT_EQ(0, pipe2(report, O_CLOEXEC));
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		kheap_set_fault_handler(CountForkedFault);
		ForkResult r = {};
		r.inherited_alloc_succeeded = k_heap_alloc(&heap_, 64, K_NO_WAIT) != nullptr;
		r.faults_from_alloc = g_forked_faults.exchange(0);
		k_heap_free(&heap_, parent_block);
		r.faults_from_free = g_forked_faults.exchange(0);
		struct k_heap mine = {};
		r.attach_rc = k_heap_attach(&mine, region_->mem(), region_->bytes());
		r.tag = k_heap_owner_tag(&mine);
		void *block = k_heap_alloc(&mine, 64, K_NO_WAIT);
		r.alloc_succeeded = block != nullptr;
		r.new_block_owner = k_heap_block_owner(&mine, block);
		r.old_block_owner = k_heap_block_owner(&mine, parent_block);
		k_heap_free(&mine, block);
		r.valid = sys_heap_validate(&mine.heap);
		r.detach_rc = k_heap_detach(&mine);
		r.faults_after_attach = g_forked_faults.load();
		_exit(write(report[1], &r, sizeof(r)) == sizeof(r) ? 0 : 2);
	}
	close(report[1]);
	ASSERT_GT(pid, 0);
	ForkResult r = {};
	EXPECT_EQ(static_cast<ssize_t>(sizeof(r)), read(report[0], &r, sizeof(r)));
	close(report[0]);
	int status = 0;
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;

	EXPECT_FALSE(r.inherited_alloc_succeeded) << "the inherited handle allocated";
	EXPECT_GE(r.faults_from_alloc, 1u) << "the inherited handle did not reach the handler";
	EXPECT_GE(r.faults_from_free, 1u) << "a free through the inherited handle went unnoticed";
	EXPECT_EQ(0, r.attach_rc);
	EXPECT_NE(0u, r.tag);
	EXPECT_NE(parent_tag, r.tag) << "the child shares its parent's owner tag";
	EXPECT_TRUE(r.alloc_succeeded);
	EXPECT_EQ(r.tag, r.new_block_owner);
	EXPECT_EQ(parent_tag, r.old_block_owner);
	EXPECT_TRUE(r.valid);
	EXPECT_EQ(0, r.detach_rc);
	EXPECT_EQ(0u, r.faults_after_attach);

	/* The refused free left the parent's block allocated and intact. */
	EXPECT_TRUE(
	    shared_heap_check(parent_block, k_heap_usable_size(&heap_, parent_block), parent_tag));
	k_heap_free(&heap_, parent_block);
	ExpectEmptyHeap();
}

/* ---- many processes on one heap ---- */

class SharedHeapProcessesTest : public SharedHeapTest,
				public ::testing::WithParamInterface<unsigned int>
{
};

TEST_P(SharedHeapProcessesTest, ProcessesAtDifferentAddressesShareOneHeap)
{
	const unsigned int processes = GetParam();
	constexpr int kRounds = 3;
	constexpr unsigned int kThreads = 4;
	constexpr unsigned int kIterations = 4000;
	constexpr unsigned int kKeepPerThread = 6;
	uint64_t seed = TestSeed();
	SCOPED_TRACE(SeedTrace(seed));
	ASSERT_TRUE(Format(kLargeRegion));

	std::vector<std::unique_ptr<Child>> children;
	std::set<uintptr_t> addresses = {reinterpret_cast<uintptr_t>(region_->mem())};
	std::set<uint32_t> tags = {k_heap_owner_tag(&heap_)};
	for (unsigned int i = 0; i < processes; i++) {
		children.push_back(Start(i));
		ASSERT_EQ(0, children.back()->attach_rc());
		addresses.insert(children.back()->address());
		tags.insert(children.back()->tag());
	}
	EXPECT_EQ(processes + 1, addresses.size()) << "two processes mapped the heap alike";
	EXPECT_EQ(processes + 1, tags.size()) << "two processes share an owner tag";

	/* Each round every child churns on its threads and frees, as it goes,
	 * the blocks its neighbour kept in the round before, while this process
	 * validates the heap over and over.
	 */
	std::vector<std::vector<size_t>> kept(processes);
	for (int round = 0; round < kRounds; round++) {
		std::atomic<bool> churning{true};
		std::atomic<int> invalid{0};
		std::thread checker([&] {
			while (churning.load()) {
				if (!sys_heap_validate(&heap_.heap))
					invalid++;
				std::this_thread::sleep_for(std::chrono::milliseconds(2));
			}
		});
		for (unsigned int i = 0; i < processes; i++) {
			children[i]->Send("churn " + std::to_string(kThreads) + " " +
					  std::to_string(kIterations) + " " +
					  std::to_string(seed + round * processes + i) + " " +
					  std::to_string(kKeepPerThread) +
					  OffsetList(kept[(i + 1) % processes]));
		}
		std::vector<std::vector<size_t>> next(processes);
		for (unsigned int i = 0; i < processes; i++) {
			std::string reply = children[i]->Receive();
			std::vector<std::string> words = Split(reply);
			EXPECT_TRUE(words.size() >= 2 && words[0] == "ok")
			    << "round " << round << ", child " << i << ": " << reply;
			if (words.size() < 2)
				continue;
			EXPECT_GE(Number(words[1]), kThreads * kIterations) << "operations run";
			for (size_t w = 2; w < words.size(); w++)
				next[i].push_back(Number(words[w]));
		}
		churning = false;
		checker.join();
		EXPECT_EQ(0, invalid.load()) << "validate failed during round " << round;
		kept.swap(next);
		for (unsigned int i = 0; i < processes; i++) {
			for (size_t offset : kept[i])
				ExpectFilledBy(offset, children[i]->tag());
		}
	}

	for (unsigned int i = 0; i < processes; i++)
		children[i]->Send("free" + OffsetList(kept[(i + 1) % processes]));
	for (unsigned int i = 0; i < processes; i++) {
		std::string reply = children[i]->Receive();
		EXPECT_EQ("ok", reply) << "child " << i;
	}
	std::vector<Child *> all;
	for (auto &child : children)
		all.push_back(child.get());
	ExpectAllAgree(all);
	EXPECT_EQ(initial_.allocated_bytes, Stats(&heap_).allocated_bytes);
	for (auto &child : children) {
		child->ExpectNoFaults();
		child->Exit();
	}
	ExpectEmptyHeap();
}

INSTANTIATE_TEST_SUITE_P(Processes, SharedHeapProcessesTest, ::testing::Values(2u, 4u),
			 [](const ::testing::TestParamInfo<unsigned int> &info) {
				 return std::to_string(info.param) + "Processes";
			 });

TEST_F(SharedHeapTest, BlockedAllocationIsServedByAnotherProcess)
{
	ASSERT_TRUE(Format(kSmallRegion));
	auto filler = Start(0);
	auto waiter = Start(1);
	auto impatient = Start(2);
	std::vector<std::string> filled = filler->Ok("fill 256");
	ASSERT_EQ(2u, filled.size());
	ASSERT_GT(Number(filled[1]), 4u);
	struct k_heap_counters counters_before = Counters(&heap_);

	waiter->Send("wait_alloc 200 -1");
	ASSERT_TRUE(WaitForWaiters(&heap_, 1)) << "the waiting process never blocked";
	struct sys_memory_stats full = Stats(&heap_);

	/* A wait with a timeout queues behind it, expires and leaves no trace. */
	constexpr int kTimeoutMs = 300;
	std::vector<std::string> expired =
	    Split(impatient->Call("wait_alloc 200 " + std::to_string(kTimeoutMs)));
	ASSERT_EQ(2u, expired.size());
	EXPECT_EQ("null", expired[0]);
	EXPECT_GE(Number(expired[1]), kTimeoutMs * 1000u - 1000u) << "microseconds waited";
	struct sys_memory_stats after_timeout = Stats(&heap_);
	EXPECT_EQ(full.allocated_bytes, after_timeout.allocated_bytes);
	EXPECT_EQ(full.free_bytes + full.cached_bytes,
		  after_timeout.free_bytes + after_timeout.cached_bytes);
	EXPECT_TRUE(sys_heap_validate(&heap_.heap));
	EXPECT_EQ(1u, k_heap_waiter_count(&heap_));
	EXPECT_FALSE(waiter->ReplyPending()) << "the K_FOREVER wait returned on a full heap";

	/* A thread of this process queues behind the waiting process. */
	std::atomic<void *> mine{nullptr};
	std::thread local_waiter([&] { mine = k_heap_alloc(&heap_, 200, K_FOREVER); });
	EXPECT_TRUE(WaitForWaiters(&heap_, 2));

	/* One block freed in the filler serves the first waiter, in another process. */
	EXPECT_EQ("ok 1", filler->Call("freeheld 1"));
	std::vector<std::string> served = Split(waiter->Receive());
	ASSERT_EQ(3u, served.size());
	ASSERT_EQ("ok", served[0]);
	std::vector<Block> block = ParseBlocks({served[1]}, 0);
	ASSERT_EQ(1u, block.size());
	ExpectFilledBy(block[0].offset, waiter->tag());
	EXPECT_EQ(1u, k_heap_waiter_count(&heap_));
	EXPECT_EQ(nullptr, mine.load()) << "the second waiter was served first";

	/* The next freed block serves this process's thread. */
	EXPECT_EQ("ok 1", filler->Call("freeheld 1"));
	local_waiter.join();
	ASSERT_NE(nullptr, mine.load());
	EXPECT_EQ(k_heap_owner_tag(&heap_), k_heap_block_owner(&heap_, mine.load()));
	EXPECT_GE(Counters(&heap_).handoffs - counters_before.handoffs, 2u);

	k_heap_free(&heap_, mine.load());
	EXPECT_EQ("ok", waiter->Call("free " + std::to_string(block[0].offset)));
	filler->Ok("freeheld 1000000");
	ExpectAllAgree({filler.get(), waiter.get(), impatient.get()});
	for (Child *child : {filler.get(), waiter.get(), impatient.get()}) {
		child->ExpectNoFaults();
		child->Exit();
	}
	ExpectEmptyHeap();
}

/* EXTREME turns the caches off for every handle of the heap, not only the
 * one that set it: a second attachment stops caching too.
 */
TEST_F(SharedHeapTest, ExtremeHardeningTurnsCachesOffForEveryHandle)
{
	ASSERT_TRUE(Format(kLargeRegion));
	ASSERT_GT(kheap_testing_cache_count(&heap_), 0u);
	struct k_heap other;
	ASSERT_EQ(0, k_heap_attach(&other, region_->mem(), kLargeRegion));
	void *warm = k_heap_alloc(&other, 64, K_NO_WAIT);
	ASSERT_NE(nullptr, warm);
	k_heap_free(&other, warm);
	k_heap_drain_caches(&heap_);

	ASSERT_EQ(0, k_heap_set_hardening(&heap_, SYS_HEAP_HARDENING_EXTREME));
	struct k_heap_counters before = Counters(&heap_);
	for (int i = 0; i < 32; i++) {
		void *mem = k_heap_alloc(&other, 64, K_NO_WAIT);
		ASSERT_NE(nullptr, mem);
		k_heap_free(&other, mem);
	}
	EXPECT_EQ(0u, Stats(&heap_).cached_bytes) << "a handle kept caching under EXTREME";
	EXPECT_EQ(before.cache_hits, Counters(&heap_).cache_hits);
	EXPECT_EQ(0, k_heap_detach(&other));
}

TEST_F(SharedHeapTest, DetachIsRefusedWhileAThreadWaits)
{
	ASSERT_TRUE(Format(kSmallRegion));
	FilledHeap filled = FillHeap(&heap_, 256);
	ASSERT_FALSE(filled.blocks.empty());
	std::atomic<void *> served{nullptr};
	std::thread waiter([&] { served = k_heap_alloc(&heap_, 200, K_FOREVER); });
	EXPECT_TRUE(WaitForWaiters(&heap_, 1));
	EXPECT_EQ(-EBUSY, k_heap_detach(&heap_));
	k_heap_free(&heap_, filled.blocks.back());
	filled.blocks.pop_back();
	waiter.join();
	ASSERT_NE(nullptr, served.load());
	k_heap_free(&heap_, served.load());
	FreeAll(&heap_, &filled);
	ExpectEmptyHeap();
}

/* ---- processes that die or leave ---- */

TEST_F(SharedHeapTest, BlocksOfAKilledProcessAreReclaimed)
{
	ASSERT_TRUE(Format(kLargeRegion));
	auto victim = Start(0);
	auto survivor = Start(1);
	std::vector<Block> lost = victim->Alloc(6, 300);
	std::vector<Block> kept = survivor->Alloc(3, 100);
	ASSERT_EQ(6u, lost.size());
	ASSERT_EQ(3u, kept.size());
	size_t held = Stats(&heap_).allocated_bytes;
	EXPECT_GE(held, initial_.allocated_bytes + UsableTotal(lost) + UsableTotal(kept));

	victim->Kill();
	EXPECT_EQ(held, Stats(&heap_).allocated_bytes)
	    << "a dead process's blocks must stay allocated until reclaimed";
	EXPECT_NE(victim->tag(), k_heap_owner_tag(&heap_));
	for (const Block &b : lost)
		ExpectFilledBy(b.offset, victim->tag());

	struct k_heap_reclaimed out = {};
	ASSERT_EQ(0, k_heap_reclaim_dead(&heap_, &out));
	EXPECT_EQ(1u, out.processes);
	ExpectReclaimed(out, lost, held);
	EXPECT_EQ(0u, out.waiters);
	EXPECT_TRUE(sys_heap_validate(&heap_.heap));

	ASSERT_EQ(0, k_heap_reclaim_dead(&heap_, &out));
	EXPECT_EQ(0u, out.processes);
	EXPECT_EQ(0u, out.blocks);

	for (const Block &b : kept)
		ExpectFilledBy(b.offset, survivor->tag());
	EXPECT_EQ("ok", survivor->Call("free" + OffsetList(OffsetsOf(kept))));
	ExpectAllAgree({survivor.get()});
	survivor->ExpectNoFaults();
	survivor->Exit();
	ExpectEmptyHeap();
}

TEST_F(SharedHeapTest, ReclaimOwnerFreesTheBlocksOfADetachedProcess)
{
	ASSERT_TRUE(Format(kLargeRegion));
	auto leaver = Start(0);
	std::vector<Block> left = leaver->Alloc(5, 500);
	ASSERT_EQ(5u, left.size());
	size_t held = Stats(&heap_).allocated_bytes;
	EXPECT_EQ("ok 0", leaver->Call("detach"));
	for (const Block &b : left)
		ExpectFilledBy(b.offset, leaver->tag());

	struct k_heap_reclaimed out = {};
	ASSERT_EQ(0, k_heap_reclaim_dead(&heap_, &out));
	EXPECT_EQ(0u, out.processes) << "a live, detached process was taken for dead";
	EXPECT_EQ(0u, out.blocks);

	EXPECT_EQ(-EINVAL, k_heap_reclaim_owner(&heap_, 0, &out));
	ASSERT_EQ(0, k_heap_reclaim_owner(&heap_, leaver->tag(), &out));
	ExpectReclaimed(out, left, held);
	EXPECT_EQ(0u, out.waiters);
	ASSERT_EQ(0, k_heap_reclaim_owner(&heap_, leaver->tag(), nullptr));
	ASSERT_EQ(0, k_heap_reclaim_owner(&heap_, leaver->tag(), &out));
	EXPECT_EQ(0u, out.blocks) << "a second reclaim found blocks again";

	leaver->ExpectNoFaults();
	leaver->Exit();
	ExpectEmptyHeap();
}

TEST_F(SharedHeapTest, WaitOfAKilledProcessIsRemovedByReclaimDead)
{
	ASSERT_TRUE(Format(kSmallRegion));
	FilledHeap filled = FillHeap(&heap_, 256);
	ASSERT_GT(filled.blocks.size(), 2u);
	auto doomed = Start(0);
	auto patient = Start(1);
	doomed->Send("wait_alloc 200 -1");
	ASSERT_TRUE(WaitForWaiters(&heap_, 1));
	patient->Send("wait_alloc 200 -1");
	ASSERT_TRUE(WaitForWaiters(&heap_, 2));

	doomed->Kill();
	EXPECT_EQ(2u, k_heap_waiter_count(&heap_)) << "the dead wait stays queued until reclaimed";
	struct k_heap_reclaimed out = {};
	ASSERT_EQ(0, k_heap_reclaim_dead(&heap_, &out));
	EXPECT_EQ(1u, out.processes);
	EXPECT_EQ(1u, out.waiters);
	EXPECT_EQ(0u, out.blocks);
	EXPECT_EQ(1u, k_heap_waiter_count(&heap_));

	/* The first free now serves the live waiter, not the dead one. */
	k_heap_free(&heap_, filled.blocks.back());
	filled.blocks.pop_back();
	std::vector<std::string> served = Split(patient->Receive());
	ASSERT_EQ(3u, served.size());
	ASSERT_EQ("ok", served[0]);
	std::vector<Block> block = ParseBlocks({served[1]}, 0);
	ASSERT_EQ(1u, block.size());
	EXPECT_EQ(0u, k_heap_waiter_count(&heap_));
	EXPECT_EQ("ok", patient->Call("free " + std::to_string(block[0].offset)));
	FreeAll(&heap_, &filled);
	ExpectAllAgree({patient.get()});
	patient->ExpectNoFaults();
	patient->Exit();
	ExpectEmptyHeap();
}

TEST_F(SharedHeapTest, DeathHoldingTheHeapLockIsRecovered)
{
	SKIP_WITHOUT_ROBUST_LOCKS();
	ASSERT_TRUE(Format(kLargeRegion));
	ExpectRecoveryAfterDeath("hold heap", 3);
}

TEST_F(SharedHeapTest, DeathInTheMiddleOfAnAllocationIsRepaired)
{
	SKIP_WITHOUT_ROBUST_LOCKS();
	ASSERT_TRUE(Format(kLargeRegion));
	ExpectRecoveryAfterDeath("hold mid_alloc", 2);
}

TEST_F(SharedHeapTest, DeathInTheMiddleOfAnUpdateBreaksTheHeapEverywhere)
{
	SKIP_WITHOUT_ROBUST_LOCKS();
	ASSERT_TRUE(Format(kLargeRegion));
	auto victim = Start(0);
	auto bystander = Start(1);
	void *mine = k_heap_alloc(&heap_, kUncachedBytes, K_NO_WAIT);
	ASSERT_NE(nullptr, mine);
	ASSERT_EQ(2u, victim->Alloc(2, 300).size());
	EXPECT_EQ("held", victim->Call("hold mid_update"));
	victim->Kill();

	/* This process locks the heap next: it finds the damage and refuses. */
	EXPECT_EQ(nullptr, k_heap_alloc(&heap_, kUncachedBytes, K_NO_WAIT));
	std::vector<Fault> faults = TakeFaults();
	EXPECT_FALSE(faults.empty()) << "the broken heap was not reported";
	for (const Fault &fault : faults)
		EXPECT_EQ(KHEAP_FAULT_CORRUPT_HEAP, fault.kind) << fault;

	/* Every later operation, on any path, is refused the same way. */
	EXPECT_EQ(nullptr, k_heap_alloc(&heap_, 64, K_NO_WAIT));
	k_heap_free(&heap_, mine);
	faults = TakeFaults();
	EXPECT_GE(faults.size(), 2u) << "an alloc and a free on the broken heap";
	for (const Fault &fault : faults)
		EXPECT_EQ(KHEAP_FAULT_CORRUPT_HEAP, fault.kind) << fault;

	/* In the other processes too. */
	EXPECT_EQ(0u, bystander->Alloc(1, 64).size());
	std::vector<std::string> theirs = bystander->Ok("faults");
	ASSERT_EQ(3u, theirs.size());
	EXPECT_GE(Number(theirs[1]), 1u);
	EXPECT_EQ(std::to_string(KHEAP_FAULT_CORRUPT_HEAP), theirs[2]);

	struct k_heap late = {};
	EXPECT_EQ(-ENOTRECOVERABLE, k_heap_attach(&late, region_->mem(), region_->bytes()));
	Child newcomer(*region_, 2);
	EXPECT_EQ(-ENOTRECOVERABLE, newcomer.attach_rc());
	newcomer.Exit();

	/* Leaving a broken heap is allowed; what it reports is not examined. */
	bystander->Exit(false);
	k_heap_detach(&heap_);
	attached_ = false;
	TakeFaults();
}

/* The last CPU this process may use that has a cache slot in `heap`. */
int CachedCpu(struct k_heap *heap)
{
	unsigned int caches = kheap_testing_cache_count(heap);
	std::vector<int> cpus = AllowedCpus();
	for (auto cpu = cpus.rbegin(); cpu != cpus.rend(); ++cpu) {
		if (static_cast<unsigned int>(*cpu) < caches)
			return *cpu;
	}
	return -1;
}

TEST_F(SharedHeapTest, DeathHoldingACacheLockIsRecovered)
{
	SKIP_WITHOUT_ROBUST_LOCKS();
	ASSERT_TRUE(Format(kLargeRegion));
	int cpu = CachedCpu(&heap_);
	ASSERT_GE(cpu, 0) << "no CPU of this process has a cache in a " << kLargeRegion / 1024
			  << " KiB heap";
	struct k_heap_counters before = Counters(&heap_);
	std::vector<Block> lost;
	ASSERT_NO_FATAL_FAILURE(KillCacheLockHolder(cpu, "hold cache", &lost));

	/* The next user of that CPU's cache recovers its lock and uses it. */
	ChurnOnCpu(cpu);
	ExpectNoFaults();
	EXPECT_GT(Counters(&heap_).cache_hits, before.cache_hits)
	    << "the cache of CPU " << cpu << " was not used again";
	EXPECT_EQ(before.recoveries + 1, Counters(&heap_).recoveries)
	    << "the cache lock was not counted as taken over";
	EXPECT_TRUE(sys_heap_validate(&heap_.heap));

	size_t held = Stats(&heap_).allocated_bytes;
	struct k_heap_reclaimed out = {};
	ASSERT_EQ(0, k_heap_reclaim_dead(&heap_, &out));
	EXPECT_EQ(1u, out.processes);
	ExpectReclaimed(out, lost, held);
	ExpectEmptyHeap();
}

TEST_F(SharedHeapTest, DeathInTheMiddleOfACachePopIsUndone)
{
	SKIP_WITHOUT_ROBUST_LOCKS();
	ASSERT_TRUE(Format(kLargeRegion));
	int cpu = CachedCpu(&heap_);
	ASSERT_GE(cpu, 0) << "no CPU of this process has a cache in a " << kLargeRegion / 1024
			  << " KiB heap";
	std::vector<Block> lost;
	ASSERT_NO_FATAL_FAILURE(KillCacheLockHolder(cpu, "hold mid_pop", &lost));
	ChurnOnCpu(cpu);
	ExpectNoFaults();
	EXPECT_TRUE(sys_heap_validate(&heap_.heap));

	/* Whether the half-popped block went back to the cache or to the heap,
	 * after the dead process's blocks are reclaimed nothing is missing.
	 */
	struct k_heap_reclaimed out = {};
	ASSERT_EQ(0, k_heap_reclaim_dead(&heap_, &out));
	EXPECT_EQ(1u, out.processes);
	EXPECT_GE(out.blocks, lost.size());
	EXPECT_LE(out.blocks, lost.size() + 1) << "more than the half-popped block came back";
	ExpectEmptyHeap();
}

/* ---- randomized ---- */

TEST_F(SharedHeapTest, RandomizedChurnAcrossProcesses)
{
	uint64_t seed = TestSeed();
	SCOPED_TRACE(SeedTrace(seed));
	std::mt19937_64 rng(seed);
	auto pick = [&rng](uint64_t n) { return rng() % n; };
	constexpr unsigned int kProcesses = 3;
	constexpr int kRounds = 6;
	ASSERT_TRUE(Format(kLargeRegion));

	unsigned int next_index = 0;
	std::vector<std::unique_ptr<Child>> children;
	for (unsigned int i = 0; i < kProcesses; i++)
		children.push_back(Start(next_index++));
	for (auto &child : children)
		ASSERT_EQ(0, child->attach_rc());

	/* Blocks kept by some process, waiting for any process to free them. */
	struct Pending {
		size_t offset;
		uint32_t owner;
	};
	std::vector<Pending> pending;
	for (int round = 0; round < kRounds; round++) {
		SCOPED_TRACE("round " + std::to_string(round));
		std::shuffle(pending.begin(), pending.end(), rng);
		std::vector<std::vector<size_t>> to_free(kProcesses);
		std::vector<Pending> for_me;
		for (const Pending &p : pending) {
			uint64_t who = pick(kProcesses + 1);
			if (who == kProcesses)
				for_me.push_back(p);
			else
				to_free[who].push_back(p.offset);
		}
		pending.clear();
		for (unsigned int i = 0; i < kProcesses; i++) {
			children[i]->Send("churn " + std::to_string(1 + pick(4)) + " " +
					  std::to_string(200 + pick(1200)) + " " +
					  std::to_string(rng()) + " " + std::to_string(pick(9)) +
					  OffsetList(to_free[i]));
		}
		/* This process frees its share while the children churn. */
		for (const Pending &p : for_me) {
			ExpectFilledBy(p.offset, p.owner);
			k_heap_free(&heap_, At(p.offset));
		}
		for (unsigned int i = 0; i < kProcesses; i++) {
			std::string reply = children[i]->Receive();
			std::vector<std::string> words = Split(reply);
			ASSERT_TRUE(!words.empty() && words[0] == "ok")
			    << "child " << i << ": " << reply;
			for (size_t w = 2; w < words.size(); w++)
				pending.push_back(
				    {static_cast<size_t>(Number(words[w])), children[i]->tag()});
		}
		for (const Pending &p : pending)
			ExpectFilledBy(p.offset, p.owner);

		/* Now and then a process leaves and another takes its place; the
		 * blocks it leaves behind are either freed by the others later or
		 * reclaimed by tag at once.
		 */
		if (pick(3) == 0) {
			unsigned int leaving = static_cast<unsigned int>(pick(kProcesses));
			uint32_t tag = children[leaving]->tag();
			children[leaving]->ExpectNoFaults();
			children[leaving]->Exit();
			children[leaving] = Start(next_index++);
			ASSERT_EQ(0, children[leaving]->attach_rc());
			if (pick(2) == 0) {
				auto theirs = std::stable_partition(
				    pending.begin(), pending.end(),
				    [tag](const Pending &p) { return p.owner != tag; });
				size_t blocks = static_cast<size_t>(pending.end() - theirs);
				pending.erase(theirs, pending.end());
				size_t held = Stats(&heap_).allocated_bytes;
				struct k_heap_reclaimed out = {};
				ASSERT_EQ(0, k_heap_reclaim_owner(&heap_, tag, &out));
				EXPECT_EQ(blocks, out.blocks) << "reclaiming a departed process's "
								 "tag (cached blocks included?)";
				EXPECT_EQ(held - out.bytes, Stats(&heap_).allocated_bytes);
			}
		}
		EXPECT_TRUE(sys_heap_validate(&heap_.heap));
	}

	for (const Pending &p : pending) {
		ExpectFilledBy(p.offset, p.owner);
		k_heap_free(&heap_, At(p.offset));
	}
	std::vector<Child *> all;
	for (auto &child : children)
		all.push_back(child.get());
	ExpectAllAgree(all);
	for (auto &child : children) {
		child->ExpectNoFaults();
		child->Exit();
	}
	ExpectEmptyHeap();
}

} // namespace
