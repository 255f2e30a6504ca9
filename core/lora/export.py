"""``ftui export --merge`` and ``ftui export --format peft``: a LoRA checkpoint as plain weights or as
PEFT's adapter directory, each verified on export; and :func:`base_model`, the model the adapters
were trained on.

Both rebuild the checkpoint through ``core.training.rebuild.rebuild`` (the one path back from a
checkpoint: the base file is found and checked, user code is imported only with ``--trust-code``).

- ``--merge``: PEFT's ``merge_and_unload`` folds every adapter into its base layer (and the trained
  copies of ``modules_to_save`` replace the originals); the result has the base model's own module
  paths, so ``model.load_state_dict`` of a plain model (or ``model.weights``) takes the file. The
  merged model's logits on validation samples must equal the adapted model's within
  :data:`MERGE_TOLERANCE` (float32), or nothing is written.
- ``--format peft``: PEFT's ``save_pretrained`` writes ``adapter_config.json`` and
  ``adapter_model.safetensors``; the directory is then loaded back with ``PeftModel.from_pretrained``
  on the base model and must give the adapted model's logits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from core.errors import CheckpointError, FtuiError

#: Largest |logit difference| allowed between the adapted model and what an export gives back (float32).
MERGE_TOLERANCE = 1e-5
#: Validation samples the exports are checked on.
CHECK_SAMPLES = 16


class ExportMismatch(FtuiError):
    """An export does not reproduce the adapted model's outputs (nothing was written, or it was removed)."""


@dataclass
class LoraExport:
    """What an export wrote and how it was checked."""

    path: Path
    kind: str  # "merged" or "peft"
    max_abs_diff: float
    samples: int
    tensors: int
    bytes: int
    notices: list[str] = field(default_factory=list)


def _rebuilt(path: Path, *, base: Path | None, trust_code: bool, command: str,
             announce: Callable[[list[str]], None] | None) -> Any:
    from core.lora.names import RECORD_KEY
    from core.training.checkpoint import load_file
    from core.training.rebuild import rebuild

    ckpt = load_file(path)
    if not isinstance(ckpt.get(RECORD_KEY), dict):
        raise CheckpointError(
            f"{path}: holds no LoRA adapters (no '{RECORD_KEY}' record), so there is nothing to merge or to write as a "
            "PEFT adapter. Fix: export its weights with `ftui export` and no --merge or --format peft."
        )
    return rebuild(path, ckpt=ckpt, base=base, trust_code=trust_code, command=command, announce=announce)


def _check_batch(trainer: Any) -> tuple[Any, int]:
    from core.models.forward import to_device

    data = trainer.data
    split = "val" if len(data.val) else "train"
    n = min(CHECK_SAMPLES, len(getattr(data, split)))
    return to_device(data.example(split, n), trainer.device), n


def _logits(model: Any, batch: Any) -> Any:
    import torch

    from core.models.forward import call_model

    model.eval()
    with torch.no_grad():
        return call_model(model, batch).float()


def default_out(path: Path, kind: str, fmt: str = "safetensors") -> Path:
    """Beside the checkpoint: ``best.merged.safetensors`` / ``best.merged.state_dict.pt`` / ``best.peft/``."""
    if kind == "peft":
        return path.with_name(path.stem + ".peft")
    return path.with_name(path.stem + (".merged.safetensors" if fmt == "safetensors" else ".merged.state_dict.pt"))


def export_merged(path: Path | str, *, fmt: str = "safetensors", out: Path | None = None, base: Path | None = None,
                  trust_code: bool = False, announce: Callable[[list[str]], None] | None = None) -> LoraExport:
    """Merge the adapters of a LoRA checkpoint into plain weights and write them (safetensors or a state dict).

    Raises:
        CheckpointError: not a LoRA checkpoint; its base cannot be found or does not fit (the layer named).
        ExportMismatch: the merged model's logits differ from the adapted model's by more than the tolerance.
    """
    from core.inspect.export import write_weights
    from core.inspect.loading import load_checkpoint

    path = Path(path)
    out = Path(out) if out is not None else default_out(path, "merged", fmt)
    command = f"ftui export {path} --merge" + (f" --base {base}" if base else "")
    with _rebuilt(path, base=base, trust_code=trust_code, command=command, announce=announce) as rebuilt:
        trainer = rebuilt.trainer
        batch, n = _check_batch(trainer)
        adapted = _logits(trainer.model, batch)
        merged = trainer.lora.merged()
        diff = float((_logits(merged, batch) - adapted).abs().max())
        if not diff <= MERGE_TOLERANCE:
            raise ExportMismatch(
                f"{path}: the merged model's logits differ from the adapted model's by {diff:.3g} (more than "
                f"{MERGE_TOLERANCE:g}) on {n} validation samples; nothing was written."
            )
        tensors = {k: v.detach().cpu() for k, v in merged.state_dict().items()}
        record = rebuilt.ckpt["lora"]
        metadata = {"lora_merged": json.dumps({"rank": record.get("rank"), "alpha": record.get("alpha"),
                                               "layers": len(record.get("layers") or {}),
                                               "max_abs_diff": diff, "samples": n,
                                               "base": (record.get("base") or {}).get("source")})}
        written = write_weights(tensors, fmt, out, source=load_checkpoint(path), sources=[path], extra=metadata)
        return LoraExport(written, "merged", diff, n, len(tensors), written.stat().st_size, list(rebuilt.notices))


def export_peft(path: Path | str, *, out: Path | None = None, base: Path | None = None, trust_code: bool = False,
                announce: Callable[[list[str]], None] | None = None) -> LoraExport:
    """Write a LoRA checkpoint's adapters as PEFT's adapter directory, and check that
    ``PeftModel.from_pretrained`` on the base model gives the adapted model's logits.

    Raises:
        CheckpointError: not a LoRA checkpoint, a bad base, or ``out`` is a file.
        ExportMismatch: PEFT's model differs from the adapted one (the directory is left for inspection).
    """
    path = Path(path)
    out = Path(out) if out is not None else default_out(path, "peft")
    if out.exists() and not out.is_dir():
        raise CheckpointError(f"--out {out} is a file; PEFT writes a directory. Fix: give a directory path.")
    command = f"ftui export {path} --format peft" + (f" --base {base}" if base else "")
    with _rebuilt(path, base=base, trust_code=trust_code, command=command, announce=announce) as rebuilt:
        trainer = rebuilt.trainer
        lora = trainer.lora
        batch, n = _check_batch(trainer)
        adapted = _logits(trainer.model, batch)
        lora.save_pretrained(out)
        _write_readme(out, path, rebuilt)
        from peft import PeftModel

        loaded = PeftModel.from_pretrained(lora.unloaded(), str(out))
        diff = float((_logits(loaded, batch) - adapted).abs().max())
        if not diff <= MERGE_TOLERANCE:
            raise ExportMismatch(
                f"{out}: PeftModel.from_pretrained on the base model gives logits that differ from the adapted "
                f"model's by {diff:.3g} (more than {MERGE_TOLERANCE:g}); the directory is left for inspection."
            )
        files = [f for f in out.iterdir() if f.is_file()]
        from safetensors import safe_open

        with safe_open(str(out / "adapter_model.safetensors"), "pt") as fh:
            count = len(list(fh.keys()))
        return LoraExport(out, "peft", diff, n, count, sum(f.stat().st_size for f in files), list(rebuilt.notices))


def base_model(path: Path | str, *, base: Path | None = None, trust_code: bool = False) -> Any:
    """The model a LoRA checkpoint's adapters were trained on, without them (its base weights loaded):
    what ``PeftModel.from_pretrained`` takes. Import it as ``ftui.base_model``."""
    path = Path(path)
    rebuilt = _rebuilt(path, base=base, trust_code=trust_code, command=f"python: ftui.base_model('{path}')", announce=None)
    try:
        model = rebuilt.trainer.lora.unloaded()
        return model.eval()
    finally:
        rebuilt.trainer.cleanup()


def _write_readme(out: Path, path: Path, rebuilt: Any) -> None:
    """Add how to load the adapters to the model card PEFT wrote."""
    record = rebuilt.ckpt["lora"]
    base = record.get("base") or {}
    trust = ", trust_code=True" if rebuilt.code else ""
    where = (f"its base weights are {base.get('source')} (sha256 {base.get('sha256')})" if base.get("stored") is False
             else f"its base weights are stored in {path}")
    text = f"""

## Loading these adapters (written by ftui)

LoRA adapters of `{path}` (rank {record.get('rank')}, alpha {record.get('alpha')}, {len(record.get('layers') or {})} layers;
trained fully: {', '.join(record.get('modules_to_save') or []) or 'nothing'}); {where}.

```python
import ftui
from peft import PeftModel

base = ftui.base_model("{path}"{trust})  # the model the adapters were trained on
model = PeftModel.from_pretrained(base, "{out}").eval()
```

`ftui export {path} --merge` writes the same model with the adapters merged into plain weights.
"""
    readme = out / "README.md"
    previous = readme.read_text(encoding="utf-8") if readme.exists() else ""
    readme.write_text(previous + text, encoding="utf-8")
