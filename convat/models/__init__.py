"""Models, registered with timm: ``timm.create_model("convat_tiny", num_classes=3)`` after ``import convat``."""

from convat.models.convat import ConVAT, VariationalTokens

__all__ = ["ConVAT", "VariationalTokens"]
