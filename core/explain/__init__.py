"""Explaining predictions: attribution maps, the worst mistakes, activations (``ftui explain``, the app's Explain view).

- :mod:`core.explain.session`: :class:`~core.explain.session.Explainer`, a restored checkpoint on one split
  (predictions, sample selection, attributions through Captum). Imports torch.
- :mod:`core.explain.result`: :class:`~core.explain.result.Explanation` and its files
  (``maps.npz``, PNG grids, ``summary.json``). No torch.
- :mod:`core.explain.overlay`: how a map is drawn over its input. No torch.
- :mod:`core.explain.worker`: the process the app explains in, and its torch-free client.

Nothing is imported here, so the torch-free parts stay torch-free.
"""
