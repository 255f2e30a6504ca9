"""TensorBoard event files under the run's ``tb/``: scalars, the model graph and hyper-parameters."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from core.runs import TB_DIR
from core.training.callback import Callback
from core.training.checkpoint import unwrap_model

if TYPE_CHECKING:  # pragma: no cover
    from core.training.trainer import Trainer

EVAL_SCALARS = ("loss", "acc", "top5", "f1_macro", "precision_macro", "recall_macro")


class TensorBoardCallback(Callback):
    """Writes a ``SummaryWriter`` log (``logdir`` defaults to ``<run>/tb``)."""

    def __init__(self, graph: bool = True, logdir: Path | str | None = None) -> None:
        self.graph = graph
        self.logdir = Path(logdir) if logdir is not None else None
        self.writer: Any = None

    def on_fit_start(self, trainer: Trainer) -> None:
        if self.logdir is None:
            if trainer.run is None:
                return
            self.logdir = trainer.run.path / TB_DIR
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(self.logdir), purge_step=trainer.global_step or None)
        if self.graph and trainer.resumed_from is None:
            self._add_graph(trainer)

    def _add_graph(self, trainer: Trainer) -> None:
        model = unwrap_model(trainer.model)
        example = trainer.example_input
        traced: torch.nn.Module = model
        if isinstance(example, dict):
            # add_graph traces with positional inputs only: name them through a thin adapter
            traced, example = _KeywordInputs(model, list(example)), tuple(example.values())
        elif isinstance(example, list):
            example = tuple(example)
        was_training = model.training
        model.eval()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tracing warns about every data-dependent branch
                self.writer.add_graph(traced, example)
        except Exception as exc:  # noqa: BLE001 - some models cannot be traced; the scalars still count
            first = (str(exc).strip().splitlines() or [""])[0][:200]  # tracing errors can hold whole graph diffs
            trainer.log_event("warning", f"TensorBoard: could not add the model graph ({type(exc).__name__}: {first})")
        finally:
            model.train(was_training)

    def on_log(self, trainer: Trainer, split: str, metrics: dict[str, Any]) -> None:
        if self.writer is None:
            return
        step = trainer.global_step
        if split == "train":
            for key in ("loss", "acc", "samples_per_s", "data_wait"):
                if key in metrics:
                    self.writer.add_scalar(f"train/{key}", metrics[key], step)
            self.writer.add_scalar("lr", metrics.get("lr", 0.0), step)
            for name, lr in (metrics.get("lrs") or {}).items():
                self.writer.add_scalar(f"lr/{name}", lr, step)
        else:
            for key in EVAL_SCALARS:
                if key in metrics:
                    self.writer.add_scalar(f"{split}/{key}", metrics[key], step)
            self.writer.flush()

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.writer is None:
            return
        final = {f"hparam/{k.replace('/', '_')}": v for k, v in trainer.callback_metrics.items()
                 if k.startswith("val/")}
        if trainer.best is not None:
            final["hparam/best"] = float(trainer.best["value"])
        if final:
            self.writer.add_hparams(hparams(trainer.cfg), final, run_name="hparams", global_step=trainer.global_step)
        self._close()

    def on_exception(self, trainer: Trainer, exception: BaseException) -> None:
        self._close()

    def teardown(self, trainer: Trainer, stage: str) -> None:
        self._close()

    def _close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
            self.writer = None


class _KeywordInputs(torch.nn.Module):
    """Calls ``model(**dict(zip(names, args)))``: a model with named inputs, traceable positionally."""

    def __init__(self, model: torch.nn.Module, names: list[str]) -> None:
        super().__init__()
        self.model = model
        self.names = names

    def forward(self, *args: torch.Tensor) -> Any:
        return self.model(**dict(zip(self.names, args)))


def hparams(cfg: Any) -> dict[str, Any]:
    """The config's scalar settings as TensorBoard hyper-parameters (lists become strings)."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, bool) or isinstance(value, (int, float, str)):
            flat[prefix] = value
        elif value is None:
            flat[prefix] = "none"
        else:
            flat[prefix] = str(value)

    data = cfg.model_dump(mode="json")
    for section in ("model", "optim", "schedule", "trainer", "finetune"):
        walk(section, data.get(section, {}))
    walk("data.batch_size", data["data"]["batch_size"])
    walk("data.source", data["data"]["source"])
    walk("run.seed", data["run"]["seed"])
    return flat
