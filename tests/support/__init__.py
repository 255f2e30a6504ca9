"""Helpers shared by the test modules (imported as ``support.*``; pytest puts ``tests/`` on the path).

* ``support.training`` — a tiny shapes config that trains in about a second, recording callbacks;
* ``support.nvml_fakes`` — a fake NVML backend with pynvml's function names and error classes;
* ``support.app`` — what a Pilot test reads off the app: the screen as text, the dashboard loaded;
* ``support.lora`` — a small torchvision ViT adapted with LoRA (the LoRA tests' config).
"""
