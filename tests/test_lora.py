"""LoRA adapters (finetune.lora, core.lora): training in place through PEFT, checkpoints that hold the
adapters and a reference to the base, exact resume, the PEFT round trip, merging, the live controls,
and the readers (layer tree, layer statistics, inspect, diff).

One module-scoped LoRA run of a small torchvision ViT (vit_b_16 sized down through model.kwargs,
adapters on its attention and MLP layers) on a base weights file serves most tests; each trains in
a second or two on a loaded 2-core CPU.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from core.config import ModelConfig, config_from_dict
from core.errors import CheckpointError, ConfigError, ModelError, RunError
from core.models import build_model
from core.models.forward import call_model, to_device
from core.training.callback import Callback
from core.training.checkpoint import load_file
from core.training.trainer import Trainer
from support.lora import VIT, lora_raw
from support.training import tiny_raw
from tui.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def base_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 'pretrained' ViT as a plain state dict (4 classes: the adapted run has 3, so its head is new)."""
    torch.manual_seed(3)
    built = build_model(ModelConfig(**VIT), 4, (3, 16, 16))
    path = tmp_path_factory.mktemp("base") / "vit_base.pt"
    torch.save(built.model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory: pytest.TempPathFactory, base_file: Path) -> Path:
    root = tmp_path_factory.mktemp("lora")
    trainer = Trainer(config_from_dict(lora_raw(root, "adapt", base_file)))
    trainer.fit()
    assert trainer.status == "finished"
    return trainer.run.path


def adapted(ckpt: Path) -> tuple[torch.nn.Module, Any, Any]:
    """The checkpoint's adapted model (through ftui.rebuild), its data, and a validation batch."""
    import ftui

    rebuilt = ftui.rebuild(ckpt)
    trainer = rebuilt.trainer
    trainer.cleanup()
    model = trainer.model.eval()
    batch = to_device(trainer.data.example("val", 16), trainer.device)
    return model, trainer, batch


def logits(model: torch.nn.Module, batch: Any) -> torch.Tensor:
    with torch.no_grad():
        return call_model(model.eval(), batch).float()


# ------------------------------------------------------------------------------------- training


def test_checkpoint_holds_the_adapters_and_names_the_base(lora_run: Path, base_file: Path) -> None:
    ckpt = torch.load(lora_run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    record = ckpt["lora"]
    assert record["rank"] == 2 and record["alpha"] == 4.0 and record["modules_to_save"] == ["heads.head"]
    # both attention layers (PEFT's MultiheadAttention adapter, out_proj included) and both MLPs of each block
    assert sorted(record["layers"]) == sorted(f"encoder.layers.encoder_layer_{i}.{m}"
                                              for i in (0, 1) for m in ("self_attention", "mlp.0", "mlp.3"))
    base = record["base"]
    assert base["stored"] is False and Path(base["path"]) == base_file.resolve()
    import hashlib

    assert base["sha256"] == hashlib.sha256(base_file.read_bytes()).hexdigest()
    stored = set(ckpt["model"])
    adapters = {k for k in stored if ".lora_" in k}
    assert adapters and all(".lora_A." in k or ".lora_B." in k for k in adapters)
    # the rest is the trained head and the new head's frozen original (another class count: not in the base file)
    assert stored - adapters == {"heads.head.modules_to_save.default.weight", "heads.head.modules_to_save.default.bias",
                                 "heads.head.original_module.weight", "heads.head.original_module.bias"}
    base_params = sum(t.numel() for t in torch.load(base_file, weights_only=True).values())
    assert base["omitted_params"] == base_params - 4 * 16 - 4  # everything but the 4-class head
    assert record["adapter_params"] == sum(ckpt["model"][k].numel() for k in adapters)
    # the trainable share: adapters + the new head, a small part of the model
    assert record["trainable_params"] == record["adapter_params"] + 3 * 16 + 3
    groups = {g["name"]: g for g in ckpt["finetune"]["groups"]}
    assert groups["lora"]["base_lr"] == 0.02 and all(".lora_" in p for p in groups["lora"]["params"])


def test_model_json_and_layer_stats_show_each_adapter(lora_run: Path) -> None:
    tree = json.loads((lora_run / "model.json").read_text())
    modules = {m["path"]: m for m in tree["modules"]}
    layer = "encoder.layers.encoder_layer_0.mlp.0"
    node = modules[f"{layer}.lora"]
    assert node["type"] == "LoRA" and node["pattern"] == f"lora:{layer}" and node["adapter"]["rank"] == 2
    assert node["params"] == 2 * 16 + 32 * 2 and node["trainable"] == node["params"] and node["lr"] == 0.02
    assert modules[layer]["lora"] == {"rank": 2, "alpha": 4, "params": node["params"]}
    assert modules[f"{layer}.base_layer"]["frozen"] is True
    assert not any(".lora_A" in p or "lora_dropout" in p for p in modules)  # PEFT's containers fold into X.lora
    assert tree["lora"]["layers"] == 8 and tree["trainable_params"] < tree["total_params"] / 5
    # every adapter is a statistics unit of its own, with gradients; the frozen base units have none
    record = json.loads((lora_run / "layers.jsonl").read_text().splitlines()[-1])["layers"]
    assert record[f"{layer}.lora"]["grad_norm"] > 0 and record[f"{layer}.lora"]["frozen"] is False
    assert record["conv_proj"]["frozen"] is True and record["conv_proj"]["grad_norm"] == 0


class StopAfter(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step == self.step:
            trainer.request_stop("test")


def test_resume_is_exact_on_a_resnet_style_conv_net(tmp_path: Path) -> None:
    """LoRA on Conv2d layers of simple_cnn (the ResNet case) from a base file: stopped mid-epoch and
    resumed, the adapters and head end bitwise where the uninterrupted run ends."""
    torch.manual_seed(0)
    cnn = {"name": "simple_cnn", "channels": [4, 8]}
    base = tmp_path / "cnn.pt"
    torch.save(build_model(ModelConfig(**cnn), 3, (3, 16, 16)).model.state_dict(), base)
    lora = {"target": ["stage1", "stage2"], "rank": 2, "dropout": 0.1}

    def cfg(name: str):
        raw = tiny_raw(tmp_path, name, model={**cnn, "weights": str(base)}, finetune={"lora": lora, "bn": "train"},
                       trainer={"epochs": 2, "device": "cpu", "cpu_threads": 1})
        return config_from_dict(raw)

    straight = Trainer(cfg("straight"))
    straight.fit()
    first = Trainer(cfg("split"), callbacks=[StopAfter(5)])  # 6 steps an epoch: mid-epoch
    first.fit()
    assert first.status == "stopped"
    second = Trainer(cfg("split"), run_dir=first.run.path)
    second.fit(resume_from=first.run.path / "checkpoints" / "last.pt")
    a, b = straight.model.state_dict(), second.model.state_dict()
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    assert any(".lora_A." in k and "stage1" in k for k in a)
    # another rank cannot continue these adapters: refused before the run is touched, the key named
    lora["rank"] = 4
    with pytest.raises(RunError, match="finetune.lora.rank: 2 -> 4"):
        Trainer(cfg("split"), run_dir=first.run.path).fit(resume_from=first.run.path / "checkpoints" / "last.pt")
    ckpt = load_file(first.run.path / "checkpoints" / "last.pt")
    # BatchNorm statistics train (bn: train) and are kept; the frozen convs are left to the base file
    assert "stage1.0.bn.running_mean" in ckpt["model"] or any("running_mean" in k for k in ckpt["model"])
    assert not any(k.endswith("base_layer.weight") for k in ckpt["model"])


# --------------------------------------------------------------------------- PEFT and merging


def test_peft_round_trip_gives_the_adapted_models_logits(lora_run: Path, base_file: Path, tmp_path: Path) -> None:
    """Must show: adapters written by ftui load with PEFT's own PeftModel.from_pretrained on the same
    base model (built here without ftui's LoRA code: torchvision's ViT and the base file) and give
    the adapted model's logits."""
    from peft import PeftModel

    ckpt = lora_run / "checkpoints" / "best.pt"
    out = tmp_path / "adapters"
    done = runner.invoke(app, ["export", str(ckpt), "--format", "peft", "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert "checked: PeftModel.from_pretrained" in done.output
    assert {p.name for p in out.iterdir()} >= {"adapter_config.json", "adapter_model.safetensors", "README.md"}
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 2 and config["modules_to_save"] == ["heads.head"]

    model, trainer, batch = adapted(ckpt)
    expected = logits(model, batch)
    base = build_model(ModelConfig(**VIT, weights=str(base_file)), 3, (3, 16, 16)).model  # the run's base
    peft_model = PeftModel.from_pretrained(base, str(out)).eval()
    assert torch.allclose(logits(peft_model, batch), expected, atol=1e-6, rtol=0)
    assert not torch.allclose(logits(build_model(ModelConfig(**VIT, weights=str(base_file)), 3, (3, 16, 16)).model,
                                     batch), expected, atol=1e-3)  # the adapters do change the outputs

    # the loading recipe the directory's README gives, run as written
    readme = (out / "README.md").read_text()
    code = readme.split("```python\n")[-1].split("```")[0]
    scope: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - ftui's own snippet
    assert torch.allclose(logits(scope["model"], batch), expected, atol=1e-6, rtol=0)


def test_merge_writes_plain_weights_equal_to_the_adapted_model(lora_run: Path, tmp_path: Path) -> None:
    """Must show: `ftui export --merge` writes the base model's own tensors, adapters folded in; a plain
    ViT (no PEFT) loads them strictly and gives the adapted model's logits within 1e-5."""
    from safetensors.torch import load_file as load_safetensors

    ckpt = lora_run / "checkpoints" / "best.pt"
    done = runner.invoke(app, ["export", str(ckpt), "--merge"])
    assert done.exit_code == 0, done.output
    merged_file = ckpt.with_name("best.merged.safetensors")
    assert f"wrote {merged_file}" in done.output and "max |logit difference|" in done.output
    state = load_safetensors(str(merged_file))
    assert not any("lora_" in k or "base_layer" in k or "modules_to_save" in k for k in state)
    plain = build_model(ModelConfig(**VIT), 3, (3, 16, 16)).model
    plain.load_state_dict(state, strict=True)
    model, _, batch = adapted(ckpt)
    diff = (logits(plain, batch) - logits(model, batch)).abs().max().item()
    assert diff <= 1e-5

    out = tmp_path / "merged.pt"
    done = runner.invoke(app, ["export", str(ckpt), "--merge", "--format", "state_dict", "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert torch.load(out, weights_only=True).keys() == state.keys()


def test_merged_weights_start_a_new_run_and_the_lora_checkpoint_itself_is_refused(lora_run: Path, tmp_path: Path) -> None:
    ckpt = lora_run / "checkpoints" / "last.pt"
    raw = lora_raw(tmp_path, "next", ckpt)
    raw["finetune"] = {}
    with pytest.raises(ModelError) as err:
        Trainer(config_from_dict(raw)).fit()
    message = str(err.value)
    command = message.split("`")[1]
    assert command == f"ftui export {ckpt} --merge"
    done = runner.invoke(app, command.split()[1:])  # the command the message gives, as printed
    assert done.exit_code == 0, done.output
    raw["model"]["weights"] = str(ckpt.with_name("last.merged.safetensors"))
    trainer = Trainer(config_from_dict(raw))
    trainer.fit()
    assert trainer.status == "finished" and trainer.built.load_report.matched


# ----------------------------------------------------------------------------- live controls


class Steer(Callback):
    """Sends control commands at chosen steps (as `ftui ctl` would) and snapshots the weights after
    each acknowledged command."""

    def __init__(self, plan: dict[int, tuple[str, dict[str, Any]]]) -> None:
        self.plan = plan
        self.snapshots: dict[int, dict[str, torch.Tensor]] = {}

    def on_train_batch_end(self, trainer: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        from core import control

        step = trainer.global_step
        if step in self.plan:
            command, args = self.plan.pop(step)
            control.send(trainer.run.path, command, args)
        self.snapshots[step] = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def _answers(run: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    return [e for e in rows if e.get("kind") == "control"]


def test_live_adapter_freeze_unfreeze_base_and_lr(base_file: Path, tmp_path: Path) -> None:
    """Must show: after an acknowledged `freeze lora:X`, X's adapter weights stay bitwise unchanged
    while the others train; `unfreeze X.base_layer` trains the base layer beside its adapter; `set-lr
    lora` changes the adapters' group; model.json follows."""
    layer = "encoder.layers.encoder_layer_1.mlp.0"
    raw = lora_raw(tmp_path, "steer", base_file, trainer={"epochs": 3, "device": "cpu", "cpu_threads": 1})
    steer = Steer({2: ("freeze", {"pattern": f"lora:{layer}"}), 6: ("unfreeze", {"pattern": f"{layer}.base_layer"}),
                   8: ("set-lr", {"group": "lora", "lr": 0.005})})
    trainer = Trainer(config_from_dict(raw), callbacks=[steer])
    trainer.fit()
    answers = {a["command"]: a for a in _answers(trainer.run.path)}
    assert answers["freeze"]["status"] == "ok" and answers["freeze"]["message"] == f"froze {layer}.lora"
    frozen_at = answers["freeze"]["step"]
    assert answers["unfreeze"]["status"] == "ok" and answers["set-lr"]["status"] == "ok"
    final = {k: v.detach() for k, v in trainer.model.state_dict().items()}
    at_freeze = steer.snapshots[frozen_at]
    mine = [k for k in final if k.startswith(f"{layer}.lora_")]
    others = [k for k in final if ".lora_" in k and k not in mine]
    assert mine and all(torch.equal(at_freeze[k], final[k]) for k in mine)
    assert all(not torch.equal(at_freeze[k], final[k]) for k in others)
    base_w = f"{layer}.base_layer.weight"
    unfrozen_at = answers["unfreeze"]["step"]
    assert torch.equal(steer.snapshots[unfrozen_at - 1][base_w], torch.load(base_file, weights_only=True)[
        layer + ".weight"])
    assert not torch.equal(steer.snapshots[unfrozen_at][base_w], final[base_w])  # trains beside its adapter
    lrs = {g["name"]: g["base_lr"] for g in trainer.finetuner.groups_summary()}
    assert lrs["lora"] == 0.005
    tree = {m["path"]: m for m in json.loads((trainer.run.path / "model.json").read_text())["modules"]}
    assert tree[f"{layer}.lora"]["frozen"] is True and tree[f"{layer}.base_layer"]["frozen"] is False
    # the unfrozen base layer is stored from now on: its checkpoint no longer leaves it to the base file
    ckpt = load_file(trainer.run.path / "checkpoints" / "last.pt")
    assert base_w in ckpt["model"] and f"{layer}.lora_A.default.weight" in ckpt["model"]


# ------------------------------------------------------------------------------ readers


def test_inspect_shows_the_adapters_without_torch(lora_run: Path) -> None:
    import subprocess

    ckpt = lora_run / "checkpoints" / "last.pt"
    code = (
        "import sys, json\n"
        "from core.inspect import load_checkpoint, summarize\n"
        f"s = summarize(load_checkpoint({str(ckpt)!r}))\n"
        "assert 'torch' not in sys.modules and 'peft' not in sys.modules, 'imported torch/peft'\n"
        "print(json.dumps(s['lora']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr
    lora = json.loads(done.stdout)
    assert lora["rank"] == 2 and lora["layer_count"] == 6
    assert lora["layer_types"] == {"MultiheadAttention": 2, "Linear": 4}
    assert lora["base"]["stored"] is False
    done = runner.invoke(app, ["inspect", str(ckpt), "--plain"])
    assert done.exit_code == 0
    text = " ".join(done.output.split())
    assert "LoRA r=2 α=4, 6 layers (Linear ×4, MultiheadAttention ×2)" in text
    assert "LoRA base not stored:" in text and "vit_base.pt" in text


def test_diff_of_two_adapter_checkpoints_compares_their_updates(lora_run: Path) -> None:
    from core.inspect import diff_checkpoints, load_checkpoint
    from core.lora.compare import delta

    a, b = lora_run / "checkpoints" / "best.pt", lora_run / "checkpoints" / "last.pt"
    first = load_file(a)
    report = diff_checkpoints(load_checkpoint(a), load_checkpoint(b)).as_dict()
    adapters = report["adapters"]
    assert adapters["a"]["rank"] == 2 and len(adapters["layers"]) == 8
    layer = "encoder.layers.encoder_layer_0.mlp.3"
    entry = next(e for e in adapters["layers"] if e["layer"] == layer)
    state = first["model"]
    expected = delta(state[f"{layer}.lora_A.default.weight"], state[f"{layer}.lora_B.default.weight"], 2.0)
    assert entry["norm_a"] == pytest.approx(float(expected.norm()))
    done = runner.invoke(app, ["diff", str(a), str(b)])
    assert done.exit_code == 0 and "LoRA adapters: update ΔW per layer" in done.output


# ------------------------------------------------------------------------------ bad input


def _model_show(tmp_path: Path, lora: dict[str, Any], **model: Any) -> Any:
    import yaml

    raw = lora_raw(tmp_path, "bad", None)
    raw["finetune"]["lora"] = lora
    raw["model"].update(model)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    return runner.invoke(app, ["model", "show", str(path)])


def test_bad_lora_configs_exit_2_naming_the_key_and_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    done = _model_show(tmp_path, {"target": ["encodr.layers"]})
    assert done.exit_code == 2
    assert "finetune.lora.target[0]: pattern 'encodr.layers' matches no module" in done.output
    assert "closest: encoder.layers" in done.output
    done = _model_show(tmp_path, {"target": ["encoder.ln", "*.ln_1"]})
    assert done.exit_code == 2 and "finetune.lora.target[0]: pattern 'encoder.ln' selects encoder.ln" in done.output
    assert "found: LayerNorm" in done.output and "LoRA adapts Linear, Conv1d, Conv2d" in done.output
    done = _model_show(tmp_path, {"target": ["encoder"], "rank": 20})
    assert done.exit_code == 2
    assert "finetune.lora.rank: 20 is larger than" in " ".join(done.output.split())
    assert "at most 16" in done.output
    done = _model_show(tmp_path, {"target": ["encoder"], "rank": 0})
    assert done.exit_code == 2 and "finetune.lora.rank" in done.output
    done = _model_show(tmp_path, {"target": ["head"]})
    assert done.exit_code == 2 and "trains fully (finetune.lora.modules_to_save)" in done.output
    # grouped convolutions cannot be merged: named with the supported types
    done = _model_show(tmp_path, {"target": ["features.1.block.0.0"]}, name="mobilenet_v3_small", kwargs={})
    assert done.exit_code == 2
    assert "Conv2d with groups=" in done.output and "LoRA adapts" in done.output
    monkeypatch.setitem(sys.modules, "peft", None)  # PEFT not installed
    done = _model_show(tmp_path, {"target": ["encoder"]})
    assert done.exit_code == 2
    assert "pip install 'ftui[lora]'" in done.output and "Traceback" not in done.output


def test_a_base_that_is_gone_changed_or_of_another_shape_is_refused(lora_run: Path, base_file: Path,
                                                                    tmp_path: Path) -> None:
    ckpt = lora_run / "checkpoints" / "best.pt"
    # another architecture (wider ViT): merging onto it names the first layer that does not fit
    torch.manual_seed(1)
    wide = build_model(ModelConfig(name="vit_b_16", kwargs={**VIT["kwargs"], "mlp_dim": 64}), 4, (3, 16, 16)).model
    other = tmp_path / "wide.pt"
    torch.save(wide.state_dict(), other)
    done = runner.invoke(app, ["export", str(ckpt), "--merge", "--base", str(other), "--out", str(tmp_path / "m.pt")])
    assert done.exit_code == 2, done.output
    text = " ".join(done.output.split())
    assert "layer encoder.layers.encoder_layer_0.mlp.0: encoder.layers.encoder_layer_0.mlp.0.base_layer.weight (and" in text
    assert f"more) has shape [64, 16] in the base file {other}" in text
    assert "the adapters were trained on a base of shape [32, 16]" in text and not (tmp_path / "m.pt").exists()
    # the same architecture, other values: named on purpose, so only a warning
    same = build_model(ModelConfig(**VIT), 4, (3, 16, 16)).model
    torch.save(same.state_dict(), tmp_path / "other.pt")
    done = runner.invoke(app, ["export", str(ckpt), "--merge", "--base", str(tmp_path / "other.pt"),
                               "--out", str(tmp_path / "m.safetensors")])
    assert done.exit_code == 0, done.output
    assert "is not the file the adapters" in done.output and "named as the base" in done.output
    # the recorded base changed under the checkpoint: refused with the fix
    moved = tmp_path / "moved.pt"
    base_file.rename(moved)
    try:
        done = runner.invoke(app, ["eval", str(ckpt), "--split", "val"])
        assert done.exit_code == 2 and "that file is gone" in done.output and "--base PATH" in done.output
        done = runner.invoke(app, ["eval", str(ckpt), "--split", "val", "--base", str(moved)])
        assert done.exit_code == 0, done.output
        torch.save(same.state_dict(), base_file)
        done = runner.invoke(app, ["eval", str(ckpt), "--split", "val"])
        assert done.exit_code == 2 and "is not the file the adapters" in " ".join(done.output.split())
    finally:
        moved.replace(base_file)
    with pytest.raises(CheckpointError, match="holds no LoRA adapters"):
        from core.lora.export import export_merged

        other_run = tiny_raw(tmp_path, "plain", trainer={"epochs": 1, "device": "cpu", "cpu_threads": 1})
        plain = Trainer(config_from_dict(other_run))
        plain.fit()
        export_merged(plain.run.path / "checkpoints" / "last.pt")
    assert ConfigError  # the rank error type, used above through the CLI


# ------------------------------------------------------------------------------ user models


def test_lora_on_a_user_model_with_its_base_stored_and_code_rebuilt_only_with_consent(tmp_path: Path) -> None:
    """A model of the user's (a file next to the config, no weights file): its Conv2d and Linear layers
    get adapters, the checkpoint stores the base too (nothing else holds it), and merging rebuilds
    the code only after the command that asks for --trust-code, run as printed."""
    import ftui
    from byo_support import byo_config
    from peft import PeftModel

    config = byo_config(tmp_path, "mine", finetune={"lora": {"target": ["features", "body"], "rank": 2}})
    result = ftui.run(config)
    assert result.status == "finished"
    ckpt = load_file(result.checkpoints["last"])
    assert ckpt["lora"]["base"] == {"stored": True}
    assert set(ckpt["lora"]["layers"]) == {"features.0", "body.0"}
    assert ckpt["lora"]["layers"]["features.0"]["type"] == "Conv2d"
    assert "features.0.base_layer.weight" in ckpt["model"]  # no file holds the base: stored

    path = result.checkpoints["last"]
    done = runner.invoke(app, ["export", str(path), "--merge"])
    assert done.exit_code == 2 and "--trust-code" in done.output
    command = " ".join(done.output.split()).split("run `")[1].split("`")[0]
    assert command == f"ftui export {path} --merge --trust-code"
    done = runner.invoke(app, command.split()[1:])
    assert done.exit_code == 0, done.output
    out = tmp_path / "adapters"
    done = runner.invoke(app, ["export", str(path), "--format", "peft", "--out", str(out), "--trust-code"])
    assert done.exit_code == 0, done.output
    model, _, batch = adapted_trusted(path)
    peft_model = PeftModel.from_pretrained(ftui.base_model(path, trust_code=True), str(out))
    assert torch.allclose(logits(peft_model, batch), logits(model, batch), atol=1e-6, rtol=0)


def adapted_trusted(ckpt: Path) -> tuple[torch.nn.Module, Any, Any]:
    import ftui

    rebuilt = ftui.rebuild(ckpt, trust_code=True)
    rebuilt.trainer.cleanup()
    return rebuilt.trainer.model.eval(), rebuilt.trainer, to_device(rebuilt.trainer.data.example("val", 8), "cpu")


@pytest.mark.parametrize(("model", "shape", "target", "adapted"), [
    ({"name": "resnet18"}, (3, 32, 32), ["layer4"],
     {"layer4.0.conv1": "Conv2d", "layer4.0.conv2": "Conv2d", "layer4.0.downsample.0": "Conv2d",
      "layer4.1.conv1": "Conv2d", "layer4.1.conv2": "Conv2d"}),
    ({"name": "simple_cnn", "channels": [4, 8]}, (3, 16, 16), ["stage2"], {"stage2.0": "Conv2d", "stage2.3": "Conv2d"}),
    ({"name": "mlp", "hidden": [16, 8]}, (6,), ["backbone"], {"block1.0": "Linear", "block2.0": "Linear"}),
])
def test_adapters_land_on_the_layers_the_patterns_select(model: dict, shape: tuple, target: list, adapted: dict) -> None:
    from core.config import LoraConfig
    from core.lora.adapters import apply_lora
    from core.models import model_tree

    torch.manual_seed(0)
    built = build_model(ModelConfig(**model), 3, shape)
    x = torch.randn(2, *shape)
    before = logits(built.model, x)
    lora = apply_lora(built.model, LoraConfig(target=target, rank=2), built.head_path)
    assert {t.path: t.type for t in lora.targets} == adapted
    trainable = {n for n, p in built.model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_" in n or ".modules_to_save." in n for n in trainable)
    assert torch.allclose(logits(built.model, x), before)  # B starts at zero: the same function
    tree = model_tree(built.model, shape, built.head_path)
    assert {m["adapter"]["layer"] for m in tree["modules"] if m.get("adapter")} == set(adapted)


def test_onnx_export_merges_the_adapters_and_compress_points_to_it(lora_run: Path, tmp_path: Path) -> None:
    import onnxruntime as ort

    ckpt = lora_run / "checkpoints" / "best.pt"
    done = runner.invoke(app, ["compress", str(ckpt), "--prune", "0.5", "--out", str(tmp_path / "c")])
    assert done.exit_code == 2 and "holds LoRA adapters" in done.output
    commands = " ".join(done.output.split()).split("`")[1::2]
    assert commands == [f"ftui export {ckpt} --merge", f"ftui export {ckpt} --format onnx"]
    for command in commands:  # as printed
        done = runner.invoke(app, command.split()[1:])
        assert done.exit_code == 0, done.output
    assert "LoRA adapters merged" in done.output and "verified in ONNX Runtime" in done.output
    model, _, batch = adapted(ckpt)
    session = ort.InferenceSession(str(ckpt.with_name("best.onnx")), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: batch.numpy()})
    assert torch.allclose(torch.from_numpy(out), logits(model, batch), atol=1e-4)
