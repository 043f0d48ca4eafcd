"""Experiments: studies that combine the stages (data -> preprocess -> models -> training -> loso -> metrics).

Stages never import from here (``make lint`` checks it with import-linter); chapters and commands do.

* :mod:`~convat.experiments.references` -- the reference rows of every results table (majority, identity only,
  true AU set, linear).
* :mod:`~convat.experiments.synth_difficulty` -- how hard a SynthME draw is (the linear reference, the
  difficulty sweep).
* :mod:`~convat.experiments.pitfalls` -- the evaluation pitfalls of the published code bases, each run both ways.
* :mod:`~convat.experiments.selection` -- model selection on training subjects only (subject-grouped CV).
* :mod:`~convat.experiments.tuning` -- the training-budget search behind the recipe's budget.
* :mod:`~convat.experiments.ablation` -- the variational bottleneck's ablation over seeds.
* :mod:`~convat.experiments.study` -- the reference study (models x seeds x draws) as a result bundle.
"""
