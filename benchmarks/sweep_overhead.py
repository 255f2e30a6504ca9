"""Benchmark 9 — what a sweep adds to each trial beyond the run itself.

The same trials are trained twice on the quickstart at tiny sizes: once as plain ``ftui run``
processes one after the other, once as an ``ftui sweep`` (its trials enqueued with those learning
rates, so both train exactly the same runs). Measured, alternating the two:

* per trial, (sweep wall time − the plain runs' wall time) / trials (target < 2 s): everything the
  sweep adds — Optuna's imports and storage, asking, launching, following each run through its
  directory (a look every 0.2 s), reporting each validation, telling the result;
* the sweep's own bookkeeping per trial (ask + launch + tell, timed inside the sweep), which the
  difference above also contains, next to the polling latency and the process start-up.

    python benchmarks/sweep_overhead.py [--trials 3] [--reps 2] [--quick]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness

TARGET_S = 2.0
QUICKSTART = harness.REPO / "sample_configs" / "quickstart.yaml"
TINY = ["data.shapes.train_size=640", "data.shapes.val_size=120", "data.shapes.test_size=60", "data.batch_size=32",
        "data.num_workers=0", "model.channels=[8,16]", "logging.every_n_steps=5", "logging.tensorboard=false",
        "logging.system=false", "logging.layer_stats=false"]
LRS = (0.01, 0.02, 0.005, 0.03, 0.002)


def plain_runs(root: Path, lrs: list[float], epochs: int) -> float:
    """Wall seconds of ``ftui run`` for each learning rate, one after the other."""
    t0 = time.perf_counter()
    for i, lr in enumerate(lrs):
        cmd = [sys.executable, "-m", "tui.cli", "run", str(QUICKSTART), "--quiet", "--name", f"plain-{i}",
               "--set", f"run.root={root}", "--set", f"optim.lr={lr}", "--set", f"trainer.epochs={epochs}"]
        for item in TINY:
            cmd += ["--set", item]
        subprocess.run(cmd, check=True, capture_output=True, cwd=root.parent, env=_env())
    return time.perf_counter() - t0


def sweep(root: Path, lrs: list[float], epochs: int, name: str) -> tuple[float, list[float]]:
    """Wall seconds of a sweep over the same runs (from creating it to its end), and its bookkeeping."""
    import optuna

    from core.sweep.runner import Sweep, SweepOptions
    from core.sweep.space import parse_space

    t0 = time.perf_counter()
    options = SweepOptions(config=QUICKSTART, params=parse_space(["optim.lr=loguniform:1e-4:1e-1"]),
                           trials=len(lrs), name=name, root=root, pruner="none",
                           overrides=[*TINY, f"trainer.epochs={epochs}"])
    runner = Sweep(options, say=lambda line: None)
    runner.prepare()
    study = optuna.load_study(study_name=name, storage=runner.storage_url)
    for lr in lrs:
        study.enqueue_trial({"optim.lr": lr})
    code = runner.run()
    wall = time.perf_counter() - t0
    assert code == 0 and len(runner.overheads) == len(lrs), (code, runner.overheads)
    return wall, runner.overheads


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(harness.REPO), os.environ.get("PYTHONPATH", "")])}


def main() -> None:
    p = harness.parser("sweep_overhead", __doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--epochs", type=int, default=2)
    args = p.parse_args()
    trials, reps, epochs = (1, 1, 1) if args.quick else (args.trials, args.reps, args.epochs)
    lrs = list(LRS[:trials])
    os.environ["PYTHONPATH"] = _env()["PYTHONPATH"]  # the sweep's trial processes import this checkout
    tmp = Path(tempfile.mkdtemp(prefix="ftui-sweep-bench-"))
    plain, swept, inner = [], [], []
    try:
        for rep in range(reps):
            plain.append(plain_runs(tmp / f"plain-{rep}", lrs, epochs))
            wall, overheads = sweep(tmp / f"sweep-{rep}", lrs, epochs, f"bench-{rep}")
            swept.append(wall)
            inner += overheads
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    per_trial = [(s - p) / trials for s, p in zip(swept, plain)]
    added, book = harness.summary(per_trial), harness.summary(inner)
    run_s = harness.summary([p / trials for p in plain])
    rows = [
        {"measure": "sweep: seconds added per trial", "value": added["median"], "unit": "s",
         "target": f"< {TARGET_S:g}", "status": harness.verdict(added["median"], TARGET_S),
         "note": f"(sweep wall - plain ftui runs wall) / {trials} trials; min {added['min']:.2f}, max {added['max']:.2f}"},
        {"measure": "  of which ask + launch + tell", "value": book["median"], "unit": "s",
         "note": f"timed inside the sweep, per trial; max {book['max']:.2f}"},
        {"measure": "plain ftui run, per run", "value": run_s["median"], "unit": "s",
         "note": f"quickstart, tiny sizes, {epochs} epoch(s): process start to exit"},
    ]
    results = {"config": {"trials": trials, "reps": reps, "epochs": epochs, "lrs": lrs}, "plain_s": plain,
               "sweep_s": swept, "added_per_trial_s": added, "bookkeeping_s": book, "run_s": run_s}
    harness.report("sweep_overhead", f"Sweep overhead: {trials} trials", rows, results, args.out, quick=args.quick)


if __name__ == "__main__":
    main()
