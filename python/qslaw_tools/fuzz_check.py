"""Runs the libFuzzer harnesses of a QSLAW_FUZZ build: each replays its
committed corpus and regression inputs (fuzz/corpus/<harness>/ and
fuzz/crashers/<harness>/), then fuzzes for a fixed budget from a scratch
copy of the corpus. Writes one JUnit test case per replay and per run, with
executions, corpus size and any crash input (kept under --artifacts).

    python -m qslaw_tools.fuzz_check --build build-asan --seconds 20 \\
        --junit build/test-results/fuzz.xml
    python -m qslaw_tools.fuzz_check --build build-asan --seconds 1800 --merge
        (long runs; --merge folds new coverage back into fuzz/corpus)
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def harnesses(build):
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(build, "bin", "fuzz", "fuzz_*")))


def stat(log, key):
    m = re.findall(rf"stat::{key}:\s+(\d+)", log)
    return int(m[-1]) if m else 0


def run_one(binary, name, seconds, artifacts, merge, jobs_timeout):
    corpus = os.path.join(ROOT, "fuzz", "corpus", name)
    crashers = os.path.join(ROOT, "fuzz", "crashers", name)
    cases = []
    # Replay: every committed input once (a directory argument with -runs=0;
    # crashers one by one, as files).
    inputs = sorted(glob.glob(os.path.join(crashers, "*")))
    t0 = time.time()
    p = subprocess.run([binary, "-runs=0", corpus], capture_output=True, errors="replace",
                       text=True, timeout=jobs_timeout)
    rc, log = p.returncode, p.stderr[-4000:]
    if inputs and rc == 0:  # files: each run once
        p = subprocess.run([binary] + inputs, capture_output=True, text=True, errors="replace",
                           timeout=jobs_timeout)
        rc, log = p.returncode, p.stderr[-4000:]
    n = len(os.listdir(corpus))
    cases.append((f"replay {name}", time.time() - t0, rc,
                  f"{n} corpus inputs, {len(inputs)} crashers", log))
    if seconds <= 0:
        return cases
    with tempfile.TemporaryDirectory() as scratch:
        work = os.path.join(scratch, "corpus")
        shutil.copytree(corpus, work)
        prefix = os.path.join(artifacts, name + "-")
        t0 = time.time()
        # A fixed seed: the same inputs in the same order on every CI run.
        p = subprocess.run([binary, work, f"-max_total_time={seconds}", "-timeout=25", "-seed=1",
                            "-rss_limit_mb=2560", "-print_final_stats=1",
                            f"-artifact_prefix={prefix}"],
                           capture_output=True, text=True, errors="replace", timeout=seconds + jobs_timeout)
        execs = stat(p.stderr, "number_of_executed_units")
        size = len(os.listdir(work))
        crash = re.findall(r"Test unit written to (\S+)", p.stderr)
        detail = (f"{execs} executions in {time.time() - t0:.0f} s, corpus {size} inputs"
                  + (f"; crash input {crash[-1]}" if crash else ""))
        print(f"fuzz {name}: {detail}, rc {p.returncode}")
        cases.append((f"run {name}", time.time() - t0, p.returncode, detail, p.stderr[-4000:]))
        if merge and p.returncode == 0:
            # Minimise: keep the inputs that add coverage, in the committed corpus.
            merged = os.path.join(scratch, "merged")
            os.makedirs(merged)
            subprocess.run([binary, "-merge=1", merged, corpus, work],
                           capture_output=True, text=True, errors="replace", timeout=jobs_timeout * 10)
            shutil.rmtree(corpus)
            shutil.copytree(merged, corpus)
    return cases


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build-asan"))
    ap.add_argument("--seconds", type=int, default=20, help="fuzzing budget per harness")
    ap.add_argument("--only", help="one harness")
    ap.add_argument("--junit")
    ap.add_argument("--artifacts", default=os.path.join(ROOT, "build-asan", "fuzz-artifacts"))
    ap.add_argument("--merge", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.artifacts, exist_ok=True)
    names = harnesses(a.build)
    if a.only:
        names = [a.only]
    if not names:
        raise SystemExit(f"no harnesses in {a.build}/bin/fuzz (configure with -DQSLAW_FUZZ=ON)")
    suite = ET.Element("testsuite", name="fuzz")
    failed = 0
    for name in names:
        for case, secs, rc, detail, log in run_one(os.path.join(a.build, "bin", "fuzz", name),
                                                   name, a.seconds, a.artifacts, a.merge, 300):
            tc = ET.SubElement(suite, "testcase", classname="fuzz", name=case, time=f"{secs:.1f}")
            ET.SubElement(tc, "system-out").text = detail
            if rc != 0:
                failed += 1
                ET.SubElement(tc, "failure", message=f"exit {rc}: {detail}").text = log
                print(f"FAIL {case}: exit {rc}: {detail}\n{log[-2000:]}")
    if a.junit:
        ET.ElementTree(suite).write(a.junit)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
