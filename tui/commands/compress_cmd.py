"""``ftui compress`` and ``ftui export --format onnx``: thin bodies over ``core.compress``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console


def compress_command(ckpt: Path, options: object, *, as_json: bool = False) -> None:
    """Make the compressed variants, print the trade-off table (or its JSON) and where it was saved."""
    from core.compress.pipeline import compress

    console = Console(emoji=False, highlight=False, soft_wrap=True, stderr=as_json)
    import sys

    result = compress(ckpt, options, say=lambda text: console.print(f"[dim]{_escape(text)}[/]"),  # type: ignore[arg-type]
                      run_output=sys.stderr if as_json else None)
    if as_json:
        import json

        typer.echo(json.dumps(result.table, indent=2))
        return
    from tui.widgets.tradeoff_render import tradeoff_view

    out = Console(emoji=False, highlight=False)
    out.print(tradeoff_view(result.table, compact=out.width < 110))
    console.print(f"saved: {result.tradeoff_path} (and one checkpoint per variant in {result.out})")
    first = next((v for v in result.table["variants"][1:]), None)
    if first is not None:
        trust = " --trust-code" if getattr(options, "trust_code", False) else ""  # the variant names the same code
        console.print(f"next:  ftui eval {first['checkpoint']}{trust}    ftui diff {result.table['source']} {first['checkpoint']}")


def export_onnx_command(ckpt: Path, *, out: Path | None, opset: int | None, trust_code: bool = False) -> None:
    """Export a checkpoint's model to ONNX, verified in ONNX Runtime on a batch of its test split."""
    from core.errors import CheckpointError
    from core.inspect import load_checkpoint

    target = Path(out) if out is not None else ckpt.with_suffix(".onnx")
    if target.resolve() == ckpt.resolve():
        raise CheckpointError(f"--out {target} is the checkpoint being exported; choose another output path.")
    if target.is_dir():
        raise CheckpointError(f"--out {target} is a directory; give a file path such as {target / (ckpt.stem + '.onnx')}.")
    kind = load_checkpoint(ckpt).format  # torch-free: a weights file is refused before torch starts
    if kind != "ftui":
        raise CheckpointError(
            f"{ckpt}: --format onnx exports the model, which ftui rebuilds from an ftui checkpoint's config, "
            f"but this is a {kind} file (weights only). Fix: export an ftui checkpoint "
            "(runs/<name>/checkpoints/best.pt), or export these weights with --format safetensors or state_dict."
        )
    from core.compress.deps import require

    require("onnxruntime", purpose="ftui export --format onnx (verification)")
    require("onnxscript", purpose="ftui export --format onnx")
    from core.training.rebuild import rebuild

    with rebuild(ckpt, trust_code=trust_code, command=f"ftui export {ckpt} --format onnx", announce=_announce,
                 config_option=False) as rebuilt:
        _export_rebuilt(rebuilt, target, opset)


def _export_rebuilt(rebuilt: Any, target: Path, opset: int | None) -> None:
    from core.compress import record as rec

    step = rec.quantized(rebuilt.ckpt.get(rec.RECORD_KEY))
    if step is not None:
        # an int8 variant already is an ONNX model: write it out as it was measured
        from core.runs import atomic_write

        data = rebuilt.ckpt[rec.ONNX_KEY].numpy().tobytes()
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, lambda fh: fh.write(data))
        typer.echo(f"wrote {target} (the int8 model of this checkpoint, {len(data):,} bytes; {step.get('runtime')})")
        return
    from core.compress.onnx_export import export_onnx
    from core.compress.pipeline import _test_batch

    batch = _test_batch(rebuilt.trainer, 64)
    lora = rebuilt.trainer.lora
    # a LoRA checkpoint deploys merged: plain layers, the adapters folded in (docs/lora.md)
    model = lora.merged() if lora is not None else rebuilt.trainer.model
    report = export_onnx(model.cpu(), batch[:2], target, verify_batch=batch, opset=opset)
    from tui.widgets.inspect_render import fmt_bytes

    typer.echo(
        f"wrote {report.path} (ONNX opset {report.opset}, dynamic batch, {fmt_bytes(report.size)}"
        f"{', LoRA adapters merged' if lora is not None else ''}); verified in "
        f"ONNX Runtime {report.onnxruntime} on {report.verified_on} test samples: max |ORT - PyTorch| = "
        f"{report.max_abs_diff:.2g} (tolerance 1e-4)"
    )


def _announce(names: list[str]) -> None:
    err = Console(emoji=False, stderr=True, highlight=False, soft_wrap=True)
    for name in names:
        err.print(f"running your code: {name}", markup=False)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
