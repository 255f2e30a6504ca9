"""Benchmark 4 — inspect a 1 GB checkpoint: time to the summary and peak memory.

A checkpoint in ftui's format (weights of 20 2048x2048 layers with biases and norms, the AdamW state
of every parameter, config, model tree...: about 1 GB) is written to a temporary folder and deleted
afterwards. Each measurement runs in a fresh subprocess, whose peak RSS comes from ``os.wait4``:

* ``ftui inspect PATH --json`` and ``--plain`` — the whole command, Python start-up included
  (targets: < 3 s, < 300 MB); the summary reads the zip's pickle without torch (core/inspect/torchzip.py);
* ``load_checkpoint + summarize`` inside one process — the part ftui controls (and a check that it
  left torch unimported);
* the torch.load path, as the summary took it before and still takes it for what the torch-free
  reader falls back on (legacy files, ``--unsafe``, unusual tensors): ``import torch`` + ``torch.load(mmap)``;
* ``python -c "import torch"`` — the floor every torch-using command pays.

The checkpoint is written by a child process: a parent that held the tensors would hand its own peak
RSS down to every later child (Linux copies the high-water mark on fork).

    python benchmarks/inspect_large.py [--size-gb 1.0] [--reps 3] [--quick]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import harness

TARGET_S = 3.0
TARGET_MB = 300.0
INPROCESS = """
import json, sys, time
t0 = time.perf_counter()
from core.inspect import load_checkpoint, summarize
t1 = time.perf_counter()
ckpt = load_checkpoint(sys.argv[1])
s = summarize(ckpt)
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "summary_s": t2 - t1, "tensors": len(s["tensors"]),
                  "params": s["weights"].get("params") if isinstance(s.get("weights"), dict) else None,
                  "torch_imported": "torch" in sys.modules, "reader": type(ckpt.weights).__name__}))
"""
# The summary through torch.load (mmap), as before the torch-free reader and as its fall-back.
TORCH_PATH = """
import json, sys, time
t0 = time.perf_counter()
import torch
from core.inspect.loading import _load_torch
from core.inspect.summary import summarize
t1 = time.perf_counter()
s = summarize(_load_torch(__import__("pathlib").Path(sys.argv[1]), "torch-zip", False))
print(json.dumps({"import_s": t1 - t0, "summary_s": time.perf_counter() - t1, "tensors": len(s["tensors"])}))
"""


def make_checkpoint(path: Path, size_gb: float) -> int:
    """An ftui-format checkpoint of about ``size_gb`` GB (a third weights, two thirds AdamW state)."""
    import torch

    layers = 20
    side = max(16, int(((size_gb * 1e9 / 3 / 4) / layers) ** 0.5))
    model: dict[str, Any] = {}
    for i in range(layers):
        model[f"blocks.{i}.linear.weight"] = torch.full((side, side), 0.01 * (i + 1))
        model[f"blocks.{i}.linear.bias"] = torch.zeros(side)
        model[f"blocks.{i}.norm.weight"] = torch.ones(side)
        model[f"blocks.{i}.norm.bias"] = torch.zeros(side)
    model["head.weight"] = torch.zeros(10, side)
    model["head.bias"] = torch.zeros(10)
    names = list(model)
    state = {i: {"step": torch.tensor(100.0), "exp_avg": torch.zeros_like(model[n]), "exp_avg_sq": torch.zeros_like(model[n])}
             for i, n in enumerate(names)}
    ckpt = {
        "format": 1, "ftui_version": "0.1.0", "model": model,
        "optimizer": {"state": state, "param_groups": [{"name": "default", "lr": 1e-3, "base_lr": 1e-3, "betas": (0.9, 0.999),
                                                       "eps": 1e-8, "weight_decay": 0.01, "amsgrad": False,
                                                       "params": list(range(len(names)))}]},
        "scheduler": {"name": "cosine"}, "scaler": {}, "epoch": 3, "batch_idx": 0, "step": 300, "rng": {},
        "config": {"model": {"name": "big_mlp"}, "optim": {"name": "adamw", "lr": 1e-3}},
        "data": {"class_names": [str(i) for i in range(10)]}, "finetune": {}, "metrics": {"history": {}, "best": None},
        "model_tree": {}, "callbacks": {}, "run": {"name": "bench"},
    }
    torch.save(ckpt, path)
    return path.stat().st_size


def rss_of(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int, str, float]:
    """(wall s, peak RSS MB, exit code, output, CPU s) of one subprocess, its own figures from ``os.wait4``."""
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=harness.REPO)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    # ru_maxrss is in KiB on Linux
    return wall, usage.ru_maxrss / 1024.0, proc.returncode, text, usage.ru_utime + usage.ru_stime


def main() -> None:
    p = harness.parser("inspect_large", __doc__.splitlines()[0])
    p.add_argument("--size-gb", type=float, default=1.0)
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()
    if args.quick:
        args.size_gb, args.reps = 0.045, 1
    ftui = str(Path(sys.executable).with_name("ftui"))
    env = {**os.environ, "COLUMNS": "120"}
    tmp = Path(tempfile.mkdtemp(prefix="ftui-bench-inspect-"))
    runs: dict[str, list[tuple[float, float]]] = {"json": [], "plain": [], "inprocess": [], "torch_path": [], "torch": []}
    inproc: list[dict[str, Any]] = []
    torch_inproc: list[dict[str, Any]] = []
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    try:
        path = tmp / "big.pt"
        t0 = time.perf_counter()
        # In a child: a parent that held the tensors would pass its peak RSS on to every later child
        # (Linux copies the high-water mark on fork), and the figures below would be the parent's.
        maker = (f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); from pathlib import Path; "
                 f"from inspect_large import make_checkpoint; make_checkpoint(Path({str(path)!r}), {args.size_gb!r})")
        subprocess.run([sys.executable, "-c", maker], check=True, cwd=harness.REPO)
        size = path.stat().st_size
        print(f"wrote {path} ({size / 1e9:.2f} GB) in {time.perf_counter() - t0:.1f}s", flush=True)
        commands = {
            "json": [ftui, "inspect", str(path), "--json"],
            "plain": [ftui, "inspect", str(path), "--plain"],
            "inprocess": [sys.executable, "-c", INPROCESS, str(path)],
            "torch_path": [sys.executable, "-c", TORCH_PATH, str(path)],
            "torch": [sys.executable, "-c", "import torch"],
        }
        if args.quick:  # --plain shares everything but the renderer
            del commands["plain"]
        for rep in range(args.reps):
            for name, cmd in commands.items():
                wall, rss, code, text, cpu_s = rss_of(cmd, env)
                cpu[name].append(cpu_s)
                if code != 0:
                    raise SystemExit(f"{' '.join(cmd)} exited {code}:\n{text[-2000:]}")
                runs[name].append((wall, rss))
                if name in ("inprocess", "torch_path"):
                    import json

                    (inproc if name == "inprocess" else torch_inproc).append(json.loads(text.strip().splitlines()[-1]))
            print(f"rep {rep + 1}/{args.reps}: " + ", ".join(f"{k} {v[-1][0]:.2f}s {v[-1][1]:.0f}MB" for k, v in runs.items() if v),
                  flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    runs = {k: v for k, v in runs.items() if v}
    wall = {k: harness.summary(w for w, _ in v) for k, v in runs.items()}
    rss = {k: harness.summary(r for _, r in v) for k, v in runs.items()}
    cpu_s = {k: harness.summary(v) for k, v in cpu.items() if v}
    summary_s = harness.summary(r["summary_s"] for r in inproc)
    import_s = harness.summary(r["import_s"] for r in inproc)
    torch_summary_s = harness.summary(r["summary_s"] for r in torch_inproc)
    rows = [
        {"measure": "ftui inspect --json: wall", "value": wall["json"]["median"], "unit": "s",
         "target": f"< {TARGET_S:g}", "status": harness.verdict(wall["json"]["median"], TARGET_S),
         "note": f"{size / 1e9:.2f} GB file, {inproc[0]['tensors']} weight tensors"},
        {"measure": "ftui inspect --json: CPU time", "value": cpu_s["json"]["median"], "unit": "s",
         "target": f"< {TARGET_S:g}", "status": harness.verdict(cpu_s["json"]["median"], TARGET_S),
         "note": "user + system: what an idle core would take"},
        {"measure": "ftui inspect --json: peak RSS", "value": rss["json"]["max"], "unit": "MB",
         "target": f"< {TARGET_MB:g}", "status": harness.verdict(rss["json"]["max"], TARGET_MB),
         "note": f"file {size / 1e6:,.0f} MB; no torch import, no tensor data read"},
        {"measure": "load_checkpoint + summarize (in process)", "value": summary_s["median"], "unit": "s",
         "note": f"torch imported: {'yes' if any(r['torch_imported'] for r in inproc) else 'no'}; "
                 f"reader {inproc[0]['reader']}; importing core.inspect {import_s['median']:.2f}s"},
        {"measure": "torch.load path (before; the fall-back): wall", "value": wall["torch_path"]["median"], "unit": "s",
         "note": "import torch + torch.load(mmap) + summarize"},
        {"measure": "torch.load path (before; the fall-back): CPU time", "value": cpu_s["torch_path"]["median"],
         "unit": "s"},
        {"measure": "torch.load path (before; the fall-back): peak RSS", "value": rss["torch_path"]["max"],
         "unit": "MB",
         "note": f"of which load + summarize {torch_summary_s['median']:.2f}s"},
        {"measure": "python -c 'import torch': wall", "value": wall["torch"]["median"], "unit": "s",
         "note": "the floor of any torch command"},
        {"measure": "python -c 'import torch': CPU time", "value": cpu_s["torch"]["median"], "unit": "s"},
        {"measure": "python -c 'import torch': peak RSS", "value": rss["torch"]["max"], "unit": "MB"},
    ]
    if "plain" in wall:
        rows[3:3] = [
            {"measure": "ftui inspect --plain: wall", "value": wall["plain"]["median"], "unit": "s",
             "target": f"< {TARGET_S:g}", "status": harness.verdict(wall["plain"]["median"], TARGET_S)},
            {"measure": "ftui inspect --plain: peak RSS", "value": rss["plain"]["max"], "unit": "MB",
             "target": f"< {TARGET_MB:g}", "status": harness.verdict(rss["plain"]["max"], TARGET_MB)},
        ]
    results = {
        "config": {"size_gb": args.size_gb, "file_bytes": size, "reps": args.reps},
        "wall_s": wall, "cpu_s": cpu_s, "peak_rss_mb": rss, "inprocess": inproc, "torch_path": torch_inproc,
    }
    harness.report("inspect_large", "Inspect a large checkpoint", rows, results, args.out, quick=args.quick)


if __name__ == "__main__":
    main()
