#!/usr/bin/env bash
# The ASan + UBSan suites (issue 18): builds build-asan/ with
# QSLAW_SANITIZE=address,undefined and the libFuzzer harnesses, then runs
# GoogleTest, lit, the bad-input pytest suites, and each fuzz harness (its
# committed corpus and crashers, then QSLAW_FUZZ_SECONDS of fuzzing).
# JUnit reports go to $1 (default build/test-results).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/test-results}
mkdir -p "$out"
B=build-asan
# The build is a test case of its own, so that a failure to build is
# counted by the summary rather than silently dropping the suites.
build_ok=1
QSLAW_SANITIZE=address,undefined QSLAW_BUILD_DIR=$B bash scripts/build.sh || build_ok=0
.venv/bin/python - "$out/sanitize-build.xml" "$build_ok" <<'PY'
import sys, xml.etree.ElementTree as ET
s = ET.Element("testsuite", name="sanitize")
c = ET.SubElement(s, "testcase", classname="sanitize", name="build-asan (ASan + UBSan + libFuzzer)")
if sys.argv[2] != "1":
    ET.SubElement(c, "failure", message="the sanitizer build failed; see the log above")
ET.ElementTree(s).write(sys.argv[1])
PY
[ "$build_ok" = 1 ] || exit 1

# allow_user_poisoning=0: LLVM's headers poison BumpPtrAllocator memory in
# instrumented code, and Debian's uninstrumented libMLIR.so, sharing the
# same allocators, never unpoisons it (a false use-after-poison).
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export ASAN_OPTIONS=allow_user_poisoning=0
echo "== gtest (ASan + UBSan, leak checks on) =="
$B/bin/qslaw-unittests --gtest_brief=1 --gtest_output="xml:$out/gtest-asan.xml"

# lit and pytest run tools we do not build (python, ld, onnxruntime), so the
# ASan runtime is preloaded into every process and leak checking is off
# there (ld and python leak by design); the fuzzers and GoogleTest check
# leaks of qslaw's code.
asan_rt=$(clang++-22 -print-file-name=libclang_rt.asan-x86_64.so)
echo "== lit (ASan + UBSan) =="
LD_PRELOAD=$asan_rt ASAN_OPTIONS=$ASAN_OPTIONS:detect_leaks=0 \
  /usr/lib/llvm-22/bin/lit -s $B/test --xunit-xml-output "$out/lit-asan.xml"
echo "== pytest: bad-input suites (ASan + UBSan) =="
LD_PRELOAD=$asan_rt ASAN_OPTIONS=$ASAN_OPTIONS:detect_leaks=0 \
  QSLAW_BUILD_DIR="$PWD/$B" .venv/bin/python -m pytest -q -p no:cacheprovider \
  python/tests/test_c_api_misuse.py python/tests/test_trainer.py \
  python/tests/test_onnx_import.py python/tests/test_malformed_nodes.py \
  --junitxml="$out/pytest-asan.xml"
echo "== fuzz (${QSLAW_FUZZ_SECONDS:-20} s per harness) =="
PYTHONPATH=python .venv/bin/python -m qslaw_tools.fuzz_check --build $B \
  --seconds "${QSLAW_FUZZ_SECONDS:-20}" --junit "$out/fuzz.xml"
exit 0
