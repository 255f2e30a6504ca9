"""The torch-free summary path (core/inspect/torchzip.py) gives exactly the torch.load path's answer.

Every case is saved with torch.save, summarised through both paths and compared as JSON; tensor
data read back through the fast path must equal torch.load's. Files the restricted reader does not
model must fall back to torch.load and be loaded or refused as before. A subprocess checks that
``ftui inspect --json/--plain`` and the inspector app's first screen never import torch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from core.config import config_from_dict
from core.errors import CheckpointError
from core.inspect import load_checkpoint, summarize
from core.inspect.loading import _load_torch
from core.inspect.tensors import DictTensors, RecordTensors
from core.inspect.torchzip import NotUnderstood, read_torch_zip

REPO = Path(__file__).resolve().parents[1]


def _trainer_checkpoint(tmp: Path) -> Path:
    """The last.pt of a real (tiny, one-epoch) ftui run, with AdamW state, metrics and a model tree."""
    from core.training.trainer import Trainer

    cfg = config_from_dict({
        "run": {"name": "tf", "root": str(tmp), "seed": 0},
        "data": {"source": "shapes", "image_size": 16, "batch_size": 32, "num_workers": 0,
                 "shapes": {"classes": ["circle", "square", "star"], "image_size": 16, "train_size": 64,
                            "val_size": 32, "test_size": 0}},
        "model": {"name": "simple_cnn", "channels": [8, 16], "batch_norm": True},
        "finetune": {"freeze": ["stage1"], "bn": "freeze"},
        "optim": {"name": "adamw", "lr": 0.01},
        "trainer": {"epochs": 1, "device": "cpu"},
        "logging": {"tensorboard": False, "system": False, "layer_stats": False, "progress": "none"},
    })
    Trainer(cfg).fit()
    return tmp / "tf" / "checkpoints" / "last.pt"


def _resnet18() -> dict:
    from torchvision.models import resnet18

    torch.manual_seed(0)
    return resnet18(num_classes=7).state_dict()


def _small_mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))


def _lightning() -> dict:
    model = _small_mlp()
    return {
        "epoch": 2, "global_step": 40, "pytorch-lightning_version": "2.4.0",
        "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        "callbacks": {"ModelCheckpoint{'monitor': 'val_acc', 'mode': 'max'}": {
            "monitor": "val_acc", "best_model_score": torch.tensor(0.875), "best_model_path": "/x/best.ckpt"}},
        "optimizer_states": [{"state": {0: {"step": torch.tensor(40.0), "exp_avg": torch.zeros(8, 4)}},
                              "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
                                                "amsgrad": False, "params": [0, 1, 2]}]}],
        "lr_schedulers": [{"last_epoch": 2, "_step_count": 3}],
        "hyper_parameters": {"arch": "mlp", "num_classes": 3, "device": torch.device("cuda", 1),
                             "dtype": torch.bfloat16, "input": torch.Size([4]), "tags": {"a", "b"}},
        "loops": {"fit_loop": {"epoch_progress": {"current": {"completed": 2}}}},
    }


def _nested() -> dict:
    return {"model_state_dict": _small_mlp().state_dict(), "ema": {"w": torch.ones(2)}, "epoch": torch.tensor(5),
            "note": "nested"}


def _dtypes_and_views() -> dict:
    base = torch.arange(48, dtype=torch.float32).reshape(6, 8)
    param = nn.Parameter(torch.ones(3))
    tagged = torch.zeros(2)
    tagged.note = "pickled through _rebuild_from_type_v2"
    return {
        "base": base, "transposed": base.t(), "slice": base[1:4, ::3], "row": base[5],  # one storage, four views
        "bf16": torch.linspace(-1, 1, 5).to(torch.bfloat16), "fp16": torch.full((2, 2), 1 / 3, dtype=torch.float16),
        "f64": torch.tensor([1e-300, 2.5], dtype=torch.float64), "i8": torch.tensor([-3, 4], dtype=torch.int8),
        "i64": torch.arange(3), "u8": torch.tensor([0, 255], dtype=torch.uint8),
        "u16": torch.tensor([7], dtype=torch.uint16), "b": torch.tensor([True, False]), "c64": torch.tensor([1 + 2j]),
        "f8": torch.tensor([0.5, 2.0]).to(torch.float8_e4m3fn),
        "param": param, "tagged": tagged, "scalar": torch.tensor(3.5), "empty": torch.zeros(0, 4),
    }


def _values_in_metadata() -> dict:
    """Small tensors whose values the summary shows (metrics, best score), in awkward dtypes and layouts."""
    grid = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 7
    return {
        "format": "ftui-checkpoint/1", "ftui_version": "0.1.0", "model": {"fc.weight": torch.ones(3, 2)},
        "epoch": torch.tensor(3), "step": 30,
        "metrics": {"history": {"val/acc": [torch.tensor(0.5), 0.75, torch.tensor(0.875, dtype=torch.float64)]},
                    "best": {"metric": "val/acc", "value": torch.tensor(0.8125, dtype=torch.float16), "epoch": 2},
                    "column": grid[:, 1], "bf16": (torch.ones(3, dtype=torch.bfloat16) / 3)[1:],
                    "f8": torch.tensor([0.5, 1.5]).to(torch.float8_e5m2), "flags": torch.tensor([True, False]),
                    "big": torch.zeros(40), "complex": torch.tensor([1j, 2.0])},
        "scheduler": {"last_epoch": 3, "lr": torch.tensor(0.1)},
        "config": {"model": {"name": "probe"}, "device": torch.device("cpu"), "dtype": torch.float16},
    }


CASES: dict[str, Callable[[], Any]] = {
    "resnet18_state_dict": _resnet18,
    "lightning": _lightning,
    "nested": _nested,
    "dtypes_and_views": _dtypes_and_views,
    "values_in_metadata": _values_in_metadata,
}


def _bits(tensor: torch.Tensor) -> torch.Tensor:
    """Comparable form: float8 tensors as their bytes (torch.equal does not take them)."""
    return tensor.view(torch.uint8) if tensor.dtype.is_floating_point and tensor.dtype.itemsize == 1 else tensor


def _assert_same_as_torch(path: Path) -> dict:
    """Both paths' summaries as JSON, and every weight tensor read back, are identical."""
    fast = load_checkpoint(path)
    assert isinstance(fast.weights, RecordTensors), "the torch-free path should have read this file"
    slow = _load_torch(path, "torch-zip", unsafe=False)
    fast_json, slow_json = json.dumps(summarize(fast), indent=1), json.dumps(summarize(slow), indent=1)
    assert fast_json == slow_json
    for name in slow.weights.names():
        a, b = fast.weights.get(name), slow.weights.get(name)
        assert a.dtype == b.dtype and a.shape == b.shape and a.stride() == b.stride()
        assert torch.equal(_bits(a), _bits(b))
    return json.loads(fast_json)


@pytest.mark.parametrize("case", list(CASES))
def test_summary_equals_the_torch_path(tmp_path: Path, case: str) -> None:
    path = tmp_path / f"{case}.pt"
    torch.save(CASES[case](), path)
    summary = _assert_same_as_torch(path)
    assert summary["tensors"], "a case without weights would compare nothing"
    if case == "values_in_metadata":  # the values were decoded, not just shapes
        metrics = summary["metrics"]
        assert metrics["column"] == pytest.approx([1 / 7, 5 / 7, 9 / 7]) and metrics["flags"] == [True, False]
        assert metrics["best"]["value"] == 0.8125 and summary["epoch"] == 3
        assert summary["config"]["dtype"] == "torch.float16" and summary["config"]["device"] == "device(type='cpu')"


def test_real_trainer_checkpoint_equals_the_torch_path(tmp_path: Path) -> None:
    summary = _assert_same_as_torch(_trainer_checkpoint(tmp_path))
    assert summary["format"] == "ftui" and summary["architecture"]["name"] == "simple_cnn"
    assert summary["optimizer"]["state_tensors"] > 0
    assert {m["path"]: m["frozen"] for m in summary["modules"] if m["depth"] == 1}["stage1"] is True
    assert summary["other_keys"] == []  # every key the Trainer writes is one the summary knows


def test_tensor_records_know_their_storage(tmp_path: Path) -> None:
    path = tmp_path / "views.pt"
    torch.save(_dtypes_and_views(), path)
    obj = read_torch_zip(path)
    base, transposed, sliced = obj["base"], obj["transposed"], obj["slice"]
    assert base.storage is transposed.storage is sliced.storage  # shared, as torch.load shares it
    assert (transposed.shape, transposed.stride, sliced.offset) == ((8, 6), (1, 8), 8)
    assert sliced.tolist() == torch.arange(48.0).reshape(6, 8)[1:4, ::3].tolist()
    assert obj["bf16"].dtype == "bfloat16" and obj["bf16"].element_size() == 2
    assert obj["scalar"].item() == 3.5 and obj["empty"].numel() == 0


def test_every_bit_pattern_decodes_as_torch_does(tmp_path: Path) -> None:
    """Values shown in a summary are decoded without torch: each dtype's full range matches tolist()."""
    bits8 = torch.arange(256, dtype=torch.uint8)
    tensors = {
        "float8_e4m3fn": bits8.view(torch.float8_e4m3fn), "float8_e5m2": bits8.view(torch.float8_e5m2),
        "bfloat16": torch.arange(-32768, 32768, 7, dtype=torch.int16).view(torch.bfloat16),
        "float16": torch.arange(-32768, 32768, 7, dtype=torch.int16).view(torch.float16),
        "int8": bits8.view(torch.int8), "bool": torch.tensor([True, False, True]),
        "uint32": torch.tensor([0, 2**32 - 1], dtype=torch.uint32), "strided": torch.randn(5, 6).t()[1:, ::2],
    }
    tensors = {name: t.clone() if name != "strided" else t for name, t in tensors.items()}  # one dtype per storage
    path = tmp_path / "bits.pt"
    torch.save(tensors, path)
    records = read_torch_zip(path)
    for name, tensor in tensors.items():
        expected = np.array(tensor.tolist(), dtype=np.float64 if tensor.is_floating_point() else None)
        got = np.array(records[name].tolist(), dtype=expected.dtype)
        np.testing.assert_array_equal(got, expected, err_msg=name)  # NaNs in the same places count as equal


def test_numpy_globals_fall_back_and_are_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "numpy.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "ftui_version": "0.1", "seed_state": np.random.get_state()}, path)
    with pytest.raises(NotUnderstood, match="numpy"):
        read_torch_zip(path)
    with pytest.raises(CheckpointError, match="refused by safe loading") as caught:
        load_checkpoint(path)
    assert "numpy" in str(caught.value) and "--unsafe" in str(caught.value)


def test_code_in_the_pickle_is_never_called(tmp_path: Path) -> None:
    target = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(target),))

    path = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(2), "x": Payload()}, path)
    with pytest.raises(NotUnderstood, match="posix.mkdir|os.mkdir"):
        read_torch_zip(path)
    with pytest.raises(CheckpointError, match="mkdir"):
        load_checkpoint(path)
    assert not target.exists()


def test_build_cannot_rewrite_the_shared_stand_ins(tmp_path: Path) -> None:
    """pickle's BUILD writes into ``__dict__`` unless refused: the dtype stand-ins are process-wide."""
    import zipfile

    from core.inspect import torchzip

    # PROTO 2, GLOBAL torch.float32, {"name": "evil"}, BUILD, STOP
    payload = b"\x80\x02ctorch\nfloat32\n}X\x04\x00\x00\x00nameX\x04\x00\x00\x00evilsb."
    path = tmp_path / "build.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("build/data.pkl", payload)
    with pytest.raises(NotUnderstood, match="BUILD"):
        read_torch_zip(path)
    assert torchzip._GLOBALS["torch.float32"].name == "float32"


@pytest.mark.filterwarnings("ignore:Validating sparse tensor invariants")
def test_what_the_reader_does_not_model_falls_back_to_torch(tmp_path: Path) -> None:
    # Sparse tensors are allowed by weights_only but not modelled: torch.load reads them, as before.
    sparse = tmp_path / "sparse.pt"
    torch.save({"w": torch.eye(3).to_sparse(), "b": torch.zeros(3)}, sparse)
    ckpt = load_checkpoint(sparse)
    assert isinstance(ckpt.weights, DictTensors) and ckpt.container == "torch-zip"
    assert summarize(ckpt)["weights"]["count"] == 2
    # Legacy (pre-1.6) files and a bare tensor keep torch's path and its messages.
    legacy = tmp_path / "legacy.pt"
    torch.save({"w": torch.ones(2)}, legacy, _use_new_zipfile_serialization=False)
    assert load_checkpoint(legacy).container == "torch-legacy"
    bare = tmp_path / "bare.pt"
    torch.save(torch.ones(2), bare)
    with pytest.raises(CheckpointError, match="holds a Tensor"):
        load_checkpoint(bare)


def test_safetensors_header_reading_matches_safe_open(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    tensors = {"z.weight": torch.ones(2, 3), "a.bias": torch.zeros(4, dtype=torch.float16),
               "m.idx": torch.arange(5), "b.bf": torch.ones(1, dtype=torch.bfloat16)}
    save_file(tensors, str(path), metadata={"architecture": "probe", "class_names": '["a", "b"]'})
    ckpt = load_checkpoint(path)
    with safe_open(str(path), framework="pt") as handle:
        assert ckpt.weights.names() == list(handle.keys())
        assert ckpt.metadata == handle.metadata()
    for info in ckpt.weights.infos():
        tensor = tensors[info.name]
        assert (info.shape, info.dtype, info.nbytes) == (tuple(tensor.shape), str(tensor.dtype)[6:], tensor.nbytes)
        assert torch.equal(ckpt.weights.get(info.name), tensor)


_PROBE = textwrap.dedent("""
    import asyncio, contextlib, io, sys
    from tui.cli import main

    def cli(*args):
        sys.argv = ["ftui", "inspect", *args]
        with contextlib.redirect_stdout(io.StringIO()) as out:
            try:
                main()
            except SystemExit as exc:
                assert not exc.code, exc.code
        return out.getvalue()

    async def first_screen(path):
        from tui.inspect_app import InspectApp
        app = InspectApp(path)
        async with app.run_test() as pilot:
            for _ in range(200):
                await pilot.pause(0.05)
                if app.screen.summary is not None:
                    return app.screen.summary["format"]
        raise AssertionError("the inspector never showed its summary")

    pt, st = sys.argv[1], sys.argv[2]
    assert '"format": "ftui"' in cli(pt, "--json") and "ftui" in cli(pt, "--plain")
    assert '"safetensors"' in cli(st, "--json")
    assert asyncio.run(first_screen(pt)) == "ftui"
    sys.argv = ["ftui", "export", pt, "--format", "tflite"]  # a mistyped format: refused before torch loads
    with contextlib.redirect_stderr(io.StringIO()) as err:
        try:
            main()
        except SystemExit as exc:
            assert exc.code == 2, exc.code
    assert "not an export format" in err.getvalue()
    sys.argv = ["ftui", "export", st, "--format", "onnx"]  # weights only: no model to export, said without torch
    with contextlib.redirect_stderr(io.StringIO()) as err:
        try:
            main()
        except SystemExit as exc:
            assert exc.code == 2, exc.code
    assert "exports the model" in err.getvalue()
    print("torch imported:", "torch" in sys.modules, "safetensors.torch imported:", "safetensors.torch" in sys.modules)
""")


def test_inspect_command_and_app_never_import_torch(tmp_path: Path) -> None:
    pt, st = tmp_path / "c.pt", tmp_path / "w.safetensors"
    torch.save(_values_in_metadata(), pt)
    save_file({"w": torch.ones(3)}, str(st), metadata={"format": "pt"})
    env = {**os.environ, "COLUMNS": "100"}
    done = subprocess.run([sys.executable, "-c", _PROBE, str(pt), str(st)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "torch imported: False safetensors.torch imported: False" in done.stdout
