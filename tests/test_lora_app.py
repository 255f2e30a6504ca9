"""The Layers tab of a LoRA run: adapters under their layers, the trainable share, and keys that steer
an adapter while the run trains (a real trainer in a thread, the real app in Pilot)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from core import control
from core.config import ModelConfig, config_from_dict
from core.models import build_model
from core.runs import RunWriter
from core.training.trainer import Trainer
from support.app import screen_text, wait_loaded
from support.lora import VIT, lora_raw
from tui.app import FtuiApp
from tui.widgets.layer_tree import LayerTreeView

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
LAYER = "encoder.layers.encoder_layer_1.mlp.0"


def _line(app: FtuiApp, text: str) -> str:
    lines = [line for line in screen_text(app).splitlines() if text in line]
    assert lines, f"{text!r} not on screen"
    return lines[0]


async def _until(pilot: Any, predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError("timed out")


@pytest.mark.asyncio
async def test_the_layers_tab_shows_and_steers_adapters(tmp_path: Path) -> None:
    torch.manual_seed(0)
    base = tmp_path / "base.pt"
    torch.save(build_model(ModelConfig(**VIT), 3, (3, 16, 16)).model.state_dict(), base)
    raw = lora_raw(tmp_path, "live", base, trainer={"epochs": 50, "device": "cpu", "cpu_threads": 1})
    run = RunWriter.create(tmp_path, "live").path
    control.send(run, "pause")  # held at the first epoch start, serving commands
    trainer = Trainer(config_from_dict(raw), run_dir=run)
    thread = threading.Thread(target=trainer.fit, daemon=True)
    thread.start()
    try:
        app = FtuiApp(tmp_path, watch=run)
        async with app.run_test(size=(120, 40), notifications=True) as pilot:
            await _until(pilot, lambda: (run / "model.json").exists())
            await wait_loaded(pilot, app.screen)
            await pilot.press("7")
            tree = app.screen.query_one(LayerTreeView)
            await _until(pilot, lambda: f"{LAYER}.lora" in tree.modules)
            assert tree.reveal(f"{LAYER}.lora")
            await pilot.pause()
            assert tree.cursor_node.data == f"{LAYER}.lora"
            line = _line(app, "LoRA r=2 α=4")
            # paused before its first step: no rate is logged yet, so the base rate shows, as such
            assert "● trains" in line and "base 0.02" in line and "96" in line  # 2x16 + 32x2 adapter params
            assert "❄ frozen" in _line(app, "base_layer ")
            header = screen_text(app).splitlines()[0]
            assert "% trainable" in header
            assert "LoRA r=2: 8 adapters" in screen_text(app)

            await pilot.press("space")  # freeze the adapter only
            await _until(pilot, lambda: len(tree.answers) == 1)
            assert tree.answers[0]["args"] == {"pattern": f"lora:{LAYER}"}
            assert tree.answers[0]["status"] == "ok" and tree.answers[0]["message"] == f"froze {LAYER}.lora"
            await _until(pilot, lambda: "❄ frozen" in _line(app, "LoRA r=2 α=4"))

            await pilot.press("l")  # its learning rate, as a pattern the fine-tuner moves to a group of its own
            await pilot.pause()
            await pilot.press("home", "ctrl+k", *"0.005", "enter")
            await _until(pilot, lambda: len(tree.answers) == 2)
            assert tree.answers[1]["args"] == {"group": f"lora:{LAYER}", "lr": 0.005}
            assert tree.answers[1]["status"] == "ok"

            assert tree.reveal(f"{LAYER}.base_layer")
            await pilot.pause()
            await pilot.press("space")  # unfreeze the base layer beside its adapter: its rate is shown, enter keeps it
            await _until(pilot, lambda: "would train in group" in screen_text(app))
            await pilot.press("enter")
            await _until(pilot, lambda: len(tree.answers) == 3)
            assert tree.answers[2]["message"] == f"unfroze {LAYER}.base_layer"
            await _until(pilot, lambda: "● trains" in _line(app, "base_layer "))
            tree.send("stop")
            await _until(pilot, lambda: not thread.is_alive())
    finally:
        if thread.is_alive():
            control.send(run, "stop")
            thread.join(30)
    assert trainer.status == "stopped"
    frozen = [name for name, p in trainer.model.named_parameters() if not p.requires_grad]
    assert f"{LAYER}.lora_A.default.weight" in frozen and f"{LAYER}.base_layer.weight" not in frozen


def test_the_header_says_what_share_trains_at_120_and_80_columns() -> None:
    from tui.run_state import HeaderFacts
    from tui.run_text import trainable_share
    from tui.widgets.run_header import header_text

    assert trainable_share({"total_params": 211_016, "trainable_params": 6_404}) == "3 %"
    assert trainable_share({"total_params": 1_000_000, "trainable_params": 9_000}) == "0.9 %"
    assert trainable_share({"total_params": 100, "trainable_params": 100}) is None  # all train: nothing to say
    facts = HeaderFacts("lora_vit_shapes", "finished", "8/8", "496/496", "0:19", "done", "1,307", None, "3 %")
    assert str(header_text(facts, compact=False)).endswith("samples/s 1,307  3 % trainable")
    compact = str(header_text(facts, compact=True))
    assert "step 496/496  3% trains  0:19" in compact and len(compact[: compact.index("0:19")]) < 80
