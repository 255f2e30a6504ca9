"""Running and measuring variants: ONNX Runtime sessions, an int8 model as an ``nn.Module``, latency,
FLOPs, parameters and sparsity."""

from __future__ import annotations

import random
import statistics
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from core.compress.deps import require


def ort_session(model: bytes | str, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session with ``threads`` intra-op threads (one inter-op thread)."""
    ort = require("onnxruntime", purpose="running an ONNX model")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


class OrtClassifier(nn.Module):
    """An ONNX model (the int8 variant) behind the ``nn.Module`` interface the evaluation loop calls.

    It has no parameters; inputs go to the CPU and the logits come back on the input's device.
    """

    def __init__(self, model: bytes, threads: int | None = None) -> None:
        super().__init__()
        self.session = ort_session(model, threads)
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {self.input_name: x.detach().float().cpu().numpy()})[0]
        return torch.from_numpy(out).to(x.device)


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` intra-op threads, then restore the previous count."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def torch_runner(model: nn.Module) -> Callable[[np.ndarray], Any]:
    """A callable that runs ``model`` in inference mode on a numpy batch."""
    model = model.eval()

    def run(batch: np.ndarray) -> Any:
        with torch.inference_mode():
            return model(torch.from_numpy(batch))

    return run


def ort_runner(session: Any) -> Callable[[np.ndarray], Any]:
    """A callable that runs an ONNX Runtime session on a numpy batch."""
    name = session.get_inputs()[0].name
    return lambda batch: session.run(None, {name: batch})


def latencies(
    runners: dict[str, Callable[[np.ndarray], Any]],
    batches: dict[int, np.ndarray],
    *,
    threads: int,
    repeats: int,
    warmup: int = 3,
) -> tuple[dict[str, dict[int, float]], dict[str, dict[int, float]]]:
    """Median milliseconds per call of each runner at each batch size: (wall clock, process CPU time).

    The wall clock is the latency; the CPU time per call is what the call cost this process, which
    other programs' load on a shared machine does not inflate (it equals the latency on an idle
    machine when ``threads`` is 1).

    Runners are measured in interleaved rounds (every runner once per round, in a shuffled order,
    ``repeats`` rounds), so a burst of load on a shared machine, or the cost of switching from one
    model to the next, hits every variant alike; batches larger than 8 get half the rounds.
    """
    out: dict[str, dict[int, float]] = {name: {} for name in runners}
    cpu: dict[str, dict[int, float]] = {name: {} for name in runners}
    order = list(runners)
    shuffle = random.Random(0).shuffle
    with torch_threads(threads):
        for size, batch in batches.items():
            rounds = repeats if size <= 8 else max(3, repeats // 2)
            samples: dict[str, list[float]] = {name: [] for name in runners}
            cpu_samples: dict[str, list[float]] = {name: [] for name in runners}
            for run in runners.values():
                for _ in range(warmup):
                    run(batch)
            for _ in range(rounds):
                shuffle(order)
                for name in order:
                    run = runners[name]
                    start, start_cpu = time.perf_counter(), time.process_time()
                    run(batch)
                    cpu_samples[name].append(time.process_time() - start_cpu)
                    samples[name].append(time.perf_counter() - start)
            for name, values in samples.items():
                out[name][size] = statistics.median(values) * 1000.0
                cpu[name][size] = statistics.median(cpu_samples[name]) * 1000.0
    return out, cpu


def flops(model: nn.Module, example: torch.Tensor) -> int | None:
    """Floating-point operations of one forward pass on ``example`` (torch's FlopCounterMode)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = model.eval()
    try:
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            model(example)
    except Exception:  # noqa: BLE001 - informative only
        return None
    return int(counter.get_total_flops())


def param_count(model: nn.Module) -> int:
    """Parameters (not buffers)."""
    return sum(p.numel() for p in model.parameters())


def prunable_weights(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(path, module) of the layers whose weights pruning touches: convolutions and Linear layers."""
    kinds = (nn.modules.conv._ConvNd, nn.Linear)
    return [(name, m) for name, m in model.named_modules() if isinstance(m, kinds) and getattr(m, "weight", None) is not None]


def sparsity(model: nn.Module) -> float:
    """Fraction of exactly-zero weights over the convolution and Linear weights."""
    total = zeros = 0
    for _, module in prunable_weights(model):
        weight = module.weight.detach()
        total += weight.numel()
        zeros += int((weight == 0).sum())
    return zeros / total if total else 0.0


def state_dict_bytes(model: nn.Module) -> int:
    """Size of the model's state dict saved with ``torch.save`` (the weights one would ship)."""
    import io

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()
