"""Where the server's own time goes while a class of N sessions presses Summarize at once.

Usage: ``python benchmarks/profile_class.py [--n 24] [--backend torch] [--rate 250] [--top 25]``

Starts the app on the tiny random-weight shape of ``benchmarks/bench_class.py`` (the model's work
is almost nothing there, so what remains is the server's), opens N ``gradio_client`` sessions
before the bell, as ``bench_class.py`` does, and samples the app process with
`py-spy <https://github.com/benfred/py-spy>`_ (``pip install py-spy``; it reads the process from
outside, so the profile does not slow what it measures) while the N requests run: only samples of
a thread that holds the GIL (``--gil``), which is the work that runs one request after another.
Prints the class's last / one-alone ratio, then the functions with the most GIL-holding samples,
by own time (the frame itself) and by total time (the frame and what it called), as a share of
every GIL-holding sample, and writes the raw collapsed stacks (``--out``) for a flame graph.
"""
from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import bench_class  # noqa: E402 - after the path above


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=24, help="concurrent sessions (default: %(default)s)")
    p.add_argument("--backend", choices=("torch", "ct2"), default="torch", help="engine (default: %(default)s)")
    p.add_argument("--tokens", type=int, default=40, help="new tokens per summary (default: %(default)s)")
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second (default: %(default)s)")
    p.add_argument("--top", type=int, default=25, help="functions listed (default: %(default)s)")
    p.add_argument("--out", default="class-profile.txt", help="collapsed stacks (default: %(default)s)")
    return p.parse_args(argv)


def read_collapsed(path: Path) -> tuple[collections.Counter, collections.Counter, int]:
    """(own samples per frame, total samples per frame, all samples) of py-spy's raw format:
    one line per distinct stack, ``frame;frame;...;frame count``, outermost first."""
    own, total, n = collections.Counter(), collections.Counter(), 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames, k = stack.split(";"), int(count)
        n += k
        own[frames[-1]] += k
        for frame in set(frames):
            total[frame] += k
    return own, total, n


def at_once(runs) -> float:
    """Seconds from the bell until the last of ``runs`` (one per session) has its answer."""
    barrier = threading.Barrier(len(runs) + 1)

    def student(run):
        barrier.wait()
        run()
    threads = [threading.Thread(target=student, args=(run,)) for run in runs]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - started


def main(argv=None) -> int:
    args = parse_args(argv)
    if shutil.which("py-spy") is None:
        raise SystemExit("py-spy not found: pip install py-spy==0.4.3")
    from summarizer.data import default_local_dataset, load_split

    if default_local_dataset() is None:
        raise SystemExit("DialogSum not found: set DIALOGSUM_DIR or put it in ../shared/data/dialogsum")
    dialogues = list(load_split(str(default_local_dataset()), "test")["dialogue"])[:3 + 2 * args.n]
    out = Path(args.out).resolve()
    with tempfile.TemporaryDirectory(prefix="profile-class-") as tmp:
        os.environ.setdefault("STUDIO_CT2_CACHE", str(Path(tmp) / "ct2"))
        paths, toxicity = bench_class.build("tiny", Path(tmp))
        proc, url = bench_class.start_app(paths, toxicity, args.backend, "int8", Path(tmp) / "runs")
        try:
            # a class first without the profiler (its figures are the ones to quote), then one under it
            m = bench_class.measure(url, "summarize", dialogues[:3 + args.n], args.n, args.tokens)
            runs = [bench_class.call(url, "summarize", d, args.tokens)[1] for d in dialogues[3 + args.n:]]
            spy = subprocess.Popen(["py-spy", "record", "--pid", str(proc.pid), "--rate", str(args.rate), "--gil",
                                    "--format", "raw", "--output", str(out), "--nonblocking"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            time.sleep(1.0)  # py-spy attached; the sessions were opened before it, so only the class is sampled
            wall = at_once(runs)
            spy.send_signal(2)  # SIGINT: py-spy writes the file and exits
            _, err = spy.communicate(timeout=60)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    if not out.is_file():
        raise SystemExit(f"py-spy wrote no profile: {err.strip()[-500:]}")
    print(f"N = {args.n}, tiny shape, {args.backend}, {args.tokens} new tokens: one alone {m['one']:.3f} s, "
          f"last of N {m['last']:.2f} s, last / one {m['last'] / m['one']:.2f}, p50 / one {m['p50'] / m['one']:.2f}")
    own, total, n = read_collapsed(out)
    seconds = n / args.rate
    print(f"\nGIL held {seconds:.1f} s of the profiled class's {wall:.1f} s from the bell to the last answer "
          f"({seconds / args.n:.3f} s per request); stacks in {out}\n")
    for title, counter in (("own time", own), ("total time", total)):
        print(f"| {title} | share | function |\n|---|---|---|")
        for frame, k in counter.most_common(args.top):
            print(f"| {k / args.rate:.2f} s | {100 * k / n:.1f}% | `{frame[:150]}` |")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
