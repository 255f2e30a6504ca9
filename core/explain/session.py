"""An explaining session on one checkpoint: predictions over a split, sample selection, attributions.

The model and data come back through :func:`core.training.rebuild.rebuild`, the one path
``ftui eval`` takes too (with its consent rule for checkpoints that name the user's code), so
whatever that path can rebuild (built-ins, torchvision and timm models, user models) can be explained. What is needed of it: a module whose forward takes the batch's inputs and returns
logits, and datasets whose items are ``(inputs, label)``. Attribution needs the inputs to be one
float tensor per sample: an image ``(C, H, W)`` or a feature vector ``(F,)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from core.data.render import to_rgb_uint8
from core.errors import DataError, ModelError, UserError
from core.explain import methods
from core.explain.layers import LayerInfo, LayerProbe, probe_layers, resolve_layer
from core.explain.result import Explanation, Predictions

SPLITS = ("val", "test")
TARGETS = ("pred", "label")
#: Samples per attribution call (Integrated Gradients runs IG_STEPS forward passes per sample).
CHUNK = {"gradcam": 64, "saliency": 64, "activations": 64, "integrated_gradients": 8}
TOP_CHANNELS = 8


@dataclass
class Selection:
    """Which samples of the split to explain, as a person asks for them."""

    count: int = 16
    mistakes: bool = False
    class_name: str | None = None
    predicted: str | None = None

    def describe(self) -> str:
        """``worst 16 (highest loss)``, ``class circle``, ``true circle, predicted square``…"""
        if self.class_name is not None and self.predicted is not None:
            return f"true {self.class_name}, predicted {self.predicted}"
        if self.predicted is not None:
            return f"predicted {self.predicted}"
        if self.mistakes:
            return f"worst {self.count} by loss" + (f" of class {self.class_name}" if self.class_name else "")
        return f"class {self.class_name}" if self.class_name is not None else "samples per class"


class Explainer:
    """A restored checkpoint, ready to explain samples of ``split``.

    Args:
        rebuilt: What :func:`core.training.rebuild.rebuild` returned for ``checkpoint``.
        checkpoint: The checkpoint's path (for messages and file names).
        split: ``val`` or ``test``.
    """

    def __init__(self, rebuilt: Any, checkpoint: Path | str, split: str = "test") -> None:
        if split not in SPLITS:
            raise UserError(f"--split {split!r}: expected one of {', '.join(SPLITS)}.")
        trainer = rebuilt.trainer
        self.rebuilt = rebuilt
        self.checkpoint = Path(checkpoint)
        self.config = rebuilt.config
        self.code: list[str] = list(getattr(rebuilt, "code", []))
        self.notices: list[str] = list(getattr(rebuilt, "notices", []))
        self.split = split
        self.data = trainer.data
        self.dataset = self.data.val if split == "val" else self.data.test
        if self.dataset is None or len(self.dataset) == 0:
            raise DataError(
                f"{self.checkpoint}: the data of this checkpoint has no {split} split. Fix: use --split val, or "
                "give the config a test split (data.test_fraction, or data.shapes.test_size for shapes)."
            )
        self.device = trainer.device
        self.model = trainer.model
        self.model.eval()
        for module in self.model.modules():
            # in-place activations would overwrite the layer outputs that Captum keeps for Grad-CAM
            if getattr(module, "inplace", False) is True:
                module.inplace = False
        self.class_names = list(trainer.class_names)
        self.normalization = self.data.normalization
        self.input_kind = _input_kind(self.dataset[0][0], self.checkpoint)
        names = self.data.info.get("features") if self.input_kind == "features" else None
        self.feature_names: list[str] | None = list(names) if names else None
        self._predictions: Predictions | None = None
        self._probe: LayerProbe | None = None

    @classmethod
    def open(cls, checkpoint: Path | str, *, config: Path | str | None = None, split: str = "test",
             overrides: Sequence[str] = (), trust_code: bool = False, command: str | None = None,
             announce: Callable[[list[str]], None] | None = None) -> "Explainer":
        """Rebuild ``checkpoint`` (model and data) and open a session on ``split``.

        A checkpoint that names the user's code is rebuilt only with ``trust_code`` or a ``config``
        (``CodeNotTrusted``, exit 2, suggests ``command --trust-code``); ``announce`` gets the code
        names before they are imported.
        """
        from core.training.rebuild import rebuild

        if split not in SPLITS:
            raise UserError(f"--split {split!r}: expected one of {', '.join(SPLITS)}.")
        rebuilt = rebuild(checkpoint, config=config, overrides=list(overrides), trust_code=trust_code,
                          command=command or f"ftui explain {checkpoint}", announce=announce)
        try:
            return cls(rebuilt, checkpoint, split)
        except BaseException:
            rebuilt.trainer.cleanup()
            raise

    def close(self) -> None:
        """End the worker processes of the rebuilt trainer's loaders (the session stays usable)."""
        self.rebuilt.trainer.cleanup()

    # ---- the model's view of the split --------------------------------------------------------

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of a batch (the protocol every ftui model follows)."""
        return self.model(x)

    def predictions(self) -> Predictions:
        """Probabilities, predictions and losses of every sample of the split (computed once)."""
        if self._predictions is None:
            from core.data import build_loader

            loader = build_loader(self.dataset, self.config.data, split=self.split, seed=self.config.run.seed,
                                  device_type=self.device.type)
            probs, losses, labels = [], [], []
            try:
                with torch.inference_mode():
                    for batch in loader:
                        x, y = batch[0].to(self.device), batch[1].to(self.device)
                        logits = self.forward(x).float()
                        probs.append(logits.softmax(1).cpu())
                        losses.append(F.cross_entropy(logits, y, reduction="none").cpu())
                        labels.append(y.cpu())
            finally:
                loader.close()  # its worker processes end now, not whenever the collector finds them
            p = torch.cat(probs).numpy().astype(np.float32)
            self._predictions = Predictions(labels=torch.cat(labels).numpy().astype(np.int64),
                                            preds=p.argmax(1).astype(np.int64), probs=p,
                                            losses=torch.cat(losses).numpy().astype(np.float32))
        return self._predictions

    def class_index(self, name: str, *, option: str = "--class") -> int:
        """The index of a class given by name (or number); a UserError lists the classes otherwise."""
        if name in self.class_names:
            return self.class_names.index(name)
        if name.isdigit() and int(name) < len(self.class_names):
            return int(name)
        folded = [c for c in self.class_names if c.lower() == name.lower()]
        if folded:
            return self.class_names.index(folded[0])
        shown = ", ".join(self.class_names[:30]) + (" …" if len(self.class_names) > 30 else "")
        raise UserError(f"{option} {name!r}: not a class of this checkpoint's data. Fix: use one of: {shown}.")

    def select(self, selection: Selection) -> list[int]:
        """Indices into the split, in the order they are shown."""
        count = max(1, int(selection.count))
        true = None if selection.class_name is None else self.class_index(selection.class_name)
        pred = None if selection.predicted is None else self.class_index(selection.predicted, option="--predicted")
        if selection.mistakes or pred is not None:
            p = self.predictions()
            keep = np.ones(len(p.labels), dtype=bool)
            if true is not None:
                keep &= p.labels == true
            if pred is not None:
                keep &= p.preds == pred
            candidates = np.flatnonzero(keep)
            order = np.argsort(-p.losses[candidates], kind="stable")
            return [int(i) for i in candidates[order][:count]]
        targets = np.asarray(getattr(self.dataset, "targets", None) or self._labels_by_reading(), dtype=np.int64)
        if true is not None:
            return [int(i) for i in np.flatnonzero(targets == true)[:count]]
        return _round_robin(targets, len(self.class_names), count)

    def _labels_by_reading(self) -> list[int]:
        return [int(self.dataset[i][1]) for i in range(len(self.dataset))]

    # ---- layers -------------------------------------------------------------------------------

    def probe(self) -> LayerProbe:
        """The layers Grad-CAM and activations can use (one forward pass, computed once)."""
        if self._probe is None:
            x = self._batch([0])[0]
            self._probe = probe_layers(self.model, self.forward, x)
        return self._probe

    def default_method(self) -> str:
        """Grad-CAM where the model has a spatial layer, saliency for other images, IG for features."""
        if self.input_kind == "features":
            return "integrated_gradients"
        return "gradcam" if self.probe().layers else "saliency"

    def layer(self, name: str | None, method: str) -> LayerInfo:
        """The layer ``name`` (or the default) for ``method``, checked."""
        self._check_method(method)
        return resolve_layer(self.probe(), name, purpose=method)

    def _check_method(self, method: str) -> None:
        if method in ("gradcam", "activations") and self.input_kind == "features":
            raise ModelError(
                f"--method {method}: this model's inputs are feature vectors (tabular data), which have no spatial "
                "layout for a map. Fix: use --method integrated_gradients (per-feature attributions) or saliency."
            )

    # ---- explaining ---------------------------------------------------------------------------

    def explain(self, indices: Sequence[int], *, method: str | None = None, layer: str | None = None,
                target: str = "pred", selection: str = "", top_channels: int = TOP_CHANNELS) -> Explanation:
        """Attribution maps (or activations) for ``indices`` of the split."""
        method = methods.canonical_method(method) if method else self.default_method()
        self._check_method(method)
        if target not in TARGETS:
            raise UserError(f"--target {target!r}: expected one of {', '.join(TARGETS)}.")
        if not indices:
            raise UserError(f"{self.checkpoint}: no samples match ({selection or 'the selection'}) in the "
                            f"{self.split} split. Fix: choose another --class, or leave the filter out.")
        info = self.layer(layer, method) if method in ("gradcam", "activations") else None
        indices = [int(i) for i in indices]
        x, y = self._batch(indices)
        with torch.inference_mode():
            logits = torch.cat([self.forward(x[k:k + 256]).float() for k in range(0, len(x), 256)])
        probs = logits.softmax(1)
        losses = F.cross_entropy(logits, y, reduction="none")
        preds = probs.argmax(1)
        targets = preds if target == "pred" else y
        maps, acts, channels = [], None, None
        chunk = CHUNK[method]
        if method == "activations":
            assert info is not None
            acts_list, chans = [], []
            for k in range(0, len(x), chunk):
                a = methods.activations(self.model, self.forward, x[k:k + chunk], info)
                top = a.mean(dim=(2, 3)).topk(min(top_channels, a.shape[1]), dim=1).indices
                acts_list.append(torch.stack([a[i, top[i]] for i in range(len(a))]).cpu())
                chans.append(top.cpu())
            acts = torch.cat(acts_list).numpy().astype(np.float32)
            channels = torch.cat(chans).numpy().astype(np.int64)
        else:
            for k in range(0, len(x), chunk):
                xs, ts = x[k:k + chunk], targets[k:k + chunk]
                if method == "gradcam":
                    assert info is not None
                    maps.append(methods.gradcam(self.model, self.forward, xs, ts, info).cpu())
                elif method == "saliency":
                    maps.append(methods.saliency(self.forward, xs, ts).cpu())
                else:
                    maps.append(methods.integrated_gradients(self.forward, xs, ts).cpu())
        images = None
        if self.input_kind == "image":
            images = np.stack([to_rgb_uint8(s, self.normalization) for s in x.cpu().numpy()])
        return Explanation(
            checkpoint=str(self.checkpoint), split=self.split, method=method,
            layer=info.path if info else None, target=target, selection=selection,
            class_names=self.class_names, input_kind=self.input_kind,
            indices=np.asarray(indices, dtype=np.int64), labels=y.cpu().numpy().astype(np.int64),
            preds=preds.cpu().numpy().astype(np.int64), probs=probs.cpu().numpy().astype(np.float32),
            losses=losses.cpu().numpy().astype(np.float32), targets=targets.cpu().numpy().astype(np.int64),
            maps=torch.cat(maps).numpy().astype(np.float32) if maps else None,
            images=images, features=x.cpu().numpy().astype(np.float32) if self.input_kind == "features" else None,
            feature_names=self.feature_names, activations=acts, channels=channels,
        )

    def _batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        items = [self.dataset[int(i)] for i in indices]
        x = torch.stack([item[0] for item in items]).to(self.device).float()
        y = torch.as_tensor([int(item[1]) for item in items], device=self.device)
        return x, y


def _input_kind(sample: Any, checkpoint: Path) -> str:
    """``image`` for ``(C, H, W)`` float tensors, ``features`` for ``(F,)``; a UserError otherwise."""
    if isinstance(sample, torch.Tensor) and sample.is_floating_point():
        if sample.dim() == 3:
            return "image"
        if sample.dim() == 1:
            return "features"
    if isinstance(sample, dict):
        what = f"a dict of {', '.join(sorted(map(str, sample)))}"
    elif isinstance(sample, torch.Tensor):
        what = f"a {str(sample.dtype).replace('torch.', '')} tensor of shape {tuple(sample.shape)}"
    else:
        what = f"a {type(sample).__name__}"
    raise UserError(
        f"{checkpoint}: the samples' inputs are {what}; ftui explain attributes predictions to images "
        "(float tensors of shape (C, H, W)) and feature vectors (shape (F,)) only. Fix: `ftui eval` still "
        "reports this model's metrics and confusion matrix; explain an image or tabular model instead."
    )


def _round_robin(targets: np.ndarray, classes: int, count: int) -> list[int]:
    """Up to ``count`` indices taking each class in turn (first samples of each class first)."""
    per_class = [list(np.flatnonzero(targets == c)) for c in range(classes)]
    out: list[int] = []
    depth = 0
    while len(out) < count and any(depth < len(p) for p in per_class):
        for p in per_class:
            if depth < len(p) and len(out) < count:
                out.append(int(p[depth]))
        depth += 1
    return out
