"""``fusion.regionlp``: region-map Laplacian pyramid fusion of infrared–visible pairs.

One class: smoke (grey, colour, odd and tiny sizes, input order), exceptions (cardinality: exactly two
inputs; parameter checks), reference values on a tiny synthetic pair (computed by this
implementation), properties (IR target contrast kept better than by averaging; no boost = identity
on equal sources) and one real TNO pair against ``fusion.gff``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fuseagent.errors import InputError
from fuseagent.io import read_image, rgb_to_ycbcr
from fuseagent.metrics import create_metric
from fuseagent.tools import create_tool, list_tools, tool_card
from fuseagent.tools.fusion import RegionPyramidFusion, region_decision, region_pyramid_fuse
from fuseagent.tools.fusion.region import thermal_targets


def synthetic_pair(h: int = 48, w: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ir, vis, target)``: textured visible scene, infrared with a warm square target."""
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    vis = (0.45 + 0.2 * np.sin(xx / 2.0) * np.cos(yy / 3.0)).astype(np.float32)
    target = np.zeros((h, w), bool)
    target[h // 4: h // 2, w // 2: w // 2 + w // 4] = True
    ir = np.where(target, 0.9, 0.25).astype(np.float32)
    return ir, vis, target


class TestRegionPyramidFusion:
    def test_registered_card(self) -> None:
        assert "fusion.regionlp" in list_tools("fusion.*")
        card = tool_card("fusion.regionlp")
        assert card.fusion_tasks == ("ivif",)
        assert card.colour == "native"
        assert card.params == {"window": 0.25, "levels": 4, "fine_gain": 1.2, "mid_gain": 1.1, "target_contrast": 0.06}
        assert RegionPyramidFusion.max_inputs == 2

    def test_grey_pair_gives_grey_float_image(self) -> None:
        ir, vis, _ = synthetic_pair()
        result = create_tool("fusion.regionlp")([ir, vis])
        assert result.image.shape == (48, 64)
        assert result.image.dtype == np.float32
        assert 0.0 <= result.image.min() and result.image.max() <= 1.0
        assert result.info == {"levels": 3}  # 48 rows: the coarsest level stays >= 8 pixels

    def test_colour_visible_keeps_its_chroma_in_either_order(self) -> None:
        ir, vis, _ = synthetic_pair()
        colour = np.stack([vis, 0.8 * vis, 0.5 + 0.3 * vis], axis=2).astype(np.float32)
        tool = create_tool("fusion.regionlp")
        first = tool([ir, colour]).image
        second = tool([colour, ir]).image
        assert first.shape == (48, 64, 3)
        np.testing.assert_array_equal(first, second)  # the colour source is the visible one
        inside_gamut = ((first > 0.01) & (first < 0.99)).all(axis=2)  # no RGB clipping changed the chroma
        assert inside_gamut.mean() > 0.5
        chroma_out = rgb_to_ycbcr(first)[..., 1:][inside_gamut]
        chroma_vis = rgb_to_ycbcr(colour)[..., 1:][inside_gamut]
        assert np.abs(chroma_out - chroma_vis).max() < 1e-3

    @pytest.mark.parametrize("shape", [(37, 53), (9, 7), (2, 3), (257, 129)])
    def test_any_size(self, shape: tuple[int, int]) -> None:
        rng = np.random.default_rng(0)
        ir, vis = rng.random(shape).astype(np.float32), rng.random(shape).astype(np.float32)
        out = create_tool("fusion.regionlp")([ir, vis]).image
        assert out.shape == shape
        assert np.isfinite(out).all()

    @pytest.mark.parametrize("shape", [(20, 20), (40, 40), (9, 7), (300, 200)])
    def test_constant_sources_stay_constant(self, shape: tuple[int, int]) -> None:
        # at every pyramid depth (1 to 4 levels here) only detail is boosted, never the mean
        ir, vis = np.full(shape, 0.3, np.float32), np.full(shape, 0.6, np.float32)
        out = create_tool("fusion.regionlp")([ir, vis]).image
        np.testing.assert_allclose(out, 0.6, atol=1e-5)  # equal activity everywhere: ties go to visible

    def test_equal_sources_without_boost_are_returned(self) -> None:
        x = np.random.default_rng(3).random((33, 45)).astype(np.float32)
        out = create_tool("fusion.regionlp", fine_gain=1.0, mid_gain=1.0)([x, x]).image
        assert np.abs(out - x).max() < 1e-4

    @pytest.mark.parametrize("count", [1, 3])
    def test_exactly_two_inputs(self, count: int) -> None:
        images = [np.zeros((16, 16), np.float32)] * count
        with pytest.raises(InputError, match="fusion.regionlp"):
            create_tool("fusion.regionlp")(images)

    @pytest.mark.parametrize("params", [{"window": 0.0}, {"window": 1.5}, {"levels": 0}, {"levels": 2.5},
                                        {"fine_gain": -0.1}, {"mid_gain": "big"}])
    def test_bad_parameters(self, params: dict) -> None:
        ir, vis, _ = synthetic_pair()
        with pytest.raises(InputError, match="fusion.regionlp"):
            create_tool("fusion.regionlp", **params)([ir, vis])

    def test_unknown_parameter(self) -> None:
        with pytest.raises(InputError):
            create_tool("fusion.regionlp", sigma=2.0)

    def test_reference_values(self) -> None:
        ir, vis, _ = synthetic_pair()
        out = region_pyramid_fuse(vis, ir)
        decision = region_decision(vis, ir)
        assert float(decision.mean()) == pytest.approx(REFERENCE["decision_mean"], abs=1e-6)
        assert float(out.mean()) == pytest.approx(REFERENCE["mean"], abs=1e-4)
        assert float(out.std()) == pytest.approx(REFERENCE["std"], abs=1e-4)
        assert [round(float(out[r, c]), 4) for r, c in ((5, 5), (18, 40), (40, 60))] == \
            pytest.approx(REFERENCE["pixels"], abs=1e-4)

    def test_keeps_infrared_target_contrast_better_than_averaging(self) -> None:
        ir, vis, target = synthetic_pair()
        fused = region_pyramid_fuse(vis, ir)
        average = 0.5 * (ir + vis)

        def target_contrast(image: np.ndarray) -> float:
            return float(image[target].mean() - image[~target].mean())

        assert target_contrast(fused) > 1.3 * target_contrast(average)
        assert target_contrast(fused) > 0.6 * target_contrast(ir)

    def test_tno_pair_more_contrast_than_gff_with_similar_fidelity(self, shared_data: Path) -> None:
        tno = shared_data / "ivif" / "tno"
        ir = read_image(tno / "ir" / "01.png", mode="gray")
        vis = read_image(tno / "vis" / "01.png", mode="gray")
        ours = create_tool("fusion.regionlp")([ir, vis]).image
        gff = create_tool("fusion.gff")([vis, ir]).image
        sd, qabf, ag = create_metric("sd"), create_metric("qabf"), create_metric("ag")
        assert sd([vis, ir], ours) > sd([vis, ir], gff)
        assert ag([vis, ir], ours) > ag([vis, ir], gff)
        assert qabf([vis, ir], ours) > 0.9 * qabf([vis, ir], gff)


#: values of this implementation on ``synthetic_pair()`` (regression reference)
REFERENCE: dict = {"decision_mean": 0.236328125, "mean": 0.443011, "std": 0.171337, "pixels": [0.4373, 0.9042, 0.2934]}


class TestThermalTargets:
    """A small warm object inside a region that the visible image wins is kept by the target term."""

    @staticmethod
    def scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        yy, xx = np.mgrid[:160, :192].astype(np.float32)
        vis = (0.45 + 0.25 * np.sin(xx * 1.3) * np.cos(yy * 0.9)).astype(np.float32)  # texture everywhere
        target = np.zeros((160, 192), bool)
        target[76:84, 92:100] = True
        ir = np.where(target, 0.9, 0.3).astype(np.float32)
        return ir, vis, target

    def test_map_marks_the_object_only(self) -> None:
        ir, vis, _ = self.scene()
        m = thermal_targets(ir, vis)
        assert float(m[80, 96]) == pytest.approx(0.9364, abs=1e-3)
        assert float(m[:40].max()) == 0.0 and float(m[:, :60].max()) == 0.0

    def test_object_survives_fusion_only_with_the_target_term(self) -> None:
        ir, vis, target = self.scene()
        assert region_decision(vis, ir).max() == 0.0  # the visible image wins the whole frame
        with_targets = create_tool("fusion.regionlp")([ir, vis]).image
        without = create_tool("fusion.regionlp", target_contrast=-1)([ir, vis]).image
        assert with_targets[target].mean() > 0.75
        assert without[target].mean() < 0.5

    def test_bad_contrast(self) -> None:
        ir, vis, _ = self.scene()
        with pytest.raises(InputError, match="target_contrast"):
            create_tool("fusion.regionlp", target_contrast=2)([ir, vis])
