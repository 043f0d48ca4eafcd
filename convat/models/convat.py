"""ConVAT: convolutional stem -> variational token bottleneck -> multi-head attention blocks -> head.

The paper (bin Talib et al., IEEE Access 2025) names the parts but publishes no sizes; every choice below is
a keyword argument, and the model chapter tabulates what the paper states and what we chose.
"""

from __future__ import annotations

import math

import torch
from timm.layers import trunc_normal_
from timm.models import register_model
from timm.models.vision_transformer import Block
from torch import nn


class ConvStem(nn.Module):
    """Conv-BN-GELU stages, each halving the resolution, ending at width ``embed_dim``."""

    def __init__(self, in_chans: int, embed_dim: int, stages: int, base_width: int = 32):
        super().__init__()
        layers: list[nn.Module] = []
        width_in = in_chans
        for i in range(stages):
            width_out = embed_dim if i == stages - 1 else min(base_width * 2**i, embed_dim)
            layers.append(nn.Sequential(
                nn.Conv2d(width_in, width_out, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(width_out),
                nn.GELU(),
            ))
            width_in = width_out
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PooledStem(nn.Module):
    """Shallow stem: ``depth`` stride-1 Conv-BN-GELU layers at full resolution, max-pooled to the token grid.

    Max pooling keeps the strongest local response wherever it falls in its window, so a motion that sits a few
    pixels elsewhere on another subject's face gives the same token (the reason shallow flow networks such as
    STSTNet pool early); a 1x1 convolution then sets the token width.
    """

    def __init__(self, in_chans: int, embed_dim: int, grid: int, width: int = 32, depth: int = 1):
        super().__init__()
        layers: list[nn.Module] = []
        width_in = in_chans
        for _ in range(depth):
            layers += [nn.Conv2d(width_in, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.GELU()]
            width_in = width
        self.net = nn.Sequential(*layers)
        self.pool = nn.AdaptiveMaxPool2d(grid)
        self.proj = nn.Conv2d(width, embed_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.pool(self.net(x)))


class VariationalTokens(nn.Module):
    """Per-token Gaussian bottleneck: ``z = mu + sigma * eps`` in training, ``z = mu`` in evaluation.

    After each forward pass, :attr:`kl` holds ``KL(q(z|x) || N(0, I))`` averaged over the batch and summed
    over token dimensions divided by the number of tokens, so the training loop can add ``beta * kl``, and
    :attr:`sigma` the mean posterior standard deviation (detached: a diagnostic, see
    :func:`convat.training.fit.fold_fit`).
    """

    def __init__(self, dim: int, logvar_init: float = -6.0):
        super().__init__()
        self.to_stats = nn.Linear(dim, 2 * dim)
        # Start with small posterior noise (sigma ~ 0.05): with sigma ~ 1 at initialisation the sampled tokens
        # are mostly noise and a small dataset never learns to read them.
        nn.init.constant_(self.to_stats.bias[dim:], logvar_init)
        self.kl = torch.zeros(())
        self.sigma = torch.zeros(())

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        mu, logvar = self.to_stats(tokens).chunk(2, dim=-1)
        logvar = logvar.clamp(-10.0, 10.0)
        self.kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1).mean()
        self.sigma = (0.5 * logvar).exp().mean().detach()
        if self.training:
            return mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        return mu


class ConVAT(nn.Module):
    """Convolutional Variational Attention Transformer for onset -> apex motion maps.

    Every choice the paper leaves open is an argument (the model chapter tabulates them):

    * ``stem``: ``"pooled"`` (default: ``stem_depth`` stride-1 Conv-BN-GELU layers of ``stem_width`` filters,
      max-pooled to a ``token_grid`` x ``token_grid`` grid, 1x1 projection to ``embed_dim``) or ``"strided"``
      (stride-2 Conv-BN-GELU stages; ``stem_stages`` of them, by default as many as bring ``img_size`` closest
      to ``token_grid``).
    * ``variational``: the per-token Gaussian bottleneck (its KL term is weighted by the training loop's beta);
      ``logvar_init`` is its initial log-variance; ``token_norm`` adds a LayerNorm on the tokens before it.
    * ``embed_dim``, ``depth``, ``num_heads``, ``mlp_ratio``: the timm ``Block`` stack.
    * ``global_pool``: ``"token"`` (class token) or ``"avg"`` (mean of the tokens).
    * ``drop_rate``, ``attn_drop_rate``, ``drop_path_rate``: regularisation.
    """

    def __init__(
        self,
        *,
        img_size: int = 112,
        in_chans: int = 3,
        num_classes: int = 3,
        embed_dim: int = 96,
        depth: int = 2,
        num_heads: int = 4,
        mlp_ratio: float = 2.0,
        stem_stages: int | None = None,
        token_grid: int = 7,
        variational: bool = True,
        logvar_init: float = -6.0,
        token_norm: bool = False,
        stem: str = "pooled",
        stem_width: int = 32,
        stem_depth: int = 1,
        global_pool: str = "token",
        drop_rate: float = 0.1,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ):
        super().__init__()
        if global_pool not in ("token", "avg"):
            raise ValueError(f"global_pool must be 'token' or 'avg', got {global_pool!r}")
        if stem not in ("strided", "pooled"):
            raise ValueError(f"stem must be 'strided' or 'pooled', got {stem!r}")
        if stem_stages is None:
            stem_stages = max(1, round(math.log2(img_size / token_grid)))
        self.num_classes = num_classes
        self.num_features = self.embed_dim = embed_dim
        self.global_pool = global_pool
        if stem == "pooled":
            self.stem = PooledStem(in_chans, embed_dim, token_grid, stem_width, stem_depth)
            grid = token_grid
        else:
            self.stem = ConvStem(in_chans, embed_dim, stem_stages, stem_width)
            grid = math.ceil(img_size / 2**stem_stages)
        self.grid_size = (grid, grid)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if global_pool == "token" else None
        n_prefix = 1 if self.cls_token is not None else 0
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + n_prefix, embed_dim))
        self.token_norm = nn.LayerNorm(embed_dim) if token_norm else nn.Identity()
        self.bottleneck = VariationalTokens(embed_dim, logvar_init) if variational else None
        self.pos_drop = nn.Identity()  # where the class token and position embedding have joined the tokens
        rates = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.Sequential(
            *[
                Block(
                    dim=embed_dim, num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=True,
                    attn_drop=attn_drop_rate, proj_drop=drop_rate, drop_path=rates[i],
                )
                for i in range(depth)
            ]
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            trunc_normal_(self.cls_token, std=0.02)

    @property
    def kl(self) -> torch.Tensor:
        """KL term of the last forward pass (zero without the variational bottleneck)."""
        if self.bottleneck is None:
            return self.pos_embed.new_zeros(())
        return self.bottleneck.kl

    def stages(self) -> dict[str, nn.Module]:
        """The modules whose outputs describe the architecture, in execution order (see ``stage_table``)."""
        stages: dict[str, nn.Module] = {}
        if isinstance(self.stem, ConvStem):
            for i, stage in enumerate(self.stem.net):
                stages[f"stem conv {i + 1} (stride 2)"] = stage
        else:
            stages["stem convs (stride 1)"] = self.stem.net
            stages["stem max-pool to grid"] = self.stem.pool
            stages["stem 1x1 projection"] = self.stem.proj
        if self.bottleneck is not None:
            stages["variational tokens"] = self.bottleneck
        stages["+ class token, positions" if self.cls_token is not None else "+ positions"] = self.pos_drop
        for i, block in enumerate(self.blocks):
            stages[f"attention block {i + 1}"] = block
        stages["norm"] = self.norm
        stages["pooled (" + self.global_pool + ")"] = self.head_drop
        stages["head"] = self.head
        return stages

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Stem output as a ``(B, N, D)`` token sequence (before the bottleneck)."""
        return self.token_norm(self.stem(x).flatten(2).transpose(1, 2))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.tokens(x)
        if self.bottleneck is not None:
            x = self.bottleneck(x)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.blocks(self.pos_drop(x + self.pos_embed))
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x[:, 0] if self.global_pool == "token" else x.mean(dim=1)
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _create(variant: str, pretrained: bool, defaults: dict, **kwargs) -> ConVAT:
    if pretrained:
        raise ValueError(f"{variant}: no pretrained weights exist (the paper released none)")
    for timm_only in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):
        kwargs.pop(timm_only, None)  # passed by timm.create_model, meaningless for a model without weights
    return ConVAT(**{**defaults, **kwargs})


@register_model
def convat_tiny(pretrained: bool = False, **kwargs) -> ConVAT:
    """ConVAT-Tiny: 64-wide tokens, 2 blocks of 2 heads."""
    return _create("convat_tiny", pretrained, dict(embed_dim=64, depth=2, num_heads=2), **kwargs)


@register_model
def convat_small(pretrained: bool = False, **kwargs) -> ConVAT:
    """ConVAT-Small: 128-wide tokens, 4 blocks of 4 heads."""
    return _create("convat_small", pretrained, dict(embed_dim=128, depth=4, num_heads=4), **kwargs)


def kl_of(model: nn.Module) -> torch.Tensor:
    """The KL term of the last forward pass of any model (zero for models without one)."""
    kl = getattr(model, "kl", None)
    return kl if isinstance(kl, torch.Tensor) else torch.zeros(())


__all__ = ["ConVAT", "VariationalTokens", "ConvStem", "convat_tiny", "convat_small", "kl_of"]
