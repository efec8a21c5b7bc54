#!/usr/bin/env bash
# Runs real programs twice, on the system allocator and with
# LD_PRELOAD=libkheap_malloc.so, and requires the same standard output and
# exit status from both runs. Each preloaded run must also leave the
# library's statistics line (KHEAP_MALLOC_STATS) from at least one process,
# which proves the preload took effect.
#
# Programs: python3 building and parsing a large JSON document; python3's
# sqlite3 module inserting 100k rows; python3 forking while its threads
# allocate; sort of a generated 30 MB file (in memory, and with temporary
# files); gcc compiling and running a small program (only if gcc exists);
# git committing a file in a fresh repository; this package's
# multi-threaded malloc_threads; python3 under an address-space limit; and
# a program that allocates from a preinit_array function, before libc has
# set up the environment.
#
# Usage: preload_programs_test.sh LIBKHEAP_MALLOC_SO MALLOC_THREADS MALLOC_PREINIT
# Writes a JUnit report to $XML_OUTPUT_FILE (one case per program) when
# Bazel sets it, and ends with "N passed, M failed".
set -uo pipefail

if [[ $# -ne 3 ]]; then
	echo "usage: $0 LIBKHEAP_MALLOC_SO MALLOC_THREADS MALLOC_PREINIT" >&2
	exit 2
fi
absolute() { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
library="$(absolute "$1")"
threads_program="$(absolute "$2")"
preinit_program="$(absolute "$3")"
python=/usr/bin/python3

work="$(mktemp -d "${TEST_TMPDIR:-/tmp}/preload.XXXXXX")"
trap 'rm -rf "$work"' EXIT
export LC_ALL=C

passed=0
failed=0
cases=""

record() {
	local name=$1 outcome=$2 message=${3:-}
	if [[ $outcome == pass ]]; then
		passed=$((passed + 1))
		cases+="<testcase classname=\"preload\" name=\"$name\"/>"
		echo "ok: $name"
	else
		failed=$((failed + 1))
		message="${message//&/&amp;}"
		message="${message//</&lt;}"
		message="${message//\"/&quot;}"
		cases+="<testcase classname=\"preload\" name=\"$name\"><failure message=\"$message\"/></testcase>"
		echo "FAIL: $name: $message"
	fi
}

# compare NAME FUNCTION: runs FUNCTION once as "plain" and once as
# "preload" in its own folder; FUNCTION runs its programs through "$run".
compare() {
	local name=$1 function=$2 mode status plain_status stats
	for mode in plain preload; do
		mkdir -p "$work/$name.$mode"
		stats="$work/$name.stats"
		if [[ $mode == plain ]]; then
			run=(env)
		else
			run=(env "LD_PRELOAD=$library" "KHEAP_MALLOC_STATS=$stats")
		fi
		local start=$SECONDS
		(cd "$work/$name.$mode" && "$function") >"$work/$name.$mode.out" 2>"$work/$name.$mode.err"
		status=$?
		echo "  $name ($mode): exit $status, $((SECONDS - start)) s"
		if [[ $mode == plain ]]; then
			plain_status=$status
		fi
	done
	if [[ $status -ne $plain_status ]]; then
		record "$name" fail "exit status $plain_status without the preload, $status with it: $(tail -c 600 "$work/$name.preload.err")"
	elif ! cmp -s "$work/$name.plain.out" "$work/$name.preload.out"; then
		record "$name" fail "output differs: $(diff "$work/$name.plain.out" "$work/$name.preload.out" | head -c 600)"
	elif [[ ! -s "$work/$name.plain.out" ]]; then
		record "$name" fail "no output at all (exit $status): $(tail -c 600 "$work/$name.plain.err")"
	elif ! grep -q '^kheap_malloc: pid [0-9]*: region' "$stats" 2>/dev/null; then
		record "$name" fail "no statistics line: the preload did not take effect"
	else
		record "$name" pass
	fi
}

python_json() {
	"${run[@]}" "$python" - <<'EOF'
import hashlib, json, random
random.seed(7)
data = [{"id": i, "name": "item-%d" % i, "tags": ["t%d" % (i % 17), "u%d" % (i % 5)],
         "score": random.random(), "nested": {"a": [i] * 5, "b": str(i) * 3}}
        for i in range(80000)]
text = json.dumps(data, sort_keys=True, indent=1)
back = json.loads(text)
assert back == data
print(len(text), hashlib.sha256(text.encode()).hexdigest(), sum(d["id"] for d in back))
EOF
}

python_sqlite() {
	"${run[@]}" "$python" - <<'EOF'
import hashlib, sqlite3
db = sqlite3.connect("rows.db")
db.execute("create table t (id integer primary key, name text, value real, data blob)")
with db:
    db.executemany("insert into t values (?, ?, ?, ?)",
                   ((i, "name%06d" % (i * 7919 % 100000), i * 0.5, bytes([i % 251]) * (i % 64))
                    for i in range(100000)))
db.execute("create index t_name on t(name)")
print(db.execute("select count(*), sum(value), sum(length(data)) from t").fetchone())
print(db.execute("select id from t where name between 'name099990' and 'name099999'").fetchall())
digest = hashlib.sha256()
for row in db.execute("select * from t order by name"):
    digest.update(repr(row).encode())
print(digest.hexdigest())
db.close()
EOF
}

python_fork() {
	"${run[@]}" "$python" - <<'EOF'
import os, threading
stop = threading.Event()
def churn(seed):
    while not stop.is_set():
        blobs = [bytes([seed]) * (n * 37 % 5000) for n in range(200)]
        table = {str(n): blobs[n] for n in range(len(blobs))}
        del blobs, table
threads = [threading.Thread(target=churn, args=(s,)) for s in range(4)]
for t in threads:
    t.start()
results = []
for child in range(20):
    pid = os.fork()
    if pid == 0:
        words = {"w%d" % n: "x" * (n % 300) for n in range(20000)}
        os._exit(sum(len(v) for v in words.values()) % 251)
    _, status = os.waitpid(pid, 0)
    results.append(os.waitstatus_to_exitcode(status))
stop.set()
for t in threads:
    t.join()
print(results)
EOF
}

make_sort_input() {
	"$python" - >"$work/sort.input" <<'EOF'
import random
random.seed(11)
letters = "abcdefghijklmnopqrstuvwxyz"
for i in range(600000):
    word = "".join(random.choice(letters) for _ in range(random.randint(4, 24)))
    print(f"{word} {random.randint(0, 10**9)} {i}")
EOF
}

sort_lines() {
	"${run[@]}" sort "$work/sort.input" | sha256sum
	"${run[@]}" sort -k2,2n -k3,3n "$work/sort.input" | sha256sum
	mkdir -p tmp
	"${run[@]}" sort -S 1M -T tmp --parallel=2 -r "$work/sort.input" | sha256sum
}

gcc_compile() {
	cat >program.c <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct node { struct node *next; char name[32]; };

int main(void)
{
	struct node *list = NULL;
	unsigned long sum = 0;
	for (int i = 0; i < 1000; i++) {
		struct node *n = malloc(sizeof(*n));
		snprintf(n->name, sizeof(n->name), "node-%d", i * 37 % 1000);
		n->next = list;
		list = n;
	}
	while (list != NULL) {
		struct node *next = list->next;
		sum = sum * 31 + strlen(list->name);
		free(list);
		list = next;
	}
	printf("checksum %lu\n", sum);
	return 0;
}
EOF
	"${run[@]}" gcc -O2 -Wall -Wextra -S -o - program.c | sha256sum
	"${run[@]}" gcc -O2 -Wall -Wextra -o program program.c && "${run[@]}" ./program
}

git_commit() {
	export HOME="$PWD" GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=kheap GIT_AUTHOR_EMAIL=kheap@example.com
	export GIT_COMMITTER_NAME=kheap GIT_COMMITTER_EMAIL=kheap@example.com
	export GIT_AUTHOR_DATE="2024-01-02T03:04:05Z" GIT_COMMITTER_DATE="2024-01-02T03:04:05Z"
	"${run[@]}" git init -q -b main repo && cd repo || return 1
	seq 1 20000 >numbers.txt
	printf 'kheap\n' >README
	"${run[@]}" git add numbers.txt README &&
		"${run[@]}" git commit -q -m "first commit" &&
		sed -i 's/^1$/one/' numbers.txt &&
		"${run[@]}" git commit -q -a -m "second commit" &&
		"${run[@]}" git log --format='%H %s' &&
		"${run[@]}" git show --stat --format=%T HEAD &&
		"${run[@]}" git fsck --strict 2>&1 &&
		"${run[@]}" git gc -q 2>&1 &&
		"${run[@]}" git count-objects -v | grep -v size
}

# Under a 1000000 KiB address-space limit the region must leave the
# program room (it takes at most a quarter) and the program must still work.
limited_python() {
	ulimit -v 1000000 || return 1
	"${run[@]}" "$python" -c 'import json; d = {str(i): [i] * 50 for i in range(60000)}; print(len(json.dumps(d)))'
}

threads_program_runs() {
	"${run[@]}" "$threads_program" 24 3 2000
}

preinit_allocation() {
	"${run[@]}" KHEAP_MALLOC_HEAP_SIZE=32M "$preinit_program"
}

make_sort_input

compare python_json python_json
compare python_sqlite python_sqlite
compare python_fork python_fork
compare sort sort_lines
if command -v gcc >/dev/null; then
	compare gcc gcc_compile
else
	echo "skip: gcc is not installed"
fi
compare git git_commit
compare limited limited_python
compare malloc_threads threads_program_runs
compare preinit preinit_allocation

# The preloaded run of malloc_threads saw the library in its own maps; the
# plain one did not. The early allocation read the heap size from the
# environment that libc had not yet set up.
if grep -qx 'libkheap_malloc mapped: yes' "$work/malloc_threads.preload.err" &&
	grep -qx 'libkheap_malloc mapped: no' "$work/malloc_threads.plain.err"; then
	record malloc_threads_maps pass
else
	record malloc_threads_maps fail "/proc/self/maps does not show the preload as expected"
fi
region_mib="$(sed -n 's/.* region \([0-9]*\) MiB.*/\1/p' "$work/limited.stats" | head -n 1)"
if [[ -n "$region_mib" && "$region_mib" -le $((1000000 / 1024 / 4)) ]]; then
	record limited_region pass
else
	record limited_region fail "region of ${region_mib:-?} MiB under a 976 MiB address-space limit"
fi
if grep -q 'region 32 MiB' "$work/preinit.stats"; then
	record preinit_heap_size pass
else
	record preinit_heap_size fail "the heap size set for the early allocation was not used: $(cat "$work/preinit.stats")"
fi

if [[ -n "${XML_OUTPUT_FILE:-}" ]]; then
	printf '<?xml version="1.0" encoding="UTF-8"?>\n<testsuites><testsuite name="preload_programs" tests="%d" failures="%d">%s</testsuite></testsuites>\n' \
		$((passed + failed)) "$failed" "$cases" >"$XML_OUTPUT_FILE"
fi
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
