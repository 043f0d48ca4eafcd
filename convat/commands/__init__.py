"""Subcommands of the ``convat`` command line, one module each, each with ``register(subparsers)``."""
