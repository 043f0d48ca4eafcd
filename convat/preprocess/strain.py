"""Optical strain: how much the skin is stretched or compressed by a flow field."""

from __future__ import annotations

import numpy as np


def optical_strain(flow: np.ndarray) -> np.ndarray:
    r"""Magnitude of the infinitesimal strain tensor of a flow field ``(H, W, 2)`` -> ``(H, W)``.

    With :math:`\varepsilon = \tfrac12(\nabla \mathbf{u} + \nabla \mathbf{u}^\top)`,

    .. math::
        |\varepsilon| = \sqrt{\varepsilon_{xx}^2 + \varepsilon_{yy}^2 + 2\,\varepsilon_{xy}^2},\quad
        \varepsilon_{xx} = \partial_x u,\ \varepsilon_{yy} = \partial_y v,\
        \varepsilon_{xy} = \tfrac12(\partial_y u + \partial_x v),

    the form used by STSTNet and Off-ApexNet. Derivatives are central differences (``numpy.gradient``).
    """
    u, v = flow[..., 0], flow[..., 1]
    du_dy, du_dx = np.gradient(u)
    dv_dy, dv_dx = np.gradient(v)
    exy = 0.5 * (du_dy + dv_dx)
    return np.sqrt(du_dx**2 + dv_dy**2 + 2 * exy**2).astype(np.float32)
