"""Where the test suite's CPU time goes, from a py-spy profile of a whole run over every process it starts.

    pip install py-spy   # a profiling tool, not a dependency of the studio
    py-spy record -r 20 -f raw -o suite.raw --subprocesses -- python -m pytest -q -p no:cacheprovider
    python benchmarks/suite_profile.py suite.raw [--top 15]

py-spy samples each busy thread of each process; a sample's stack ends in the frame that was running. Printed,
as shares of all samples: the library the running frame belongs to (torch's kernels, Streamlit, ...), with every
stack under an import counted as imports; the dashboard's pages run under AppTest's script runner, per page; the
tests that cost most, with the processes they start; and the processes other than pytest's workers.
"""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

FRAME = re.compile(r"(\S+) \((\S+?):\d+\)")
PAGES = ("data", "model", "train", "results", "explain", "try_it")


def records(path: Path):
    """(frames, samples) per line of py-spy's raw output; a process started with a script of several lines
    (`python -c "..."`) spans several lines of it, joined here."""
    text, current = Path(path).read_text(errors="replace").splitlines(), None
    for line in text + ["process "]:
        if line.startswith("process ") and current is not None:
            stack, _, n = current.rpartition(" ")
            if n.isdigit():
                yield stack.split(";"), int(n)
            current = None
        current = line if current is None else current + "\\n" + line


def library(frames: list[str]) -> str:
    if any("<frozen importlib" in f for f in frames):
        return "[imports]"
    m = FRAME.match(frames[-1])
    if not m:
        return "[native, no Python frame]"
    file = m.group(2)
    if "site-packages/" in file:
        return file.split("site-packages/")[1].split("/")[0]
    return file.split("/")[0] if "/" in file else file


def page_of(frames: list[str]) -> str | None:
    """The dashboard page a script-runner stack is drawing, "app (other)" outside a page, None outside AppTest."""
    if not any("scriptrunner" in f for f in frames) or any("pytest_pyfunc_call" in f for f in frames):
        return None
    for f in frames:
        m = re.match(r"<module> \((\w+)\.py", f)
        if m and m.group(1) in PAGES:
            return m.group(1)
    return "app (other)"


def test_of(frames: list[str]) -> str | None:
    for f in frames:
        m = re.search(r"(test_\w+\.py::\w+|\b(test_\w+) \((test_\w+\.py))", f)
        if m and m.group(2):
            return f"{m.group(3)}::{m.group(2)}"
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("raw", type=Path)
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    libs, pages, tests, procs = (collections.Counter() for _ in range(4))
    total = 0
    for frames, n in records(args.raw):
        total += n
        libs[library(frames)] += n
        if (page := page_of(frames)) is not None:
            pages[page] += n
        if (test := test_of(frames)) is not None:
            tests[test] += n
        started = [f for f in frames if f.startswith("process ")]
        if len(started) >= 4:  # below pytest, xdist's worker: a process a test started
            procs[re.sub(r"process \d+:|/tmp/\S+/", "", started[-1])[:70]] += n
    share = lambda n: f"{100 * n / total:5.1f}%"  # noqa: E731
    print(f"{total} samples")
    print("\nthe running frame's library:")
    for k, n in libs.most_common(args.top):
        print(f"  {share(n)} {k}")
    print(f"\nthe dashboard's pages under AppTest: {share(sum(pages.values()))} in all")
    for k, n in pages.most_common():
        print(f"  {share(n)} {k}")
    print("\ntests (their own process; their threads and started processes not included):")
    for k, n in tests.most_common(args.top):
        print(f"  {share(n)} {k}")
    print(f"\nprocesses the tests started: {share(sum(procs.values()))} in all")
    for k, n in procs.most_common(args.top):
        print(f"  {share(n)} {k}")


if __name__ == "__main__":
    main()
