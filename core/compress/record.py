"""The compression record of a checkpoint: what was done to the model, in a ``weights_only``-safe form.

A compressed checkpoint is an ordinary ftui checkpoint (docs/run-format.md, "checkpoints/") with one more key,
``compression``: a dict of plain lists, numbers and strings, never a pickled class. Its ``steps``
say, in order, what made this model from its source checkpoint::

    {"format": 1, "source": "runs/q/checkpoints/best.pt", "variant": "pruned50",
     "steps": [
        {"kind": "prune", "method": "structured", "amount": 0.5, "library": "torch-pruning 1.6.1",
         "history": [["stage1.0", true, [3, 7, ...]], ...],      # replayed to rebuild the shapes
         "layers": [{"module": "stage1.0", "type": "Conv2d", "dim": "out", "before": 16,
                     "after": 8, "removed": [3, 7, ...]}, ...]},
        {"kind": "prune", "method": "unstructured", "amount": 0.5, "sparsity": 0.5, ...},
        {"kind": "finetune", "epochs": 1, "run": "runs/q-pruned50-ft"},
        {"kind": "quantize", "method": "static", "runtime": "onnxruntime 1.32.0", ...}]}

A structured pruning step's ``history`` is Torch-Pruning's pruning history (root layer, whether its
output channels were pruned, the indices): replaying it on the freshly built model of the
checkpoint's config gives the pruned shapes, after which the saved state dict loads strictly. An int8
step stores the quantized ONNX model under the checkpoint's ``onnx`` key (a uint8 tensor), which ONNX
Runtime runs; ``model`` keeps the float weights it was quantized from.

This module reads records without torch, for ``ftui inspect``, ``ftui diff`` and the app.
"""

from __future__ import annotations

from typing import Any

RECORD_KEY = "compression"
ONNX_KEY = "onnx"
RECORD_FORMAT = 1


def steps(record: Any) -> list[dict[str, Any]]:
    """The record's steps (empty for a checkpoint that was not compressed or a malformed record)."""
    if not isinstance(record, dict):
        return []
    return [s for s in record.get("steps") or [] if isinstance(s, dict)]


def structural(record: Any) -> dict[str, Any] | None:
    """The part of ``record`` that changes tensor shapes (structured pruning), or None.

    This is what a model built from the checkpoint's config must replay before the weights fit, and
    what a run that trains on from these weights carries into its own checkpoints.
    """
    kept = [s for s in steps(record) if s.get("kind") == "prune" and s.get("method") == "structured"]
    if not kept:
        return None
    return {"format": RECORD_FORMAT, "steps": kept}


def quantized(record: Any) -> dict[str, Any] | None:
    """The quantisation step, when the checkpoint's model is meant to run as int8."""
    for step in steps(record):
        if step.get("kind") == "quantize":
            return step
    return None


def channel_changes(record: Any) -> list[dict[str, Any]]:
    """Per layer and dimension: channels before and after structured pruning, and which were removed.

    Indices are those of the source checkpoint's tensors (dimension 0 for ``out``, 1 for ``in``).
    """
    out: list[dict[str, Any]] = []
    for step in steps(record):
        if step.get("kind") == "prune" and step.get("method") == "structured":
            out.extend(x for x in step.get("layers") or [] if isinstance(x, dict))
    return out


def describe_step(step: dict[str, Any]) -> str:
    """One line for a step, as ``ftui inspect`` and the app show it."""
    kind = step.get("kind")
    if kind == "prune":
        amount = step.get("amount")
        amount_text = f"{amount:.0%}" if isinstance(amount, (int, float)) else "?"
        if step.get("method") == "structured":
            layers = channel_changes({"steps": [step]})
            changed = sum(1 for x in layers if x.get("before") != x.get("after"))
            return (f"structured pruning {amount_text} of the channels ({step.get('library', 'torch-pruning')}, "
                    f"{step.get('importance', 'magnitude')} importance): {changed} layer dimensions shrunk")
        sparsity = step.get("sparsity")
        sparsity_text = f"{sparsity:.1%}" if isinstance(sparsity, (int, float)) else "?"
        return (f"unstructured magnitude pruning {amount_text} ({step.get('library', 'torch.nn.utils.prune')}): "
                f"{sparsity_text} of the prunable weights are zero")
    if kind == "finetune":
        return f"fine-tuned {step.get('epochs')} epoch(s) after pruning in run {step.get('run')}"
    if kind == "quantize":
        floats = step.get("float_layers") or []
        return (f"int8 {step.get('method')} quantisation ({step.get('runtime')}, {step.get('format', 'QDQ')}"
                + (f", calibrated on {step.get('calibration_samples')} training samples" if step.get("calibration_samples") else "")
                + f"): {len(step.get('quantized_layers') or [])} layers int8, {len(floats)} float")
    return str(kind)
