"""No-reference IQA: BRISQUE, NIQE, PIQE, MATLAB-style resize, learned-metric slot.

Reference values were computed on the same 8-bit images with peer implementations run in a separate
virtual environment (never a dependency of fuseagent):

* NIQE — BasicSR 1.4.2 ``basicsr.metrics.niqe.niqe`` (which reports 5.7295763 vs MATLAB R2021a's
  5.72957338 on its ``baboon.png``). BasicSR resizes the second scale in float32; we do it in double
  as MATLAB does, so the two agree to ~3e-4 relative on noisy images.
* PIQE — ``pypiqe`` 1.2 (a port of MATLAB's ``piqe`` tested against it); agreement ~1e-12.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from fuseagent.errors import InputError, ToolUnavailableError, UnknownNameError
from fuseagent.metrics import create_metric, list_metrics, metric_card
from fuseagent.metrics import nr
from fuseagent.metrics.base import METRICS


@pytest.fixture(scope="module")
def camera_set(camera: np.ndarray) -> dict[str, np.ndarray]:
    """camera (8-bit), with N(0, 12.75) noise (rng seed 0, first draw) and Gaussian blur σ = 2."""
    grey = np.round(camera * 255).astype(np.uint8)
    rng = np.random.default_rng(0)
    noisy = np.clip(grey + rng.normal(0, 12.75, grey.shape), 0, 255).round().astype(np.uint8)
    blur = cv2.GaussianBlur(grey, (0, 0), 2.0)
    return {name: im.astype(np.float32) / 255 for name, im in
            (("clean", grey), ("noisy", noisy), ("blur", blur))}


@pytest.fixture(scope="module")
def astronaut_noisy(astronaut: np.ndarray) -> np.ndarray:
    """astronaut in MATLAB rgb2gray 8-bit, noise from the second N(0, 12.75) draw of seed 0."""
    grey = nr.gray_255(astronaut).astype(np.uint8)
    rng = np.random.default_rng(0)
    rng.normal(0, 12.75, (512, 512))
    noisy = np.clip(grey + rng.normal(0, 12.75, grey.shape), 0, 255).round().astype(np.uint8)
    return noisy.astype(np.float32) / 255


class TestGray255:
    def test_rgb_uses_matlab_weights_and_rounds(self) -> None:
        pixel = np.array([[[1.0, 0.0, 0.0]]], np.float32).repeat(2, 0).repeat(2, 1)
        assert nr.gray_255(pixel)[0, 0] == 76.0  # round(0.298936 * 255)
        assert nr.gray_255(pixel, quantize=False)[0, 0] == pytest.approx(76.2287, abs=1e-4)

    def test_rejects_bad_shape(self) -> None:
        with pytest.raises(InputError):
            nr.gray_255(np.zeros((4, 4, 2), np.float32))


class TestImresizeMatlab:
    def test_linear_ramp_interior_is_exact(self) -> None:
        ramp = np.tile(np.arange(1, 33, dtype=np.float64), (4, 1))
        half = nr.imresize_matlab(ramp, 0.5)
        # output pixel i (1-based) is centred on input coordinate 2i - 0.5
        assert half.shape == (2, 16)
        np.testing.assert_allclose(half[0, 3:13], 2 * np.arange(4, 14) - 0.5, atol=1e-12)

    @pytest.mark.parametrize("shape", [(480, 640), (37, 53), (3, 5)])
    def test_half_fast_path_equals_matrix_form(self, shape: tuple[int, int]) -> None:
        image = np.random.default_rng(0).random(shape) * 255
        rows = nr._resize_matrix(shape[0], (shape[0] + 1) // 2, 0.5)
        cols = nr._resize_matrix(shape[1], (shape[1] + 1) // 2, 0.5)
        np.testing.assert_allclose(nr.imresize_matlab(image, 0.5), rows @ image @ cols.T, atol=1e-10)

    def test_constant_and_size(self) -> None:
        out = nr.imresize_matlab(np.full((9, 7), 3.0), 0.5)
        assert out.shape == (5, 4)
        np.testing.assert_allclose(out, 3.0, atol=1e-12)

    def test_upscale_keeps_samples_smooth(self) -> None:
        out = nr.imresize_matlab(np.tile(np.arange(8.0), (8, 1)), 2.0)
        assert out.shape == (16, 16)
        assert np.all(np.diff(out[0, 2:-2]) > 0)

    def test_rejects_bad_arguments(self) -> None:
        with pytest.raises(InputError):
            nr.imresize_matlab(np.zeros((4, 4, 3)), 0.5)
        with pytest.raises(InputError):
            nr.imresize_matlab(np.zeros((4, 4)), 0.0)


class TestBrisque:
    def test_registered_card(self) -> None:
        card = metric_card("brisque")
        assert card.mode == "nr" and card.lower_better and "brisque" in list_metrics(mode="nr")

    def test_feature_layout(self, camera_set: dict[str, np.ndarray]) -> None:
        features = nr.brisque_features(camera_set["clean"])
        assert features.shape == (36,)
        shapes = features[[0, 2, 6, 10, 14, 18, 20, 24, 28, 32]]
        assert np.all((shapes >= 0.2) & (shapes <= 10))          # α on the reference grid
        assert np.all(features[[4, 5, 8, 9, 12, 13, 16, 17]] > 0)  # one-sided variances

    def test_features_match_opencv_contrib_with_its_choices(self, camera_set: dict[str, np.ndarray],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
        # cv2.quality.QualityBRISQUE_computeFeatures (opencv-contrib-python-headless 5.0.0.93, run
        # apart) on the 8-bit camera image. OpenCV filters with reflect-101 borders and halves with
        # a plain cubic resize; fuseagent follows the MATLAB release (zero padding, antialiased
        # imresize). With OpenCV's two choices swapped in, the feature code must agree with it.
        opencv = np.array([
            1.564, 0.28375277, 0.553, -0.00977302, 0.1190932, 0.10766062, 0.553, 0.01859625, 0.09985866,
            0.12132537, 0.552, -0.04623349, 0.1389016, 0.0854333, 0.55, -0.0481105, 0.1397175, 0.08408622,
            1.49, 0.31193274, 0.557, -0.01496752, 0.14819594, 0.12891033, 0.545, -0.0246658, 0.15927339,
            0.12669048, 0.553, -0.0357477, 0.1577161, 0.11223706, 0.55, -0.0492362, 0.16885136, 0.1057176])
        ours = nr.brisque_features(camera_set["clean"])
        assert np.abs(ours[18:] - opencv[18:]).max() > 0.05  # the MATLAB choices do matter
        original_mscn = nr._mscn
        monkeypatch.setattr(nr, "_mscn", lambda image, border: original_mscn(image, cv2.BORDER_REFLECT_101))
        monkeypatch.setattr(nr, "imresize_matlab", lambda image, scale: cv2.resize(
            image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC))
        np.testing.assert_allclose(nr.brisque_features(camera_set["clean"]), opencv, atol=5e-3)

    def test_numpy_svr_matches_libsvm(self, camera_set: dict[str, np.ndarray],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
        scipy = pytest.importorskip("scipy")
        monkeypatch.setattr(scipy, "ndarray", np.ndarray, raising=False)  # libsvm's scipy<1.8 check
        svmutil = pytest.importorskip("libsvm.svmutil")
        model = svmutil.svm_load_model(str(nr._brisque_model_dir() / "svm.txt"))
        svr = nr._brisque_svr()
        for image in camera_set.values():
            features = nr.brisque_features(image)
            scaled = -1 + 2 * (features - svr.feature_min) / (svr.feature_max - svr.feature_min)
            nodes, _ = svmutil.gen_svm_nodearray([float(v) for v in scaled])
            expected = svmutil.libsvm.svm_predict(model, nodes)
            assert nr.brisque(image) == pytest.approx(expected, abs=1e-6)

    def test_distortions_raise_the_score(self, camera_set: dict[str, np.ndarray]) -> None:
        clean, noisy, blur = (nr.brisque(camera_set[k]) for k in ("clean", "noisy", "blur"))
        assert noisy > clean + 30 and blur > clean + 30
        assert 40 < noisy < 100 and 40 < blur < 100

    def test_rgb_equals_its_grey(self, astronaut: np.ndarray) -> None:
        grey = nr.gray_255(astronaut).astype(np.float32) / 255
        assert nr.brisque(astronaut) == pytest.approx(nr.brisque(grey), abs=1e-9)

    def test_too_small(self) -> None:
        with pytest.raises(InputError, match="too small"):
            nr.brisque(np.random.default_rng(0).random((8, 40)).astype(np.float32))


class TestNiqe:
    @pytest.mark.parametrize(("key", "expected", "rel"), [
        ("clean", 3.096220, 1e-4),
        ("noisy", 8.909973, 1e-4),
        ("blur", 7.960030, 5e-3),
    ])
    def test_basicsr_reference_camera(self, camera_set: dict[str, np.ndarray], key: str,
                                      expected: float, rel: float) -> None:
        assert nr.niqe(camera_set[key]) == pytest.approx(expected, rel=rel)

    def test_basicsr_reference_astronaut(self, astronaut_noisy: np.ndarray) -> None:
        assert nr.niqe(astronaut_noisy) == pytest.approx(8.705585, rel=1e-3)

    def test_metric_object_and_card(self, camera_set: dict[str, np.ndarray]) -> None:
        metric = create_metric("niqe")
        assert metric.card.lower_better and metric.card.range == (0.0, math.inf)
        assert metric(camera_set["clean"]) == pytest.approx(nr.niqe(camera_set["clean"]))

    def test_features_shape(self, camera_set: dict[str, np.ndarray]) -> None:
        features = nr.niqe_features(camera_set["clean"])
        assert features.shape == (25, 36)  # 5 × 5 blocks of 96 in 512 × 512

    def test_too_small_and_flat(self) -> None:
        with pytest.raises(InputError, match="smaller than one"):
            nr.niqe(np.zeros((64, 200), np.float32))
        with pytest.raises(InputError, match="flat"):
            nr.niqe(np.full((96, 96), 0.5, np.float32))
        with pytest.raises(InputError, match="even"):
            nr.niqe(np.zeros((96, 96), np.float32), block=33)


class TestPiqe:
    @pytest.mark.parametrize(("key", "expected"), [
        ("clean", 40.137402), ("noisy", 62.202873), ("blur", 79.916021),
    ])
    def test_pypiqe_reference_camera(self, camera_set: dict[str, np.ndarray], key: str, expected: float) -> None:
        assert nr.piqe(camera_set[key]) == pytest.approx(expected, abs=1e-5)

    def test_pypiqe_reference_astronaut(self, astronaut_noisy: np.ndarray) -> None:
        assert nr.piqe(astronaut_noisy) == pytest.approx(51.482126, abs=1e-5)

    def test_range_and_padding(self) -> None:
        rng = np.random.default_rng(1)
        image = rng.random((37, 53)).astype(np.float32)  # not a multiple of 16: padded
        assert 0.0 <= nr.piqe(image) <= 100.0

    def test_flat_image_scores_100(self) -> None:
        # no active block: (0 + 1) / (0 + 1) · 100
        assert nr.piqe(np.full((32, 32), 0.4, np.float32)) == pytest.approx(100.0)


# ------------------------------------------------------------------------------- learned metrics
class _TinyIQA:
    """A tiny model, score = 10 · mean(red) + 1, saved as TorchScript (.pt) or torch.export (.pt2)."""

    @staticmethod
    def save(path: str) -> None:
        torch = pytest.importorskip("torch")

        class Tiny(torch.nn.Module):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return 10.0 * x[:, 0].mean().reshape(1, 1) + 1.0

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            if path.endswith(".pt2"):
                height, width = torch.export.Dim("height", min=2), torch.export.Dim("width", min=2)
                program = torch.export.export(Tiny(), (torch.zeros(1, 3, 8, 8),),
                                              dynamic_shapes=({2: height, 3: width},))
                torch.export.save(program, path)
            else:
                torch.jit.save(torch.jit.script(Tiny()), path)


@pytest.fixture
def forget_learned() -> Iterator[None]:
    """Remove learned metrics registered by a test so that the registry stays as other tests expect."""
    yield
    for name in nr.LEARNED_NR:
        METRICS._entries.pop(name, None)


class TestLearnedNR:
    def test_absent_weights_are_skipped(self, monkeypatch: pytest.MonkeyPatch, tmp_path, forget_learned) -> None:
        monkeypatch.delenv(nr.WEIGHTS_ENV, raising=False)
        assert nr.register_learned_from_env() == []
        assert nr.register_learned_nr("musiq") is False
        assert "musiq" not in list_metrics()
        with pytest.raises(UnknownNameError):
            create_metric("musiq")
        monkeypatch.setenv(nr.WEIGHTS_ENV, str(tmp_path))
        assert nr.register_learned_from_env() == []

    def test_clear_error_when_absent(self, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
        monkeypatch.delenv(nr.WEIGHTS_ENV, raising=False)
        with pytest.raises(ToolUnavailableError, match="FUSEAGENT_WEIGHTS_DIR"):
            nr.learned_nr_weights("hyperiqa")
        monkeypatch.setenv(nr.WEIGHTS_ENV, str(tmp_path))
        with pytest.raises(ToolUnavailableError, match="hyperiqa.pt2 / hyperiqa.pt not found"):
            nr.learned_nr_weights("hyperiqa")
        with pytest.raises(ToolUnavailableError, match="does not exist"):
            nr.learned_nr_weights("hyperiqa", tmp_path / "missing.pt")

    def test_present_weights_from_env(self, monkeypatch: pytest.MonkeyPatch, tmp_path, forget_learned) -> None:
        _TinyIQA.save(str(tmp_path / "musiq.pt"))
        monkeypatch.setenv(nr.WEIGHTS_ENV, str(tmp_path))
        assert nr.register_learned_from_env() == ["musiq"]
        assert "musiq" in list_metrics(mode="nr") and "clipiqa" not in list_metrics()
        image = np.zeros((8, 8, 3), np.float32)
        image[..., 0] = 0.25
        metric = create_metric("musiq")
        assert metric(image) == pytest.approx(3.5)
        assert metric.card.variant == "learned" and not metric.card.lower_better
        assert metric(np.full((8, 8), 0.5, np.float32)) == pytest.approx(6.0)  # grey → 3 channels

    @pytest.mark.slow  # torch.export tracing takes ~10 s on one core
    def test_exported_program_preferred(self, monkeypatch: pytest.MonkeyPatch, tmp_path, forget_learned) -> None:
        _TinyIQA.save(str(tmp_path / "hyperiqa.pt2"))
        (tmp_path / "hyperiqa.pt").write_bytes(b"ignored: the .pt2 file is found first")
        monkeypatch.setenv(nr.WEIGHTS_ENV, str(tmp_path))
        assert nr.learned_nr_weights("hyperiqa").suffix == ".pt2"
        assert nr.register_learned_from_env() == ["hyperiqa"]
        image = np.zeros((12, 20, 3), np.float32)
        image[..., 0] = 0.5
        assert create_metric("hyperiqa")(image) == pytest.approx(6.0)

    def test_explicit_path_and_custom_spec(self, tmp_path, forget_learned) -> None:
        path = tmp_path / "anything.pt"
        _TinyIQA.save(str(path))
        assert nr.register_learned_nr("clipiqa", path) is True
        assert create_metric("clipiqa")(np.ones((4, 4), np.float32)) == pytest.approx(11.0)
        spec = nr.LearnedNRSpec("mynr", "mynr.pt", True, (0.0, 20.0), "test", "a tiny model")
        assert nr.register_learned_nr("mynr", path, spec=spec) is True
        try:
            assert metric_card("mynr").lower_better
        finally:
            METRICS._entries.pop("mynr", None)

    def test_broken_weights(self, tmp_path) -> None:
        path = tmp_path / "hyperiqa.pt"
        path.write_bytes(b"not a model")
        with pytest.raises(ToolUnavailableError, match="not a TorchScript module"):
            nr.register_learned_nr("hyperiqa", path)
        with pytest.raises(ToolUnavailableError, match="not a torch.export program"):
            nr.load_learned_nr(path.rename(tmp_path / "hyperiqa.pt2"))
        with pytest.raises(InputError, match="unknown"):
            nr.register_learned_nr("nosuchmodel", path)

    def test_broken_weights_in_env_are_reported_not_raised(self, monkeypatch: pytest.MonkeyPatch, tmp_path,
                                                           forget_learned) -> None:
        (tmp_path / "musiq.pt").write_bytes(b"garbage")
        _TinyIQA.save(str(tmp_path / "clipiqa.pt"))
        monkeypatch.setenv(nr.WEIGHTS_ENV, str(tmp_path))
        monkeypatch.setattr(nr, "LEARNED_NR_ERRORS", {})
        assert nr.register_learned_from_env() == ["clipiqa"]
        assert "not a TorchScript module" in nr.LEARNED_NR_ERRORS["musiq"]
        assert "musiq" not in list_metrics()

    def test_model_must_return_one_score(self, tmp_path) -> None:
        torch = pytest.importorskip("torch")

        class Many(torch.nn.Module):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return x.mean(dim=(2, 3))

        path = tmp_path / "many.pt"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.jit.save(torch.jit.script(Many()), str(path))
        score = nr.load_learned_nr(path)
        with pytest.raises(InputError, match="one score"):
            score(np.zeros((4, 4, 3), np.float32))
