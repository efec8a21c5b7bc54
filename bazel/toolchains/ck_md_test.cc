/*
 * Checks that the ck_md.h this build compiles against describes the target's
 * memory model. The Arm toolchains put a per-target Concurrency Kit sysroot
 * ahead of /usr/include; if the host's x86 ck_md.h (CK_MD_TSO) reached an Arm
 * build instead, CK would leave out the barriers Arm needs, and every other
 * test could still pass on an emulator or a lucky run.
 */
#include <ck_md.h>
#include <gtest/gtest.h>

#include <string>

namespace
{

std::string CkMemoryModel()
{
#if defined(CK_MD_RMO)
	return "RMO";
#elif defined(CK_MD_PSO)
	return "PSO";
#elif defined(CK_MD_TSO)
	return "TSO";
#else
	return "unset";
#endif
}

/* Empty when this file knows nothing about the target. */
std::string TargetMemoryModel()
{
#if defined(__x86_64__) || defined(__i386__)
	return "TSO";
#elif defined(__aarch64__) || defined(__arm__)
	return "RMO";
#else
	return "";
#endif
}

TEST(CkMdTest, MemoryModelMatchesTheTarget)
{
	if (TargetMemoryModel().empty())
		GTEST_SKIP() << "no known memory model for this target";
	EXPECT_EQ(TargetMemoryModel(), CkMemoryModel());
}

} // namespace
