"""On a GPU machine: a few hundred ResNet-18 steps on random CIFAR-sized data record real GPU figures.

Skipped without CUDA. Run it on a lent GPU box with ``pytest -q -s tests/test_system_gpu.py``; it
prints the recorded figures.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")


def test_resnet18_steps_record_gpu_figures(tmp_path: Path) -> None:
    import torchvision

    from core.config import config_from_dict
    from core.runs import RunWriter
    from core.training.callbacks.telemetry import TelemetryCallback
    from core.system.diagnostics import diagnose

    torch.manual_seed(0)
    device = torch.device("cuda", 0)
    model = torchvision.models.resnet18(num_classes=10).to(device, memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x = torch.randn(256, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (256,), device=device)
    trainer = SimpleNamespace(
        run=RunWriter.create(tmp_path, "gpu", flush_seconds=0.2),
        device=device,
        cfg=config_from_dict({"data": {"num_workers": 0}}),
        train_loader=None,
    )
    callback = TelemetryCallback(interval=0.2)
    callback.on_fit_start(trainer)
    started = time.monotonic()
    for _ in range(300):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    torch.cuda.synchronize()
    seconds = time.monotonic() - started
    callback.on_fit_end(trainer)
    trainer.run.close()

    records = [json.loads(line) for line in (trainer.run.path / "system.jsonl").read_text().splitlines()]
    gpu_rows = [r["gpus"][0] for r in records if r["gpus"]]
    print(f"\n300 steps in {seconds:.1f} s, {len(records)} samples; cost {callback.sampler.cpu_seconds:.3f} s CPU")
    for row in gpu_rows[-5:]:
        print({k: row.get(k) for k in ("index", "name", "util", "mem_used", "mem_total", "temp", "power",
                                        "power_limit", "sm_clock", "torch_allocated", "torch_reserved", "torch_peak")})
    print("findings:", [f.message for f in diagnose(records, [])])
    assert gpu_rows, "no GPU rows recorded"
    last = gpu_rows[-1]
    assert last["name"] and last["mem_total"] and last["mem_used"]
    assert last["torch_allocated"] and last["torch_reserved"] >= last["torch_allocated"]
    assert last["torch_peak"] >= last["torch_allocated"]
    assert max(r["util"] or 0 for r in gpu_rows) > 0  # the GPU was busy at some sample
    assert not (trainer.run.path / "events.jsonl").exists()  # no "no GPU" warning
    assert callback.sampler.cpu_seconds / max(1, callback.sampler.samples) < 0.01
