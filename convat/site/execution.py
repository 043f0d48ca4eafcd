"""How chapters are executed: the environment their kernels start with.

A Jupyter kernel inherits its environment from the process that starts it. When that environment sets
``MPLBACKEND`` (``.ci/run`` used to export ``MPLBACKEND=Agg``; many headless servers do), matplotlib in the
kernel draws to a non-interactive backend and every figure is silently dropped from the executed notebook,
hence from the site. The book build (:mod:`convat.site.sphinx_ext`) and ``convat chapter`` therefore start
their kernels with the inline backend, whatever the caller's shell says.
"""

from __future__ import annotations

from collections.abc import Mapping

#: The backend ipykernel itself selects when ``MPLBACKEND`` is unset: figures become ``image/png`` outputs.
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


def kernel_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``environ`` in which matplotlib uses the inline backend (all other variables kept)."""
    env = dict(environ)
    env["MPLBACKEND"] = INLINE_BACKEND
    return env
