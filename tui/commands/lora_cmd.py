"""``ftui export --merge`` and ``ftui export --format peft``: LoRA checkpoints out as plain weights or
as PEFT's adapter directory (``core.lora.export``; torch and PEFT are imported inside)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from core.errors import CheckpointError


def export_lora_command(ckpt: Path, *, format_: str, out: Path | None, merge: bool, base: Path | None,
                        trust_code: bool) -> None:
    """Write the merged weights or the adapter directory, and say how they were checked."""
    if format_ == "peft" and merge:
        raise CheckpointError("--merge writes plain weights and --format peft the adapters: choose one. Fix: drop one.")
    if format_ not in ("safetensors", "state_dict", "peft"):
        raise CheckpointError(f"--format {format_!r}: a LoRA export is safetensors or state_dict (with --merge) or peft.")
    if not merge and format_ != "peft":
        raise CheckpointError("--base applies to a LoRA export. Fix: add --merge or --format peft.")
    from core.lora.export import export_merged, export_peft
    from tui.widgets.inspect_render import fmt_bytes

    err = Console(emoji=False, stderr=True, highlight=False, soft_wrap=True)

    def announce(names: list[str]) -> None:
        for name in names:
            err.print(f"running your code: {name}", markup=False)

    if merge:
        result = export_merged(ckpt, fmt=format_, out=out, base=base, trust_code=trust_code, announce=announce)
        what = f"{result.tensors} tensors, {fmt_bytes(result.bytes)}, {format_}, adapters merged"
        check = "merged model vs adapted model"
    else:
        result = export_peft(ckpt, out=out, base=base, trust_code=trust_code, announce=announce)
        what = f"PEFT adapter directory, {result.tensors} tensors, {fmt_bytes(result.bytes)}"
        check = "PeftModel.from_pretrained on the base vs adapted model"
    for notice in result.notices:
        err.print(f"warning: {notice}", markup=False)
    typer.echo(f"wrote {result.path} ({what})")
    typer.echo(f"checked: {check}, max |logit difference| {result.max_abs_diff:.2g} on {result.samples} samples")
