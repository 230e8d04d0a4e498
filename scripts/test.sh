#!/usr/bin/env bash
# Sets up, builds and runs every test suite (lit, GoogleTest, pytest, then
# the same under ASan + UBSan with the fuzz harnesses; QSLAW_SANITIZE_SUITES=0
# skips those); ends with one line "N passed, N failed, N skipped" summed
# over all suites.
set -uo pipefail
cd "$(dirname "$0")/.."
# A set-up or build failure still ends with the summary line CI reads.
setup_failed() { echo "[test] $1 failed; no suite ran" >&2
                 echo "0 passed, 1 failed, 0 skipped"; exit 1; }
bash scripts/bootstrap.sh || setup_failed "scripts/bootstrap.sh"
bash scripts/build.sh || setup_failed "scripts/build.sh"

out=build/test-results
rm -rf "$out"; mkdir -p "$out"
echo "== lit =="
/usr/lib/llvm-22/bin/lit -sv build/test --xunit-xml-output "$out/lit.xml"
echo "== gtest =="
build/bin/qslaw-unittests --gtest_brief=1 --gtest_output="xml:$out/gtest.xml"
echo "== pytest =="
QSLAW_BUILD_DIR="$PWD/build" .venv/bin/python -m pytest -q python/tests \
  --junitxml="$out/pytest.xml"
# ASan + UBSan (lit, GoogleTest, bad-input pytest suites) and the fuzz
# harnesses' corpus replay and fixed budget: scripts/sanitize.sh.
if [ "${QSLAW_SANITIZE_SUITES:-1}" != 0 ]; then
  echo "== sanitizers and fuzzing =="
  bash scripts/sanitize.sh "$out"
fi
echo "== summary =="
.venv/bin/python python/qslaw_tools/junit_summary.py "$out"/*.xml
