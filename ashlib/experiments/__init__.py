"""One module per experiment of the paper (identity, sorting, attention), all in one vocabulary:

- ``XConfig``: the run's settings (a dataclass; a saved model's record holds one, and is a recipe);
- ``train(config, *, progress, out, resume, overwrite, checkpoint_every, callbacks, model, loss)``
  returns a result with ``.model`` (the trained module), ``.losses`` (per batch), ``.evaluations``
  (one dict per evaluation: ``"step"`` and the metrics), ``.seconds`` and ``.stopped_early``;
- ``evaluate(model, config, test=None)`` returns the metrics as a dict.

Every ``train`` runs the one training loop, :mod:`ashlib.experiments.loop` (checkpoints, exact
resume, Ctrl-C, callbacks). Notebooks and the command line both call these, so no training loop
is written twice.
"""
