"""``ftui compress``: from a checkpoint to smaller, faster variants with their accuracy cost measured.

One call makes, from a source checkpoint, the variants asked for — structured or unstructured
pruning, an optional fine-tune of the pruned model (a normal run), int8 quantisation of the original
and of the pruned model — saves each as an ftui checkpoint (plus its verified ONNX file), evaluates
each saved file through the same path as ``ftui eval`` (so the table's accuracy is what ``ftui eval``
prints), measures them all under the same thread count, and writes ``tradeoff.json``.
"""

from __future__ import annotations

import copy
import datetime as _dt
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from core.compress import record as rec
from core.compress.runtime import (
    flops, latencies, ort_runner, ort_session, param_count, sparsity, state_dict_bytes, torch_runner,
)
from core.compress.tradeoff import TRADEOFF_FORMAT, TRADEOFF_JSON, write_tradeoff
from core.errors import CompressionError
from core.training.checkpoint import save_file

PRUNE_MODES = ("structured", "unstructured")
QUANTIZE = ("int8",)
LATENCY_BATCHES = (1, 64)


@dataclass
class CompressOptions:
    """What ``ftui compress`` was asked to do (see ``ftui compress --help``)."""

    prune: float | None = None
    prune_mode: str = "structured"
    quantize: str | None = None
    quant_mode: str = "auto"
    allow_float: bool = False
    calibration_samples: int = 256
    finetune_epochs: int = 0
    finetune_set: list[str] = field(default_factory=list)
    out: Path | None = None
    onnx: bool = True
    threads: int | None = None
    repeats: int = 20
    config: Path | None = None
    overrides: list[str] = field(default_factory=list)
    trust_code: bool = False  # the checkpoint names the user's code and they agree to run it

    def check(self) -> None:
        """Refuse impossible requests before any work (exit 2 with the fix)."""
        if self.prune is not None and not 0.0 < self.prune < 1.0:
            raise CompressionError(
                f"--prune {self.prune:g}: the pruning amount is the fraction of channels (or weights) to remove and "
                "must lie strictly between 0 and 1. Fix: e.g. --prune 0.5 removes half."
            )
        if self.prune_mode not in PRUNE_MODES:
            raise CompressionError(f"--prune-mode {self.prune_mode!r}: expected one of {', '.join(PRUNE_MODES)}.")
        if self.quantize is not None and self.quantize not in QUANTIZE:
            raise CompressionError(f"--quantize {self.quantize!r}: expected one of {', '.join(QUANTIZE)}.")
        if self.finetune_epochs < 0:
            raise CompressionError(f"--finetune-epochs {self.finetune_epochs}: expected 0 or more.")
        if self.finetune_epochs and self.prune is None:
            raise CompressionError("--finetune-epochs fine-tunes a pruned model. Fix: add --prune F, or drop it.")
        if self.finetune_epochs and self.prune_mode != "structured":
            raise CompressionError(
                "--finetune-epochs after unstructured pruning would train the zeroed weights back to non-zero "
                "values. Fix: use --prune-mode structured, or drop --finetune-epochs."
            )
        if self.prune is None and self.quantize is None:
            raise CompressionError(
                "ftui compress: nothing to do. Fix: give --prune F (e.g. --prune 0.5) and/or --quantize int8."
            )
        if self.calibration_samples < 1:
            raise CompressionError(f"--calibration-samples {self.calibration_samples}: expected 1 or more.")
        if self.quantize and not self.onnx:
            raise CompressionError("--quantize int8 runs in ONNX Runtime and needs the ONNX export. Fix: drop --no-onnx.")


@dataclass
class Variant:
    """One row of the table while it is being made."""

    name: str
    checkpoint: Path
    model: nn.Module | None  # the float model (None for int8)
    steps: list[dict[str, Any]]
    onnx: Path | None = None
    onnx_bytes: bytes | None = None  # the int8 model
    flops: int | None = None
    notes: list[str] = field(default_factory=list)
    row: dict[str, Any] = field(default_factory=dict)


@dataclass
class CompressResult:
    """What ``compress`` produced."""

    out: Path
    table: dict[str, Any]
    tradeoff_path: Path
    finetune_run: Path | None = None


def default_out(ckpt: Path) -> Path:
    """``runs/<name>/compressed`` for a run's checkpoint, else ``<stem>-compressed`` beside the file."""
    ckpt = Path(ckpt)
    if ckpt.parent.name == "checkpoints" and (ckpt.parent.parent / "run.json").is_file():
        return ckpt.parent.parent / "compressed"
    return ckpt.parent / f"{ckpt.stem}-compressed"


def compress(
    ckpt_path: Path | str, options: CompressOptions, *, say: Callable[[str], None] = print, run_output: Any = None
) -> CompressResult:
    """Make, evaluate and measure the compressed variants of ``ckpt_path`` (see the module docstring).

    ``say`` reports progress; ``run_output`` is where the fine-tuning run prints (default: stdout).

    Raises:
        CompressionError, CheckpointError, MissingDependency: bad input, with the fix (exit 2).
    """
    from core.training.rebuild import rebuild

    options.check()
    ckpt_path = Path(ckpt_path)
    out = Path(options.out) if options.out is not None else default_out(ckpt_path)
    if out.exists() and any(out.iterdir()):
        raise CompressionError(
            f"--out {out}: the folder exists and is not empty; ftui never overwrites earlier results. "
            f"Fix: pass another --out, or remove {out}."
        )
    threads = int(options.threads or torch.get_num_threads())
    if options.quantize or options.onnx:
        from core.compress.deps import require

        require("onnxruntime", purpose="ONNX export and int8 quantisation")
        require("onnxscript", purpose="ONNX export")
    if options.prune is not None and options.prune_mode == "structured":
        from core.compress.deps import require

        require("torch_pruning", purpose="structured pruning")

    say(f"rebuilding {ckpt_path} (its config, data and weights)")
    source = rebuild(ckpt_path, config=options.config, overrides=options.overrides, trust_code=options.trust_code,
                     command=f"ftui compress {ckpt_path}", announce=lambda names: say(f"running your code: {', '.join(names)}"),
                     config_option=False)  # `ftui compress` takes no --config
    if rec.quantized(source.ckpt.get(rec.RECORD_KEY)) is not None:
        source.trainer.cleanup()
        raise CompressionError(
            f"{ckpt_path}: is already an int8 variant. Fix: compress its float source (see `ftui inspect {ckpt_path}`)."
        )
    if source.trainer.lora is not None:
        source.trainer.cleanup()
        raise CompressionError(
            f"{ckpt_path}: holds LoRA adapters (docs/lora.md); ftui compress prunes and quantises plain models. Fix: "
            f"merge them with `ftui export {ckpt_path} --merge` and deploy those weights (ONNX: `ftui export "
            f"{ckpt_path} --format onnx` merges too), or fine-tune a run from them (model.weights, no finetune.lora) "
            "and compress its checkpoint."
        )
    try:
        return _compress(ckpt_path, options, source, out, threads, say, run_output)
    finally:
        source.trainer.cleanup()


def _compress(ckpt_path: Path, options: CompressOptions, source: Any, out: Path, threads: int,
              say: Callable[[str], None], run_output: Any) -> CompressResult:
    from core.training.evaluate import evaluate_checkpoint

    trainer = source.trainer
    data = trainer.data
    input_shape = tuple(int(s) for s in data.input_shape)
    if isinstance(data.input_shape, dict):
        raise CompressionError(
            f"{ckpt_path}: the model takes named inputs ({', '.join(map(str, data.input_shape))}); ftui compress "
            "handles models of one input tensor so far. Fix: compress a model whose forward takes one tensor."
        )
    base_steps = rec.steps(source.ckpt.get(rec.RECORD_KEY))
    test_batch = _test_batch(trainer, 64)
    out.mkdir(parents=True, exist_ok=True)

    model = copy.deepcopy(trainer.model).cpu().eval()
    variants: list[Variant] = [Variant("original", ckpt_path, model, base_steps)]
    float_for_int8: list[Variant] = [variants[0]]

    if options.prune is not None:
        pct = round(options.prune * 100)
        pruned = copy.deepcopy(model)
        if options.prune_mode == "structured":
            from core.compress.structure import prune_structured

            say(f"structured pruning: removing {pct} % of the channels of every layer (Torch-Pruning)")
            step = prune_structured(pruned, options.prune, test_batch[:2], ignored=[trainer.built.head_path])
            name = f"pruned{pct}"
        else:
            from core.compress.sparse import prune_unstructured

            say(f"unstructured pruning: zeroing {pct} % of the weights by magnitude (torch.nn.utils.prune)")
            step = prune_unstructured(pruned, options.prune)
            name = f"sparse{pct}"
        variant = Variant(name, out / f"{name}.pt", pruned, base_steps + [step])
        _save_variant(source, variant, trainer, input_shape)
        variants.append(variant)
        last_float = variant
        if options.finetune_epochs:
            last_float = _finetune(source, variant, options, out, say, run_output)
            variants.append(last_float)
        float_for_int8.append(last_float)

    if options.onnx:
        for variant in [v for v in variants if v.model is not None]:
            path = out / f"{variant.name}.onnx"
            say(f"exporting {variant.name} to ONNX and checking it against PyTorch in ONNX Runtime")
            from core.compress.onnx_export import export_onnx

            try:
                report = export_onnx(variant.model, test_batch[:2], path, verify_batch=test_batch)
            except CompressionError as exc:
                if options.quantize:
                    raise
                variant.notes.append(f"no ONNX export: {exc}")
                say(f"warning: {exc}")
                continue
            variant.onnx = path
            variant.notes.append(f"ONNX opset {report.opset}, max |ORT - torch| {report.max_abs_diff:.2g}")

    if options.quantize:
        from core.compress.quantize import quantize_int8

        calibration = _calibration_batches(data, trainer.cfg, options.calibration_samples)
        for parent in float_for_int8:
            name = "int8" if parent.name == "original" else f"{parent.name}-int8"
            say(f"int8 quantisation of {parent.name} with ONNX Runtime ({options.quant_mode} mode)")
            assert parent.onnx is not None
            result = quantize_int8(parent.onnx, mode=options.quant_mode, calibration=calibration,
                                   allow_float=options.allow_float)
            if result.float_layers:
                say("layers kept in float32: " + ", ".join(f"{f['layer']} ({f['op']})" for f in result.float_layers))
            parent_steps = parent.steps if parent.name != "original" else base_steps
            variant = Variant(name, out / f"{name}.pt", None, parent_steps + [result.step()],
                              onnx=out / f"{name}.onnx", onnx_bytes=result.model, flops=parent.flops)
            variant.onnx.write_bytes(result.model)
            _save_variant(source, variant, trainer, input_shape, float_model=parent.model)
            variants.append(variant)

    say("evaluating every variant on the test split (as `ftui eval` does)")
    split = "test" if data.test is not None and len(data.test) else "val"
    for variant in variants:
        # the source too goes through ftui eval's path, so its row is what `ftui eval` prints
        evaluation = evaluate_checkpoint(variant.checkpoint, split=split, trust_code=options.trust_code,
                                         **({"config": options.config, "overrides": options.overrides}
                                            if variant.name == "original" else {}))
        variant.row["accuracy"] = float(evaluation.metrics["acc"])
        variant.row["loss"] = float(evaluation.metrics["loss"])
        variant.row["samples"] = evaluation.size

    say(f"measuring CPU latency with {threads} thread(s), median of {options.repeats} interleaved runs")
    table = _measure(variants, test_batch, threads, options.repeats)
    base_acc = variants[0].row["accuracy"]
    for variant in variants:
        variant.row["accuracy_change"] = variant.row["accuracy"] - base_acc
    table.update({
        "format": TRADEOFF_FORMAT,
        "source": str(ckpt_path),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "split": split,
        "options": {
            "prune": options.prune, "prune_mode": options.prune_mode if options.prune is not None else None,
            "quantize": options.quantize, "quant_mode": options.quant_mode if options.quantize else None,
            "finetune_epochs": options.finetune_epochs, "calibration_samples": options.calibration_samples,
        },
        "variants": [v.row for v in variants],
    })
    tradeoff_path = out / TRADEOFF_JSON
    write_tradeoff(tradeoff_path, table)
    finetune_run = next((Path(s["run"]) for v in variants for s in v.steps if s.get("kind") == "finetune"), None)
    return CompressResult(out=out, table=table, tradeoff_path=tradeoff_path, finetune_run=finetune_run)


def _test_batch(trainer: Any, size: int) -> torch.Tensor:
    """Up to ``size`` inputs of the test split (the validation split when there is none), in order."""
    data = trainer.data
    dataset = data.test if data.test is not None and len(data.test) else data.val
    items = [dataset[i][0] for i in range(min(size, len(dataset)))]
    batch = torch.stack([x if isinstance(x, torch.Tensor) else torch.as_tensor(x) for x in items]).float()
    if batch.shape[0] < size:  # a tiny split: repeat it so batch-64 latency is still a batch of 64
        batch = batch.repeat((size + batch.shape[0] - 1) // batch.shape[0], *[1] * (batch.dim() - 1))[:size]
    return batch


def _calibration_batches(data: Any, cfg: Any, samples: int) -> list[np.ndarray]:
    """Training samples seen through the evaluation transforms (no augmentation), in batches."""
    from core.data.datasets import SplitDataset

    train = data.train
    if isinstance(train, SplitDataset) and isinstance(data.val, SplitDataset):
        train = SplitDataset(train.base, train.indices, data.val.transform, seed=train.seed, random=False,
                             split="calibration")
    order = list(range(len(train)))
    random.Random(cfg.run.seed).shuffle(order)
    chosen = order[: min(samples, len(order))]
    size = max(1, int(cfg.data.batch_size))
    batches = []
    for start in range(0, len(chosen), size):
        xs = [train[i][0] for i in chosen[start:start + size]]
        batches.append(torch.stack(xs).float().numpy())
    return batches


def _record(source: Any, variant: Variant) -> dict[str, Any]:
    return {"format": rec.RECORD_FORMAT, "source": str(source.trainer.resumed_from), "variant": variant.name,
            "created": time.time(), "steps": variant.steps}


def _save_variant(source: Any, variant: Variant, trainer: Any, input_shape: tuple[int, ...], *,
                  float_model: nn.Module | None = None) -> None:
    """Write ``variant`` as an ftui checkpoint: the source's keys, the new weights, the record.

    The optimizer, scheduler and RNG states of the source do not fit a changed model and are dropped
    (the checkpoint is for evaluation, export and as ``model.weights`` of a new run).
    """
    from core.models import model_tree

    model = variant.model if variant.model is not None else float_model
    assert model is not None
    ckpt = {k: v for k, v in source.ckpt.items()
            if k not in ("optimizer", "scheduler", "scaler", "rng", "callbacks", rec.ONNX_KEY, rec.RECORD_KEY)}
    ckpt.update({"model": {k: v.detach().clone() for k, v in model.state_dict().items()}, "optimizer": {},
                 "scheduler": {}, "scaler": {}, rec.RECORD_KEY: _record(source, variant)})
    try:
        ckpt["model_tree"] = model_tree(copy.deepcopy(model), input_shape, trainer.built.head_path,
                                        name=trainer.built.name)
    except Exception:  # noqa: BLE001 - the tree is informative
        pass
    if variant.onnx_bytes is not None:
        ckpt[rec.ONNX_KEY] = torch.frombuffer(bytearray(variant.onnx_bytes), dtype=torch.uint8)
    save_file(ckpt, variant.checkpoint)


def _finetune(source: Any, pruned: Variant, options: CompressOptions, out: Path, say: Callable[[str], None],
              run_output: Any) -> Variant:
    from core.compress.finetune import finetune_config, run_finetune
    from core.training.checkpoint import load_file

    run_name = f"{source.config.run.name or 'run'}-{pruned.name}-ft"
    cfg = finetune_config(source.config, pruned.checkpoint, options.finetune_epochs, run_name, options.finetune_set)
    cfg.run.root = str(Path(source.config.run.root))
    run = run_finetune(cfg, out / "finetune.yaml", announce=say, stdout=run_output)
    name = f"{pruned.name}-ft{options.finetune_epochs}"
    trained = load_file(run.checkpoint)
    rebuilt_steps = rec.steps(trained.get(rec.RECORD_KEY))
    if [s.get("history") for s in rebuilt_steps] != [s.get("history") for s in rec.structural({"steps": pruned.steps})["steps"]]:
        raise CompressionError(f"{run.checkpoint}: the fine-tuned checkpoint lost the pruning record; cannot continue.")
    step = {"kind": "finetune", "epochs": options.finetune_epochs, "run": str(run.run_dir),
            "checkpoint": str(run.checkpoint), "status": run.status, "config": str(run.config_path)}
    variant = Variant(name, out / f"{name}.pt", None, pruned.steps + [step])
    # the run's checkpoint, with the full record; the model itself comes back through the eval path
    from core.training.rebuild import rebuild

    trained[rec.RECORD_KEY] = _record(source, variant)
    save_file(trained, variant.checkpoint)
    with rebuild(variant.checkpoint, trust_code=options.trust_code) as rebuilt:
        variant.model = copy.deepcopy(rebuilt.trainer.model).cpu().eval()
    return variant


def _measure(variants: list[Variant], batch: torch.Tensor, threads: int, repeats: int) -> dict[str, Any]:
    """Fill each variant's row (size, params, FLOPs, sparsity, latency) and return the table's header."""
    inputs = {1: batch[:1].numpy().copy(), 64: batch[:64].numpy().copy()}
    torch_runners: dict[str, Any] = {}
    ort_runners: dict[str, Any] = {}
    for v in variants:
        if v.model is not None:
            torch_runners[v.name] = torch_runner(v.model)
            v.flops = flops(v.model, batch[:1])
        if v.onnx is not None:
            ort_runners[v.name] = ort_runner(ort_session(str(v.onnx), threads))
    none: tuple[dict, dict] = ({}, {})
    torch_ms, torch_cpu = latencies(torch_runners, inputs, threads=threads, repeats=repeats) if torch_runners else none
    ort_ms, ort_cpu = latencies(ort_runners, inputs, threads=threads, repeats=repeats) if ort_runners else none
    per = lambda table, name: {str(k): round(ms, 4) for k, ms in table.get(name, {}).items()} or None  # noqa: E731
    for v in variants:
        float_model = v.model
        v.row.update({
            "name": v.name,
            "checkpoint": str(v.checkpoint),
            "onnx": str(v.onnx) if v.onnx is not None else None,
            "dtype": "int8" if v.onnx_bytes is not None else "float32",
            "params": param_count(float_model) if float_model is not None else None,
            "size_bytes": state_dict_bytes(float_model) if float_model is not None else len(v.onnx_bytes or b""),
            "onnx_bytes": v.onnx.stat().st_size if v.onnx is not None else None,
            "sparsity": sparsity(float_model) if float_model is not None else None,
            "flops": v.flops,
            "latency_ms": {"torch": per(torch_ms, v.name), "onnxruntime": per(ort_ms, v.name)},
            "cpu_ms": {"torch": per(torch_cpu, v.name), "onnxruntime": per(ort_cpu, v.name)},
            "steps": [rec.describe_step(s) for s in v.steps],
            "notes": v.notes,
        })
    # int8 rows inherit the parameter count and sparsity of the float model they were made from
    by_name = {v.name: v for v in variants}
    for v in variants:
        if v.onnx_bytes is not None:
            parent = by_name.get(v.name.removesuffix("-int8") if v.name != "int8" else "original")
            if parent is not None:
                v.row["params"] = parent.row.get("params")
                v.row["sparsity"] = parent.row.get("sparsity")
                v.row["flops"] = parent.row.get("flops")
    return {"machine": _machine(threads), "threads": threads, "repeats": repeats, "latency_batches": list(LATENCY_BATCHES)}


def _machine(threads: int) -> dict[str, Any]:
    from core.system.host import cpu_model

    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        load = None
    return {"cpu": cpu_model(), "cpus": os.cpu_count(), "threads": threads, "load": load, "torch": torch.__version__}
