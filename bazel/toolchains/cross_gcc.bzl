"""C/C++ toolchains for Debian's Arm cross compilers, one macro per target.

A toolchain here is Debian's `<triplet>-gcc` plus what tools/setup_cross.sh
installs for that target:
  - GoogleTest, liburcu and Google Benchmark for the target through multiarch,
    under /usr/lib/<triplet> and /usr/include/<triplet>, which the Debian cross
    gcc already searches;
  - Concurrency Kit unpacked into KHEAP_SYSROOTS/<name>, because CK's ck_md.h
    differs per architecture and cannot be installed side by side. Its
    usr/include is put ahead of /usr/include (the host's ck_md.h describes x86
    as TSO and would drop barriers Arm needs), and its library folder is on
    the linker's search path.

The compile and link flags follow Bazel's autoconfigured host toolchain, so a
cross build differs from a native one only in the target, not in warnings,
hardening or optimisation. The linker is the cross binutils' default one,
found by the gcc driver; nothing points it at the host's /usr/bin.
"""

load("@bazel_tools//tools/cpp:unix_cc_toolchain_config.bzl", "cc_toolchain_config")

# Where tools/setup_cross.sh unpacks each target's Concurrency Kit.
KHEAP_SYSROOTS = "/opt/kheap-sysroots"

_TOOLS = ["ar", "cpp", "dwp", "gcc", "gcov", "ld", "nm", "objcopy", "objdump", "strip"]

def kheap_cross_gcc_toolchain(name, triplet, cpu, cpu_constraint, sysroot_name, target_copts = []):
    """Declares a cc_toolchain for one Arm target and its toolchain() registration.

    Args:
      name: short target name; the toolchain() is named `name`.
      triplet: the GNU triplet of Debian's cross compiler (aarch64-linux-gnu).
      cpu: Bazel's cpu string for the target.
      cpu_constraint: the @platforms//cpu constraint the toolchain serves.
      sysroot_name: the folder under KHEAP_SYSROOTS holding this target's CK.
      target_copts: code-generation flags every compile for this target gets.
    """
    ck_root = KHEAP_SYSROOTS + "/" + sysroot_name
    tool_paths = {tool: "/usr/bin/%s-%s" % (triplet, tool) for tool in _TOOLS}

    # No llvm-cov for the cross targets; coverage runs natively.
    tool_paths["llvm-cov"] = "/bin/false"

    cc_toolchain_config(
        name = name + "_config",
        cpu = cpu,
        compiler = "gcc",
        toolchain_identifier = triplet + "-gcc",
        host_system_name = "x86_64-linux-gnu",
        target_system_name = triplet,
        target_libc = "glibc",
        abi_version = "gcc",
        abi_libc_version = "glibc",
        cxx_builtin_include_directories = [
            ck_root + "/usr/include",
            "/usr/lib/gcc-cross/" + triplet,
            "/usr/" + triplet + "/include",
            "/usr/include",
        ],
        tool_paths = tool_paths,
        compile_flags = target_copts + [
            "-isystem",
            ck_root + "/usr/include",
            "-U_FORTIFY_SOURCE",
            "-fstack-protector",
            "-Wall",
            "-Wunused-but-set-parameter",
            "-Wno-free-nonheap-object",
            "-fno-omit-frame-pointer",
        ],
        opt_compile_flags = [
            "-g0",
            "-O2",
            "-D_FORTIFY_SOURCE=1",
            "-DNDEBUG",
            "-ffunction-sections",
            "-fdata-sections",
        ],
        dbg_compile_flags = ["-g"],
        cxx_flags = ["-std=c++17"],
        link_flags = target_copts + [
            "-L" + ck_root + "/usr/lib/" + triplet,
            "-Wl,-no-as-needed",
            "-Wl,-z,relro,-z,now",
            "-pass-exit-codes",
        ],
        link_libs = [
            "-lstdc++",
            "-lm",
        ],
        opt_link_flags = ["-Wl,--gc-sections"],
        unfiltered_compile_flags = [
            "-fno-canonical-system-headers",
            "-Wno-builtin-macro-redefined",
            "-D__DATE__=\"redacted\"",
            "-D__TIMESTAMP__=\"redacted\"",
            "-D__TIME__=\"redacted\"",
        ],
        coverage_compile_flags = ["--coverage"],
        coverage_link_flags = ["--coverage"],
        supports_start_end_lib = False,
    )

    # The compiler and libraries are system files outside Bazel's view, so the
    # toolchain carries no files of its own.
    native.cc_toolchain(
        name = name + "_cc_toolchain",
        all_files = ":empty",
        ar_files = ":empty",
        as_files = ":empty",
        compiler_files = ":empty",
        dwp_files = ":empty",
        linker_files = ":empty",
        objcopy_files = ":empty",
        strip_files = ":empty",
        supports_param_files = True,
        toolchain_config = ":" + name + "_config",
        toolchain_identifier = triplet + "-gcc",
    )

    native.toolchain(
        name = name,
        exec_compatible_with = [
            "@platforms//cpu:x86_64",
            "@platforms//os:linux",
        ],
        target_compatible_with = [
            cpu_constraint,
            "@platforms//os:linux",
        ],
        toolchain = ":" + name + "_cc_toolchain",
        toolchain_type = "@bazel_tools//tools/cpp:toolchain_type",
    )
