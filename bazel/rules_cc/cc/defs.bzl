"""Binds the rules_cc names to Bazel's native C/C++ rules.

Debian's rules_cc is newer than the Bazel it ships; this stand-in keeps the
default WORKSPACE suffix from trying to download it.
"""

cc_binary = native.cc_binary
cc_import = native.cc_import
cc_library = native.cc_library
cc_test = native.cc_test
cc_toolchain = native.cc_toolchain
cc_toolchain_suite = native.cc_toolchain_suite
