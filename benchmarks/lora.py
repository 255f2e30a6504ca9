"""Benchmark 12 — LoRA against full fine-tuning of the same model on the same data (issue 19).

The ViT of ``sample_configs/vit_shapes.yaml`` (its ``best.pt``: ``runs/vit_shapes`` when it is there,
trained into a temporary root first otherwise, or ``--base PATH``) is adapted to the four shapes of
``sample_configs/lora_vit_shapes.yaml`` twice, each in a process of its own:

* **lora** — the sample as it is: rank-4 adapters on every block's attention and a new head;
* **full** — the same config without ``finetune.lora``: every parameter trains (at ``--full-lr``,
  0.001 by default; full fine-tuning wants a smaller rate than adapters).

Same data, seed, batch, epochs and so the same number of steps. Per variant: trainable and total
parameters; the step time by the CPU time of the training process over the epochs' training (the
verdict: the data is drawn in the loader's worker, and wall time on a shared machine moves with other
load) and by wall time (median over the logging windows of batch size / samples per second);
training seconds; peak RSS of the process (``ru_maxrss``; on a GPU also
``torch.cuda.max_memory_allocated``) and its RSS before training (the interpreter and libraries:
LoRA's imports PEFT and transformers); the optimizer state; validation accuracy after the last step,
test accuracy of ``last.pt`` and the checkpoint's size. ``--reps N`` repeats the pair, interleaved
(lora, full, lora, full...), and reports medians. Last, the model's own step (forward, backward,
AdamW on a fixed batch, one thread, no data pipeline) of both variants, interleaved in this process.

    python benchmarks/lora.py [--base PATH] [--reps 1] [--full-lr 0.001] [--quick]
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import harness

SAMPLE = harness.REPO / "sample_configs" / "lora_vit_shapes.yaml"
BASE_SAMPLE = harness.REPO / "sample_configs" / "vit_shapes.yaml"
TARGET_RATIO = 20.0  # fewer trainable parameters than full fine-tuning, at least
TARGET_STEP = 1.0  # LoRA step time / full step time, at most
QUICK = {"kwargs": {"patch_size": 4, "num_layers": 2, "num_heads": 2, "hidden_dim": 32, "mlp_dim": 64}}


def child(raw_path: Path, out_path: Path) -> None:
    """Train one variant in this process and write what only this process can measure."""
    import torch

    import ftui

    import core.data  # noqa: F401 - what the run imports anyway, loaded before the baseline
    import core.models  # noqa: F401
    import core.training.trainer  # noqa: F401

    raw = json.loads(raw_path.read_text())
    if raw["finetune"].get("lora"):
        import peft  # noqa: F401 - and LoRA's PEFT (with transformers)
    # what the process holds before training: the interpreter, torch, ftui, PEFT and transformers for LoRA
    baseline = _rss_mb()
    clock = epoch_cpu()
    result = ftui.run(raw, callbacks=[clock])
    cuda = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    out_path.write_text(json.dumps({
        "run": str(result.path),
        "status": result.status,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "baseline_rss_mb": baseline,
        # CPU seconds of this process over the epochs' training (data is drawn in the loader's worker):
        # what a step costs in compute, less sensitive to other load on a shared machine than wall time
        "train_cpu_s": clock.cpu,
        "cuda_max_allocated_mb": cuda,
    }))


def epoch_cpu() -> Any:
    """A callback that sums this process's CPU time over the training part of each epoch."""
    from core.training.callback import Callback

    class EpochCpu(Callback):
        def __init__(self) -> None:
            self.cpu = 0.0
            self._start: float | None = None

        def on_train_epoch_start(self, trainer: Any) -> None:
            self._start = time.process_time()

        def on_validation_start(self, trainer: Any) -> None:  # the epoch's training is over
            if self._start is not None:
                self.cpu += time.process_time() - self._start
                self._start = None

        def on_train_epoch_end(self, trainer: Any) -> None:  # an epoch without validation
            self.on_validation_start(trainer)

    return EpochCpu()


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def base_checkpoint(path: Path | None, quick: bool, tmp: Path) -> Path:
    """The base ViT: given, the sample's run, or trained now (``--quick``: untrained, tiny)."""
    if path is not None:
        return path
    if quick:
        import torch

        from core.config import ModelConfig
        from core.models import build_model

        torch.manual_seed(0)
        model = build_model(ModelConfig(name="vit_b_16", **QUICK), 6, (3, 16, 16)).model
        out = tmp / "base.pt"
        torch.save(model.state_dict(), out)
        return out
    default = harness.REPO / "runs" / "vit_shapes" / "checkpoints" / "best.pt"
    if default.is_file():
        return default
    cmd = [sys.executable, "-m", "tui.cli", "run", str(BASE_SAMPLE), "-q", "--set", f"run.root={tmp}"]
    print("training the base ViT first:", " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True, cwd=harness.REPO)
    return tmp / "vit_shapes" / "checkpoints" / "best.pt"


def model_step_ms(quick: bool, reps: int = 7, steps: int = 20) -> dict[str, float]:
    """The model's own step (forward, backward, AdamW) on one fixed batch of 32, one thread, without the
    data pipeline: medians over ``reps`` interleaved rounds of ``steps`` steps (after 5 warm-up steps), by
    wall time and by CPU time (the latter is what a shared machine's load disturbs least)."""
    import torch
    import yaml

    from core.config import LoraConfig, ModelConfig
    from core.lora.adapters import apply_lora
    from core.models import build_model

    torch.set_num_threads(1)
    raw = yaml.safe_load(SAMPLE.read_text())
    kwargs = QUICK["kwargs"] if quick else raw["model"]["kwargs"]
    steps = 5 if quick else steps
    x, y = torch.randn(32, 3, 16, 16), torch.randint(0, 4, (32,))
    models = {}
    for kind in ("lora", "full"):
        torch.manual_seed(0)
        built = build_model(ModelConfig(name="vit_b_16", kwargs=kwargs), 4, (3, 16, 16))
        if kind == "lora":
            apply_lora(built.model, LoraConfig(**raw["finetune"]["lora"]), built.head_path)
        params = [p for p in built.model.parameters() if p.requires_grad]
        models[kind] = (built.model.train(), torch.optim.AdamW(params, lr=1e-3))
    rounds: dict[str, list[float]] = {"lora": [], "full": [], "lora_cpu": [], "full_cpu": []}
    for _ in range(reps):
        for kind, (model, opt) in models.items():
            times, cpu = [], []
            for i in range(steps + 5):
                t0, c0 = time.perf_counter(), time.process_time()
                torch.nn.functional.cross_entropy(model(x), y).backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                if i >= 5:
                    times.append(time.perf_counter() - t0)
                    cpu.append(time.process_time() - c0)
            rounds[kind].append(1000 * statistics.median(times))
            rounds[f"{kind}_cpu"].append(1000 * statistics.median(cpu))
    return {kind: statistics.median(values) for kind, values in rounds.items()}


def variant(kind: str, base: Path, root: Path, rep: int, *, full_lr: float, quick: bool) -> dict[str, Any]:
    import yaml

    raw = yaml.safe_load(SAMPLE.read_text())
    raw["run"].update(name=f"{kind}-{rep}", root=str(root))
    raw["model"]["weights"] = str(base)
    raw["logging"].update(progress="none", tensorboard=False, system=False)
    if kind == "full":
        raw["finetune"].pop("lora")
        raw["optim"]["lr"] = full_lr
    if quick:
        raw["model"].update(QUICK)
        raw["data"]["shapes"].update(train_size=128, val_size=64, test_size=64)
        raw["data"]["num_workers"] = 0
        raw["trainer"]["epochs"] = 1
        raw["logging"]["every_n_steps"] = 1
    raw_path, out_path = root / f"{kind}-{rep}.json", root / f"{kind}-{rep}.out.json"
    raw_path.write_text(json.dumps(raw))
    subprocess.run([sys.executable, __file__, "--child", str(raw_path), str(out_path)], check=True, cwd=harness.REPO)
    measured = json.loads(out_path.read_text())
    return {**measured, **read_run(Path(measured["run"]), batch=raw["data"]["batch_size"])}


def read_run(run: Path, *, batch: int) -> dict[str, Any]:
    """Figures from the run directory (through the run reader's files) and its last checkpoint."""
    from core.runs import RunReader
    from core.training.evaluate import evaluate_checkpoint

    reader = RunReader(run, columns=False)  # every row decoded: the logging windows one by one
    rows: list[dict[str, Any]] = []
    while True:
        delta = reader.poll()
        if delta is None:
            break
        rows += delta.metrics
        if not delta.more:
            break
    train = [r for r in rows if r.get("split") == "train" and r.get("samples_per_s")]
    val = [r for r in rows if r.get("split") == "val"]
    model = reader.model or {}
    windows = [batch / r["samples_per_s"] for r in train[1:] or train]  # the first window holds the warm-up
    last = run / "checkpoints" / "last.pt"
    test = evaluate_checkpoint(last, split="test").metrics
    import torch

    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    state = ckpt["optimizer"]["state"].values()
    return {
        "optimizer_state_bytes": sum(t.numel() * t.element_size() for s in state for t in s.values()
                                     if isinstance(t, torch.Tensor) and t.dim() > 0),
        "trainable_params": model.get("trainable_params"),
        "total_params": model.get("total_params"),
        "step_ms": 1000 * statistics.median(windows) if windows else None,
        "train_seconds": float(ckpt["metrics"]["train_seconds"]),
        "steps": int(ckpt["step"]),
        "val_acc": val[-1]["acc"] if val else None,
        "test_acc": test["acc"],
        "checkpoint_bytes": last.stat().st_size,
    }


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(Path(sys.argv[2]), Path(sys.argv[3]))
        return
    p = harness.parser("lora", __doc__.splitlines()[0])
    p.add_argument("--base", type=Path, default=None, help="The base ViT checkpoint (default: runs/vit_shapes).")
    p.add_argument("--reps", type=int, default=1, help="Repetitions of the pair, interleaved.")
    p.add_argument("--full-lr", type=float, default=0.001, help="optim.lr of the full fine-tuning.")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="ftui-bench-lora-") as tmp_name:
        tmp = Path(tmp_name)
        base = base_checkpoint(args.base, args.quick, tmp)
        results: dict[str, list[dict[str, Any]]] = {"lora": [], "full": []}
        for rep in range(args.reps):
            for kind in ("lora", "full"):
                print(f"{kind} fine-tuning, repetition {rep + 1}/{args.reps}", flush=True)
                results[kind].append(variant(kind, base, tmp, rep, full_lr=args.full_lr, quick=args.quick))
    med = {kind: {key: _median([r[key] for r in runs]) for key in runs[0] if key not in ("run", "status")}
           for kind, runs in results.items()}
    own_step = model_step_ms(args.quick)
    for kind in med:
        med[kind]["model_step_ms"] = own_step[kind]
        med[kind]["model_step_cpu_ms"] = own_step[f"{kind}_cpu"]
        med[kind]["step_cpu_ms"] = 1000 * med[kind]["train_cpu_s"] / med[kind]["steps"]
    lora, full = med["lora"], med["full"]
    ratio = full["trainable_params"] / lora["trainable_params"]
    step_ratio = lora["step_cpu_ms"] / full["step_cpu_ms"]
    wall_ratio = lora["step_ms"] / full["step_ms"]
    rows = [
        {"measure": "trainable params: full / LoRA", "value": ratio, "unit": "x", "target": f">= {TARGET_RATIO:g}",
         "status": harness.verdict(ratio, TARGET_RATIO, lower_is_better=False),
         "note": f"{lora['trainable_params']:,} of {lora['total_params']:,} vs {full['trainable_params']:,}"},
        {"measure": "step CPU time: LoRA / full", "value": step_ratio, "unit": "x", "target": f"<= {TARGET_STEP:g}",
         "status": harness.verdict(step_ratio, TARGET_STEP),
         "note": f"{lora['step_cpu_ms']:.1f} ms vs {full['step_cpu_ms']:.1f} ms (the training process over the epochs' "
                 "training; data is drawn in the loader's worker)"},
        {"measure": "step wall time: LoRA / full", "value": wall_ratio, "unit": "x",
         "note": f"{lora['step_ms']:.1f} ms vs {full['step_ms']:.1f} ms (median over logging windows; other load on "
                 "the machine moves it)"},
        {"measure": "the model's own step: LoRA / full", "value": own_step["lora_cpu"] / own_step["full_cpu"],
         "unit": "x", "note": f"CPU {own_step['lora_cpu']:.1f} ms vs {own_step['full_cpu']:.1f} ms, wall "
                              f"{own_step['lora']:.1f} vs {own_step['full']:.1f} (fixed batch, 1 thread, no data)"},
    ]
    for key, unit in (("train_seconds", "s"), ("maxrss_mb", "MB"), ("baseline_rss_mb", "MB"),
                      ("cuda_max_allocated_mb", "MB"), ("optimizer_state_bytes", "B"), ("val_acc", ""),
                      ("test_acc", ""), ("checkpoint_bytes", "B"), ("steps", "")):
        if lora.get(key) is None:
            continue
        rows.append({"measure": f"{key}: LoRA | full", "value": f"{_fmt(lora[key])} | {_fmt(full[key])}", "unit": unit})
    harness.report("lora", "Benchmark 12: LoRA vs full fine-tuning (the ViT sample)", rows,
                   {"medians": med, "runs": results, "full_lr": args.full_lr, "reps": args.reps,
                    "trainable_ratio": ratio, "step_cpu_ratio": step_ratio, "step_wall_ratio": wall_ratio, "base": str(base)},
                   args.out, quick=args.quick)


def _median(values: list[Any]) -> Any:
    nums = [v for v in values if isinstance(v, (int, float))]
    if not nums:
        return None
    value = statistics.median(nums)
    return int(value) if all(isinstance(v, int) for v in nums) and value == int(value) else value


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


if __name__ == "__main__":
    main()
