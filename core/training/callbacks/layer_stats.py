"""Per-layer statistics: gradient norm, weight norm and update-to-weight ratio into ``layers.jsonl``.

Every ``logging.every_n_steps`` optimizer steps, for each module at ``logging.layer_stats_depth`` of
the module tree (a shallower module that has no children counts as its own unit, e.g. a ``head``
Linear at depth 1), the callback records:

- ``grad_norm``: L2 norm of the unit's gradients just before the optimizer step (after unscaling
  under mixed precision, after clipping when the trainer clips);
- ``weight_norm``: L2 norm of the unit's weights after the step;
- ``update_ratio``: ``||w_after - w_before|| / ||w_before||`` — the step's relative size, which sits
  around 1e-3 for healthy training and tells a learning rate too small or too large per layer;
- ``frozen``: every parameter of the unit is frozen.

A LoRA adapter is a unit of its own at any depth: the adapter of layer ``X`` is ``X.lora`` (the name
the layer tree gives it), so its gradients and updates are not averaged into the frozen base's.

Only on logging steps are the trainable weights copied (to measure the update); every norm is
computed on the device and read back with one host sync per interval.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from core.lora.names import adapter_layer, node_path
from core.runs import LAYERS
from core.training.callback import Callback

if TYPE_CHECKING:  # pragma: no cover
    from core.training.trainer import Trainer

#: Significant digits kept in the JSON (the viewer draws sparklines and colours, not proofs).
DIGITS = 4


def unit_of(param_name: str, depth: int) -> str:
    """The module path a parameter is counted under at ``depth`` (its owning module, cut at ``depth``;
    a parameter held directly by the root keeps its own name; a LoRA adapter's: ``X.lora``)."""
    layer = adapter_layer(param_name)
    if layer is not None:
        return node_path(layer)
    parts = param_name.split(".")
    owner = parts[:-1][:depth]
    return ".".join(owner) if owner else param_name


def _round(value: float) -> float:
    return float(f"{value:.{DIGITS}g}")


class LayerStatsCallback(Callback):
    """Writes one ``layers.jsonl`` record per logging interval (needs ``trainer.run``).

    Args:
        depth: module tree depth of the units.
        every_n_steps: record on optimizer steps that are multiples of this.
    """

    def __init__(self, depth: int = 2, every_n_steps: int = 20) -> None:
        self.depth = depth
        self.every_n_steps = every_n_steps
        self.units: list[str] = []
        self._params: list[torch.nn.Parameter] = []
        self._unit_index: torch.Tensor | None = None
        self._host_index: list[int] = []  # the same on the host, so frozen flags cost no device sync
        self._grad_norms: torch.Tensor | None = None
        self._before: list[torch.Tensor | None] | None = None

    def on_fit_start(self, trainer: Trainer) -> None:
        assert trainer.model is not None
        names: list[str] = []
        self._params = []
        for name, param in trainer.model.named_parameters():
            names.append(unit_of(name, self.depth))
            self._params.append(param)
        self.units = list(dict.fromkeys(names))  # model order, each unit once
        position = {unit: i for i, unit in enumerate(self.units)}
        self._host_index = [position[n] for n in names]
        self._unit_index = torch.tensor(self._host_index, dtype=torch.long, device=trainer.device)

    def _due(self, trainer: Trainer) -> bool:
        return bool(self._params) and trainer.run is not None and (trainer.global_step + 1) % self.every_n_steps == 0

    def on_before_optimizer_step(self, trainer: Trainer, optimizer: Any) -> None:
        if not self._due(trainer):
            return
        scaler = trainer.scaler
        if scaler is not None and scaler.is_enabled() and trainer.cfg.trainer.gradient_clip_val is None:
            # true gradients, not loss-scaled ones; step() then skips its own unscale (the AMP recipe
            # for inspecting gradients). With clipping, the trainer has unscaled already.
            scaler.unscale_(optimizer)
        self._grad_norms = self._per_param_norms([p.grad for p in self._params])
        # copies of what the step can move: frozen parameters do not change
        self._before = [p.detach().clone() if p.requires_grad else None for p in self._params]

    def on_train_batch_end(self, trainer: Trainer, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._before is None or self._grad_norms is None or trainer.run is None:
            return
        before, self._before = self._before, None
        weights = self._per_param_norms(list(self._params))
        weights_before = self._per_param_norms([b if b is not None else p for b, p in zip(before, self._params)])
        updates = self._per_param_norms(
            [p.detach() - b if b is not None else None for b, p in zip(before, self._params)]
        )
        per_unit = torch.stack([self._per_unit(t) for t in (self._grad_norms, weights, updates, weights_before)])
        grad, weight, update, weight0 = per_unit.tolist()  # the one host sync of the interval
        self._grad_norms = None
        frozen = self._frozen_units()
        layers = {}
        for i, unit in enumerate(self.units):
            ratio = update[i] / weight0[i] if weight0[i] > 0 else 0.0
            layers[unit] = {
                "grad_norm": _round(grad[i]),
                "weight_norm": _round(weight[i]),
                "update_ratio": _round(ratio),
                "frozen": frozen[i],
            }
        trainer.run.append(LAYERS, {"step": trainer.global_step, "epoch": trainer.epoch, "depth": self.depth,
                                    "layers": layers})

    # -- helpers --------------------------------------------------------------------------------

    def _per_param_norms(self, tensors: list[torch.Tensor | None]) -> torch.Tensor:
        """L2 norm of each tensor in float32 on the device (0 for None)."""
        device = self._unit_index.device if self._unit_index is not None else None
        zero = torch.zeros((), dtype=torch.float32, device=device)
        return torch.stack(
            [torch.linalg.vector_norm(t.detach(), dtype=torch.float32) if t is not None else zero for t in tensors]
        )

    def _per_unit(self, norms: torch.Tensor) -> torch.Tensor:
        """Combine per-parameter norms into per-unit norms: sqrt of the sum of squares."""
        assert self._unit_index is not None
        sums = torch.zeros(len(self.units), dtype=torch.float32, device=norms.device)
        return sums.index_add_(0, self._unit_index, norms.square()).sqrt()

    def _frozen_units(self) -> list[bool]:
        trainable = [False] * len(self.units)
        for index, param in zip(self._host_index, self._params):
            if param.requires_grad:
                trainable[index] = True
        return [not t for t in trainable]
