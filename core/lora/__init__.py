"""LoRA adapters through Hugging Face PEFT (``finetune.lora``; docs/lora.md).

- :mod:`core.lora.names` — how adapters are named in models, patterns, trees and records (torch-free);
- :mod:`core.lora.targets` — target patterns to the layers PEFT can adapt, rank limits;
- :mod:`core.lora.base` — the base weights file, and which parameters checkpoints leave to it;
- :mod:`core.lora.adapters` — inject (``apply_lora``), checkpoint state, PEFT's save/merge/unload;
- :mod:`core.lora.export` — ``ftui export --merge`` and ``--format peft``, verified on export.

PEFT is an optional extra (``pip install 'ftui[lora]'``); it is imported only when a run uses LoRA.
"""
