"""int8 quantisation with ONNX Runtime: static (calibrated) for convolutions, dynamic for Linear.

Why ONNX Runtime and not ``torch.ao.quantization``: torch 2.14 still ships the eager and FX
quantisation APIs but marks every entry point deprecated ("will be removed", pointing users to
torchao), and torchao's CPU int8 paths (pt2e with the x86 Inductor quantizer) only run fast after
``torch.compile``. ONNX Runtime's quantizer is maintained, its int8 kernels run convolutions and
matrix products fast on any x86 or Arm CPU without a compile step, and the result is the artefact
one deploys. The quantized model is a QDQ ONNX model; the ftui checkpoint of an int8 variant keeps
the float weights it came from in ``model`` and the int8 model under ``onnx`` (uint8 bytes).

Modes:
    static: activations calibrated (min/max) on training samples seen through the evaluation
        transforms, weights per channel; Conv, Gemm and MatMul (and the ops between them) in int8.
    dynamic: weights int8 ahead of time, activations quantised per batch at run time; for models of
        Linear layers (MatMul/Gemm), where calibration buys little.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from core.compress.deps import require
from core.errors import CompressionError

MODES = ("auto", "static", "dynamic")
# ONNX operations that carry a layer's weights: what "a layer stays float" is about.
WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "LSTM", "GRU", "RNN", "Attention",
                "LayerNormalization", "BatchNormalization", "InstanceNormalization", "Gather")


@dataclass
class QuantizeResult:
    """The int8 model and what happened to each weighted layer."""

    model: bytes
    mode: str
    quantized_layers: list[str]
    float_layers: list[dict[str, str]]  # {"layer", "op", "why"}
    calibration_samples: int
    runtime: str
    notes: list[str] = field(default_factory=list)

    def step(self) -> dict[str, Any]:
        """The compression-record step (see :mod:`core.compress.record`)."""
        return {
            "kind": "quantize",
            "method": self.mode,
            "dtype": "int8",
            "runtime": self.runtime,
            "format": "QDQ" if self.mode == "static" else "QOperator (dynamic)",
            "per_channel": self.mode == "static",
            "calibration_samples": self.calibration_samples,
            "quantized_layers": list(self.quantized_layers),
            "float_layers": [dict(x) for x in self.float_layers],
        }


def weighted_layers(model: Any) -> list[tuple[str, str]]:
    """(layer name, op type) of every node with a float weight initializer, in graph order.

    The name is the initializer's (torch's exporter keeps parameter names, ``stage1.0.weight``)
    without its last part, so it names the PyTorch module.
    """
    import onnx

    inits = {i.name: i for i in model.graph.initializer}
    out: list[tuple[str, str]] = []
    for node in model.graph.node:
        for name in node.input:
            init = inits.get(name)
            if init is None or init.data_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16):
                continue
            if len(init.dims) >= 2 or node.op_type in ("BatchNormalization", "LayerNormalization"):
                out.append((name.rsplit(".", 1)[0] if "." in name else name, node.op_type))
                break
    return out


def plan(model: Any, mode: str) -> tuple[list[tuple[str, str]], list[dict[str, str]]]:
    """Which weighted layers the backend quantises in ``mode`` and which stay float (with why)."""
    from onnxruntime.quantization import registry

    supported = set(registry.QDQRegistry if mode == "static" else registry.IntegerOpsRegistry)
    if mode == "dynamic":
        supported.add("Gemm")  # rewritten to MatMul + Add first (see quantize_int8), which dynamic mode quantises
    quantized, floats = [], []
    for layer, op in weighted_layers(model):
        if op in ("BatchNormalization",):
            continue  # folded into the convolution before it by the exporter's optimiser, or harmless
        if op in supported:
            quantized.append((layer, op))
        else:
            floats.append({"layer": layer, "op": op,
                           "why": f"ONNX Runtime's {mode} int8 quantizer has no {op} kernel"})
    return quantized, floats


def resolve_mode(model: Any, mode: str) -> str:
    """``auto``: static when the model has convolutions, dynamic for Linear-only models."""
    if mode not in MODES:
        raise CompressionError(f"--quant-mode {mode!r}: expected one of {', '.join(MODES)}.")
    if mode != "auto":
        return mode
    ops = {op for _, op in weighted_layers(model)}
    return "static" if ops & {"Conv", "ConvTranspose"} else "dynamic"


def quantize_int8(
    float_model: bytes | Path,
    *,
    mode: str,
    calibration: Iterable[np.ndarray],
    allow_float: bool = False,
) -> QuantizeResult:
    """Quantise a float ONNX model to int8.

    Args:
        float_model: the exported float model (file or bytes).
        mode: ``auto``, ``static`` or ``dynamic`` (see the module docstring).
        calibration: input batches (numpy, float32) of training samples, for ``static``.
        allow_float: quantise what the backend supports and keep the other weighted layers float.

    Raises:
        CompressionError: some weighted layers would stay float and ``allow_float`` is off (lists them,
            with the fix), or no layer can be quantised at all.
    """
    onnx = require("onnx", purpose="int8 quantisation")
    ort = require("onnxruntime", purpose="int8 quantisation")
    from onnxruntime.quantization import (
        CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quant_pre_process, quantize_dynamic,
        quantize_static,
    )

    source = onnx.load_from_string(float_model) if isinstance(float_model, bytes) else onnx.load(str(float_model))
    mode = resolve_mode(source, mode)
    quantized, floats = plan(source, mode)
    if not quantized:
        kinds = sorted({f["op"] for f in floats}) or ["none"]
        raise CompressionError(
            f"--quantize int8 ({mode}): none of this model's layers can be quantised by ONNX Runtime "
            f"(weighted ops: {', '.join(kinds)}). Fix: "
            + ("try --quant-mode static" if mode == "dynamic" else "try --quant-mode dynamic")
            + ", or compress with --prune only."
        )
    if floats and not allow_float:
        listed = ", ".join(f"{f['layer']} ({f['op']})" for f in floats[:8]) + (" ..." if len(floats) > 8 else "")
        raise CompressionError(
            f"--quantize int8 ({mode}): ONNX Runtime has no int8 kernel for {len(floats)} layer(s) of this model, "
            f"which would stay float32: {listed}. Fix: add --allow-float to quantise the other "
            f"{len(quantized)} layer(s) and keep these in float32"
            + (", or try --quant-mode dynamic" if mode == "static" else ", or try --quant-mode static") + "."
        )
    with tempfile.TemporaryDirectory(prefix="ftui-int8-") as tmp_dir:
        tmp = Path(tmp_dir)
        onnx.save(source, str(tmp / "float.onnx"))
        prepared = tmp / "prepared.onnx"
        try:
            quant_pre_process(str(tmp / "float.onnx"), str(prepared), skip_symbolic_shape=False)
        except Exception:  # noqa: BLE001 - pre-processing only helps; quantise the plain export instead
            prepared = tmp / "float.onnx"
        out = tmp / "int8.onnx"
        input_name = source.graph.input[0].name
        samples = 0
        if mode == "static":
            batches = [np.ascontiguousarray(b, dtype=np.float32) for b in calibration]
            samples = sum(int(b.shape[0]) for b in batches)
            if not batches:
                raise CompressionError("--quantize int8 (static): no calibration samples. Fix: raise --calibration-samples.")

            class _Reader(CalibrationDataReader):
                def __init__(self) -> None:
                    self._it: Iterator[np.ndarray] = iter(batches)

                def get_next(self) -> dict[str, np.ndarray] | None:
                    batch = next(self._it, None)
                    return None if batch is None else {input_name: batch}

            quantize_static(
                str(prepared), str(out), _Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                op_types_to_quantize=None if not floats else sorted({op for _, op in quantized} | _BETWEEN),
            )
        else:
            # torch's exporter writes Linear layers as Gemm; ONNX Runtime quantises MatMul dynamically
            from onnxruntime.quantization.onnx_model import ONNXModel

            rewritten = ONNXModel(onnx.load(str(prepared)))
            rewritten.replace_gemm_with_matmul()
            onnx.save(rewritten.model, str(tmp / "matmul.onnx"))
            ops = sorted({"MatMul" if op == "Gemm" else op for _, op in quantized})
            quantize_dynamic(str(tmp / "matmul.onnx"), str(out), weight_type=QuantType.QInt8, op_types_to_quantize=ops)
        data = out.read_bytes()
    return QuantizeResult(
        model=data, mode=mode, quantized_layers=[layer for layer, _ in quantized], float_layers=floats,
        calibration_samples=samples, runtime=f"onnxruntime {ort.__version__}",
    )


# Ops between quantised layers that static QDQ quantises too, so int8 tensors flow without dequantising.
_BETWEEN = {"Relu", "MaxPool", "AveragePool", "Add", "Concat", "Flatten", "Reshape", "GlobalAveragePool", "Clip"}
