"""Benchmark 9 — what a sweep adds to each trial beyond the run itself.

A sweep of a few trials on the quickstart at tiny sizes (its trials enqueued with fixed learning
rates), run in this process. Each trial's ``ftui run`` process is timed from its start to its exit
by a thread that waits on it (the run itself: interpreter and torch start-up, training, shutdown).
Measured:

* per trial, (the sweep's wall time − the time its trial processes ran) / trials (target < 2 s):
  everything the sweep adds — Optuna's import, storage and study (once, shared by the trials), and
  per trial asking, launching, following the run directory (a look every 0.2 s), reporting each
  validation, noticing the end and telling the result;
* the sweep's own bookkeeping per trial (ask + launch + tell, timed inside it) and its set-up.

Trials run one at a time, so the sweep's time is its set-up, the trials' processes and what it adds
between them. The machine's load does not cancel out of a difference of two separate runs here: both
terms come from the same run.

    python benchmarks/sweep_overhead.py [--trials 4] [--reps 2] [--quick]
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import harness

TARGET_S = 2.0
QUICKSTART = harness.REPO / "sample_configs" / "quickstart.yaml"
TINY = ["data.shapes.train_size=640", "data.shapes.val_size=120", "data.shapes.test_size=60", "data.batch_size=32",
        "data.num_workers=0", "model.channels=[8,16]", "logging.every_n_steps=5", "logging.tensorboard=false",
        "logging.system=false", "logging.layer_stats=false"]
LRS = (0.01, 0.02, 0.005, 0.03, 0.002, 0.001)


def sweep(root: Path, lrs: list[float], epochs: int, name: str) -> dict[str, object]:
    """One sweep over ``lrs``: its wall time, set-up, bookkeeping per trial and its processes' lifetimes."""
    import optuna

    from core import launch as launch_module
    from core.sweep.runner import Sweep, SweepOptions
    from core.sweep.space import parse_space

    lifetimes: list[float] = []
    start_process = launch_module._start

    def timed_start(cmd: list[str], run_dir: Path):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        process = start_process(cmd, run_dir)

        def wait() -> None:
            process.wait()
            lifetimes.append(time.perf_counter() - t0)

        threading.Thread(target=wait, daemon=True).start()
        return process

    launch_module._start = timed_start
    try:
        t0 = time.perf_counter()
        options = SweepOptions(config=QUICKSTART, params=parse_space(["optim.lr=loguniform:1e-4:1e-1"]),
                               trials=len(lrs), name=name, root=root, pruner="none",
                               overrides=[*TINY, f"trainer.epochs={epochs}"])
        runner = Sweep(options, say=lambda line: None)
        runner.prepare()
        setup = time.perf_counter() - t0
        study = optuna.load_study(study_name=name, storage=runner.storage_url)
        for lr in lrs:
            study.enqueue_trial({"optim.lr": lr})
        code = runner.run()
        wall = time.perf_counter() - t0
    finally:
        launch_module._start = start_process
    assert code == 0 and len(lifetimes) == len(lrs) == len(runner.overheads), (code, lifetimes, runner.overheads)
    return {"wall": wall, "setup": setup, "bookkeeping": list(runner.overheads), "processes": lifetimes}


def main() -> None:
    p = harness.parser("sweep_overhead", __doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=4)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--epochs", type=int, default=2)
    args = p.parse_args()
    trials, reps, epochs = (1, 1, 1) if args.quick else (args.trials, args.reps, args.epochs)
    lrs = list(LRS[:trials])
    # the trials' processes import this checkout
    os.environ["PYTHONPATH"] = os.pathsep.join([str(harness.REPO), os.environ.get("PYTHONPATH", "")])
    tmp = Path(tempfile.mkdtemp(prefix="ftui-sweep-bench-"))
    per_trial, setups, book, procs = [], [], [], []
    try:
        for rep in range(reps):
            out = sweep(tmp / f"runs-{rep}", lrs, epochs, f"bench-{rep}")
            per_trial.append((out["wall"] - sum(out["processes"])) / trials)
            setups.append(out["setup"])
            book += out["bookkeeping"]
            procs += out["processes"]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    added, setup, bk, proc = (harness.summary(v) for v in (per_trial, setups, book, procs))
    rows = [
        {"measure": "sweep: seconds added per trial", "value": added["median"], "unit": "s",
         "target": f"< {TARGET_S:g}", "status": harness.verdict(added["median"], TARGET_S),
         "note": f"(sweep wall - its trial processes' lifetimes) / {trials} trials; max {added['max']:.2f}"},
        {"measure": "  set-up (Optuna, storage, study, config checks)", "value": setup["median"], "unit": "s",
         "note": f"once per sweep: {setup['median'] / trials:.2f} s per trial here"},
        {"measure": "  ask + launch + tell, per trial", "value": bk["median"], "unit": "s",
         "note": f"timed inside the sweep; max {bk['max']:.2f}"},
        {"measure": "the run itself: its ftui run process", "value": proc["median"], "unit": "s",
         "note": f"quickstart, tiny sizes, {epochs} epoch(s): process start to exit"},
    ]
    results = {"config": {"trials": trials, "reps": reps, "epochs": epochs, "lrs": lrs},
               "added_per_trial_s": added, "setup_s": setup, "bookkeeping_s": bk, "process_s": proc}
    harness.report("sweep_overhead", f"Sweep overhead: {trials} trials", rows, results, args.out, quick=args.quick)


if __name__ == "__main__":
    main()
