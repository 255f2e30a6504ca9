"""GPU (NVML) and host (psutil) telemetry, its trainer callback and utilisation diagnostics.

Modules: ``nvml`` (NVML as dicts), ``host`` (psutil figures), ``torch_memory`` (torch's CUDA memory
figures, torch imported lazily), ``sampler`` (the background sampling thread), ``callback``
(:class:`TelemetryCallback`, writes ``system.jsonl``), ``diagnostics`` (findings from recent samples).
Import the modules directly: this package imports nothing, so the app's panels stay torch-free.
"""
