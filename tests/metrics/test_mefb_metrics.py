"""MEFB information / feature metrics (fuseagent.metrics.mefb): smoke, errors, reference values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fuseagent.errors import InputError
from fuseagent.metrics import create_metric, list_metrics, metric_card
from fuseagent.metrics import mefb

MEFB_NAMES = ["fmi_mefb", "nmi_mefb", "qncie_mefb", "te_mefb", "qp_mefb", "qc_mefb", "qw_mefb", "qy_mefb",
              "vif_mefb"]
ALL_NAMES = MEFB_NAMES + ["cc", "scd"]
PAIR_ONLY = ["qp_mefb", "qc_mefb", "qw_mefb", "qy_mefb", "scd"]


@pytest.fixture(scope="module")
def triple() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A dark and a bright exposure of a smooth textured scene and their average (96×96 RGB)."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:96, 0:96] / 96.0
    scene = 0.5 + 0.25 * np.sin(8 * xx) * np.cos(6 * yy) + 0.05 * rng.standard_normal((96, 96))
    scene = np.clip(np.stack([scene, scene ** 1.1, scene ** 0.9], axis=2), 0, 1)
    dark = np.clip(scene * 0.4, 0, 1).astype(np.float32)
    bright = np.clip(scene * 1.6, 0, 1).astype(np.float32)
    return dark, bright, ((dark + bright) / 2).astype(np.float32)


class TestRegistration:
    def test_all_registered_with_cards(self) -> None:
        names = list_metrics()
        for name in ALL_NAMES:
            assert name in names
            card = metric_card(name)
            assert card.mode == "fusion" and card.lower_better is False
        assert set(MEFB_NAMES) <= set(list_metrics(variant="mefb"))


class TestSmoke:
    @pytest.mark.parametrize("name", ALL_NAMES)
    def test_finite_value_on_colour_pair(self, name: str, triple) -> None:
        dark, bright, fused = triple
        value = create_metric(name)([dark, bright], fused)
        assert isinstance(value, float) and math.isfinite(value)

    @pytest.mark.parametrize("name", ALL_NAMES)
    def test_grey_inputs(self, name: str, triple) -> None:
        dark, bright, fused = (im[:, :, 0] for im in triple)
        assert math.isfinite(create_metric(name)([dark, bright], fused))

    @pytest.mark.parametrize("name", ALL_NAMES)
    def test_constant_images_give_defined_values(self, name: str) -> None:
        for level in (0.0, 0.5):
            flat = np.full((96, 96), level, np.float32)
            value = create_metric(name)([flat, flat], flat)
            assert math.isfinite(value), (name, level)

    @pytest.mark.parametrize("name", ["fmi_mefb", "nmi_mefb", "qncie_mefb", "te_mefb", "cc"])
    def test_more_than_two_sources(self, name: str, triple) -> None:
        dark, bright, fused = triple
        assert math.isfinite(create_metric(name)([dark, bright, fused], fused))


class TestExceptions:
    @pytest.mark.parametrize("name", ALL_NAMES)
    def test_one_source(self, name: str, triple) -> None:
        with pytest.raises(InputError):
            create_metric(name)([triple[0]], triple[2])

    @pytest.mark.parametrize("name", ALL_NAMES)
    def test_mismatched_sizes(self, name: str, triple) -> None:
        dark, bright, fused = triple
        with pytest.raises(InputError):
            create_metric(name)([dark, bright], fused[:80, :90])

    @pytest.mark.parametrize("name", PAIR_ONLY)
    def test_pair_only_metrics_reject_three_sources(self, name: str, triple) -> None:
        with pytest.raises(InputError):
            create_metric(name)(list(triple), triple[2])

    @pytest.mark.parametrize("name", ["vif_mefb", "qw_mefb"])
    def test_too_small_for_the_window(self, name: str) -> None:
        tiny = np.random.default_rng(0).random((8, 8)).astype(np.float32)
        with pytest.raises(InputError):
            create_metric(name)([tiny, tiny], tiny)

    @pytest.mark.parametrize("name", ["fmi_mefb", "nmi_mefb", "qncie_mefb", "te_mefb", "qp_mefb", "qc_mefb",
                                      "qy_mefb", "cc", "scd"])
    def test_tiny_images_are_defined(self, name: str) -> None:
        rng = np.random.default_rng(1)
        a, b = rng.random((2, 8, 8)).astype(np.float32)
        assert math.isfinite(create_metric(name)([a, b], (a + b) / 2))

    def test_sources_must_be_a_sequence(self, triple) -> None:
        with pytest.raises(InputError):
            create_metric("nmi_mefb")(np.stack(triple[:2]), triple[2])


class TestReferenceValues:
    def test_perfect_copy(self, triple) -> None:
        x = triple[1]
        assert create_metric("fmi_mefb")([x, x], x) == 1.0
        assert create_metric("nmi_mefb")([x, x], x) == pytest.approx(2.0, abs=1e-12)
        uniform = (np.arange(256).reshape(16, 16) / 255).astype(np.float32)
        assert create_metric("qncie_mefb")([uniform, uniform], uniform) == pytest.approx(1.0, abs=1e-9)
        # NCC(x, x) = H(x) / 8 bits, so a copy of a lower-entropy image scores below 1
        assert create_metric("qncie_mefb")([x, x], x) < 1.0
        for name in ("qc_mefb", "qy_mefb", "qw_mefb", "vif_mefb", "cc"):
            assert create_metric(name)([x, x], x) == pytest.approx(1.0, abs=1e-6), name

    def test_fusion_beats_a_blank_result(self, triple) -> None:
        dark, bright, fused = triple
        blank = np.full_like(fused, 0.5)
        for name in ("fmi_mefb", "nmi_mefb", "qw_mefb", "vif_mefb", "qy_mefb"):
            metric = create_metric(name)
            assert metric([dark, bright], fused) > metric([dark, bright], blank), name

    def test_sobel_edges_matches_matlab_on_a_step(self) -> None:
        step = np.zeros((8, 16))
        step[:, 8:] = 255
        edges = mefb.sobel_edges(step)
        # both columns beside the step have the same gradient; MATLAB's thinning keeps the right one
        assert edges[:, 8].all() and edges.sum() == 8
        # with edges in 2 of 8 columns the mean-based cutoff equals the edge strength: no edges
        assert not mefb.sobel_edges(step[:, 4:12]).any()

    def test_correlation_metrics(self) -> None:
        x = np.tile(np.linspace(0, 1, 16, dtype=np.float32), (16, 1))
        assert mefb.correlation_coefficient([x, 1 - x], x) == pytest.approx(0.0, abs=1e-12)
        # F = A + B exactly: F - B = A and F - A = B, so SCD = 2
        rng = np.random.default_rng(3)
        a, b = (rng.integers(0, 128, (16, 16)) / 255.0 for _ in range(2))
        assert mefb.scd([a, b], a + b) == pytest.approx(2.0, abs=1e-9)

    def test_matlab_rgb2gray_rounds_like_uint8(self) -> None:
        pixel = np.array([[[10.0, 200.0, 30.0]]])
        assert mefb.matlab_rgb2gray(pixel)[0, 0] == round(10 * 0.298936021293775 + 200 * 0.587043074451121
                                                          + 30 * 0.114020904255103)


# Published MEFB MATLAB values for scene 'Chair', method 'DEM' (reference_metrics.csv).
_CHAIR_DEM = {"FMI": 0.88592, "NMI": 0.44319, "Qncie": 0.80787, "TE": 1196.9, "Qp": 0.50359, "Qc": 0.51947,
              "Qw": 0.81749, "Qy": 0.64899, "VIF": 0.74356}
_CSV_TO_METRIC = {"FMI": "fmi_mefb", "NMI": "nmi_mefb", "Qncie": "qncie_mefb", "TE": "te_mefb", "Qp": "qp_mefb",
                  "Qc": "qc_mefb", "Qw": "qw_mefb", "Qy": "qy_mefb", "VIF": "vif_mefb"}


class TestMatlabParity:
    def test_chair_dem_matches_published_values(self, shared_data) -> None:
        from fuseagent.metrics.calibration import load_case

        sources, fused = load_case("mefb", "Chair", "DEM", shared_data)
        for csv_name, published in _CHAIR_DEM.items():
            ours = create_metric(_CSV_TO_METRIC[csv_name])(sources, fused)
            assert ours == pytest.approx(published, rel=1e-3), csv_name


#: MEFB CSV metrics reproduced by mefb.py and mefssim.py
MINE = ["FMI", "NMI", "Qncie", "TE", "Qp", "Qc", "Qw", "Qy", "VIF", "MEF_SSIM"]
#: checked on the stratified subset; Qp (phase congruency, ~70% of the time) is checked on Chair/DEM above
SUBSET = [name for name in MINE if name != "Qp"]


@pytest.fixture(scope="module")
def mefb_subset(shared_data):
    """Every method once, on MEFB's five smallest scenes (under a minute on one core)."""
    from fuseagent.metrics.calibration import load_reference, recompute, smallest_images, stratified_subset

    images = smallest_images("mefb", 5, shared_data)
    rows = stratified_subset(load_reference("mefb", shared_data), 1, images=images)
    return recompute("mefb", shared_data, rows=rows, metrics=SUBSET)


class TestCalibrationRows:
    def test_rows_registered(self) -> None:
        from fuseagent.metrics.calibration import CALIBRATION

        for name in MINE:
            spec = CALIBRATION[("mefb", name)]
            assert metric_card(spec.metric).mode == "fusion"
            assert spec.note

    def test_subset_meets_each_target(self, mefb_subset) -> None:
        from fuseagent.metrics.calibration import agreement_table

        table = agreement_table(mefb_subset)
        assert {row.metric for row in table} == set(SUBSET)
        assert all(row.compared == 21 for row in table)
        failures = [f"{r.metric}: {r.within_tolerance:.3f} < {r.min_fraction} (worst {r.worst_error:.2e} at {r.worst_case})"
                    for r in table if not r.passes]
        assert not failures, "\n".join(failures)

    def test_exact_metrics_match_to_csv_precision(self, mefb_subset) -> None:
        exact = [c for c in mefb_subset if c.reference.metric not in ("Qc", "Qy")]
        # the CSV keeps 5 significant digits; VIF's 1e-10 variance cut-offs leave a few 1e-4 residues
        assert max(c.relative_error for c in exact) < 1e-3
