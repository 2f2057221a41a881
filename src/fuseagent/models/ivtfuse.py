"""IVTFuse: a compact text-guided infrared–visible fusion network.

Architecture (defaults: ``D = 32`` feature channels, ``d = 256`` text width, ``N = 3`` fusion blocks):

1. **Encoder**, one per modality: 3×3 conv + PReLU → :class:`FrequencyStripAttention` →
   :class:`HybridPoolingAttention` → :class:`RestormerBlock`.
2. **Text**: caption token embeddings (all-MiniLM-L6-v2, 384-d) → LayerNorm → MLP to ``d``.
3. **Fusion blocks** (:class:`TextGuidedFusionBlock`): the text tokens are the queries of a
   cross-attention over the infrared tokens and another over the visible tokens (image tokens are
   the ``D``-channel features projected to ``d``); each attention output is averaged over the text
   tokens and L1-normalised into ``d`` channel weights that re-weight the image tokens, which are
   projected back to ``D`` channels and injected residually into their stream
   (concat + 1×1 conv + PReLU).
4. **Decoder**: the two streams concatenated, 1×1 conv + PReLU, Restormer blocks, 1×1 conv and a
   sigmoid to one channel (the fused luminance).

Every linear map between the text attention and the image tokens is applied in an algebraically
equivalent order (attention scores as ``(q Wk Wp)·F``, pooled tokens as ``Wp (Σ a F)``, the
re-weighted projection as one per-image ``D × D`` matrix ``Wb diag(w) Wp``), so the ``d = 256``
image tokens are never materialised: cost and memory grow as ``heads × L × H × W`` instead of
``d × H × W``. Variants for the ablation switch off the text (learned queries replace it), the
frequency strip attention or the hybrid pooling attention.

On CPU without autograd (inference), the blocks run band by band (:data:`BAND_ROWS` rows, plus the
rows their filters read around them), so that the wide intermediate maps stay in the CPU cache;
what depends on every pixel (attention matrices, pooled contexts, normalisation statistics) is
summed over the bands first. The values are those of the whole-image path (training, GPU) up to
the order of float sums.

References: frequency strip attention after Cui et al., "Dual-domain strip attention for image
restoration", Neural Networks 2024; hybrid pooling / grouped axis attention after Ouyang et al.,
"Efficient multi-scale attention module with cross-spatial learning", ICASSP 2023; Restormer block
after Zamir et al., CVPR 2022; text-guided fusion in the spirit of Text-IF (Yi et al., CVPR 2024).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from .files import VARIANTS, WEIGHTS_DIR, weights_path

__all__ = [
    "IVTFuseConfig",
    "VARIANTS",
    "IVTFuse",
    "FrequencyStripAttention",
    "HybridPoolingAttention",
    "RestormerBlock",
    "TextGuidedFusionBlock",
    "count_parameters",
    "save_weights",
    "load_weights",
    "weights_path",
    "fuse_tiled",
    "tile_starts",
    "WEIGHTS_DIR",
    "WEIGHTS_FORMAT",
]

WEIGHTS_FORMAT = "fuseagent.ivtfuse/1"
TEXT_EMBED_DIM = 384  # all-MiniLM-L6-v2 hidden size


@dataclass(frozen=True)
class IVTFuseConfig:
    """Hyper-parameters of the network.

    Attributes:
        channels: feature channels ``D`` of the image streams.
        text_dim: width ``d`` of the text tokens and of the image tokens they attend to.
        text_hidden: hidden width of the text projection MLP.
        heads: attention heads of the text cross-attention.
        blocks: number ``N`` of text-guided fusion blocks.
        decoder_blocks: Restormer blocks in the decoder.
        restormer_heads: heads of the Restormer channel attention.
        ffn_expansion: Restormer feed-forward expansion factor.
        groups: channel groups ``g`` of the hybrid pooling attention.
        strip: length of the pooling strips of the frequency strip attention.
        learned_queries: number of learned query tokens used when ``use_text`` is False.
        token_patch: side of the square patches averaged into one image token for the text
            attention (1: one token per pixel).
        use_text, use_fsa, use_hpa: the ablation switches.
    """

    channels: int = 32
    text_dim: int = 256
    text_hidden: int = 512
    heads: int = 8
    blocks: int = 3
    decoder_blocks: int = 2
    restormer_heads: int = 2
    ffn_expansion: float = 2.66
    groups: int = 4
    strip: int = 7
    learned_queries: int = 8
    token_patch: int = 4
    use_text: bool = True
    use_fsa: bool = True
    use_hpa: bool = True

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> IVTFuseConfig:
        """Build from a mapping, rejecting unknown keys.

        Example:
            >>> IVTFuseConfig.from_dict({"channels": 16}).channels
            16
        """
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise InputError(f"unknown IVTFuse setting(s): {', '.join(sorted(unknown))}")
        return cls(**dict(values))


#: rows per band of the banded inference path (see :class:`RestormerBlock`)
BAND_ROWS = 8


def _banded(x: torch.Tensor) -> bool:
    """Whether a module runs band by band on ``x``: on CPU without autograd, taller than two bands
    (on a GPU the whole image at once is faster, and training needs the whole-image graph)."""
    return not torch.is_grad_enabled() and x.device.type == "cpu" and x.shape[2] > 2 * BAND_ROWS


def _row_bands(height: int, rows: int) -> list[tuple[int, int, int, int]]:
    """``(r0, r1, a0, a1)`` per band of ``rows`` rows: the band ``[r0, r1)`` and the rows ``[a0, a1)``
    a 3×3 filter of it reads (one more on each side, within the image).

    Example:
        >>> _row_bands(20, 8)
        [(0, 8, 0, 9), (8, 16, 7, 17), (16, 20, 15, 20)]
    """
    return [(r0, min(height, r0 + rows), max(0, r0 - 1), min(height, r0 + rows + 1))
            for r0 in range(0, height, rows)]


def _widened_band(norm: ChannelLayerNorm, pointwise: nn.Conv2d, depthwise: nn.Conv2d, x: torch.Tensor,
                  r0: int, r1: int, a0: int, a1: int) -> torch.Tensor:
    """``depthwise(pointwise(norm(x)))`` (a Restormer block's LayerNorm, 1×1 and 3×3 depthwise
    convolutions) on rows ``[r0, r1)``, reading rows ``[a0, a1)`` of ``x``: computed pixel-major
    (channels last), where the LayerNorm is one fused pass, the 1×1 convolution one matrix product and
    the depthwise convolution several times faster on CPU; returned in channels-last layout."""
    channels = x.shape[1]
    pixels = F.layer_norm(x[:, :, a0:a1].permute(0, 2, 3, 1), (channels,), norm.weight, norm.bias, eps=norm.EPS)
    wide = F.linear(pixels, pointwise.weight.flatten(1), pointwise.bias).permute(0, 3, 1, 2)  # channels last
    # zero padding on every side: only the image's borders fall outside [a0, a1), inside the band's rows are real
    out = F.conv2d(wide, depthwise.weight, depthwise.bias, padding=1, groups=depthwise.groups)
    return out[:, :, r0 - a0:r1 - a0]


def _strip_sum(x: torch.Tensor, length: int, dim: int) -> torch.Tensor:
    """Sums of ``length`` consecutive samples along ``dim`` (output ``length − 1`` shorter), added in
    window order: the sums ``avg_pool2d`` forms, several times faster on CPU for thin windows.

    Example:
        >>> _strip_sum(torch.arange(5.0)[None], 3, -1)
        tensor([[3., 6., 9.]])
    """
    size = x.shape[dim] - length + 1
    total = x.narrow(dim, 0, size)
    for k in range(1, length):
        total = total + x.narrow(dim, k, size)
    return total


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of each pixel of a ``(B, C, H, W)`` tensor."""

    EPS = 1e-5

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.EPS) * self.weight[:, None, None] + self.bias[:, None, None]


class FrequencyStripAttention(nn.Module):
    """Frequency strip attention: strip pooling splits low and high frequencies.

    A horizontal then a vertical pass; each pass averages over ``strip``-pixel strips along its
    axis (the low-frequency part), takes the remainder as the high-frequency part, and recombines
    them with learnable per-channel weights (the high-frequency weight starts at 1, the identity).
    The output is gated residually: ``β·x + γ·out`` with per-channel ``β`` (1) and ``γ`` (0).

    Example:
        >>> fsa = FrequencyStripAttention(4)
        >>> x = torch.rand(1, 4, 9, 11)
        >>> bool(torch.allclose(fsa(x), x))   # β = 1, γ = 0 at initialisation
        True
    """

    def __init__(self, channels: int, strip: int = 7):
        super().__init__()
        if strip < 1 or strip % 2 == 0:
            raise InputError(f"strip length must be a positive odd number, got {strip}")
        self.strip = strip
        self.low_h = nn.Parameter(torch.zeros(channels))
        self.high_h = nn.Parameter(torch.ones(channels))
        self.low_v = nn.Parameter(torch.zeros(channels))
        self.high_v = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.ones(channels))
        self.gamma = nn.Parameter(torch.zeros(channels))

    def _strip_mean(self, x: torch.Tensor, horizontal: bool) -> torch.Tensor:
        r = self.strip // 2
        return _strip_sum(F.pad(x, (r, r, 0, 0) if horizontal else (0, 0, r, r), mode="replicate"),
                          self.strip, -1 if horizontal else -2) / self.strip

    def forward_plain(self, x: torch.Tensor) -> torch.Tensor:
        """The attention on the whole image at once (the training path)."""
        out = x
        for horizontal, low_w, high_w in ((True, self.low_h, self.high_h), (False, self.low_v, self.high_v)):
            low = self._strip_mean(out, horizontal)
            out = low_w[:, None, None] * low + high_w[:, None, None] * (out - low)
        return self.beta[:, None, None] * x + self.gamma[:, None, None] * out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Without autograd, band by band (as :class:`RestormerBlock`; the same values)."""
        h = x.shape[2]
        if not _banded(x):
            return self.forward_plain(x)
        r = self.strip // 2
        low_h, high_h, low_v, high_v = (t[:, None, None] for t in (self.low_h, self.high_h, self.low_v, self.high_v))
        beta, gamma = self.beta[:, None, None], self.gamma[:, None, None]
        out = torch.empty_like(x)
        for r0 in range(0, h, BAND_ROWS):
            r1 = min(h, r0 + BAND_ROWS)
            a0, a1 = max(0, r0 - r), min(h, r1 + r)  # the rows the vertical strips of the band read
            band = x[:, :, a0:a1]
            low = self._strip_mean(band, True)
            rows = low_h * low + high_h * (band - low)
            # replicated rows at the image's borders only (as the whole-image padding); inside, real rows
            padded = F.pad(rows, (0, 0, r - (r0 - a0), r - (a1 - r1)), mode="replicate")
            low = _strip_sum(padded, self.strip, -2) / self.strip
            centre = rows[:, :, r0 - a0:r1 - a0]
            out[:, :, r0:r1] = beta * x[:, :, r0:r1] + gamma * (low_v * low + high_v * (centre - low))
        return out


class HybridPoolingAttention(nn.Module):
    """Hybrid pooling attention over ``groups`` channel groups.

    Within each group, the features are pooled along each axis by average and by max (the "hybrid"
    contexts); the average and max contexts pass through one shared 1×1 conv, are summed and
    squashed by a sigmoid into a row attention and a column attention, whose product re-weights the
    group; a 3×3 conv adds a local branch. The block is residual: ``x + (x·a_rows·a_cols + local)``.

    Example:
        >>> hpa = HybridPoolingAttention(8, groups=4)
        >>> hpa(torch.rand(2, 8, 5, 7)).shape
        torch.Size([2, 8, 5, 7])
    """

    def __init__(self, channels: int, groups: int = 4):
        super().__init__()
        if groups < 1 or channels % groups:
            raise InputError(f"channels ({channels}) must be a multiple of groups ({groups})")
        self.groups = groups
        width = channels // groups
        self.context = nn.Conv2d(width, width, 1)
        self.local = nn.Conv2d(width, width, 3, padding=1, padding_mode="replicate")
        self.norm = nn.GroupNorm(1, width)

    def _row_attention(self, g: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.context(g.mean(3, keepdim=True)) + self.context(g.amax(3, keepdim=True)))

    def _column_attention(self, g: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.context(g.mean(2, keepdim=True)) + self.context(g.amax(2, keepdim=True)))

    def forward_plain(self, x: torch.Tensor) -> torch.Tensor:
        """The attention on the whole image at once (the training path)."""
        b, c, h, w = x.shape
        g = x.reshape(b * self.groups, c // self.groups, h, w)
        attended = self.norm(g * self._row_attention(g) * self._column_attention(g))
        out = attended + self.local(g)
        return x + out.reshape(b, c, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Without autograd, band by band (as :class:`RestormerBlock`): the column attention and the
        group normalisation's statistics (sums over all pixels) first, then the rest per band."""
        b, c, h, w = x.shape
        if not _banded(x):
            return self.forward_plain(x)
        g = x.reshape(b * self.groups, c // self.groups, h, w)
        cols = self._column_attention(g)
        bands = _row_bands(h, BAND_ROWS)
        total = g.new_zeros(g.shape[0], dtype=torch.float64)
        squares = torch.zeros_like(total)
        for r0, r1, _, _ in bands:
            band = g[:, :, r0:r1]
            product = (band * self._row_attention(band) * cols).double()
            total += product.sum((1, 2, 3))
            squares += product.square().sum((1, 2, 3))
        count = g[0].numel()
        mean = total / count
        inv_std = torch.rsqrt((squares / count - mean * mean).clamp_min(0.0) + self.norm.eps)
        mean, inv_std = (t.to(g.dtype)[:, None, None, None] for t in (mean, inv_std))
        weight, bias = self.norm.weight[:, None, None], self.norm.bias[:, None, None]
        out = torch.empty_like(x)
        for r0, r1, a0, a1 in bands:
            band = g[:, :, r0:r1]
            attended = (band * self._row_attention(band) * cols - mean) * inv_std * weight + bias
            # the 3×3 local branch: replicated rows at the image's borders only; inside, real rows
            rows = F.pad(g[:, :, a0:a1], (1, 1, int(r0 == a0), int(a1 == r1)), mode="replicate")
            local = F.conv2d(rows, self.local.weight, self.local.bias)
            out[:, :, r0:r1] = x[:, :, r0:r1] + (attended + local).reshape(b, c, r1 - r0, w)
        return out


class RestormerBlock(nn.Module):
    """Restormer transformer block: multi-Dconv head transposed attention + gated-Dconv FFN.

    Without autograd (inference) an image taller than two bands is processed in bands of
    :data:`BAND_ROWS` rows so that the wide intermediate maps (3·D and 5.3·D channels) stay in
    the CPU cache: the FFN band by band, the attention in two passes (the channel attention
    matrix, a sum over all pixels, first; then its product with the values). Same result up to
    the order of float sums; about 3× faster on CPU at 640×480.

    Example:
        >>> block = RestormerBlock(8, heads=2).eval()
        >>> x = torch.rand(1, 8, 37, 5)
        >>> with torch.no_grad():
        ...     banded = block(x)
        >>> plain = block.forward_plain(x)
        >>> banded.shape, bool(torch.allclose(banded, plain, atol=1e-5))
        (torch.Size([1, 8, 37, 5]), True)
    """

    def __init__(self, channels: int, heads: int = 2, expansion: float = 2.66):
        super().__init__()
        if channels % heads:
            raise InputError(f"channels ({channels}) must be a multiple of heads ({heads})")
        self.heads = heads
        self.norm1 = ChannelLayerNorm(channels)
        self.qkv = nn.Conv2d(channels, channels * 3, 1, bias=False)
        self.qkv_dw = nn.Conv2d(channels * 3, channels * 3, 3, padding=1, groups=channels * 3, bias=False)
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.attn_out = nn.Conv2d(channels, channels, 1, bias=False)
        hidden = int(channels * expansion)
        self.norm2 = ChannelLayerNorm(channels)
        self.ffn_in = nn.Conv2d(channels, hidden * 2, 1, bias=False)
        self.ffn_dw = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=False)
        self.ffn_out = nn.Conv2d(hidden, channels, 1, bias=False)

    def _attention(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv_dw(self.qkv(x)).chunk(3, dim=1)
        q, k, v = (t.reshape(b, self.heads, c // self.heads, h * w) for t in (q, k, v))
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attn = torch.softmax(q @ k.transpose(-2, -1) * self.temperature, dim=-1)
        return self.attn_out((attn @ v).reshape(b, c, h, w))

    def _ffn(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = self.ffn_dw(self.ffn_in(x)).chunk(2, dim=1)
        return self.ffn_out(F.gelu(gate) * value)

    def forward_plain(self, x: torch.Tensor) -> torch.Tensor:
        """The block on the whole image at once (the training path)."""
        x = x + self._attention(self.norm1(x))
        return x + self._ffn(self.norm2(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _banded(x):
            return self.forward_plain(x)
        bands = _row_bands(x.shape[2], BAND_ROWS)
        return self._ffn_banded(self._attention_banded(x, bands), bands)

    def _attention_banded(self, x: torch.Tensor, bands: list[tuple[int, int, int, int]]) -> torch.Tensor:
        b, c, h, w = x.shape
        heads, per_head = self.heads, c // self.heads
        values = torch.empty_like(x)
        gram = x.new_zeros(b, heads, per_head, per_head)
        q_norm, k_norm = x.new_zeros(b, heads, per_head), x.new_zeros(b, heads, per_head)
        for r0, r1, a0, a1 in bands:  # pass 1: q·kᵀ and the norms of q and k, summed over all pixels
            q, k, v = _widened_band(self.norm1, self.qkv, self.qkv_dw, x, r0, r1, a0, a1).chunk(3, 1)
            q, k = q.reshape(b, heads, per_head, -1), k.reshape(b, heads, per_head, -1)
            gram += q @ k.transpose(-2, -1)
            q_norm += q.square().sum(-1)
            k_norm += k.square().sum(-1)
            values[:, :, r0:r1] = v
        # F.normalize's q/max(|q|, 1e-12) and k/max(|k|, 1e-12), applied to their product
        scale = q_norm.sqrt().clamp_min(1e-12)[..., :, None] * k_norm.sqrt().clamp_min(1e-12)[..., None, :]
        attn = torch.softmax(gram / scale * self.temperature, dim=-1)
        out = torch.empty_like(x)
        for r0, r1, _, _ in bands:  # pass 2: the attention applied to the values, band by band
            v = values[:, :, r0:r1].reshape(b, heads, per_head, -1)
            out[:, :, r0:r1] = x[:, :, r0:r1] + self.attn_out((attn @ v).reshape(b, c, r1 - r0, w))
        return out

    def _ffn_banded(self, x: torch.Tensor, bands: list[tuple[int, int, int, int]]) -> torch.Tensor:
        out = torch.empty_like(x)
        for r0, r1, a0, a1 in bands:
            gate, value = _widened_band(self.norm2, self.ffn_in, self.ffn_dw, x, r0, r1, a0, a1).chunk(2, dim=1)
            gated = (F.gelu(gate) * value).permute(0, 2, 3, 1)
            narrowed = F.linear(gated, self.ffn_out.weight.flatten(1), self.ffn_out.bias)  # the 1×1 conv, pixel-major
            out[:, :, r0:r1] = x[:, :, r0:r1] + narrowed.permute(0, 3, 1, 2)
        return out


class TextChannelAttention(nn.Module):
    """Text-queried cross-attention over one modality's tokens, turned into channel weights.

    Image tokens are ``X = Wp·F + bp`` (``D → d``) of the features averaged over ``patch``×``patch``
    patches (ViT-style patch tokens; the weights are global, so this only sets the attention's
    granularity and cost); queries come from the text tokens, keys and
    values from ``X``. The attention output (after ``Wo``) is averaged over the valid text tokens
    and L1-normalised, ``w = d·|m| / Σ|m|`` (mean weight 1); the re-weighted tokens ``w ⊙ X`` are
    projected back to ``D`` channels by ``Wb``. Computed without materialising ``X`` (see module
    docstring); the result equals the direct computation.
    """

    def __init__(self, channels: int, text_dim: int, heads: int, patch: int = 1):
        super().__init__()
        if text_dim % heads:
            raise InputError(f"text_dim ({text_dim}) must be a multiple of heads ({heads})")
        if patch < 1:
            raise InputError(f"token patch must be >= 1, got {patch}")
        self.heads = heads
        self.patch = patch
        self.to_tokens = nn.Linear(channels, text_dim)
        self.q = nn.Linear(text_dim, text_dim)
        self.k = nn.Linear(text_dim, text_dim)
        self.v = nn.Linear(text_dim, text_dim)
        self.o = nn.Linear(text_dim, text_dim)
        self.back = nn.Linear(text_dim, channels)

    def channel_weights(self, feat: torch.Tensor, text: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``(B, d)`` channel weights from features ``(B, D, H, W)`` and text ``(B, L, d)``."""
        if self.patch > 1:
            feat = F.avg_pool2d(feat, self.patch, ceil_mode=True)
        b, c, h, w = feat.shape
        d, heads = self.q.out_features, self.heads
        dh = d // heads
        flat = feat.reshape(b, c, h * w)
        q = self.q(text).reshape(b, -1, heads, dh)                                   # (B, L, h, dh)
        wk = self.k.weight.reshape(heads, dh, d)                                     # per-head Wk
        q_in_feat = torch.einsum("blhe,hed,dc->bhlc", q, wk, self.to_tokens.weight)  # q·Wk·Wp
        scores = torch.einsum("bhlc,bcn->bhln", q_in_feat, flat) / math.sqrt(dh)
        attn = torch.softmax(scores, dim=-1)
        pooled = torch.einsum("bhln,bcn->bhlc", attn, flat)                          # Σ a·F
        tokens = pooled @ self.to_tokens.weight.T + self.to_tokens.bias              # Wp·(Σ a·F) + bp
        wv = self.v.weight.reshape(heads, dh, d)
        values = torch.einsum("bhld,hed->blhe", tokens, wv) + self.v.bias.reshape(heads, dh)
        out = self.o(values.reshape(b, -1, d))                                       # (B, L, d)
        mask = valid.to(out.dtype)[..., None]
        mean = (out * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        magnitude = mean.abs()
        return d * magnitude / magnitude.sum(-1, keepdim=True).clamp_min(1e-6)

    def linear_map(self, feat: torch.Tensor, text: torch.Tensor,
                   valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The per-image map ``F ↦ M·F + o`` of :meth:`forward`: ``M = Wb·diag(w)·Wp`` ``(B, D, D)`` and
        ``o = Wb·(w ⊙ bp) + bb`` ``(B, D)``."""
        weights = self.channel_weights(feat, text, valid)                            # (B, d)
        wp, bp = self.to_tokens.weight, self.to_tokens.bias                          # (d, D), (d,)
        matrix = torch.einsum("cd,bd,de->bce", self.back.weight, weights, wp)
        offset = (weights * bp) @ self.back.weight.T + self.back.bias
        return matrix, offset

    @staticmethod
    def apply_map(matrix: torch.Tensor, offset: torch.Tensor, feat: torch.Tensor) -> torch.Tensor:
        """``M·F + o`` at every pixel of ``feat`` ``(B, D, H, W)``."""
        b, c, h, w = feat.shape
        return (torch.bmm(matrix, feat.reshape(b, c, h * w)) + offset[..., None]).reshape(b, -1, h, w)

    def forward(self, feat: torch.Tensor, text: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return self.apply_map(*self.linear_map(feat, text, valid), feat)


class TextGuidedFusionBlock(nn.Module):
    """One fusion block: text-guided channel re-weighting of both streams, injected residually."""

    def __init__(self, channels: int, text_dim: int, heads: int, patch: int = 1):
        super().__init__()
        self.attend_ir = TextChannelAttention(channels, text_dim, heads, patch)
        self.attend_vis = TextChannelAttention(channels, text_dim, heads, patch)
        self.inject_ir = nn.Sequential(nn.Conv2d(channels * 2, channels, 1), nn.PReLU(channels))
        self.inject_vis = nn.Sequential(nn.Conv2d(channels * 2, channels, 1), nn.PReLU(channels))

    def forward(self, ir: torch.Tensor, vis: torch.Tensor, text: torch.Tensor,
                valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both streams re-weighted and injected; without autograd band by band after the channel
        weights (sums over all pixels) are known (as :class:`RestormerBlock`; the same values)."""
        streams = ((ir, self.attend_ir, self.inject_ir), (vis, self.attend_vis, self.inject_vis))
        if not _banded(ir):
            return tuple(f + inject(torch.cat([f, attend(f, text, valid)], 1)) for f, attend, inject in streams)
        outs = []
        for feat, attend, inject in streams:
            matrix, offset = attend.linear_map(feat, text, valid)
            out = torch.empty_like(feat)
            for r0 in range(0, feat.shape[2], BAND_ROWS):
                band = feat[:, :, r0:r0 + BAND_ROWS]
                guided = attend.apply_map(matrix, offset, band)
                out[:, :, r0:r0 + BAND_ROWS] = band + inject(torch.cat([band, guided], 1))
            outs.append(out)
        return outs[0], outs[1]


class _Encoder(nn.Module):
    def __init__(self, cfg: IVTFuseConfig):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, cfg.channels, 3, padding=1, padding_mode="replicate"),
                                  nn.PReLU(cfg.channels))
        self.fsa = FrequencyStripAttention(cfg.channels, cfg.strip) if cfg.use_fsa else nn.Identity()
        self.hpa = HybridPoolingAttention(cfg.channels, cfg.groups) if cfg.use_hpa else nn.Identity()
        self.block = RestormerBlock(cfg.channels, cfg.restormer_heads, cfg.ffn_expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(self.hpa(self.fsa(self.stem(x))))


class IVTFuse(nn.Module):
    """The IVTFuse network: ``(ir, vis_y, text, valid) → fused luminance`` in ``[0, 1]``.

    Args (of :meth:`forward`):
        ir, vis: ``(B, 1, H, W)`` infrared and visible luminance in ``[0, 1]``.
        text: ``(B, L, 384)`` caption token embeddings (ignored when ``use_text`` is False).
        valid: ``(B, L)`` bool, False at padding tokens.

    Example:
        >>> net = IVTFuse(IVTFuseConfig(channels=8, text_dim=16, text_hidden=16, heads=2, blocks=1,
        ...                             decoder_blocks=1))
        >>> x = torch.rand(1, 1, 12, 10)
        >>> net(x, x, torch.zeros(1, 3, 384), torch.ones(1, 3, dtype=torch.bool)).shape
        torch.Size([1, 1, 12, 10])
    """

    def __init__(self, cfg: IVTFuseConfig | None = None):
        super().__init__()
        cfg = cfg or IVTFuseConfig()
        self.cfg = cfg
        self.encode_ir = _Encoder(cfg)
        self.encode_vis = _Encoder(cfg)
        if cfg.use_text:
            self.text_proj = nn.Sequential(nn.LayerNorm(TEXT_EMBED_DIM), nn.Linear(TEXT_EMBED_DIM, cfg.text_hidden),
                                           nn.GELU(), nn.Linear(cfg.text_hidden, cfg.text_dim))
            # Text tokens start at the scale of the learned queries of the no-text variant: default-scale
            # tokens give large attention scores and extreme channel weights, and training stalls.
            nn.init.normal_(self.text_proj[-1].weight, std=0.02 / math.sqrt(cfg.text_hidden))
            nn.init.zeros_(self.text_proj[-1].bias)
        else:
            self.queries = nn.Parameter(torch.randn(cfg.learned_queries, cfg.text_dim) * 0.02)
        self.fusion = nn.ModuleList(TextGuidedFusionBlock(cfg.channels, cfg.text_dim, cfg.heads, cfg.token_patch)
                                    for _ in range(cfg.blocks))
        self.merge = nn.Sequential(nn.Conv2d(cfg.channels * 2, cfg.channels, 1), nn.PReLU(cfg.channels))
        self.decoder = nn.Sequential(*[RestormerBlock(cfg.channels, cfg.restormer_heads, cfg.ffn_expansion)
                                       for _ in range(cfg.decoder_blocks)])
        self.head = nn.Conv2d(cfg.channels, 1, 1)

    def text_tokens(self, text: torch.Tensor, valid: torch.Tensor, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected text tokens ``(B, L, d)`` and their validity (learned queries without text)."""
        if not self.cfg.use_text:
            tokens = self.queries[None].expand(batch, -1, -1)
            return tokens, torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return self.text_proj(text), valid

    def forward(self, ir: torch.Tensor, vis: torch.Tensor, text: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        f_ir, f_vis = self.encode_ir(ir), self.encode_vis(vis)
        tokens, valid = self.text_tokens(text, valid, ir.shape[0])
        for block in self.fusion:
            f_ir, f_vis = block(f_ir, f_vis, tokens, valid)
        fused = self.decoder(self.merge(torch.cat([f_ir, f_vis], 1)))
        return torch.sigmoid(self.head(fused))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters.

    Example:
        >>> count_parameters(nn.Linear(3, 2))
        8
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def save_weights(path: str | Path, model: IVTFuse, *, captions: Mapping[str, np.ndarray] | None = None,
                 default_caption: str = "", training: Mapping[str, Any] | None = None) -> Path:
    """Write a self-contained fp16 weight file (config, state, caption embeddings, training record).

    The file is written atomically; tensors are stored in half precision (the network runs in fp32).
    """
    from ..io import atomic_write

    payload = {
        "format": WEIGHTS_FORMAT,
        "config": asdict(model.cfg),
        "state": {k: v.detach().to("cpu", torch.float16) for k, v in model.state_dict().items()},
        "captions": {k: torch.from_numpy(np.asarray(v, np.float32)).half() for k, v in (captions or {}).items()},
        "default_caption": default_caption,
        "training": dict(training or {}),
    }
    written = atomic_write(path, lambda tmp: torch.save(payload, tmp))
    written.chmod(0o644)  # the temporary file was private; weight files are package data
    return written


@functools.lru_cache(maxsize=8)
def _load_payload(path: str, mtime: float) -> dict[str, Any]:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != WEIGHTS_FORMAT:
        raise InputError(f"'{path}' is not an IVTFuse weight file ({WEIGHTS_FORMAT})")
    return payload


def load_weights(path: str | Path) -> tuple[IVTFuse, dict[str, Any]]:
    """Load a weight file: the network (fp32, eval mode) and the rest of the payload.

    Raises:
        InputError: the file is missing or is not an IVTFuse weight file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"IVTFuse weights not found at '{path}' (train them: fuseagent train ivtfuse)")
    payload = _load_payload(str(path), path.stat().st_mtime)
    model = IVTFuse(IVTFuseConfig.from_dict(payload["config"]))
    model.load_state_dict({k: v.float() for k, v in payload["state"].items()})
    model.eval()
    return model, payload


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``length`` with at least ``overlap``.

    Example:
        >>> tile_starts(1000, 512, 64)
        [0, 244, 488]
        >>> tile_starts(300, 512, 64)
        [0]
    """
    if length <= tile:
        return [0]
    step = tile - overlap
    count = math.ceil((length - overlap) / step)
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def _blend_window(h: int, w: int, overlap: int) -> np.ndarray:
    ramp = lambda n: np.minimum(1.0, (np.arange(n) + 0.5) / max(overlap, 1))  # noqa: E731
    wy = np.minimum(ramp(h), ramp(h)[::-1])
    wx = np.minimum(ramp(w), ramp(w)[::-1])
    return np.outer(wy, wx).astype(np.float32)


def fuse_tiled(model: IVTFuse, ir: np.ndarray, vis: np.ndarray, text: np.ndarray | None, *,
               tile: int = 768, overlap: int = 48, device: str | torch.device = "cpu") -> np.ndarray:
    """Fuse two luminance planes of any size, tile by tile when larger than ``tile``.

    Tiles overlap by at least ``overlap`` pixels and are blended with linear ramps, so memory stays
    bounded by one tile whatever the image size.

    Args:
        model: the network.
        ir, vis: ``(H, W)`` float32 planes in ``[0, 1]`` of the same size.
        text: ``(L, 384)`` caption token embeddings (None or empty: one zero token).
        tile: largest tile side; 0 disables tiling.
        overlap: minimum overlap of neighbouring tiles.
        device: torch device to run on.

    Returns:
        The fused ``(H, W)`` float32 plane.

    Example:
        >>> net = IVTFuse(IVTFuseConfig(channels=8, text_dim=16, text_hidden=16, heads=2, blocks=1,
        ...                             decoder_blocks=1))
        >>> a = np.random.default_rng(0).random((40, 30)).astype(np.float32)
        >>> fuse_tiled(net, a, a, None, tile=24, overlap=8).shape
        (40, 30)
    """
    if ir.shape != vis.shape or ir.ndim != 2:
        raise InputError(f"fuse_tiled needs two planes of one size, got {ir.shape} and {vis.shape}")
    if tile and tile <= 2 * overlap:
        raise InputError(f"tile ({tile}) must exceed twice the overlap ({overlap})")
    device = torch.device(device)
    if text is None or len(text) == 0:
        text = np.zeros((1, TEXT_EMBED_DIM), np.float32)
    text_t = torch.from_numpy(np.asarray(text, np.float32))[None].to(device)
    valid = torch.ones(text_t.shape[:2], dtype=torch.bool, device=device)
    h, w = ir.shape
    size = tile if tile else max(h, w)
    ys, xs = tile_starts(h, size, overlap), tile_starts(w, size, overlap)
    out = np.zeros((h, w), np.float32)
    weight = np.zeros((h, w), np.float32)
    model = model.to(device)
    with torch.inference_mode():
        for y in ys:
            for x in xs:
                th, tw = min(size, h), min(size, w)
                a = torch.from_numpy(np.ascontiguousarray(ir[y:y + th, x:x + tw]))[None, None].to(device)
                b = torch.from_numpy(np.ascontiguousarray(vis[y:y + th, x:x + tw]))[None, None].to(device)
                fused = model(a, b, text_t, valid)[0, 0].float().cpu().numpy()
                if len(ys) * len(xs) == 1:
                    return fused
                win = _blend_window(th, tw, overlap)
                out[y:y + th, x:x + tw] += fused * win
                weight[y:y + th, x:x + tw] += win
    return out / np.maximum(weight, 1e-8)
