"""`ftui explain` (issue 20): maps equal Captum's own, files match what the pictures draw, bad input exits 2.

One tiny image run and one tiny tabular run are trained once for the module; everything else reads
their checkpoints the way a user would, through the command line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from core.config import config_from_dict
from core.explain.overlay import overlay
from core.explain.result import load_maps
from tui.cli import app

runner = CliRunner()
SAMPLES = Path(__file__).resolve().parent.parent / "sample_configs"
CLASSES = ["circle", "square", "triangle"]


def tiny(root: Path, name: str, **sections: dict[str, Any]) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "run": {"name": name, "root": str(root), "seed": 3},
        "data": {"source": "shapes", "batch_size": 16, "num_workers": 0,
                 "shapes": {"image_size": 16, "train_size": 192, "val_size": 48, "test_size": 48,
                            "classes": CLASSES, "difficulty": 0.3}},
        "model": {"name": "simple_cnn", "channels": [8, 16]},
        "optim": {"name": "adamw", "lr": 0.01},
        "trainer": {"epochs": 2, "device": "cpu", "cpu_threads": 1},
        "logging": {"every_n_steps": 4, "progress": "none", "system": False, "tensorboard": False},
    }
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    return raw


def train(raw: dict[str, Any]) -> Path:
    from core.training.trainer import Trainer

    trainer = Trainer(config_from_dict(raw))
    trainer.fit()
    return trainer.run.path / "checkpoints" / "last.pt"


@pytest.fixture(scope="module")
def image_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(tiny(tmp_path_factory.mktemp("runs"), "img"))


@pytest.fixture(scope="module")
def tabular_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = yaml.safe_load((SAMPLES / "csv_example.yaml").read_text())
    raw["data"]["csv"]["path"] = str(SAMPLES / "data" / "weather.csv")
    raw["run"] = {"name": "tab", "root": str(tmp_path_factory.mktemp("runs")), "seed": 0}
    raw["trainer"] = {"epochs": 2, "device": "cpu", "cpu_threads": 1}
    raw["logging"] = {"progress": "none", "system": False, "tensorboard": False}
    return train(raw)


def explain(*args: str):
    return runner.invoke(app, ["explain", *map(str, args)])


def expect_user_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    flat = " ".join(result.output.split())
    for fragment in fragments:
        assert fragment in flat, (fragment, result.output)


def rebuild(ckpt: Path):
    """The checkpoint's model and test split, built independently of core.explain."""
    from core.data import build_data
    from core.models import build_model

    saved = torch.load(ckpt, weights_only=True)
    cfg = config_from_dict(saved["config"])
    data = build_data(cfg.data, cfg.run.seed, fitted=saved["data"]["fitted"])
    model = build_model(cfg.model, data.num_classes, tuple(data.input_shape)).model
    model.load_state_dict(saved["model"])
    for module in model.modules():
        if getattr(module, "inplace", False):
            module.inplace = False
    return model.eval(), data


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_gradcam_equals_captums_own_and_the_textbook_formula(image_ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "cam"
    result = explain(image_ckpt, "--samples", "6", "--out", out, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["method"] == "gradcam" and summary["layer"] == "stage2"  # the last conv block
    maps = load_maps(out / "maps.npz")
    assert maps["maps"].dtype == np.float32 and maps["maps"].shape == (6, 16, 16)  # input resolution

    from captum.attr import LayerAttribution, LayerGradCam

    model, data = rebuild(image_ckpt)
    x = torch.stack([data.test[int(i)][0] for i in maps["indices"]])
    target = model(x).argmax(1)
    assert target.tolist() == maps["preds"].tolist()
    cam = LayerGradCam(model, model.stage2).attribute(x, target=target, relu_attributions=True)
    direct = LayerAttribution.interpolate(cam, (16, 16), interpolate_mode="bilinear")[:, 0].detach().numpy()

    # The same by hand: channel weights = mean gradient over the map, ReLU of the weighted sum.
    acts: list[torch.Tensor] = []
    handle = model.stage2.register_forward_hook(lambda m, i, o: acts.append(o))
    logits = model(x)
    handle.remove()
    grads = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), acts[0])[0]
    by_hand = torch.relu((grads.mean((2, 3), keepdim=True) * acts[0]).sum(1, keepdim=True))
    by_hand = torch.nn.functional.interpolate(by_hand, (16, 16), mode="bilinear")[:, 0].detach().numpy()

    for i in range(6):
        if direct[i].std() == 0:
            continue  # an all-zero map (every weighted activation negative) has no correlation
        assert correlation(maps["maps"][i], direct[i]) > 0.99
        assert correlation(maps["maps"][i], by_hand[i]) > 0.99
    np.testing.assert_allclose(maps["maps"], direct, rtol=1e-4, atol=1e-6)
    probs = torch.softmax(logits, 1).detach().numpy()
    np.testing.assert_allclose(maps["probs"], probs, rtol=1e-4, atol=1e-6)


def test_maps_npz_matches_what_the_pngs_draw(image_ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "files"
    result = explain(image_ckpt, "--mistakes", "--samples", "20", "--out", out)
    assert result.exit_code == 0, result.output
    maps = load_maps(out / "maps.npz")
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(p.name for p in out.glob("grid-*.png")) == ["grid-01.png", "grid-02.png"]  # 16 tiles a page
    assert len(summary["samples"]) == len(maps["indices"]) == 20
    # --mistakes: highest loss first
    assert np.all(np.diff(maps["losses"]) <= 1e-6)
    pictures = {name: np.asarray(Image.open(out / name).convert("RGB")) for name in ("grid-01.png", "grid-02.png")}
    for i, rec in enumerate(summary["samples"]):
        assert rec["index"] == int(maps["indices"][i])
        assert rec["label"] == CLASSES[int(maps["labels"][i])] and rec["pred"] == CLASSES[int(maps["preds"][i])]
        picture = pictures[rec["png"]]
        drawn = []
        for x, y, w, h, scale in rec["panels"]:
            crop = picture[y:y + h, x:x + w]
            small = crop[::scale, ::scale]
            # every enlarged pixel is a block of one colour
            assert np.array_equal(np.repeat(np.repeat(small, scale, 0), scale, 1), crop)
            drawn.append(small)
        assert np.array_equal(drawn[0], maps["images"][i])
        assert np.array_equal(drawn[1], overlay(maps["images"][i], maps["maps"][i], "gradcam"))
    # the table on stdout names the files and the mistakes
    assert "grid-01.png" in result.output and "maps.npz" in result.output


def test_selections_methods_and_the_default_folder(image_ckpt: Path, tmp_path: Path) -> None:
    per_class = explain(image_ckpt, "--samples", "6", "--json", "--out", tmp_path / "a")
    labels = [s["label"] for s in json.loads(per_class.output)["samples"]]
    assert labels == CLASSES * 2  # samples of every class, in turn

    one = json.loads(explain(image_ckpt, "--class", "square", "--samples", "4", "--json", "--out", tmp_path / "b")
                     .output)
    assert [s["label"] for s in one["samples"]] == ["square"] * 4

    sal = explain(image_ckpt, "--method", "saliency", "--target", "label", "--samples", "3", "--out", tmp_path / "s")
    assert sal.exit_code == 0, sal.output
    s = load_maps(tmp_path / "s" / "maps.npz")
    assert str(s["method"]) == "saliency" and s["maps"].shape == (3, 16, 16) and np.all(s["maps"] >= 0)
    assert np.array_equal(s["targets"], s["labels"])
    from captum.attr import Saliency

    model, data = rebuild(image_ckpt)
    x = torch.stack([data.test[int(i)][0] for i in s["indices"]]).requires_grad_()
    direct = Saliency(model).attribute(x, target=torch.as_tensor(s["labels"]), abs=True).amax(1).detach().numpy()
    np.testing.assert_allclose(s["maps"], direct, rtol=1e-4, atol=1e-7)

    ig = explain(image_ckpt, "--method", "ig", "--samples", "2", "--out", tmp_path / "ig")
    assert ig.exit_code == 0 and str(load_maps(tmp_path / "ig" / "maps.npz")["method"]) == "integrated_gradients"

    acts = explain(image_ckpt, "--method", "activations", "--layer", "stage1", "--samples", "2",
                   "--out", tmp_path / "act")
    assert acts.exit_code == 0, acts.output
    a = load_maps(tmp_path / "act" / "maps.npz")
    assert a["activations"].shape == (2, 8, 8, 8) and a["channels"].shape == (2, 8)  # 8 strongest of stage1's 8x8 maps
    means = a["activations"].mean((2, 3))
    assert np.all(np.diff(means, axis=1) <= 1e-6)  # strongest first

    # Without --out the files go into the run's own folder.
    default = explain(image_ckpt, "--mistakes", "--samples", "2")
    assert default.exit_code == 0, default.output
    assert (image_ckpt.parent.parent / "explain" / "last-test-gradcam-mistakes" / "maps.npz").is_file()

    layers = explain(image_ckpt, "--list-layers", "--json")
    listed = json.loads(layers.output)
    assert listed["default"] == "stage2" and {"stage1", "stage2", "stage1.0"} <= {l["path"] for l in listed["layers"]}


def test_tabular_models_get_integrated_gradients_per_feature(tabular_ckpt: Path, tmp_path: Path) -> None:
    result = explain(tabular_ckpt, "--samples", "4", "--out", tmp_path / "t")
    assert result.exit_code == 0, result.output
    maps = load_maps(tmp_path / "t" / "maps.npz")
    names = list(maps["feature_names"])
    assert str(maps["method"]) == "integrated_gradients" and maps["maps"].shape == (4, len(names))
    assert "features" in maps and "images" not in maps and "sky=overcast" in names
    assert "features by mean |attribution|" in result.output and "wind_speed" in result.output
    summary = json.loads((tmp_path / "t" / "summary.json").read_text())
    assert [r["feature"] for r in summary["feature_ranking"]][0] in names
    # Integrated Gradients is complete: per sample, the attributions add up to f(x) - f(baseline).
    from core.training.rebuild import rebuild

    with rebuild(tabular_ckpt) as rebuilt:
        model = rebuilt.trainer.model.eval()
    x = torch.as_tensor(maps["features"])
    with torch.no_grad():
        gap = (model(x) - model(torch.zeros_like(x))).gather(1, torch.as_tensor(maps["targets"])[:, None])[:, 0]
    np.testing.assert_allclose(maps["maps"].sum(1), gap.numpy(), atol=0.05 * float(gap.abs().max()) + 1e-3)

    expect_user_error(explain(tabular_ckpt, "--method", "gradcam", "--out", tmp_path / "x"),
                      "--method gradcam", "feature vectors", "--method integrated_gradients")
    fix = explain(tabular_ckpt, "--method", "integrated_gradients", "--samples", "2", "--out", tmp_path / "x")
    assert fix.exit_code == 0, fix.output


def test_bad_input_exits_2_with_the_fix(image_ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = ["--out", tmp_path / "bad"]
    expect_user_error(explain(image_ckpt, "--layer", "stage9", *out), "--layer 'stage9'", "Candidates",
                      "stage1 (8x8x8)", "stage2 (16x4x4)", "default (stage2)")
    expect_user_error(explain(image_ckpt, "--class", "hexagon", *out), "--class 'hexagon'", "circle, square, triangle")
    expect_user_error(explain(image_ckpt, "--method", "shap", *out), "--method 'shap'", "gradcam, saliency")
    expect_user_error(explain(tmp_path / "nope.pt"), "nope.pt", "no such checkpoint")
    expect_user_error(explain(image_ckpt, "--split", "train", *out), "--split 'train'", "val, test")

    # A model without spatial layers: Grad-CAM is refused with the method that fits.
    mlp = train(tiny(tmp_path, "mlp", model={"name": "mlp", "hidden": [16]}, trainer={"epochs": 1}))
    expect_user_error(explain(mlp, "--method", "gradcam", *out), "no layer with a spatial output",
                      "--method saliency")
    for args in ([], ["--method", "saliency"]):  # the default that fits, and the fix as the message says it
        fits = explain(mlp, "--samples", "2", "--json", *args, *out)
        assert fits.exit_code == 0 and json.loads(fits.output)["method"] == "saliency", fits.output

    # A checkpoint whose data cannot be rebuilt: the message says what is missing.
    saved = torch.load(image_ckpt, weights_only=True)
    saved["config"]["data"] = {"source": "imagefolder", "root": str(tmp_path / "gone")}
    moved = tmp_path / "moved.pt"
    torch.save(saved, moved)
    expect_user_error(explain(moved, *out), "data.root", str(tmp_path / "gone"), "does not exist")

    # Captum missing: exit 2 with the pip command, before anything is loaded.
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    expect_user_error(explain(image_ckpt, *out), "needs Captum", "pip install 'ftui[explain]'")


def test_a_torchvision_model_through_its_checkpoint(tmp_path: Path) -> None:
    """resnet18 (torchvision, random weights) saved by the trainer and explained through the CLI."""
    from core.training.trainer import Trainer

    raw = tiny(tmp_path, "resnet", model={"name": "resnet18"})
    raw["data"]["shapes"].update(image_size=32, train_size=16, val_size=8, test_size=8)
    trainer = Trainer(config_from_dict(raw), record=False, default_callbacks=False)
    trainer.setup()
    ckpt = trainer.save_checkpoint(tmp_path / "resnet18.pt")
    result = explain(ckpt, "--samples", "3", "--json", "--out", tmp_path / "r")
    assert result.exit_code == 0, result.output
    # at 32 pixels: layer2 is 4x4, layer3 2x2, layer4 1x1 -- the last block with at least 4x4 cells
    assert json.loads(result.output)["layer"] == "layer2"
    assert load_maps(tmp_path / "r" / "maps.npz")["maps"].shape == (3, 32, 32)


def byo_checkpoint(root: Path, name: str, source: str, model: str, data_kwargs: dict, model_kwargs: dict,
                   **sections: dict[str, Any]) -> Path:
    """A tiny run of a sample bring-your-own config (the sample's files, named by absolute path)."""
    code = SAMPLES / "byo"
    raw = tiny(root, name, trainer={"epochs": 1, "device": "cpu", "cpu_threads": 1}, **sections)
    raw["data"] = {"source": f"{code / source}", "kwargs": data_kwargs, "batch_size": 16, "num_workers": 0}
    raw["model"] = {"name": f"{code / model}", "kwargs": model_kwargs}
    return train(raw)


def test_a_user_model_and_dataset_explained_with_consent(tmp_path: Path) -> None:
    """The sample ConvMixer on the sample textures: refused until --trust-code, then explained as printed."""
    ckpt = byo_checkpoint(tmp_path, "mixer", "textures.py:make_textures", "convmixer.py:ConvMixer",
                          {"train_size": 48, "val_size": 16, "test_size": 24, "side": 16},
                          {"dim": 16, "depth": 2, "kernel_size": 3, "patch_size": 2})
    refused = explain(ckpt, "--samples", "4", "--out", tmp_path / "m")
    expect_user_error(refused, "trained with your own code", "convmixer.py", "--trust-code")
    printed = " ".join(refused.output.split()).split("run `", 1)[1].split("`", 1)[0]
    assert printed == f"ftui explain {ckpt} --trust-code"
    result = explain(*printed.split()[2:], "--samples", "4", "--json", "--out", tmp_path / "m")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{"):])
    assert summary["method"] == "gradcam" and summary["layer"] == "blocks"  # the user's mixer blocks, 8x8
    maps = load_maps(tmp_path / "m" / "maps.npz")
    assert maps["maps"].shape == (4, 16, 16) and list(maps["class_names"])[:2] == ["horizontal", "vertical"]


def test_token_inputs_of_a_user_text_model_are_refused_with_exit_2(tmp_path: Path) -> None:
    ckpt = byo_checkpoint(tmp_path, "text", "keywords.py:make_keywords", "text_encoder.py:TextEncoder",
                          {"train_size": 32, "val_size": 16, "test_size": 16, "max_len": 16},
                          {"dim": 16, "depth": 1, "heads": 2})
    expect_user_error(explain(ckpt, "--trust-code", "--out", tmp_path / "t"),
                      "a dict of attention_mask, input_ids", "images", "feature vectors", "ftui eval")


def test_inputs_that_are_not_images_or_features_are_refused_clearly() -> None:
    from core.errors import UserError
    from core.explain.session import _input_kind

    with pytest.raises(UserError) as exc:
        _input_kind({"input_ids": torch.zeros(8, dtype=torch.long), "attention_mask": torch.ones(8)}, Path("c.pt"))
    assert "a dict of attention_mask, input_ids" in str(exc.value) and "ftui eval" in str(exc.value)
    with pytest.raises(UserError, match="int64 tensor of shape"):
        _input_kind(torch.zeros(8, dtype=torch.long), Path("c.pt"))
    assert _input_kind(torch.zeros(3, 8, 8), Path("c.pt")) == "image"
    assert _input_kind(torch.zeros(5), Path("c.pt")) == "features"


def test_layers_of_torchvision_models_and_transformers() -> None:
    """ResNet: layer4 (at least 4x4); a ViT: the first norm of the last block (its patch tokens reach the class token)."""
    from torchvision.models import resnet18
    from torchvision.models.vision_transformer import VisionTransformer

    from core.explain import methods
    from core.explain.layers import TokenGrid, probe_layers, resolve_layer

    torch.manual_seed(0)
    net = resnet18(num_classes=4).eval()
    probe = probe_layers(net, net, torch.randn(1, 3, 128, 128))
    assert probe.default == "layer4" and probe.get("layer4").shape == (512, 4, 4)
    # at 64 pixels layer4 is 2x2 (which quadrant, no more): the default moves one block up
    probe = probe_layers(net, net, torch.randn(1, 3, 64, 64))
    assert probe.default == "layer3" and probe.get("layer4").shape == (512, 2, 2)

    vit = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32,
                            num_classes=3).eval()
    torch.nn.init.normal_(vit.heads.head.weight)  # torchvision starts the head at zero: no gradients at all
    x = torch.randn(2, 3, 32, 32)
    probe = probe_layers(vit, vit, x[:1])
    assert probe.default == "encoder.layers.encoder_layer_1.ln_1"
    info = resolve_layer(probe, None, purpose="gradcam")
    assert info.kind == "tokens" and (info.prefix, info.side) == (1, 4)
    # Seen through TokenGrid the model computes exactly what it did.
    with torch.no_grad():
        before = vit(x)
        handle = TokenGrid(1, 4).attach(vit.get_submodule(info.path))
        after = vit(x)
        handle.remove()
    assert torch.equal(before, after)
    cam = methods.gradcam(vit, vit, x, vit(x).argmax(1), info)
    assert cam.shape == (2, 32, 32) and float(cam.abs().sum()) > 0
