"""The app's Explain view (issue 20): every key, at 120x40 and 80x24, with the app process torch-free.

The Pilot session runs in a subprocess so that "the app never imports torch" is checked on a real
app process (this test process has torch loaded); the view's own worker process does the explaining.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import config_from_dict

REPO = Path(__file__).resolve().parent.parent

PILOT = r'''
import asyncio, json, sys
from pathlib import Path
from tui.app import FtuiApp
from tui.screens.explain_screen import ExplainScreen
from tui.widgets.explain_gallery import ExplainGallery
from tui.widgets.explain_confusion import ConfusionPicker

CKPT, ROOT, BYO_ROOT = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
seen = {}

def text(screen, selector):
    return str(screen.query_one(selector).content)

async def settle(pilot, screen):
    """Wait until no request is in flight and the last answer is drawn."""
    for _ in range(400):
        await pilot.pause(0.05)
        busy = [w for w in screen.workers if w.is_running and w.node is screen]
        if screen.ready and not busy:
            await pilot.pause(0.05)
            return
    raise AssertionError("the view never settled: " + str(screen.error))

def state(screen):
    g = screen.query_one(ExplainGallery)
    return {"header": text(screen, "#explain-header"), "detail": text(screen, "#explain-detail"),
            "tiles": len(g.page.tiles) if g.page else 0, "offset": g.page.offset if g.page else None,
            "selected": g.selected, "capacity": g.layout_plan.capacity if g.layout_plan else 0,
            "gallery_shown": g.display and g.region.width > 0, "error": screen.error,
            "matrix_shown": screen.query_one("#explain-side").region.width > 0}

async def wide():
    app = FtuiApp(ROOT, explain=CKPT)
    async with app.run_test(size=(120, 40)) as pilot:
        s = app.screen
        await settle(pilot, s)
        seen["open"] = state(s)
        await pilot.press("right"); await settle(pilot, s); seen["right"] = state(s)
        await pilot.press("right_square_bracket"); await settle(pilot, s); seen["next_page"] = state(s)
        await pilot.press("left_square_bracket"); await settle(pilot, s); seen["prev_page"] = state(s)
        await pilot.press("left"); await settle(pilot, s); seen["left_at_start"] = state(s)
        for k in range(3):
            await pilot.press("m"); await settle(pilot, s); seen[f"m{k}"] = state(s)
        await pilot.press("t"); await settle(pilot, s); seen["target"] = state(s)
        await pilot.press("t"); await settle(pilot, s)
        await pilot.press("l"); await pilot.pause(0.2)
        picker = app.screen
        seen["picker"] = type(picker).__name__
        options = picker.query_one("#layer-options")
        index = picker.layer_paths.index("stage1")
        while options.highlighted != index:
            await pilot.press("up" if options.highlighted > index else "down")
        await pilot.press("enter"); await settle(pilot, s); seen["layer"] = state(s)
        await pilot.press("c"); await settle(pilot, s); seen["every_class"] = state(s)
        await pilot.press("c"); await settle(pilot, s); seen["one_class"] = state(s)
        await pilot.press("x"); await pilot.pause(0.1)
        table = s.query_one(ConfusionPicker)
        seen["matrix_focused"] = s.focused is table
        for _ in range(8):
            await pilot.press("left", "up")
        await pilot.press("right", "down")  # true square (row 1), predicted circle (column 1)
        await pilot.press("enter"); await settle(pilot, s); seen["cell"] = state(s)
        await pilot.press("w"); await settle(pilot, s)
        await pilot.press("a"); await settle(pilot, s); seen["activations"] = state(s)
        await pilot.press("escape"); await settle(pilot, s); seen["back"] = state(s)
        # the same view at 80x24: the page is planned again for the smaller screen
        await pilot.resize_terminal(80, 24); await pilot.pause(0.3); await settle(pilot, s)
        seen["narrow"] = state(s)
        await pilot.press("x"); await pilot.pause(0.2); seen["narrow_matrix"] = state(s)
        await pilot.press("escape"); await pilot.pause(0.2); seen["narrow_back"] = state(s)
        await pilot.press("escape"); await pilot.pause(0.2)
        seen["closed"] = not app.is_running

async def from_home():
    """e on a run trained with the user's code: the view asks before it runs that code."""
    app = FtuiApp(BYO_ROOT)
    async with app.run_test(size=(100, 30)) as pilot:
        while not app.screen.scanned:
            await pilot.pause(0.05)
        await pilot.press("e")
        await pilot.pause(0.1)
        view = app.screen
        seen["home_e"] = type(view).__name__
        seen["home_checkpoint"] = str(view.checkpoint)
        for _ in range(400):
            if type(app.screen).__name__ == "ConfirmScreen":
                break
            await pilot.pause(0.05)
        seen["consent"] = type(app.screen).__name__
        seen["consent_text"] = str(app.screen.message)
        await pilot.press("y")
        await settle(pilot, view)
        seen["byo"] = state(view)
        await pilot.press("escape"); await pilot.pause(0.1)
        seen["home_back"] = type(app.screen).__name__

asyncio.run(wide()); asyncio.run(from_home())
seen["torch_imported"] = "torch" in sys.modules
print("RESULT " + json.dumps(seen))
'''


@pytest.fixture(scope="module")
def run_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from core.training.trainer import Trainer

    root = tmp_path_factory.mktemp("runs")
    raw = {
        "run": {"name": "shapes3", "root": str(root), "seed": 3},
        "data": {"source": "shapes", "batch_size": 16, "num_workers": 0,
                 "shapes": {"image_size": 16, "train_size": 192, "val_size": 48, "test_size": 60,
                            "classes": ["circle", "square", "triangle"], "difficulty": 0.5}},
        "model": {"name": "simple_cnn", "channels": [8, 16]},
        "trainer": {"epochs": 1, "device": "cpu", "cpu_threads": 1},
        "logging": {"every_n_steps": 4, "progress": "none", "system": False, "tensorboard": False},
    }
    trainer = Trainer(config_from_dict(raw))
    trainer.fit()
    return trainer.run.path / "checkpoints" / "last.pt"


@pytest.fixture(scope="module")
def byo_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample ConvMixer on the sample textures, tiny: a run whose checkpoint names the user's code."""
    from core.training.trainer import Trainer

    code = REPO / "sample_configs" / "byo"
    raw = {
        "run": {"name": "mixer", "root": str(tmp_path_factory.mktemp("byo")), "seed": 0},
        "data": {"source": f"{code / 'textures.py'}:make_textures", "batch_size": 16, "num_workers": 0,
                 "kwargs": {"train_size": 48, "val_size": 16, "test_size": 24, "side": 16}},
        "model": {"name": f"{code / 'convmixer.py'}:ConvMixer",
                  "kwargs": {"dim": 16, "depth": 2, "kernel_size": 3, "patch_size": 2}},
        "trainer": {"epochs": 1, "device": "cpu", "cpu_threads": 1},
        "logging": {"progress": "none", "system": False, "tensorboard": False},
    }
    trainer = Trainer(config_from_dict(raw))
    trainer.fit()
    return trainer.run.path / "checkpoints" / "best.pt"


def test_explain_view_keys_at_two_sizes_without_torch_in_the_app(run_ckpt: Path, byo_ckpt: Path) -> None:
    root = run_ckpt.parent.parent.parent
    byo_root = byo_ckpt.parent.parent.parent
    out = subprocess.run([sys.executable, "-c", PILOT, str(run_ckpt), str(root), str(byo_root)], cwd=REPO,
                         capture_output=True, text=True, timeout=240)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    assert out.returncode == 0 and lines, out.stdout[-3000:] + out.stderr[-3000:]
    seen = json.loads(lines[-1][len("RESULT "):])

    first = seen["open"]
    assert first["error"] is None
    assert first["header"].startswith("shapes3/last.pt · test · 60 samples · accuracy")
    assert "Grad-CAM at stage2 of the prediction · worst first · 1–6 of 60" in first["header"]
    assert first["tiles"] == first["capacity"] == 6 and first["gallery_shown"] and first["matrix_shown"]
    assert "sample #" in first["detail"] and "top classes:" in first["detail"]

    assert seen["right"]["selected"] == 1 and seen["right"]["detail"] != first["detail"]
    assert seen["next_page"]["offset"] == 6 and "7–12 of 60" in seen["next_page"]["header"]
    assert seen["prev_page"]["offset"] == 0
    assert seen["left_at_start"]["offset"] == 0  # nothing before the first page
    assert [seen[f"m{k}"]["header"].splitlines()[1].split(" of the")[0] for k in range(3)] == [
        "saliency", "Integrated Gradients", "Grad-CAM at stage2"]
    assert "of the true class" in seen["target"]["header"]
    assert seen["picker"] == "LayerPickerScreen"
    assert "Grad-CAM at stage1 of the prediction" in seen["layer"]["header"]
    assert "every class" in seen["every_class"]["header"]
    assert "class circle" in seen["one_class"]["header"]
    assert seen["matrix_focused"]
    assert "true square, predicted circle" in seen["cell"]["header"] or "no samples" in seen["cell"]["header"]
    acts = seen["activations"]
    assert "activations of stage1" in acts["header"] and acts["tiles"] == 9  # the input and 8 channels
    assert "worst first" in seen["back"]["header"] and seen["back"]["tiles"] == 6
    assert seen["closed"]

    narrow = seen["narrow"]
    assert narrow["tiles"] >= 4 and narrow["gallery_shown"] and not narrow["matrix_shown"]
    assert narrow["header"].splitlines()[1].startswith("Grad-CAM at stage1 of the prediction · worst first")
    assert seen["narrow_matrix"]["matrix_shown"] and not seen["narrow_matrix"]["gallery_shown"]
    assert seen["narrow_back"]["gallery_shown"] and not seen["narrow_back"]["matrix_shown"]

    assert seen["home_e"] == "ExplainScreen" and seen["home_checkpoint"] == str(byo_ckpt)
    assert seen["consent"] == "ConfirmScreen"
    assert "trained with your own code" in seen["consent_text"] and "convmixer.py" in seen["consent_text"]
    assert seen["byo"]["error"] is None and "Grad-CAM at blocks" in seen["byo"]["header"]
    assert seen["byo"]["tiles"] == 6
    assert seen["home_back"] == "HomeScreen"
    assert seen["torch_imported"] is False
