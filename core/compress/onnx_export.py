"""Export a model to ONNX with a dynamic batch dimension, and prove the file right with ONNX Runtime.

The exporter is torch's own (``torch.onnx.export(..., dynamo=True)``: ``torch.export`` then
onnxscript's translation). The opset is the newest that both the exporter and the installed ONNX
Runtime implement. Verification runs the written file in ONNX Runtime on a batch of the test split
and compares with PyTorch's outputs; when they differ by more than the tolerance, torch's own
``verify_onnx_program(compare_intermediates=True)`` finds the first operation that diverged, and the
error names the module it belongs to. A file that failed verification is not left behind.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from core.compress.deps import require
from core.errors import CompressionError

ATOL = 1e-4  # ONNX Runtime's outputs must equal PyTorch's within this (absolute, plus the same relative)
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


@dataclass
class ExportReport:
    """What an export wrote and how it was checked."""

    path: Path
    opset: int
    size: int
    max_abs_diff: float
    verified_on: int  # samples of the verification batch
    onnxruntime: str
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "opset": self.opset, "size": self.size, "max_abs_diff": self.max_abs_diff,
                "verified_on": self.verified_on, "onnxruntime": self.onnxruntime, "notes": list(self.notes)}


def choose_opset() -> int:
    """The newest ONNX opset that torch's exporter writes and the installed ONNX Runtime has kernels for."""
    from torch.onnx import _constants

    ort = require("onnxruntime", purpose="ONNX export verification")
    exporter_max = int(_constants.ONNX_MAX_OPSET)
    try:
        from onnxruntime.capi import _pybind_state

        runtime_max = max(int(k.version_range[0]) for k in _pybind_state.get_all_opkernel_def()
                          if k.domain in ("", "ai.onnx"))
    except Exception:  # noqa: BLE001 - a runtime without the kernel registry: fall back to its documented floor
        runtime_max = 21 if tuple(int(p) for p in ort.__version__.split(".")[:2]) >= (1, 20) else 17
    return min(exporter_max, runtime_max)


def export_onnx(
    model: nn.Module,
    example: torch.Tensor,
    path: Path | str,
    *,
    verify_batch: torch.Tensor,
    opset: int | None = None,
    atol: float = ATOL,
    translations: dict[Any, Any] | None = None,
) -> ExportReport:
    """Write ``model`` as ONNX to ``path`` and check it with ONNX Runtime on ``verify_batch``.

    Args:
        model: the float model (put in eval mode here).
        example: an example input batch (batch >= 2, so the batch dimension is not specialised).
        path: where the ``.onnx`` file goes (written atomically).
        verify_batch: real inputs (a batch of the test split) for the parity check.
        opset: the ONNX opset (default: :func:`choose_opset`).
        atol: the largest accepted |ONNX Runtime - PyTorch| (plus ``atol`` x |PyTorch|).
        translations: custom ATen-op translations for the exporter (``custom_translation_table``).

    Raises:
        CompressionError: the model cannot be traced (names the op), or the outputs diverge (names the layer).
    """
    require("onnxscript", purpose="ONNX export")
    onnxruntime = require("onnxruntime", purpose="ONNX export verification")
    path = Path(path)
    opset = opset or choose_opset()
    model = model.eval()
    if example.shape[0] < 2:
        example = torch.cat([example, example])
    program = _export(model, example, opset, translations)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        program.save(str(tmp))
        diff = _verify(model, program, tmp, verify_batch, atol)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return ExportReport(path=path, opset=opset, size=path.stat().st_size, max_abs_diff=diff,
                        verified_on=int(verify_batch.shape[0]), onnxruntime=onnxruntime.__version__)


def _export(model: nn.Module, example: torch.Tensor, opset: int, translations: dict | None) -> Any:
    batch = torch.export.Dim("batch", min=1)
    try:
        with torch.no_grad(), quiet_exporter():
            return torch.onnx.export(
                model, (example,), dynamo=True, opset_version=opset, input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME], dynamic_shapes=({0: batch},), custom_translation_table=translations,
                optimize=True, verbose=False, report=False,
            )
    except Exception as exc:  # noqa: BLE001 - the exporter raises many types; the message is what helps
        raise CompressionError(_trace_failure(model, exc)) from None


def _trace_failure(model: nn.Module, exc: BaseException) -> str:
    """A one-paragraph message naming the operation (and the line of the forward) that stopped the export."""
    text = _strip_ansi(str(exc))
    op = None
    for pattern in (r"(aten::[\w.]+|aten\.[\w.]+)", r"operator '([^']+)'"):
        found = re.search(pattern, text)
        if found:
            op = found.group(1)
            break
    cause = None
    summary = re.search(r"## Exception summary\s*\n\s*(?:<class '[\w.]*?(\w+)'>: )?(.+)", text)
    if summary:
        cause = (f"{summary.group(1)}: " if summary.group(1) else "") + summary.group(2).strip()
    where = None
    call = re.search(r'File "([^"]+)", line (\d+), in (\w+)\n\s*(.+)', text.split("The following call raised this error:")[-1])
    if call and "raised this error" in text:
        where = f"{call.group(1)}:{call.group(2)} in {call.group(3)}: {call.group(4).strip()}"
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(exc).__name__)
    step = "torch.export could not trace it" if "step 1/3" in text else "ONNX has no translation for it" if op else first
    parts = [f"ONNX export: {type(model).__name__} cannot be exported"]
    if op:
        parts.append(f" because of the operation {op}")
    parts.append(f" ({step}")
    if cause:
        parts.append(f": {cause[:200]}")
    parts.append(")")
    if where:
        parts.append(f", at {where}")
    fix = ("make that code traceable (no Python branch on tensor values: use torch.where or torch.cond)"
           if where else "replace that operation in the model's forward with one ONNX supports, or register a translation")
    parts.append(f". Fix: {fix}; or keep the model in PyTorch (ftui export --format safetensors).")
    return "".join(parts)


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """Keep the exporter's progress lines, graph dumps and warnings off the user's terminal."""
    loggers = [logging.getLogger(n) for n in ("torch", "torch.onnx", "torch.export", "torch.fx", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    sink = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _session(path: Path | bytes, threads: int | None = None) -> Any:
    ort = require("onnxruntime", purpose="ONNX Runtime")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    options.log_severity_level = 3
    source = path if isinstance(path, bytes) else str(path)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def _verify(model: nn.Module, program: Any, path: Path, batch: torch.Tensor, atol: float) -> float:
    batch = batch.detach().float().cpu()
    with torch.no_grad():
        expected = model(batch).float().cpu().numpy()
    session = _session(path)
    actual = session.run(None, {session.get_inputs()[0].name: batch.numpy()})[0]
    if actual.shape != expected.shape:
        raise CompressionError(
            f"ONNX export: ONNX Runtime returned shape {list(actual.shape)} for a batch of {batch.shape[0]}, PyTorch "
            f"{list(expected.shape)}. Fix: the model's output must be one logits tensor (batch, classes)."
        )
    diff = np.abs(actual - expected)
    worst = float(diff.max()) if diff.size else 0.0
    if bool((diff <= atol + atol * np.abs(expected)).all()):
        return worst
    layer, node, layer_diff = _diverging_layer(program, batch, atol)
    where = f"at layer {layer} (operation {node}, max abs diff {layer_diff:.3g})" if layer else "(no single layer found)"
    raise CompressionError(
        f"ONNX export: ONNX Runtime's outputs differ from PyTorch's by up to {worst:.3g} (> {atol:g}) on a "
        f"batch of {batch.shape[0]} test samples, first diverging {where}. The file was not written. Fix: export "
        "with another opset (--opset), or replace that layer's operation."
    )


def _diverging_layer(program: Any, batch: torch.Tensor, atol: float) -> tuple[str | None, str | None, float]:
    """The module and operation where ONNX Runtime's intermediate values first leave PyTorch's."""
    from torch.onnx.verification import verify_onnx_program

    try:
        with quiet_exporter():
            infos = verify_onnx_program(program, args=(batch,), compare_intermediates=True)
    except Exception:  # noqa: BLE001 - locating is a courtesy; the divergence itself was already found
        return None, None, float("nan")
    stacks = {n.name: n.meta.get("nn_module_stack") for n in program.exported_program.graph.nodes}
    for info in infos:
        if info.max_abs_diff > atol and info.max_rel_diff > atol:
            stack = stacks.get(info.name) or {}
            path, kind = list(stack.values())[-1] if stack else (None, None)
            if isinstance(path, str):
                path = path.removeprefix("L['self'].").removeprefix("L__self__.")
                kind = kind.__name__ if isinstance(kind, type) else str(kind).rsplit(".", 1)[-1]
                return f"{path} ({kind})", info.name, float(info.max_abs_diff)
            return info.name, info.name, float(info.max_abs_diff)
    return None, None, float("nan")
