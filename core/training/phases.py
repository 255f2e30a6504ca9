"""The setup phases a run goes through before its first step, as a person reads them (torch-free).

``ftui run`` prints the first one (importing torch) itself, before torch is imported; the trainer
announces the others to its callbacks (``Callback.on_setup_phase``) and the progress callback prints
them, so the seconds before the first step are never silent.
"""

from __future__ import annotations

from typing import Any


def setup_phase_text(phase: str, cfg: Any) -> str:
    """How a setup phase reads on the console, before the run's first line of figures."""
    if phase == "torch":
        return "importing torch and torchvision"
    if phase == "data":
        return f"building the data ({cfg.data.source})"
    if phase == "model":
        return f"building the model ({cfg.model.name})"
    if phase == "compile":
        return "compiling the model (torch.compile: the first steps take longer)"
    return phase
