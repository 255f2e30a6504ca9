"""Compression on the quickstart model and on resnet18 at 64x64 (shapes): int8 and 50 % pruning.

For each model: train it (or take ``--quickstart-ckpt`` / ``--resnet18-ckpt``), then run the same
pipeline as ``ftui compress CKPT --prune 0.5 --finetune-epochs 1 --quantize int8 --threads T``
and report against the targets of issue 21:

- int8: batch-1 CPU latency at least 1.5x lower than float32 (resnet18), accuracy loss <= 1 point;
- 50 % structured pruning + 1 epoch of fine-tuning: >= 1.5x fewer FLOPs, accuracy loss <= 1 point.

Latencies are medians of interleaved repeats with the same thread count for every variant; the
machine's load is recorded with the figures (the CPU is shared). ``--quick`` compresses a tiny model
instead (a smoke run for CI; its figures mean nothing).

    python benchmarks/compression.py [--threads 1] [--repeats 30]
        [--quickstart-ckpt runs/quickstart/checkpoints/best.pt] [--resnet18-ckpt PATH] [--skip-resnet18]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import REPO, parser, report, verdict  # noqa: E402

QUICKSTART = REPO / "sample_configs" / "quickstart.yaml"
RESNET18 = REPO / "benchmarks" / "configs" / "resnet18_shapes64.yaml"
TINY = ["data.shapes.train_size=192", "data.shapes.val_size=48", "data.shapes.test_size=64",
        "model.channels=[8,16]", "trainer.epochs=1", "data.num_workers=0", "logging.progress=none"]


def train(config: Path, root: Path, overrides: list[str]) -> Path:
    """Train ``config`` into ``root``; returns its best.pt."""
    from core.config import load_config
    from core.training.trainer import Trainer

    cfg = load_config(config, [f"run.root={root}", "logging.system=false", *overrides])
    trainer = Trainer(cfg)
    trainer.fit()
    return trainer.run.path / "checkpoints" / "best.pt"


def compress_one(name: str, ckpt: Path, out: Path, threads: int, repeats: int) -> dict[str, Any]:
    from core.compress.pipeline import CompressOptions, compress

    print(f"== {name}: ftui compress {ckpt} --prune 0.5 --finetune-epochs 1 --quantize int8 --threads {threads}")
    result = compress(ckpt, CompressOptions(prune=0.5, finetune_epochs=1, quantize="int8", threads=threads,
                                            repeats=repeats, out=out), say=lambda s: print("  " + s))
    from rich.console import Console

    from tui.widgets.tradeoff_render import tradeoff_table

    Console(width=140, highlight=False).print(tradeoff_table(result.table))
    return result.table


def rows_for(name: str, table: dict[str, Any], *, latency_target: float | None) -> list[dict[str, Any]]:
    by = {v["name"]: v for v in table["variants"]}
    base, int8, ft = by["original"], by["int8"], by["pruned50-ft1"]
    lat = lambda row, rt, b, key="latency_ms": ((row.get(key) or {}).get(rt) or {}).get(str(b))  # noqa: E731
    torch_speed = lat(base, "torch", 1) / lat(int8, "onnxruntime", 1)
    ort_speed = lat(base, "onnxruntime", 1) / lat(int8, "onnxruntime", 1)
    cpu_speed = lat(base, "torch", 1, "cpu_ms") / lat(int8, "onnxruntime", 1, "cpu_ms")
    cpu_ort_speed = lat(base, "onnxruntime", 1, "cpu_ms") / lat(int8, "onnxruntime", 1, "cpu_ms")
    flops_ratio = base["flops"] / ft["flops"]
    out = [
        {"measure": f"{name}: int8 b1 speed-up vs float32 in PyTorch", "value": torch_speed, "unit": "x",
         "target": f">= {latency_target}" if latency_target else "", "status":
         verdict(torch_speed, latency_target, lower_is_better=False) if latency_target else "",
         "note": f"{lat(base, 'torch', 1):.3g} ms -> {lat(int8, 'onnxruntime', 1):.3g} ms (ONNX Runtime int8)"},
        {"measure": f"{name}: int8 b1 speed-up vs float32 in ONNX Runtime", "value": ort_speed, "unit": "x",
         "note": f"{lat(base, 'onnxruntime', 1):.3g} ms -> {lat(int8, 'onnxruntime', 1):.3g} ms"},
        {"measure": f"{name}: same, by CPU time per call (PyTorch / ONNX Runtime float32)", "value": cpu_speed,
         "unit": "x", "note": f"vs ONNX Runtime float32: {cpu_ort_speed:.3g}x; steady under other sessions' load"},
        {"measure": f"{name}: int8 b64 speed-up vs float32 in PyTorch", "value":
         lat(base, "torch", 64) / lat(int8, "onnxruntime", 64), "unit": "x"},
        {"measure": f"{name}: int8 accuracy change", "value": int8["accuracy_change"] * 100, "unit": "points",
         "target": ">= -1", "status": verdict(int8["accuracy_change"] * 100, -1, lower_is_better=False)},
        {"measure": f"{name}: pruned 50% + 1 epoch, FLOPs reduction", "value": flops_ratio, "unit": "x",
         "target": ">= 1.5", "status": verdict(flops_ratio, 1.5, lower_is_better=False)},
        {"measure": f"{name}: pruned 50% + 1 epoch, accuracy change", "value": ft["accuracy_change"] * 100,
         "unit": "points", "target": ">= -1", "status": verdict(ft["accuracy_change"] * 100, -1, lower_is_better=False)},
        {"measure": f"{name}: pruned 50% (no fine-tune), accuracy change", "value":
         by["pruned50"]["accuracy_change"] * 100, "unit": "points"},
    ]
    return out


def main() -> None:
    p = parser("compression", __doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="CPU threads for every latency (default 1).")
    p.add_argument("--repeats", type=int, default=30, help="Timed runs per variant and batch size.")
    p.add_argument("--quickstart-ckpt", type=Path, help="Use this quickstart best.pt instead of training one.")
    p.add_argument("--resnet18-ckpt", type=Path, help="Use this resnet18 (shapes 64x64) best.pt instead of training one.")
    p.add_argument("--skip-resnet18", action="store_true", help="Only the quickstart model.")
    args = p.parse_args()
    results: dict[str, Any] = {"threads": args.threads, "repeats": args.repeats, "tables": {}}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ftui-bench-compress-") as tmp_name:
        tmp = Path(tmp_name)
        if args.quick:
            ckpt = train(QUICKSTART, tmp / "runs", TINY)
            table = compress_one("tiny", ckpt, tmp / "tiny", args.threads, 3)
            results["tables"]["tiny"] = table
            rows += rows_for("tiny", table, latency_target=None)
        else:
            models = [("quickstart", args.quickstart_ckpt, QUICKSTART, None)]
            if not args.skip_resnet18:
                models.append(("resnet18", args.resnet18_ckpt, RESNET18, 1.5))
            for name, given, config, target in models:
                ckpt = given or train(config, tmp / "runs", [])
                table = compress_one(name, ckpt, tmp / name, args.threads, args.repeats)
                results["tables"][name] = table
                rows += rows_for(name, table, latency_target=target)
    report("compression", "Compression: int8 (ONNX Runtime) and 50 % structured pruning", rows, results, args.out,
           quick=args.quick)


if __name__ == "__main__":
    main()
