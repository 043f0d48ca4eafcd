"""Models, registered with timm: ``timm.create_model("convat_tiny", num_classes=3)`` after ``import convat``.

ConVAT (``convat_tiny``, ``convat_small``) and the baselines (``ststnet``, ``offapexnet``, ``vit_me_tiny``,
``resnet_me``) all take ``num_classes``, ``in_chans`` and ``img_size`` (28 to 224).
"""

from convat.models.baselines import OffApexNet, STSTNet
from convat.models.convat import ConVAT, VariationalTokens, kl_of

#: Every model the package registers, ConVAT first.
MODEL_NAMES = ("convat_tiny", "convat_small", "ststnet", "offapexnet", "vit_me_tiny", "resnet_me")

__all__ = ["ConVAT", "VariationalTokens", "STSTNet", "OffApexNet", "kl_of", "MODEL_NAMES"]
