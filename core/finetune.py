"""Fine-tuning surgery: freezing by pattern, the BatchNorm policy, per-layer learning rates, the
gradual-unfreezing schedule, and the optimizer's parameter groups that stay consistent through all
of it.

Every parameter of the model is in exactly one optimizer group from the start, frozen or not: a
frozen parameter has ``requires_grad=False`` and no ``.grad``, and torch's SGD/Adam/AdamW skip
parameters without a gradient, so it is neither moved nor decayed. Freezing and unfreezing therefore
never change the group layout; only unfreezing (or ``set_lr`` on a pattern) with a new learning rate
moves parameters into a new group, appended at the end. Optimizer state is keyed by parameter, so a
parameter keeps its momentum/Adam moments across freeze, unfreeze and moves.

The layout (group names, base lrs, weight decays and parameter names in order) is part of
:meth:`FineTuner.state_dict`, so after :meth:`FineTuner.load_state_dict` a fresh
:meth:`FineTuner.build_optimizer` has exactly the groups of the saved optimizer and the trainer can
load the saved optimizer state into it.

Group names: ``default``, ``head``, ``lora`` (the LoRA adapters), an explicit group's ``match``, a
block path under ``layer_decay`` (``other`` for parameters outside every block), ``unfrozen:<pattern>``
and ``lr:<pattern>`` for moved parameters; parameters exempt from weight decay go to
``<name>/no_decay``.

With LoRA (``core.lora``), PEFT has frozen the base layers before the fine-tuner sees the model; the
frozen originals PEFT keeps beside each ``modules_to_save`` copy are never made trainable (they are not
in the forward pass). :attr:`FineTuner.touched` — every parameter that was trainable at any time —
tells checkpoints which parameters may differ from the base weights file.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from core.config import FinetuneConfig, OptimConfig
from core.errors import CheckpointError, ConfigError, ModelError
from core.lora.names import LORA, inert_params, is_adapter
from core.models.patterns import blocks, pattern_label, select

STATE_VERSION = 1
NO_DECAY = "/no_decay"
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm, nn.GroupNorm, nn.LayerNorm)


class FineTuner:
    """Freezes, unfreezes and assigns learning rates to parts of a model, and builds its optimizer.

    Args:
        model: the (unwrapped) model.
        cfg: the ``finetune`` config section.
        optim_cfg: the ``optim`` config section.
        head_path: module path of the classifier head (``BuiltModel.head_path``).
    """

    def __init__(self, model: nn.Module, cfg: FinetuneConfig, optim_cfg: OptimConfig, head_path: str) -> None:
        self.model = model
        self.cfg = cfg
        self.optim_cfg = optim_cfg
        self.head_path = head_path
        self.optimizer: torch.optim.Optimizer | None = None
        self._params: dict[str, nn.Parameter] = dict(model.named_parameters())
        self._no_decay = self._no_decay_params() if cfg.no_decay_bias_norm else set()
        self._inert = inert_params(self._params)
        self._groups: list[dict[str, Any]] = self._initial_groups()
        self._applied: set[int] = set()
        self.touched: set[str] = {n for n, p in self._params.items() if p.requires_grad}
        """Every parameter that was trainable at some time (so may differ from the weights it started from)."""

    # ------------------------------------------------------------------ layout

    def _no_decay_params(self) -> set[str]:
        """Biases, norm-layer parameters and other 1-d parameters: weight decay would only hurt them."""
        out = set()
        for mod_name, module in self.model.named_modules():
            for name, param in module.named_parameters(recurse=False):
                full = f"{mod_name}.{name}" if mod_name else name
                if isinstance(module, _NORMS) or name.endswith("bias") or param.ndim <= 1:
                    out.add(full)
        return out

    def _initial_groups(self) -> list[dict[str, Any]]:
        cfg, lr, wd = self.cfg, self.optim_cfg.lr, self.optim_cfg.weight_decay
        assigned: dict[str, tuple[str, float, float]] = {}
        for i, group in enumerate(cfg.lr_groups):
            sel = select(self.model, group.match, self.head_path, where=f"finetune.lr_groups[{i}].match")
            g_wd = wd if group.weight_decay is None else group.weight_decay
            for name in sel.params:
                assigned.setdefault(name, (group.match, group.lr, g_wd))
        if cfg.lora is not None:
            for name in self._params:
                if is_adapter(name):
                    assigned.setdefault(name, (LORA, cfg.lora.lr or lr, wd))
        for name in select(self.model, "head", self.head_path).params:
            assigned.setdefault(name, ("head", cfg.head_lr or lr, wd))
        if cfg.layer_decay is not None:
            units = blocks(self.model, self.head_path)[:-1]
            for k, unit in enumerate(reversed(units), start=1):
                for name in self._params:
                    if name == unit or name.startswith(unit + "."):
                        assigned.setdefault(name, (unit, lr * cfg.layer_decay**k, wd))
            # Parameters outside every block (ViT's class token, position embedding) sit at the input.
            deepest = lr * cfg.layer_decay ** (len(units) + 1)
            for name in self._params:
                assigned.setdefault(name, ("other", deepest, wd))
        groups: dict[str, dict[str, Any]] = {}
        for name in self._params:
            g_name, g_lr, g_wd = assigned.get(name, ("default", lr, wd))
            if g_wd > 0 and name in self._no_decay:
                g_name, g_wd = g_name + NO_DECAY, 0.0
            group = groups.setdefault(g_name, {"name": g_name, "base_lr": g_lr, "weight_decay": g_wd, "params": []})
            group["params"].append(name)
        return list(groups.values())

    def _group_index(self, param: str) -> int:
        for i, group in enumerate(self._groups):
            if param in group["params"]:
                return i
        raise KeyError(param)

    def _index(self, group: dict[str, Any]) -> int:
        return next(i for i, g in enumerate(self._groups) if g is group)

    def _factor(self) -> float:
        """The schedule's current factor (lr / base_lr), so a new or changed group joins in step."""
        if self.optimizer is None:
            return 1.0
        for group in self.optimizer.param_groups:
            if group.get("base_lr"):
                return float(group["lr"]) / float(group["base_lr"])
        return 1.0

    def _move(self, names: list[str], target: str, lr: float) -> None:
        """Move parameters into group ``target`` (split by weight decay) with base lr ``lr``."""
        factor = self._factor()
        for name in names:
            src = self._group_index(name)
            source = self._groups[src]
            dest_name = target + (NO_DECAY if source["name"].endswith(NO_DECAY) else "")
            if source["name"] == dest_name:
                continue
            source["params"].remove(name)
            if self.optimizer is not None:
                live = self.optimizer.param_groups[src]["params"]
                live.pop(next(i for i, p in enumerate(live) if p is self._params[name]))
            dest = next((g for g in self._groups if g["name"] == dest_name), None)
            if dest is None:
                dest = {"name": dest_name, "base_lr": lr, "weight_decay": source["weight_decay"], "params": []}
                self._groups.append(dest)
                if self.optimizer is not None:
                    self.optimizer.add_param_group(self._optim_group(dest, [], factor))
            dest["params"].append(name)
            if self.optimizer is not None:
                self.optimizer.param_groups[self._index(dest)]["params"].append(self._params[name])
            if not source["params"]:
                index = self._index(source)
                del self._groups[index]
                if self.optimizer is not None:
                    del self.optimizer.param_groups[index]
        for group in self._groups:
            if group["name"] in (target, target + NO_DECAY):
                self._set_group_lr(group, lr, factor)

    def _set_group_lr(self, group: dict[str, Any], lr: float, factor: float | None = None) -> None:
        # the factor first: read after the change, it would come out of this very group's new base lr
        factor = self._factor() if factor is None else factor
        group["base_lr"] = lr
        if self.optimizer is not None:
            live = self.optimizer.param_groups[self._index(group)]
            live["base_lr"] = lr
            live["lr"] = lr * factor

    def _optim_group(self, group: dict[str, Any], params: list[nn.Parameter], factor: float) -> dict[str, Any]:
        return {
            "params": params,
            "name": group["name"],
            "base_lr": group["base_lr"],
            "lr": group["base_lr"] * factor,
            "weight_decay": group["weight_decay"],
        }

    # ------------------------------------------------------------------ public API

    def setup(self) -> None:
        """Apply ``finetune.freeze`` then ``finetune.unfreeze``, and check the schedule's patterns now
        (so a typo fails at start, not at epoch 4)."""
        for i, pattern in enumerate(self.cfg.freeze):
            self.freeze(pattern, where=f"finetune.freeze[{i}]")  # checked below: finetune.unfreeze may follow
        for i, pattern in enumerate(self.cfg.unfreeze):
            self.unfreeze(pattern, where=f"finetune.unfreeze[{i}]")
        for i, step in enumerate(self.cfg.schedule):
            select(self.model, step.unfreeze, self.head_path, where=f"finetune.schedule[{i}].unfreeze")
        if not self._trainable() and not any(step.epoch == 0 for step in self.cfg.schedule):
            frozen = [pattern_label(p) for p in self.cfg.freeze]
            raise ModelError(
                f"finetune.freeze: {frozen} leaves no parameter to train, so the first step would fail. Fix: freeze "
                "'backbone' instead of 'all' to train the head, or give some back with finetune.unfreeze (e.g. "
                "[head]) or an unfreeze schedule step at epoch 0."
            )

    def build_optimizer(self) -> torch.optim.Optimizer:
        """The optimizer of ``optim`` over every parameter, one group per layout group.

        Raises:
            ConfigError: Nesterov momentum without momentum.
        """
        opt = self.optim_cfg
        groups = [self._optim_group(g, [self._params[n] for n in g["params"]], 1.0) for g in self._groups]
        # on CUDA one fused kernel updates every parameter, and under GradScaler it reads the inf check on
        # the device (no host sync per step); elsewhere torch's default implementation
        fused = {"fused": True} if self._on_cuda() else {}
        if opt.name == "sgd":
            if opt.nesterov and opt.momentum <= 0:
                raise ConfigError("optim.nesterov: Nesterov momentum needs optim.momentum > 0; set momentum: 0.9.")
            optimizer: torch.optim.Optimizer = torch.optim.SGD(
                groups, lr=opt.lr, momentum=opt.momentum, nesterov=opt.nesterov, weight_decay=opt.weight_decay,
                **fused,
            )
        elif opt.name == "adam":
            optimizer = torch.optim.Adam(groups, lr=opt.lr, betas=opt.betas, eps=opt.eps, weight_decay=opt.weight_decay,
                                         **fused)
        else:
            optimizer = torch.optim.AdamW(
                groups, lr=opt.lr, betas=opt.betas, eps=opt.eps, weight_decay=opt.weight_decay, **fused
            )
        self.optimizer = optimizer
        return optimizer

    def _on_cuda(self) -> bool:
        """Every parameter is a dense floating-point tensor on a CUDA device (what fused optimizers take)."""
        params = list(self._params.values())
        return bool(params) and all(p.is_cuda and p.is_floating_point() and not p.is_sparse for p in params)

    def freeze(self, pattern: Any, *, where: str = "freeze", keep_trainable: bool = False) -> list[str]:
        """Freeze what ``pattern`` selects: no gradient, no update, no decay; return the modules.

        Raises:
            ModelError: the pattern matches nothing (the message lists module names), or, with
                ``keep_trainable`` (a live run's command), it would leave no parameter to train:
                nothing is changed then, since the next backward pass would fail and end the run.
        """
        sel = select(self.model, pattern, self.head_path, where=where)
        if keep_trainable and not self._trainable(excluding=set(sel.params)):
            raise ModelError(
                f"{where}: this would freeze every trainable parameter, and a run with nothing to train fails at its "
                "next step. Nothing was frozen. Fix: freeze a part (e.g. backbone), or stop the run."
            )
        for name in sel.params:
            param = self._params[name]
            param.requires_grad_(False)
            param.grad = None  # the optimizer skips parameters without a gradient
        if self.model.training:
            self.apply_bn_policy()
        return sel.modules

    def _trainable(self, excluding: frozenset[str] | set[str] = frozenset()) -> list[str]:
        """Names of the parameters that train (``requires_grad``), leaving out ``excluding``."""
        return [n for n, p in self._params.items() if p.requires_grad and n not in excluding]

    def unfreeze(self, pattern: Any, lr: float | None = None, *, where: str = "unfreeze") -> list[str]:
        """Make what ``pattern`` selects trainable; return the modules.

        With ``lr``, the parameters that were frozen until now move to group ``unfrozen:<pattern>``
        with that base lr; parameters that were already trainable keep their group.

        Raises:
            ModelError: the pattern matches nothing, or ``lr`` is not positive.
        """
        if lr is not None and not lr > 0:
            raise ModelError(f"{where}: the learning rate must be > 0, got {lr}.")
        sel = select(self.model, pattern, self.head_path, where=where)
        newly = [n for n in sel.params if not self._params[n].requires_grad and n not in self._inert]
        for name in newly:
            self._params[name].requires_grad_(True)
        self.touched.update(newly)
        if lr is not None and newly:
            # Only newly trainable parameters take the new lr: a head that was training keeps its own.
            self._move(newly, f"unfrozen:{sel.label}", lr)
        if self.model.training:
            self.apply_bn_policy()
        return sel.modules

    def set_lr(self, group: str, lr: float) -> None:
        """Set the base lr of a group (``head`` also sets ``head/no_decay``), of ``all`` groups, or of
        the parameters a module pattern selects (moved to group ``lr:<pattern>``).

        Raises:
            ModelError: ``lr`` not positive, or neither a group nor a pattern that matches.
        """
        if not lr > 0:
            raise ModelError(f"set_lr: the learning rate must be > 0, got {lr}.")
        hits = [g for g in self._groups if group == "all" or g["name"] in (group, group + NO_DECAY)]
        if hits:
            for g in hits:
                self._set_group_lr(g, lr)
            return
        try:
            sel = select(self.model, group, self.head_path, where="set_lr")
        except ModelError as exc:
            names = ", ".join(g["name"] for g in self._groups)
            raise ModelError(f"set_lr: '{group}' is no parameter group ({names}, all) and {exc}") from None
        self._move(sel.params, f"lr:{sel.label}", lr)

    def on_epoch_start(self, epoch: int) -> list[dict[str, Any]]:
        """Apply every schedule step due at ``epoch`` (or earlier and not applied yet); return events
        ``{"kind": "unfreeze", "modules", "lr", "epoch", "pattern", "groups"}``."""
        events = []
        for i, step in enumerate(self.cfg.schedule):
            if i in self._applied or step.epoch > epoch:
                continue
            modules = self.unfreeze(step.unfreeze, step.lr, where=f"finetune.schedule[{i}].unfreeze")
            self._applied.add(i)
            sel = select(self.model, step.unfreeze, self.head_path)
            groups = sorted({self._groups[self._group_index(n)]["name"] for n in sel.params})
            events.append(
                {
                    "kind": "unfreeze",
                    "modules": modules,
                    "lr": step.lr,
                    "epoch": epoch,
                    "pattern": pattern_label(step.unfreeze),
                    "groups": groups,
                }
            )
        return events

    def apply_bn_policy(self) -> None:
        """With ``bn: freeze``, put BatchNorm layers of frozen parts in eval mode (call after
        ``model.train()``) so their running statistics stay as loaded; in a training model, BatchNorm
        layers of trainable parts go (back) to train mode. Freeze and unfreeze call it themselves
        while the model is training, so a change between steps takes effect at the next step."""
        if self.cfg.bn != "freeze":
            return
        training = self.model.training
        frozen_owner: dict[str, bool] = {}
        for path, module in self.model.named_modules():
            params = list(module.parameters())
            if params:
                frozen_owner[path] = not any(p.requires_grad for p in params)
            if not isinstance(module, nn.modules.batchnorm._BatchNorm):
                continue
            if params:
                frozen = frozen_owner[path]
            else:  # affine=False: frozen when the nearest ancestor with parameters is
                parents = [p for p in frozen_owner if p == "" or path.startswith(p + ".")]
                frozen = frozen_owner[max(parents, key=len)] if parents else False
            if frozen:
                module.eval()
            elif training:
                module.train()

    def frozen_modules(self) -> list[str]:
        """The outermost modules whose parameters are all frozen, and frozen loose parameters."""
        out: list[str] = []

        def walk(module: nn.Module, prefix: str) -> None:
            for name, child in module.named_children():
                params = list(child.parameters())
                if not params:
                    continue
                if not any(p.requires_grad for p in params):
                    out.append(prefix + name)
                else:
                    walk(child, prefix + name + ".")
            for name, param in module.named_parameters(recurse=False):
                if not param.requires_grad:
                    out.append(prefix + name)

        walk(self.model, "")
        return out

    def groups_summary(self) -> list[dict[str, Any]]:
        """Per group: name, lr (current), base_lr, weight_decay, params, tensors, trainable."""
        out = []
        for i, group in enumerate(self._groups):
            params = [self._params[n] for n in group["params"]]
            live = self.optimizer.param_groups[i] if self.optimizer is not None else None
            out.append(
                {
                    "name": group["name"],
                    "lr": float(live["lr"]) if live else group["base_lr"],
                    "base_lr": group["base_lr"],
                    "weight_decay": group["weight_decay"],
                    "params": sum(p.numel() for p in params),
                    "tensors": len(params),
                    "trainable": sum(p.numel() for p in params if p.requires_grad),
                }
            )
        return out

    def param_lrs(self) -> dict[str, float]:
        """Base lr of every parameter, by name (for ``model_tree(lrs=...)``)."""
        return {name: g["base_lr"] for g in self._groups for name in g["params"]}

    def config_base_lrs(self) -> dict[str, float]:
        """The base lr of each group as this tuner's config lays them out at the start."""
        return {g["name"]: g["base_lr"] for g in self._initial_groups()}

    def follow_config_lrs(self, before: dict[str, float], after: dict[str, float]) -> list[str]:
        """Give the groups still at their config's base lr (``before``) the new config's (``after``); a
        group whose rate was changed since (``set-lr``, an unfreeze with an lr) keeps it. Returns the
        groups that moved."""
        moved = []
        for group in self._groups:
            old, new = before.get(group["name"]), after.get(group["name"])
            if old is None or new is None or old == new or not math.isclose(group["base_lr"], old, rel_tol=1e-9):
                continue
            self._set_group_lr(group, new)
            moved.append(group["name"])
        return moved

    def param_groups(self) -> dict[str, str]:
        """The group of every parameter, by name (for ``model_tree(groups=...)``)."""
        return {name: g["name"] for g in self._groups for name in g["params"]}

    def state_dict(self) -> dict[str, Any]:
        """JSON-like state for ``checkpoint["finetune"]``: frozen set, group layout and lrs, schedule."""
        return {
            "version": STATE_VERSION,
            "frozen": self.frozen_modules(),
            "frozen_params": [n for n, p in self._params.items() if not p.requires_grad],
            "groups": [
                {
                    "name": g["name"],
                    "base_lr": float(g["base_lr"]),
                    "weight_decay": float(g["weight_decay"]),
                    "params": list(g["params"]),
                }
                for g in self._groups
            ],
            "schedule_applied": sorted(self._applied),
            "touched": sorted(self.touched),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the frozen set, the group layout and lrs, and the applied schedule steps.

        Call :meth:`build_optimizer` afterwards: its groups then match the saved optimizer's.

        Raises:
            CheckpointError: the state does not describe this model's parameters.
        """
        try:
            groups = [
                {
                    "name": str(g["name"]),
                    "base_lr": float(g["base_lr"]),
                    "weight_decay": float(g["weight_decay"]),
                    "params": [str(n) for n in g["params"]],
                }
                for g in state["groups"]
            ]
            frozen = {str(n) for n in state["frozen_params"]}
            applied = {int(i) for i in state.get("schedule_applied", [])}
            touched = {str(n) for n in state["touched"]} if "touched" in state else None
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint 'finetune' state is malformed ({exc!r}); resume without it.") from None
        listed = [n for g in groups for n in g["params"]]
        if sorted(listed) != sorted(self._params) or not frozen <= set(self._params):
            unknown = sorted((set(listed) | frozen) - set(self._params))[:5]
            absent = sorted(set(self._params) - set(listed))[:5]
            raise CheckpointError(
                f"checkpoint 'finetune' state does not fit this model (unknown parameters: {unknown or 'none'}; "
                f"not in any group: {absent or 'none'}); resume with the model config the run was started with."
            )
        for name, param in self._params.items():
            param.requires_grad_(name not in frozen)
            if name in frozen:
                param.grad = None
        self._groups = groups
        self._applied = applied
        # a checkpoint from before this record: what trains now is what may have trained
        self.touched = (touched if touched is not None else set()) | {n for n in self._params if n not in frozen}
        if self.model.training:
            self.apply_bn_policy()
        self.optimizer = None  # the old optimizer's groups no longer match; build a new one
