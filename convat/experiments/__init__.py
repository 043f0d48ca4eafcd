"""Experiments: studies that combine the stages (data -> preprocess -> models -> training -> loso -> metrics).

Stages never import from here; chapters and commands do.

* :mod:`~convat.experiments.references` -- the reference rows of every results table (majority, identity only,
  true AU set, linear).
"""
