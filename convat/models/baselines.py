"""The baselines ConVAT is compared with, behind the same ``timm.create_model`` interface.

* ``ststnet``: STSTNet (Liong et al., FG 2019), re-implemented from the paper's description: three shallow
  convolutional streams (3, 5 and 8 filters of 3x3) over the same u / v / strain map, each followed by ReLU and
  3x3 max pooling with stride 3; the 16 maps are concatenated, average-pooled 2x2 and classified by one
  fully connected layer. At its native 28x28 input that is a 5x5x16 = 400-feature vector.
* ``offapexnet``: Off-ApexNet (Gan et al., Signal Processing: Image Communication 2019): one LeNet-like stream
  per input channel (5x5 conv with 6 filters, 2x2 max pool, 5x5 conv with 16 filters, 2x2 max pool), the
  streams' features concatenated, two fully connected layers of 1024 units, then the classifier. The paper
  feeds the two flow components only; with our three-channel input, the strain channel gets a third stream.
* ``vit_me_tiny``: timm's own :class:`~timm.models.vision_transformer.VisionTransformer` at ConVAT-Tiny's
  width and depth, with the patch size chosen so that any input from 28 to 224 pixels gives a grid of about
  8x8 patches (a 16-pixel patch would leave a 28-pixel input with a single token).
* ``resnet_me``: timm's :class:`~timm.models.resnet.ResNet`, resnet10t-like (one basic block per stage, the
  tiered deep stem, average-pool shortcuts) at a quarter of the usual widths, so its size is comparable.

Inputs other than the papers' 28x28 are handled by adaptive pooling to the grid the paper's layers produce at
28x28, so at 28x28 the networks are exactly the described ones and at larger sizes only the pooling window
grows.
"""

from __future__ import annotations

import torch
from timm.models import register_model
from timm.models.resnet import BasicBlock, ResNet
from timm.models.vision_transformer import VisionTransformer
from torch import nn

_TIMM_ONLY = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")


def _no_weights(variant: str, pretrained: bool, kwargs: dict) -> dict:
    """Refuse pretrained weights (none exist) and drop the keyword arguments timm adds for weight loading."""
    if pretrained:
        raise ValueError(f"{variant}: no pretrained weights exist; use pretrained=False")
    return {k: v for k, v in kwargs.items() if k not in _TIMM_ONLY}


class STSTNet(nn.Module):
    """Shallow triple-stream network: three one-layer conv streams over the same map, concatenated."""

    def __init__(
        self, *, num_classes: int = 3, in_chans: int = 3, img_size: int = 28,
        stream_widths: tuple[int, ...] = (3, 5, 8), pool_grid: int = 5, drop_rate: float = 0.0,
    ):
        super().__init__()
        self.num_classes = num_classes
        self.img_size = img_size
        self.streams = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(in_chans, w, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(3, stride=3, ceil_mode=True),  # 28 -> 10, as with the paper's 'same' pooling
            )
            for w in stream_widths
        )
        self.pool = nn.AdaptiveAvgPool2d(pool_grid)  # 10 -> 5 at 28x28: the paper's 2x2 average pooling
        self.num_features = sum(stream_widths) * pool_grid * pool_grid
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(torch.cat([stream(x) for stream in self.streams], dim=1))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(x.flatten(1))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class OffApexNet(nn.Module):
    """Off-ApexNet: one two-layer LeNet-like stream per input channel, then two wide fully connected layers."""

    def __init__(
        self, *, num_classes: int = 3, in_chans: int = 3, img_size: int = 28,
        widths: tuple[int, int] = (6, 16), kernel_size: int = 5, pool_grid: int = 7, fc_dim: int = 1024,
        drop_rate: float = 0.5,
    ):
        super().__init__()
        self.num_classes = num_classes
        self.img_size = img_size
        pad = kernel_size // 2

        def stream() -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(1, widths[0], kernel_size, padding=pad), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                nn.Conv2d(widths[0], widths[1], kernel_size, padding=pad), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                nn.AdaptiveAvgPool2d(pool_grid),  # identity at 28x28 (28 -> 14 -> 7)
            )

        self.streams = nn.ModuleList(stream() for _ in range(in_chans))
        self.fc = nn.Sequential(
            nn.Linear(in_chans * widths[1] * pool_grid * pool_grid, fc_dim), nn.ReLU(inplace=True),
            nn.Dropout(drop_rate),
            nn.Linear(fc_dim, fc_dim), nn.ReLU(inplace=True),
        )
        self.num_features = fc_dim
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(fc_dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        feats = [stream(x[:, i : i + 1]).flatten(1) for i, stream in enumerate(self.streams)]
        return self.fc(torch.cat(feats, dim=1))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def patch_size_for(img_size: int, grid: int = 8) -> int:
    """A patch size that turns an ``img_size`` input into about ``grid x grid`` patches (at least 2 pixels)."""
    return max(2, round(img_size / grid))


@register_model
def ststnet(pretrained: bool = False, **kwargs) -> STSTNet:
    """STSTNet (Liong et al. 2019): 3 + 5 + 8 filters, about 1.6 thousand parameters for 3 classes."""
    return STSTNet(**_no_weights("ststnet", pretrained, kwargs))


@register_model
def offapexnet(pretrained: bool = False, **kwargs) -> OffApexNet:
    """Off-ApexNet (Gan et al. 2019): per-channel LeNet streams and two 1024-unit layers."""
    return OffApexNet(**_no_weights("offapexnet", pretrained, kwargs))


@register_model
def vit_me_tiny(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """A plain timm ViT of ConVAT-Tiny's width and depth, with patches sized for small motion maps."""
    kwargs = _no_weights("vit_me_tiny", pretrained, kwargs)
    img_size = kwargs.pop("img_size", 64)
    defaults = dict(
        img_size=img_size, patch_size=patch_size_for(img_size), embed_dim=64, depth=2, num_heads=2,
        mlp_ratio=2.0, global_pool="avg", class_token=False, dynamic_img_pad=True, drop_rate=0.1,
    )
    return VisionTransformer(**{**defaults, **kwargs})


@register_model
def resnet_me(pretrained: bool = False, **kwargs) -> ResNet:
    """A resnet10t-like timm ResNet at quarter width (16-32-64-128 channels)."""
    kwargs = _no_weights("resnet_me", pretrained, kwargs)
    kwargs.pop("img_size", None)  # a ResNet works at any size; accepted for a uniform interface
    defaults = dict(
        block=BasicBlock, layers=(1, 1, 1, 1), channels=(16, 32, 64, 128), stem_width=16,
        stem_type="deep_tiered", avg_down=True, drop_rate=0.1,
    )
    return ResNet(**{**defaults, **kwargs})


__all__ = ["STSTNet", "OffApexNet", "ststnet", "offapexnet", "vit_me_tiny", "resnet_me", "patch_size_for"]
