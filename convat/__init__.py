"""convat: reproducible companion to ConVAT micro-expression recognition (bin Talib et al., 2025).

Importing the package registers its models with timm, so ``timm.create_model("convat_tiny")`` works.
"""

from convat import runtime

runtime.set_passive_wait()  # before torch loads OpenMP: waiting threads sleep instead of spinning (see runtime)

from convat import models  # noqa: E402, F401  (registers the timm entry points)

__version__ = "0.1.0"
