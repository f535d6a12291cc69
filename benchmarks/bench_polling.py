"""Train-tab polling cost against the number of runs: the runner's tick and the tab's refresh.

    python benchmarks/bench_polling.py                      # this checkout only
    python benchmarks/bench_polling.py --before a70be63     # also the code at that commit, same data

Creates N fake finished runs (status.json, config.json, 10 metric rows each, a train.log) plus one
selected long run with 30,000 metric rows, then times per polling tick (median of the ticks
after the first, and the first one, cold):

* ``tick``: ``JobRunner.tick()`` (the watcher thread does this every second);
* ``refresh``: what the Train tab's timer does every 2 s: list the runs, read the selected run's
  status, metrics and log tail, build the table, the chart and the progress bar. Between ticks
  one metric row is appended to the selected run, as a running run would.

With ``--before COMMIT`` the same script also runs against that commit (a temporary ``git
worktree``, removed afterwards) in a subprocess over the same folders, and prints the ratios,
so both figures are measured in one run on the same machine load.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LONG_RUN = "lora-20250101-000000-000"


def make_runs(root: Path, n: int, long_rows: int = 30_000) -> None:
    """``n`` completed fake runs of 10 metric rows, plus :data:`LONG_RUN` with ``long_rows``."""
    root.mkdir(parents=True, exist_ok=True)
    t0 = 1_700_000_000
    for i in range(n + 1):
        run_id = LONG_RUN if i == n else f"full-20240101-{i // 1000:06d}-{i % 1000:03d}"
        path = root / run_id
        path.mkdir(exist_ok=True)
        rows = long_rows if i == n else 10
        status = {"state": "completed", "method": run_id.split("-")[0], "run_id": run_id, "created": t0 + i,
                  "seq": i, "step": rows, "total_steps": rows, "launched": t0 + i, "started": t0 + i + 10,
                  "finished": t0 + i + 60, "num_processes": 1, "pid": 1, "command": ["python", "-m", "x"]}
        (path / "status.json").write_text(json.dumps(status, indent=2))
        (path / "config.json").write_text(json.dumps({"max_steps": rows, "batch_size": 8}))
        (path / "metrics.jsonl").write_text("".join(
            json.dumps({"step": s, "loss": 1 / (s + 1), "elapsed": s * 0.5}) + "\n" for s in range(1, rows + 1)))
        (path / "train.log").write_text("loading\n" + "".join(f"step {s}\r" for s in range(200)) + "\ndone\n")


def measure(root: Path, ticks: int) -> dict:
    """Per-tick seconds of the runner tick and the tab refresh with the code importable here."""
    import plotly.graph_objects  # noqa: F401 - imported before timing, for both versions
    from training.runner.jobs import JobRunner
    from ui.train import tab

    runner = JobRunner(root)
    new = hasattr(tab, "RunReader")
    reader = tab.RunReader(runner) if new else None
    metrics_file = root / LONG_RUN / "metrics.jsonl"

    def refresh():
        if new:
            runs = runner.list_runs()
            info = reader.info(LONG_RUN)
        else:  # the code before: list_runs ticked, then every file was read again in full
            runner.tick()
            runs = runner.list_runs()
            run = runner.run(LONG_RUN)
            info = {"status": run.status(), "metrics": run.metrics(), "log": run.log_tail(20_000)}
        tab.runs_table(runs)
        tab.chart(info["status"].get("method", ""), info["metrics"])
        tab.progress_html(info["status"])
        return len(runs)

    out = {"tick": [], "refresh": []}
    step = 30_001
    for _ in range(ticks):
        with open(metrics_file, "a") as f:  # the selected run is still logging
            f.write(json.dumps({"step": step, "loss": 0.1, "elapsed": 1.0}) + "\n")
        step += 1
        t = time.perf_counter()
        runner.tick()
        out["tick"].append(time.perf_counter() - t)
        t = time.perf_counter()
        out["runs"] = refresh()
        out["refresh"].append(time.perf_counter() - t)
    return out


def summary(times: list[float]) -> tuple[float, float]:
    """(first tick, median of the others) in seconds."""
    return times[0], statistics.median(times[1:] or times)


def run_before(commit: str, root: Path, ticks: int) -> dict:
    """:func:`measure` at ``commit`` (temporary git worktree, subprocess) over the same ``root``."""
    with tempfile.TemporaryDirectory(prefix="bench-before-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), commit],
                       check=True, capture_output=True)
        try:
            env = {**os.environ, "PYTHONPATH": str(tree)}
            code = ("import json, sys; sys.path.insert(0, sys.argv[1]); from bench_polling import measure;"
                    "from pathlib import Path; print(json.dumps(measure(Path(sys.argv[2]), int(sys.argv[3]))))")
            done = subprocess.run([sys.executable, "-c", code, str(ROOT / "benchmarks"), str(root), str(ticks)],
                                  cwd=tree, env=env, check=True, capture_output=True, text=True)
            return json.loads(done.stdout.strip().splitlines()[-1])
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, nargs="+", default=[1000, 3000], help="numbers of fake runs")
    p.add_argument("--ticks", type=int, default=4, help="polling ticks measured per setting")
    p.add_argument("--before", help="also measure the code at this git commit (e.g. a70be63)")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    print(f"{'runs':>6} {'code':>7} {'tick first':>11} {'tick median':>12} {'refresh first':>14} {'refresh median':>15}")
    for n in args.runs:
        with tempfile.TemporaryDirectory(prefix="bench-polling-") as tmp:
            root = Path(tmp) / "runs"
            make_runs(root, n)
            results = {"after": measure(root, args.ticks)}
            if args.before:
                make_runs(root, n)  # the same files again (the after pass appended rows)
                results["before"] = run_before(args.before, root, args.ticks)
            for label, r in results.items():
                (t1, tm), (r1, rm) = summary(r["tick"]), summary(r["refresh"])
                print(f"{n:>6} {label:>7} {t1:>10.3f}s {tm:>11.3f}s {r1:>13.3f}s {rm:>14.3f}s")
            if "before" in results:
                b, a = results["before"], results["after"]
                print(f"{n:>6}   ratio  tick {summary(b['tick'])[1] / summary(a['tick'])[1]:.1f}x faster, "
                      f"refresh {summary(b['refresh'])[1] / summary(a['refresh'])[1]:.1f}x faster (medians)")


if __name__ == "__main__":
    main()
