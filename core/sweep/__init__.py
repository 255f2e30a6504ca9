"""Hyper-parameter sweeps with Optuna: each trial an ordinary ftui run (see ``docs/runs.md``).

- :mod:`core.sweep.space`: ``--param KEY=DIST`` strings -> Optuna distributions, checked against the config
- :mod:`core.sweep.study`: storage, study, sampler and pruner
- :mod:`core.sweep.trial`: one trial's run followed through its run directory, reported and pruned
- :mod:`core.sweep.runner`: the sweep loop (ask, launch, follow, tell; stop and resume)

Optuna is imported only inside functions, so importing this package stays cheap.
"""
