"""Calibration of fusion metrics against the published MATLAB values of VIFB and MEFB.

Two reference tables live beside the project (``../shared/data``, see its README):

* ``ivif/vifb/reference_metrics.csv`` — VIFB (Zhang et al., CVPRW 2020): 21 pairs × 25 methods ×
  13 metrics, columns ``image,method,metric,value_mat,value_txt``.
* ``mef/mefb_fused/reference_metrics.csv`` — MEFB (Zhang, Information Fusion 2021): 16 scenes ×
  21 methods × 20 metrics, columns ``image,method,metric,value``.

:data:`CALIBRATION` maps each ``(benchmark, CSV metric name)`` to a :class:`CalibrationSpec`: the
registered metric that reproduces it, the keyword parameters to create it with, the relative
tolerance, and the fraction of reference values that must agree within that tolerance.

Extending the table (other metric modules do this): add one line per CSV metric, e.g.::

    CALIBRATION[("mefb", "FMI")] = CalibrationSpec(metric="fmi", params={"window": 3})

The registered metric is then called as ``create_metric(spec.metric, **spec.params)(sources,
fused)`` with the images loaded by :func:`load_case`: float32 ``[0, 1]`` ``(H, W, 3)`` arrays
(grey files are replicated to three channels, exactly as MATLAB's per-channel loop sees them;
8-bit values are exactly ``k / 255``). Sources are ``[visible, infrared]`` for VIFB (MATLAB's
``img1, img2``) and ``[A, B]`` (under-, over-exposed) for MEFB.
"""

from __future__ import annotations

import csv
import functools
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, UnknownNameError

__all__ = [
    "CalibrationSpec",
    "CALIBRATION",
    "BENCHMARKS",
    "Benchmark",
    "ReferenceValue",
    "Comparison",
    "AgreementRow",
    "default_data_root",
    "load_reference",
    "load_case",
    "compute_reference_value",
    "compute_case",
    "stratified_subset",
    "smallest_images",
    "recompute",
    "agreement_table",
    "relative_error",
    "timed_recompute",
]


@dataclass(frozen=True)
class CalibrationSpec:
    """How one published metric column is reproduced.

    Attributes:
        metric: registry name of the metric that reproduces the column (``"qabf"``).
        params: keyword arguments for ``create_metric(metric, **params)``.
        tolerance: relative tolerance ``|ours - ref| / |ref|`` counted as agreement (1% default).
        abs_tolerance: absolute tolerance also accepted (for reference values near zero).
        min_fraction: fraction of reference values that must agree; tests fail below it.
        note: why a metric cannot reach the target, when it cannot.
    """

    metric: str
    params: dict[str, Any] = field(default_factory=dict)
    tolerance: float = 0.01
    abs_tolerance: float = 0.0
    min_fraction: float = 0.95
    note: str = ""

    def agrees(self, ours: float, reference: float) -> bool:
        """Whether ``ours`` matches ``reference`` within this spec's tolerances.

        Example:
            >>> CalibrationSpec("en").agrees(7.05, 7.0)
            True
            >>> CalibrationSpec("en").agrees(7.2, 7.0)
            False
        """
        if not (math.isfinite(ours) and math.isfinite(reference)):
            return False
        diff = abs(ours - reference)
        return diff <= self.abs_tolerance or diff <= self.tolerance * abs(reference)


#: Why MEFB's Qc and Qy (SSIM maps with C1 = C2 = 2e-16) cannot all be reproduced to 1%.
_FLAT_WINDOW_NOTE = (
    "SSIM maps with C1 = C2 = 2e-16 (7x7 Gaussian): in windows where an image is perfectly flat "
    "(saturated or black areas, common in exposure stacks) variance and covariance are 0 in exact "
    "arithmetic, so MATLAB's value there is a ratio of floating-point residues of filter2 (SVD-separated "
    "Gaussian, conv2), which no other implementation reproduces bit for bit. We model the residue as "
    "that of weights summing to 1 - 2^-52 (flat windows: var = d·mu², cov = d·mu_x·mu_y); a plain "
    "E[x²] - mu² evaluation with OpenCV's position-dependent rounding is off by up to 10^4 % instead. "
    "Over all 336 MEFB values: Qc 93.5% within 1% (97.3% within 2%, 99.4% within 5%, worst 9.8% at "
    "Window2/MEF-GAN), Qy 91.7% within 1% (94.6% within 2%, 99.1% within 5%, worst 12.5% at "
    "Igloo/MEF-GAN); the misses concentrate on scenes with large clipped regions (Window2, Door, Igloo) "
    "and on MEF-GAN results, in both directions")

#: (benchmark, metric name as written in the reference CSV) → how to reproduce it.
CALIBRATION: dict[tuple[str, str], CalibrationSpec] = {
    # VIFB: RGB per channel averaged, the infrared image replicated across channels.
    ("vifb", "Cross_entropy"): CalibrationSpec("ce"),
    ("vifb", "Entropy"): CalibrationSpec("en"),
    ("vifb", "Mutinf"): CalibrationSpec("mi"),
    ("vifb", "Psnr"): CalibrationSpec("psnr_vifb"),
    ("vifb", "Avg_gradient"): CalibrationSpec("ag"),
    ("vifb", "Edge_intensity"): CalibrationSpec("ei"),
    ("vifb", "Qabf"): CalibrationSpec("qabf"),
    ("vifb", "Variance"): CalibrationSpec("sd"),
    ("vifb", "Spatial_frequency"): CalibrationSpec("sf_vifb"),
    ("vifb", "Rmse"): CalibrationSpec("rmse_vifb"),
    ("vifb", "Ssim"): CalibrationSpec("ssim_vifb"),
    ("vifb", "Qcb"): CalibrationSpec("qcb"),
    ("vifb", "Qcv"): CalibrationSpec("qcv"),
    # MEFB: same per-channel scheme; grey sources with a colour result use its first channel.
    ("mefb", "Cross_entropy"): CalibrationSpec("ce_mefb"),
    ("mefb", "Entropy"): CalibrationSpec("en_mefb"),
    ("mefb", "Psnr"): CalibrationSpec("psnr_mefb"),
    ("mefb", "Avg_gradient"): CalibrationSpec("ag_mefb"),
    ("mefb", "Edge_intensity"): CalibrationSpec("ei_mefb"),
    ("mefb", "Qabf"): CalibrationSpec("qabf_mefb"),
    ("mefb", "SD"): CalibrationSpec("sd_mefb"),
    ("mefb", "Spatial_frequency"): CalibrationSpec("sf_mefb"),
    ("mefb", "Qcb"): CalibrationSpec("qcb_mefb"),
    ("mefb", "Qcv"): CalibrationSpec("qcv_mefb"),
    # MEFB information / feature metrics and MEF-SSIM (modules mefb.py, mefssim.py)
    ("mefb", "FMI"): CalibrationSpec("fmi_mefb", note=(
        "MATLAB edge() (Sobel, cutoff 4·mean(b²), directional thinning) per channel; per-window FMI "
        "evaluated once per distinct pair of 3x3 binary patterns. The published values score each source "
        "against the unmodified fused window; re-using the fused window that metricsFMI.m overwrites with "
        "ones (when constant) for the second source lowers FMI by about 1% and does not match")),
    ("mefb", "NMI"): CalibrationSpec("nmi_mefb", note="normalize1 (stretch + round to 0-255), 256-bin joint histograms"),
    ("mefb", "Qncie"): CalibrationSpec("qncie_mefb", note="NCC = MI/8 bits, eigenvalues of the 3x3 NCC matrix"),
    ("mefb", "TE"): CalibrationSpec("te_mefb", note=(
        "q = 1.85; the MATLAB tsallis() pairs the joint histogram with the marginals' indices "
        "swapped — reproduced as published")),
    ("mefb", "Qp"): CalibrationSpec("qp_mefb", note=(
        "Kovesi phasecong3 as revised by Z. Liu (4 scales, 6 orientations, lowpass built with fftshift)")),
    ("mefb", "Qc"): CalibrationSpec("qc_mefb", min_fraction=0.85, note=_FLAT_WINDOW_NOTE),
    ("mefb", "Qw"): CalibrationSpec("qw_mefb", note="Piella's edge-dependent index (sw = 3, alpha = 1) on Prewitt-like edge strength"),
    ("mefb", "Qy"): CalibrationSpec("qy_mefb", min_fraction=0.85, note=_FLAT_WINDOW_NOTE),
    ("mefb", "VIF"): CalibrationSpec("vif_mefb", note=(
        "Han et al. 2013, per channel on 0-255 values (the Lab branch of the MATLAB code is never reached "
        "because MEFB calls it per channel)")),
    ("mefb", "MEF_SSIM"): CalibrationSpec("mef_ssim", note=(
        "rgb2gray rounded to uint8, mef_ms_ssim defaults (3 scales), window statistics by box/Gaussian filters")),
}


@dataclass(frozen=True)
class Benchmark:
    """Where one benchmark's reference table and images are, relative to the data root.

    Attributes:
        name: ``"vifb"`` or ``"mefb"``.
        csv: path of the reference CSV.
        value_column: the CSV column holding the MATLAB value.
        source_paths: ``(root, image) → [source paths]`` in MATLAB's argument order.
        fused_path: ``(root, method, image) → fused path``.
    """

    name: str
    csv: str
    value_column: str
    source_paths: Callable[[Path, str], list[Path]]
    fused_path: Callable[[Path, str, str], Path]


def _find_with_stem(folder: Path, stem: str) -> Path:
    """The image file ``folder/stem.*`` (any suffix or case), or InputError."""
    from ..io import IMAGE_SUFFIXES

    for suffix in IMAGE_SUFFIXES:
        for candidate in (folder / f"{stem}{suffix}", folder / f"{stem}{suffix.upper()}"):
            if candidate.is_file():
                return candidate
    raise InputError(f"no image '{stem}.*' in '{folder}'")


def _vifb_sources(root: Path, image: str) -> list[Path]:
    base = root / "ivif" / "vifb"
    return [_find_with_stem(base / "vis", image), _find_with_stem(base / "ir", image)]


def _vifb_fused(root: Path, method: str, image: str) -> Path:
    return _find_with_stem(root / "ivif" / "vifb" / "fused" / method, image)


def _mefb_sources(root: Path, image: str) -> list[Path]:
    scene = root / "mef" / "mefb" / image
    return [_find_with_stem(scene, "A"), _find_with_stem(scene, "B")]


def _mefb_fused(root: Path, method: str, image: str) -> Path:
    return _find_with_stem(root / "mef" / "mefb_fused" / method, image)


BENCHMARKS: dict[str, Benchmark] = {
    "vifb": Benchmark("vifb", "ivif/vifb/reference_metrics.csv", "value_mat", _vifb_sources, _vifb_fused),
    "mefb": Benchmark("mefb", "mef/mefb_fused/reference_metrics.csv", "value", _mefb_sources, _mefb_fused),
}


@dataclass(frozen=True)
class ReferenceValue:
    """One published value: ``benchmark, image, method, metric`` (CSV name) and ``value``."""

    benchmark: str
    image: str
    method: str
    metric: str
    value: float


@dataclass(frozen=True)
class Comparison:
    """A reference value and ours (NaN with ``skipped`` set when it could not be computed)."""

    reference: ReferenceValue
    ours: float
    agrees: bool
    skipped: str = ""

    @property
    def relative_error(self) -> float:
        return relative_error(self.ours, self.reference.value)


@dataclass(frozen=True)
class AgreementRow:
    """Agreement of one metric on one benchmark.

    Attributes:
        benchmark, metric: CSV identity; ``registry_name`` the metric reproducing it.
        compared: values compared; ``skipped`` values left out (e.g. size mismatch).
        within_1pct: fraction within 1% relative; ``within_tolerance`` within the spec's tolerance.
        median_error, worst_error: relative errors; ``worst_case`` ``"image/method"`` of the worst.
        worst_ours, worst_reference: the values at the worst case.
    """

    benchmark: str
    metric: str
    registry_name: str
    compared: int
    skipped: int
    within_1pct: float
    within_tolerance: float
    median_error: float
    worst_error: float
    worst_case: str
    worst_ours: float
    worst_reference: float
    min_fraction: float

    @property
    def passes(self) -> bool:
        return self.compared > 0 and self.within_tolerance >= self.min_fraction


def relative_error(ours: float, reference: float) -> float:
    """``|ours - reference| / |reference|`` (``inf`` when either is not finite).

    Example:
        >>> round(relative_error(1.01, 1.0), 6)
        0.01
    """
    if not (math.isfinite(ours) and math.isfinite(reference)):
        return math.inf
    if reference == 0:
        return 0.0 if ours == 0 else math.inf
    return abs(ours - reference) / abs(reference)


def default_data_root() -> Path:
    """``$FUSEAGENT_DATA`` or ``../shared/data`` beside the project checkout."""
    env = os.environ.get("FUSEAGENT_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


def _benchmark(name: str) -> Benchmark:
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise UnknownNameError("benchmark", name, BENCHMARKS) from None


def load_reference(benchmark: str, data_root: str | os.PathLike | None = None) -> list[ReferenceValue]:
    """All published values of a benchmark, in CSV order.

    Raises:
        InputError: the CSV is missing.
    """
    bench = _benchmark(benchmark)
    root = Path(data_root) if data_root is not None else default_data_root()
    path = root / bench.csv
    if not path.is_file():
        raise InputError(f"reference table not found: '{path}'")
    with open(path, newline="") as handle:
        return [ReferenceValue(benchmark, row["image"], row["method"], row["metric"],
                               float(row[bench.value_column]))
                for row in csv.DictReader(handle)]


@functools.lru_cache(maxsize=64)
def _read_rgb(path: str) -> np.ndarray:
    from ..io import read_image

    image = read_image(path, mode="rgb")
    image.setflags(write=False)
    return image


def load_case(benchmark: str, image: str, method: str,
              data_root: str | os.PathLike | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    """Sources and fused image of one reference row, as MATLAB's metric code receives them.

    Returns:
        ``(sources, fused)``: float32 ``(H, W, 3)`` arrays in ``[0, 1]`` (read-only, cached).

    Raises:
        InputError: a file is missing, or the fused image's size differs from its sources'
            (such rows are left out of the calibration).
    """
    bench = _benchmark(benchmark)
    root = Path(data_root) if data_root is not None else default_data_root()
    sources = [_read_rgb(str(p)) for p in bench.source_paths(root, image)]
    fused = _read_rgb(str(bench.fused_path(root, method, image)))
    for source in sources:
        if source.shape[:2] != fused.shape[:2]:
            raise InputError(f"{benchmark} {image}/{method}: fused size {fused.shape[1]}x{fused.shape[0]} "
                             f"differs from the sources' {source.shape[1]}x{source.shape[0]}")
    return sources, fused


def _spec(benchmark: str, metric: str) -> CalibrationSpec:
    try:
        return CALIBRATION[(benchmark, metric)]
    except KeyError:
        known = [m for (b, m) in CALIBRATION if b == benchmark]
        raise UnknownNameError(f"{benchmark} calibrated metric", metric, known) from None


def compute_case(benchmark: str, image: str, method: str, metrics: Iterable[str],
                 data_root: str | os.PathLike | None = None) -> dict[str, float]:
    """Our values of several CSV metrics for one ``(image, method)``, loading the images once.

    Args:
        benchmark: ``"vifb"`` or ``"mefb"``.
        image, method: the row's identity.
        metrics: CSV metric names (keys of :data:`CALIBRATION` for this benchmark).
        data_root: folder holding ``ivif/`` and ``mef/`` (default :func:`default_data_root`).

    Returns:
        CSV metric name → value.
    """
    from .fusion import fusion_scores

    sources, fused = load_case(benchmark, image, method, data_root)
    specs = {name: _spec(benchmark, name) for name in metrics}
    # batches in which each registry name appears once (one image conversion per batch)
    batches: list[dict[str, str]] = []
    for name, spec in specs.items():
        batch = next((b for b in batches if spec.metric not in b.values()), None)
        if batch is None:
            batch = {}
            batches.append(batch)
        batch[name] = spec.metric
    out: dict[str, float] = {}
    for batch in batches:
        values = fusion_scores(sources, fused, list(batch.values()),
                               **{specs[name].metric: specs[name].params for name in batch})
        out.update({name: float(values[registry]) for name, registry in batch.items()})
    return {name: out[name] for name in specs}


def compute_reference_value(row: ReferenceValue, data_root: str | os.PathLike | None = None) -> float:
    """Our value for one published row (see :func:`compute_case`)."""
    return compute_case(row.benchmark, row.image, row.method, [row.metric], data_root)[row.metric]


def stratified_subset(rows: Sequence[ReferenceValue], images_per_method: int = 1,
                      images: Sequence[str] | None = None) -> list[ReferenceValue]:
    """A deterministic subset covering every method and every metric with a few images.

    Method ``i`` (in sorted order) gets the images ``i, i+1, …`` (cyclically, in sorted order),
    so every image and every method appear and every metric is kept for each chosen pair.

    Args:
        rows: reference rows.
        images_per_method: images chosen per method.
        images: draw only from these images (e.g. :func:`smallest_images`, for speed).

    Example:
        >>> rows = [ReferenceValue("b", im, me, "EN", 1.0) for im in "xyz" for me in "pq"]
        >>> sorted((r.method, r.image) for r in stratified_subset(rows))
        [('p', 'x'), ('q', 'y')]
    """
    images = sorted(set(images) if images is not None else {r.image for r in rows})
    if not images:
        return []
    methods = sorted({r.method for r in rows})
    chosen = {(method, images[(i + k) % len(images)])
              for i, method in enumerate(methods) for k in range(min(images_per_method, len(images)))}
    return [r for r in rows if (r.method, r.image) in chosen]


def smallest_images(benchmark: str, count: int, data_root: str | os.PathLike | None = None) -> list[str]:
    """The ``count`` images of a benchmark with the fewest pixels (read from file headers)."""
    from PIL import Image

    bench = _benchmark(benchmark)
    root = Path(data_root) if data_root is not None else default_data_root()
    sizes = []
    for image in sorted({r.image for r in load_reference(benchmark, root)}):
        with Image.open(bench.source_paths(root, image)[0]) as im:
            sizes.append((im.size[0] * im.size[1], image))
    return [image for _, image in sorted(sizes)[:count]]


def recompute(benchmark: str, data_root: str | os.PathLike | None = None, *,
              rows: Sequence[ReferenceValue] | None = None, metrics: Iterable[str] | None = None,
              progress: bool = False) -> list[Comparison]:
    """Recompute published values and compare them with ours.

    Args:
        benchmark: ``"vifb"`` or ``"mefb"``.
        data_root: data folder (default :func:`default_data_root`).
        rows: the reference rows to recompute (default: every row of the CSV).
        metrics: keep only these CSV metric names (default: every calibrated one).
        progress: show a tqdm bar on stderr.

    Returns:
        One :class:`Comparison` per row whose metric is in :data:`CALIBRATION`; rows whose images
        cannot be used (size mismatch) are returned with ``skipped`` set.
    """
    if rows is None:
        rows = load_reference(benchmark, data_root)
    wanted = set(metrics) if metrics is not None else None
    rows = [r for r in rows if (benchmark, r.metric) in CALIBRATION and (wanted is None or r.metric in wanted)]
    groups: dict[tuple[str, str], list[ReferenceValue]] = {}
    for row in rows:
        groups.setdefault((row.image, row.method), []).append(row)
    iterator: Iterable[tuple[tuple[str, str], list[ReferenceValue]]] = groups.items()
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, total=len(groups), desc=f"{benchmark} calibration", unit="pair")
    out: list[Comparison] = []
    for (image, method), group in iterator:
        try:
            values = compute_case(benchmark, image, method, [r.metric for r in group], data_root)
        except InputError as exc:  # unusable images (size mismatch): every metric of the pair skipped
            out.extend(Comparison(r, math.nan, False, skipped=str(exc)) for r in group)
            continue
        except Exception:  # one failing metric must not hide the others: isolate it
            values = {}
            for r in group:
                try:
                    values[r.metric] = compute_case(benchmark, image, method, [r.metric], data_root)[r.metric]
                except Exception as exc:
                    out.append(Comparison(r, math.nan, False, skipped=f"{type(exc).__name__}: {exc}"))
        for r in group:
            if r.metric in values:
                ours = values[r.metric]
                out.append(Comparison(r, ours, _spec(benchmark, r.metric).agrees(ours, r.value)))
    _read_rgb.cache_clear()
    return out


def agreement_table(comparisons: Iterable[Comparison]) -> list[AgreementRow]:
    """Summarise comparisons per ``(benchmark, metric)``, in :data:`CALIBRATION` order."""
    grouped: dict[tuple[str, str], list[Comparison]] = {}
    for c in comparisons:
        grouped.setdefault((c.reference.benchmark, c.reference.metric), []).append(c)
    order = {key: i for i, key in enumerate(CALIBRATION)}
    rows: list[AgreementRow] = []
    for key in sorted(grouped, key=lambda k: order.get(k, len(order))):
        spec = _spec(*key)
        done = [c for c in grouped[key] if not c.skipped]
        errors = np.array([c.relative_error for c in done], dtype=float)
        if done:
            worst = done[int(np.argmax(errors))]
            worst_error, worst_case = float(errors.max()), f"{worst.reference.image}/{worst.reference.method}"
            worst_ours, worst_ref = worst.ours, worst.reference.value
            within_1pct = float(np.mean(errors <= 0.01))
            within_tol = float(np.mean([c.agrees for c in done]))
            median = float(np.median(errors))
        else:
            worst_error, worst_case, worst_ours, worst_ref = math.nan, "", math.nan, math.nan
            within_1pct = within_tol = median = math.nan
        rows.append(AgreementRow(key[0], key[1], spec.metric, len(done), len(grouped[key]) - len(done),
                                 within_1pct, within_tol, median, worst_error, worst_case,
                                 worst_ours, worst_ref, spec.min_fraction))
    return rows


def timed_recompute(benchmark: str, data_root: str | os.PathLike | None = None,
                    **kwargs: Any) -> tuple[list[Comparison], float]:
    """:func:`recompute` and the seconds it took."""
    start = time.perf_counter()
    result = recompute(benchmark, data_root, **kwargs)
    return result, time.perf_counter() - start
