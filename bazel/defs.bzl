"""Compiler options for every kheap target, defined once.

Each macro wraps the native rule and applies the project's warnings, so no
BUILD file repeats them. Visibility stays private unless a target widens it.
"""

KHEAP_C_WARNINGS = [
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wshadow",
    "-Wstrict-prototypes",
    "-Wmissing-prototypes",
]

KHEAP_CXX_WARNINGS = [
    "-Wall",
    "-Wextra",
    "-Werror",
]

def kheap_c_library(name, copts = [], **kwargs):
    native.cc_library(
        name = name,
        copts = KHEAP_C_WARNINGS + copts,
        **kwargs
    )

def kheap_c_binary(name, copts = [], **kwargs):
    native.cc_binary(
        name = name,
        copts = KHEAP_C_WARNINGS + copts,
        **kwargs
    )

def kheap_c_test(name, copts = [], **kwargs):
    """A test written in plain C that reports failure by its exit status."""
    native.cc_test(
        name = name,
        copts = KHEAP_C_WARNINGS + copts,
        **kwargs
    )

def kheap_cc_test(name, copts = [], deps = [], **kwargs):
    native.cc_test(
        name = name,
        copts = KHEAP_CXX_WARNINGS + copts,
        deps = deps + ["@system//:gtest_main"],
        **kwargs
    )

def kheap_cc_binary(name, copts = [], **kwargs):
    native.cc_binary(
        name = name,
        copts = KHEAP_CXX_WARNINGS + copts,
        **kwargs
    )
