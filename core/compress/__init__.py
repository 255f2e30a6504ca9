"""Compression and deployment: pruning, int8 quantisation, verified ONNX export, the trade-off table.

Importing this package is cheap and torch-free (the app reads records and ``tradeoff.json`` through
:mod:`core.compress.record` and :mod:`core.compress.tradeoff`); the working modules import torch:

    pipeline.compress(ckpt, CompressOptions(...)) -> CompressResult   # ftui compress
    onnx_export.export_onnx(model, example, path, verify_batch=...)   # ftui export --format onnx
    structure.prune_structured / replay                                # Torch-Pruning, pruned shapes
    sparse.prune_unstructured                                          # torch.nn.utils.prune
    quantize.quantize_int8                                             # ONNX Runtime int8
    runtime                                                            # sessions, latency, FLOPs

See ``docs/compress.md``.
"""
