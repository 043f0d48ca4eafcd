"""Stand-in for Colab's ``google.colab`` module (make colab-check): its presence is how code detects Colab."""

from google.colab import drive  # noqa: F401

IN_SIMULATION = True
