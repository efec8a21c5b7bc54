#!/usr/bin/env python3
"""Counts GoogleTest cases from Bazel's test.xml files.

Prints one line, "N passed, M failed", over every test.xml under the given
directories (each a bazel-testlogs of one configuration). A test binary that crashed or timed out before
writing its own report gets a synthetic test.xml from Bazel with a failing
case, so it is counted as a failure, never silently dropped. Results of checks
that are not GoogleTest binaries ("name=pass" or "name=fail" arguments) are
added to the counts.
"""
import pathlib
import sys
import xml.etree.ElementTree as ElementTree


def reports(root):
    """The test.xml files of the last invocation of each test under root.

    A test's own test.xml is what `bazel test` without --runs_per_test wrote;
    run_N_of_M/ beside it are left over from an earlier invocation with
    --runs_per_test and are not counted again.
    """
    for report in sorted(pathlib.Path(root).rglob("test.xml")):
        run_dir = report.parent
        if run_dir.name.startswith("run_") and (run_dir.parent / "test.xml").exists():
            continue
        yield report


def count(root):
    passed = failed = skipped = 0
    for report in reports(root):
        try:
            tree = ElementTree.parse(report)
        except ElementTree.ParseError:
            print(f"unreadable test report: {report}", file=sys.stderr)
            failed += 1
            continue
        cases = tree.getroot().iter("testcase")
        for case in cases:
            if case.find("failure") is not None or case.find("error") is not None:
                failed += 1
                print(f"FAILED: {report.parent.name}: {case.get('classname')}.{case.get('name')}",
                      file=sys.stderr)
            elif case.get("status") == "notrun" or case.get("result") == "skipped" \
                    or case.find("skipped") is not None:
                skipped += 1
            else:
                passed += 1
    return passed, failed, skipped


def main():
    passed = failed = skipped = 0
    checks = [arg for arg in sys.argv[1:] if "=" in arg]
    for root in (arg for arg in sys.argv[1:] if "=" not in arg):
        counts = count(root)
        passed += counts[0]
        failed += counts[1]
        skipped += counts[2]
    for extra in checks:
        name, _, outcome = extra.partition("=")
        if outcome == "pass":
            passed += 1
        else:
            failed += 1
            print(f"FAILED: {name}", file=sys.stderr)
    line = f"{passed} passed, {failed} failed"
    if skipped:
        line += f", {skipped} skipped"
    print(line)
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
