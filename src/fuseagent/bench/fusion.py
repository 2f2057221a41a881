"""The fusion benchmark: our fusion operators against the published methods of VIFB, MEFB and Lytro.

``fuseagent bench fusion --task ivif|mef|mff --operators LIST --data DIR`` runs each operator on the
benchmark's source pairs, scores every result with the benchmark's own metric code (fuseagent's
reproductions of the MATLAB metrics, :mod:`fuseagent.metrics.calibration`) and ranks it among the
published methods whose fused images ship with the data:

==========  =============================  =================================  =======================
task        sources (test set)             published outputs                  score
==========  =============================  =================================  =======================
``ivif``    VIFB, 21 visible/infrared      ``ivif/vifb/fused`` (25 methods)   mean rank, 13 metrics
``mef``     MEFB, 16 validation scenes     ``mef/mefb_fused`` (21 methods)    MEF-SSIM
``mff``     Lytro, 20 pairs                ``mff/lytro_fused`` (30 methods)   Q^AB/F
==========  =============================  =================================  =======================

Each result is scored twice: as the lossless 8-bit output, and stored like the published files
(JPEG quality 75, 4:2:0 chroma subsampling), since storage alone moves MEF-SSIM and Q^AB/F by about
0.006 and 0.011. Every entry of ours is ranked *like for like*: against the published methods
alone, so "rank 1 of 22" means it beats all 21 published MEF methods.

The published methods' values are MATLAB's where the benchmark publishes them (VIFB's 13 metrics,
MEFB's MEF-SSIM; our metric code reproduces them within 1 %) and computed by fuseagent otherwise
(Lytro's Q^AB/F), cached so a second run costs only the fusion.

Besides fuseagent's registered operators (``fusion.<model>`` or just ``<model>``), ``enfuse`` runs
the Enblend/Enfuse command line tool when it is installed (exposure fusion for ``mef``, its
focus-stacking recipe for ``mff``), so timings can be compared in one run.

:func:`waterloo_study` scores MEF operators on the Waterloo MEF subjective database (Ma, Zeng &
Wang, TIP 2015): their MEF-SSIM next to the 8 rated methods', and the mean opinion score a human
would give them, read off each scene's MEF-SSIM → MOS line through the rated methods.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io import IMAGE_SUFFIXES, atomic_write, read_image

__all__ = [
    "FusionBenchmark",
    "BENCHMARKS",
    "Score",
    "RunResult",
    "Entry",
    "WaterlooRow",
    "store_like_published",
    "quantise_8bit",
    "check_operators",
    "run_fusion_benchmark",
    "published_scores",
    "leaderboard",
    "to_markdown",
    "write_outputs",
    "comparison_figure",
    "figure_panels",
    "waterloo_study",
    "waterloo_markdown",
    "MetricCache",
]

LOSSLESS, JPEG75, PUBLISHED = "lossless", "jpeg75", "published"


@dataclass(frozen=True)
class FusionBenchmark:
    """Where one benchmark's sources, published outputs and reference values are, and how it scores.

    Attributes:
        task: ``"ivif"``, ``"mef"`` or ``"mff"``.
        name: the benchmark's name.
        sources: folder of the sources, relative to the data root.
        fused: folder of the published outputs (``METHOD/IMAGE.*``), relative to the data root.
        reference_csv: the published MATLAB values (relative path), or ``None``.
        metrics: benchmark metric names (as the reference CSV writes them) → (registry name, params).
        read_modes: ``read_image`` mode of each source for fusion, in source order.
    """

    task: str
    name: str
    sources: str
    fused: str
    reference_csv: str | None
    metrics: Mapping[str, tuple[str, Mapping[str, object]]]
    read_modes: tuple[str, ...]

    def images(self, root: Path) -> list[str]:
        """Names of the test images: those every published method has an output for."""
        methods = self.methods(root)
        if not methods:
            raise InputError(f"no published outputs under {root / self.fused}")
        names: set[str] | None = None
        for method in methods:
            stems = {p.stem for p in (root / self.fused / method).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
            names = stems if names is None else names & stems
        return sorted(n for n in (names or set()) if self._source_dir(root, n) is not None)

    def methods(self, root: Path) -> list[str]:
        """The published methods (folders of ``fused``)."""
        folder = root / self.fused
        if not folder.is_dir():
            raise InputError(f"{self.name}: folder {folder} not found (is --data the shared data root?)")
        return sorted(p.name for p in folder.iterdir() if p.is_dir())

    def _source_dir(self, root: Path, image: str) -> Path | None:
        folder = root / self.sources
        if self.task == "ivif":
            return folder if (folder / "vis").is_dir() else None
        candidate = folder / image
        return candidate if candidate.is_dir() else None

    def source_paths(self, root: Path, image: str) -> list[Path]:
        """The sources of ``image`` in the benchmark's order (visible, infrared / A, B)."""
        folder = root / self.sources
        if self.task == "ivif":
            return [_with_stem(folder / "vis", image), _with_stem(folder / "ir", image)]
        files = sorted(p for p in (folder / image).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if len(files) < 2:
            raise InputError(f"{self.name} {image}: fewer than two source images in {folder / image}")
        return files

    def published_path(self, root: Path, method: str, image: str) -> Path:
        """The published output of ``method`` for ``image``."""
        return _with_stem(root / self.fused / method, image)


def _with_stem(folder: Path, stem: str) -> Path:
    for suffix in IMAGE_SUFFIXES + tuple(s.upper() for s in IMAGE_SUFFIXES):
        candidate = folder / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    raise InputError(f"no image named '{stem}' in {folder}")


def _vifb_metrics() -> dict[str, tuple[str, Mapping[str, object]]]:
    from ..metrics.calibration import CALIBRATION

    return {metric: (spec.metric, dict(spec.params)) for (bench, metric), spec in CALIBRATION.items()
            if bench == "vifb"}


#: the three benchmarks, by fusion task
BENCHMARKS: dict[str, FusionBenchmark] = {
    "ivif": FusionBenchmark("ivif", "VIFB", "ivif/vifb", "ivif/vifb/fused", "ivif/vifb/reference_metrics.csv",
                            _vifb_metrics(), ("auto", "gray")),
    "mef": FusionBenchmark("mef", "MEFB", "mef/mefb", "mef/mefb_fused", "mef/mefb_fused/reference_metrics.csv",
                           {"MEF_SSIM": ("mef_ssim", {})}, ("rgb", "rgb")),
    "mff": FusionBenchmark("mff", "Lytro", "mff/lytro", "mff/lytro_fused", None,
                           {"Qabf": ("qabf", {})}, ("rgb", "rgb")),
}

#: metric display names in tables
DISPLAY = {"MEF_SSIM": "MEF-SSIM", "Qabf": "Qabf"}


def _benchmark(task: str) -> FusionBenchmark:
    try:
        return BENCHMARKS[task]
    except KeyError:
        raise InputError(f"unknown fusion task '{task}' (valid: {', '.join(BENCHMARKS)})") from None


# --------------------------------------------------------------------------------------------------
# storage and scoring
# --------------------------------------------------------------------------------------------------


def quantise_8bit(image: np.ndarray) -> np.ndarray:
    """The image as an 8-bit lossless file (PNG) would hold it, float32 ``[0, 1]``.

    Example:
        >>> (quantise_8bit(np.array([0.0, 0.5, 0.999, 1.2])) * 255).round(3).tolist()
        [0.0, 128.0, 255.0, 255.0]
    """
    return (np.rint(np.clip(image, 0, 1) * 255.0) / 255.0).astype(np.float32)


def store_like_published(image: np.ndarray, quality: int = 75) -> np.ndarray:
    """The image after a JPEG round trip like the published outputs' (quality 75, 4:2:0 chroma).

    Example:
        >>> x = np.random.default_rng(0).random((16, 16, 3)).astype(np.float32)
        >>> y = store_like_published(x)
        >>> y.shape, y.dtype.name, bool(0 < np.abs(y - x).mean() < 0.3)
        ((16, 16, 3), 'float32', True)
    """
    from PIL import Image

    array = np.rint(np.clip(image, 0, 1) * 255.0).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=int(quality), subsampling=2)
    buffer.seek(0)
    decoded = np.asarray(Image.open(buffer).convert("RGB" if array.ndim == 3 else "L"))
    return (decoded.astype(np.float32) / 255.0).astype(np.float32)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    return np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image


class MetricCache:
    """Metric values keyed by benchmark, image, metric and a hash of the fused image's 8-bit pixels.

    Stored as JSON (``path``) when given; a deterministic operator run again costs no metric time.

    Example:
        >>> cache = MetricCache(None)
        >>> key = cache.key("mefb", "door2", "MEF_SSIM", np.zeros((4, 4), np.float32))
        >>> cache.get(key) is None, cache.put(key, 0.5), cache.get(key)
        (True, None, 0.5)
    """

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path else None
        self.values: dict[str, float] = {}
        self._dirty = False
        if self.path is not None and self.path.is_file():
            try:
                self.values = {k: float(v) for k, v in json.loads(self.path.read_text()).items()}
            except (ValueError, OSError):
                self.values = {}

    @staticmethod
    def key(benchmark: str, image: str, metric: str, fused: np.ndarray) -> str:
        digest = hashlib.sha1(np.rint(np.clip(fused, 0, 1) * 255).astype(np.uint8).tobytes()).hexdigest()[:20]
        return f"{benchmark}|{image}|{metric}|{fused.shape}|{digest}"

    def get(self, key: str) -> float | None:
        return self.values.get(key)

    def put(self, key: str, value: float) -> None:
        self.values[key] = float(value)
        self._dirty = True

    def save(self) -> None:
        if self.path is None or not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.values, sort_keys=True)
        atomic_write(self.path, lambda tmp: Path(tmp).write_text(text))
        self._dirty = False


def _score(bench: FusionBenchmark, image: str, sources: Sequence[np.ndarray], fused: np.ndarray,
           cache: MetricCache) -> dict[str, float]:
    from ..metrics.fusion import fusion_scores

    out: dict[str, float] = {}
    missing: list[str] = []
    for metric in bench.metrics:
        value = cache.get(cache.key(bench.name, image, metric, fused))
        if value is None:
            missing.append(metric)
        else:
            out[metric] = value
    if missing:
        rgb = _as_rgb(fused)
        # one registry name per call (fusion_scores takes each name once)
        for metric in missing:
            name, params = bench.metrics[metric]
            value = float(fusion_scores(sources, rgb, [name], **{name: dict(params)})[name])
            cache.put(cache.key(bench.name, image, metric, fused), value)
            out[metric] = value
    return {m: out[m] for m in bench.metrics}


# --------------------------------------------------------------------------------------------------
# operators
# --------------------------------------------------------------------------------------------------


def _enfuse_arguments(task: str) -> list[str]:
    if task == "mef":
        return []
    if task == "mff":
        # Enfuse's documented focus-stacking recipe: contrast only, hard masks.
        return ["--exposure-weight=0", "--saturation-weight=0", "--contrast-weight=1", "--hard-mask"]
    raise InputError("enfuse is benchmarked for mef and mff only")


def check_operators(names: Iterable[str], task: str) -> list[str]:
    """Validate operator names for ``task``: registered fusion tools (``fusion.x`` or ``x``) or ``enfuse``.

    Returns:
        Full names (``fusion.mertens``, ``enfuse``).

    Raises:
        InputError: an unknown operator, one not suited to ``task``, or ``enfuse`` not installed.

    Example:
        >>> check_operators(["mertens", "fusion.spd"], "mef")
        ['fusion.mertens', 'fusion.spd']
    """
    from ..tools import list_tools, tool_card

    _benchmark(task)
    known = list_tools("fusion.*")
    out: list[str] = []
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        if name == "enfuse":
            _enfuse_arguments(task)
            if shutil.which("enfuse") is None:
                raise InputError("enfuse is not installed (Debian: apt-get install enfuse)")
            out.append(name)
            continue
        full = name if name.startswith("fusion.") else f"fusion.{name}"
        if full not in known:
            raise InputError(f"unknown fusion operator '{name}' (valid: {', '.join(known)}, enfuse)")
        if task not in tool_card(full).fusion_tasks:
            raise InputError(f"operator '{full}' is not made for {task} (it suits {', '.join(tool_card(full).fusion_tasks)})")
        out.append(full)
    if not out:
        raise InputError("no operators given")
    return out


def _run_enfuse(task: str, sources: Sequence[np.ndarray]) -> tuple[np.ndarray, float]:
    from ..io import write_image

    with tempfile.TemporaryDirectory(prefix="fuseagent-enfuse-") as tmp:
        paths = []
        for i, image in enumerate(sources):
            path = Path(tmp) / f"source{i}.png"
            write_image(path, image, bits=8)
            paths.append(str(path))
        out = Path(tmp) / "fused.png"
        start = time.perf_counter()
        done = subprocess.run(["enfuse", *_enfuse_arguments(task), "-o", str(out), *paths],
                              capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode != 0 or not out.is_file():
            raise InputError(f"enfuse failed: {done.stderr.strip().splitlines()[-1:] or done.returncode}")
        return read_image(out, mode="rgb" if sources[0].ndim == 3 else "gray"), seconds


def _make_runner(name: str, task: str) -> Callable[[Sequence[np.ndarray]], tuple[np.ndarray, float]]:
    if name == "enfuse":
        return lambda sources: _run_enfuse(task, sources)
    from ..tools import create_tool

    tool = create_tool(name)

    def run(sources: Sequence[np.ndarray]) -> tuple[np.ndarray, float]:
        start = time.perf_counter()
        image = tool(list(sources)).image
        return image, time.perf_counter() - start

    return run


def _label(name: str) -> str:
    return name.removeprefix("fusion.")


# --------------------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Score:
    """One metric value of one result.

    Attributes:
        method: operator (``fusion.spd``, ``enfuse``) or published method name.
        storage: ``lossless`` / ``jpeg75`` (ours) or ``published``.
        image: test image name.
        metric: benchmark metric name.
        value: the value.
    """

    method: str
    storage: str
    image: str
    metric: str
    value: float


@dataclass
class RunResult:
    """Everything one benchmark run produced."""

    task: str
    scores: list[Score] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    megapixels: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def seconds_per_megapixel(self, method: str) -> float:
        mp = self.megapixels.get(method, 0.0)
        return self.seconds.get(method, math.nan) / mp if mp else math.nan


def published_scores(task: str, data: str | os.PathLike, cache: MetricCache | None = None,
                     progress: bool = False) -> list[Score]:
    """The published methods' values on the benchmark's test images.

    MATLAB's values from the reference CSV where the benchmark has one; computed (and cached)
    otherwise.
    """
    bench = _benchmark(task)
    root = Path(data)
    images = bench.images(root)
    methods = bench.methods(root)
    if bench.reference_csv and (root / bench.reference_csv).is_file():
        wanted = set(bench.metrics)
        out = []
        with open(root / bench.reference_csv, newline="") as handle:
            for row in csv.DictReader(handle):
                if row["metric"] in wanted and row["image"] in images and row["method"] in methods:
                    value = row.get("value_mat") or row.get("value")
                    out.append(Score(row["method"], PUBLISHED, row["image"], row["metric"], float(value)))
        return out
    cache = cache or MetricCache(None)
    jobs = [(m, i) for m in methods for i in images]
    out = []
    sources_cache: dict[str, list[np.ndarray]] = {}
    for method, image in _progress(jobs, progress, f"{bench.name} published"):
        if image not in sources_cache:
            sources_cache = {image: [read_image(p, mode="rgb") for p in bench.source_paths(root, image)]}
        fused = read_image(bench.published_path(root, method, image), mode="rgb")
        if fused.shape[:2] != sources_cache[image][0].shape[:2]:
            continue
        for metric, value in _score(bench, image, sources_cache[image], fused, cache).items():
            out.append(Score(method, PUBLISHED, image, metric, value))
    cache.save()
    return out


def _progress(items: Sequence, enabled: bool, description: str) -> Iterable:
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=description, unit="img", leave=False)


def run_fusion_benchmark(task: str, operators: Sequence[str], data: str | os.PathLike, *,
                         out: str | os.PathLike | None = None, limit: int | None = None,
                         progress: bool = True, cache: MetricCache | None = None) -> RunResult:
    """Run operators on a benchmark's test images and score them with its metrics.

    Args:
        task: ``"ivif"``, ``"mef"`` or ``"mff"``.
        operators: names accepted by :func:`check_operators`.
        data: the shared data root (holding ``ivif/``, ``mef/``, ``mff/``).
        out: when given, fused images are written to ``out/fused/TASK/OPERATOR/IMAGE.png``.
        limit: only the first ``limit`` test images (published values are restricted likewise).
        progress: show a tqdm progress bar.
        cache: metric cache (default: none).

    Returns:
        A :class:`RunResult` with the published methods' scores and ours (lossless and JPEG-75),
        and the fusion seconds and megapixels per operator.
    """
    from ..io import write_image

    bench = _benchmark(task)
    root = Path(data)
    operators = check_operators(operators, task)
    images = bench.images(root)
    if limit is not None:
        if limit < 1:
            raise InputError("--limit must be at least 1")
        images = images[:limit]
    cache = cache or MetricCache(None)
    result = RunResult(task)
    published = published_scores(task, root, cache, progress)
    result.scores.extend(s for s in published if s.image in images)
    runners = {name: _make_runner(name, task) for name in operators}
    jobs = [(image, name) for image in images for name in operators]
    loaded: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    for image, name in _progress(jobs, progress, f"{bench.name} fusion"):
        if image not in loaded:
            paths = bench.source_paths(root, image)
            inputs = [read_image(p, mode=m) for p, m in zip(paths, bench.read_modes + ("rgb",) * len(paths))]
            loaded = {image: (inputs, [read_image(p, mode="rgb") for p in paths])}
        inputs, metric_sources = loaded[image]
        try:
            fused, seconds = runners[name](inputs)
        except Exception as error:  # one failing operator must not end the benchmark
            result.errors.append(f"{name} on {image}: {type(error).__name__}: {error}")
            continue
        result.seconds[name] = result.seconds.get(name, 0.0) + seconds
        result.megapixels[name] = result.megapixels.get(name, 0.0) + fused.shape[0] * fused.shape[1] / 1e6
        lossless = quantise_8bit(fused)
        if out is not None:
            write_image(Path(out) / "fused" / task / _label(name) / f"{image}.png", lossless)
        for storage, stored in ((LOSSLESS, lossless), (JPEG75, store_like_published(lossless))):
            for metric, value in _score(bench, image, metric_sources, stored, cache).items():
                result.scores.append(Score(name, storage, image, metric, value))
        cache.save()
    cache.save()
    return result


# --------------------------------------------------------------------------------------------------
# leaderboard
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One row of a leaderboard.

    Attributes:
        method: method or operator name.
        storage: ``published``, ``lossless`` or ``jpeg75``.
        means: metric → mean over the test images.
        score: the ranking score (mean of the benchmark metric, or mean rank for IVIF).
        rank: like-for-like rank (1 = best) among the published methods plus this entry; the
            published methods' rank among themselves.
        field_size: how many methods that rank is out of.
    """

    method: str
    storage: str
    means: dict[str, float]
    score: float
    rank: int
    field_size: int


def _lower_better(bench: FusionBenchmark) -> dict[str, bool]:
    from ..metrics import metric_card

    return {metric: metric_card(name).lower_better for metric, (name, _) in bench.metrics.items()}


def _mean_ranks(means: Mapping[str, Mapping[str, float]], lower: Mapping[str, bool]) -> dict[str, float]:
    """Mean over metrics of each method's rank (1 = best, ties share the average rank)."""
    from scipy.stats import rankdata

    methods = list(means)
    ranks = np.zeros(len(methods))
    for metric, lower_is_better in lower.items():
        values = np.array([means[m][metric] for m in methods])
        ranks += rankdata(values if lower_is_better else -values, method="average")
    return {m: float(r / len(lower)) for m, r in zip(methods, ranks)}


def leaderboard(result: RunResult, task: str) -> list[Entry]:
    """Published methods and our entries, best first, each of ours ranked like for like.

    For MEF and MFF the score is the mean of the benchmark metric (higher is better); for IVIF it is
    the mean over VIFB's 13 metrics of the method's rank by mean value (lower is better), as VIFB
    ranks methods.

    Example:
        >>> r = RunResult("mef", [Score("A", "published", "x", "MEF_SSIM", 0.9),
        ...                       Score("B", "published", "x", "MEF_SSIM", 0.95),
        ...                       Score("fusion.spd", "lossless", "x", "MEF_SSIM", 0.97)])
        >>> [(e.method, e.rank, e.field_size) for e in leaderboard(r, "mef")]
        [('fusion.spd', 1, 3), ('B', 1, 2), ('A', 2, 2)]
    """
    bench = _benchmark(task)
    lower = _lower_better(bench)
    sums: dict[tuple[str, str], dict[str, list[float]]] = {}
    for s in result.scores:
        sums.setdefault((s.method, s.storage), {}).setdefault(s.metric, []).append(s.value)
    means = {key: {m: float(np.mean(v)) for m, v in per.items()} for key, per in sums.items()
             if all(m in per for m in bench.metrics)}
    published = {k[0]: v for k, v in means.items() if k[1] == PUBLISHED}
    ours = {k: v for k, v in means.items() if k[1] != PUBLISHED}
    entries: list[Entry] = []
    if task == "ivif":
        base = _mean_ranks(published, lower)
        order = sorted(base, key=lambda m: base[m])
        for m in order:
            entries.append(Entry(m, PUBLISHED, published[m], base[m],
                                 1 + sum(base[o] < base[m] for o in base), len(base)))
        for (method, storage), values in ours.items():
            field_ranks = _mean_ranks({**published, "\0us": values}, lower)
            own = field_ranks["\0us"]
            entries.append(Entry(method, storage, values, own,
                                 1 + sum(field_ranks[o] < own for o in published), len(published) + 1))
        return sorted(entries, key=lambda e: (e.score, e.storage == PUBLISHED))
    (metric,) = bench.metrics
    sign = 1.0 if lower[metric] else -1.0
    for m, values in published.items():
        entries.append(Entry(m, PUBLISHED, values, values[metric],
                             1 + sum(sign * v[metric] < sign * values[metric] for v in published.values()),
                             len(published)))
    for (method, storage), values in ours.items():
        entries.append(Entry(method, storage, values, values[metric],
                             1 + sum(sign * v[metric] < sign * values[metric] for v in published.values()),
                             len(published) + 1))
    return sorted(entries, key=lambda e: (sign * e.score, e.storage == PUBLISHED))


_STORAGE_LABEL = {PUBLISHED: "published (JPEG)", LOSSLESS: "ours, lossless PNG", JPEG75: "ours, JPEG-75"}


def to_markdown(result: RunResult, task: str, heading: str = "### ") -> str:
    """Leaderboard and timing tables of one run as Markdown."""
    bench = _benchmark(task)
    entries = leaderboard(result, task)
    images = sorted({s.image for s in result.scores})
    lines = [f"{heading}{bench.name} ({task.upper()}), {len(images)} test images", ""]
    if task == "ivif":
        metrics = list(bench.metrics)
        lower = _lower_better(bench)
        lines.append("| # | method | stored as | mean rank | like-for-like rank | "
                     + " | ".join(f"{m}{' ↓' if lower[m] else ''}" for m in metrics) + " |")
        lines.append("|---" * (5 + len(metrics)) + "|")
        for i, e in enumerate(entries, 1):
            cells = " | ".join(_fmt(e.means[m]) for m in metrics)
            lines.append(f"| {i} | {_bold(e)} | {_STORAGE_LABEL[e.storage]} | {e.score:.2f} | "
                         f"{e.rank} of {e.field_size} | {cells} |")
    else:
        (metric,) = bench.metrics
        name = DISPLAY.get(metric, metric)
        lines.append(f"| # | method | stored as | mean {name} | like-for-like rank |")
        lines.append("|---|---|---|---|---|")
        for i, e in enumerate(entries, 1):
            lines.append(f"| {i} | {_bold(e)} | {_STORAGE_LABEL[e.storage]} | {e.score:.4f} | "
                         f"{e.rank} of {e.field_size} |")
    if result.seconds:
        lines += ["", f"{heading}Speed ({bench.name}, same run, this machine)", "",
                  "| operator | seconds per megapixel | seconds in all |", "|---|---|---|"]
        for method in sorted(result.seconds, key=result.seconds_per_megapixel):
            lines.append(f"| {_label(method)} | {result.seconds_per_megapixel(method):.3f} | "
                         f"{result.seconds[method]:.1f} |")
    if result.errors:
        lines += ["", "Failures:", ""] + [f"* {e}" for e in result.errors]
    return "\n".join(lines) + "\n"


def _bold(entry: Entry) -> str:
    return f"**{_label(entry.method)}**" if entry.storage != PUBLISHED else entry.method


def _fmt(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1000 else f"{value:.1f}"


def write_outputs(out: str | os.PathLike, result: RunResult, task: str) -> dict[str, Path]:
    """Write ``fusion_TASK.md``, ``fusion_TASK.csv`` (one row per score) and
    ``fusion_TASK_leaderboard.csv`` into ``out``."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": folder / f"fusion_{task}.md", "scores": folder / f"fusion_{task}.csv",
             "leaderboard": folder / f"fusion_{task}_leaderboard.csv"}
    markdown = to_markdown(result, task)
    atomic_write(paths["markdown"], lambda tmp: Path(tmp).write_text(markdown))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["method", "storage", "image", "metric", "value"])
    for s in result.scores:
        writer.writerow([s.method, s.storage, s.image, s.metric, f"{s.value:.6g}"])
    text = buffer.getvalue()
    atomic_write(paths["scores"], lambda tmp: Path(tmp).write_text(text))
    bench = _benchmark(task)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["position", "method", "storage", "score", "rank", "field", *bench.metrics,
                     "seconds_per_megapixel"])
    for i, e in enumerate(leaderboard(result, task), 1):
        speed = result.seconds_per_megapixel(e.method) if e.storage != PUBLISHED else math.nan
        writer.writerow([i, e.method, e.storage, f"{e.score:.6g}", e.rank, e.field_size,
                         *[f"{e.means[m]:.6g}" for m in bench.metrics], "" if math.isnan(speed) else f"{speed:.4f}"])
    text = buffer.getvalue()
    atomic_write(paths["leaderboard"], lambda tmp: Path(tmp).write_text(text))
    return paths


# --------------------------------------------------------------------------------------------------
# pictures
# --------------------------------------------------------------------------------------------------


def comparison_figure(panels: Sequence[tuple[str, np.ndarray]], path: str | os.PathLike, height: int = 300,
                      quality: int = 85) -> Path:
    """Write labelled images side by side as one JPEG (sources, ours, best published...).

    Example:
        >>> import tempfile
        >>> p = comparison_figure([("a", np.zeros((20, 30))), ("b", np.ones((20, 20, 3)))],
        ...                       os.path.join(tempfile.mkdtemp(), "f.jpg"), height=40)
        >>> read_image(p, mode="rgb").shape
        (62, 100, 3)
    """
    import cv2

    from ..io import write_image

    tiles = []
    for label, image in panels:
        rgb = _as_rgb(np.clip(image, 0, 1).astype(np.float32))
        width = max(1, round(rgb.shape[1] * height / rgb.shape[0]))
        tile = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
        band = np.full((22, width, 3), 255, np.uint8)
        cv2.putText(band, label[: max(1, width // 9)], (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1,
                    cv2.LINE_AA)
        tiles.append(np.concatenate([band.astype(np.float32) / 255.0, tile], axis=0))
    return write_image(path, np.concatenate(tiles, axis=1), quality=quality)


def figure_panels(task: str, image: str, data: str | os.PathLike, ours: Mapping[str, np.ndarray],
                  best_published: str) -> list[tuple[str, np.ndarray]]:
    """Panels for :func:`comparison_figure`: the sources, each of ours, the best published method's output."""
    bench = _benchmark(task)
    root = Path(data)
    names = ["visible", "infrared"] if task == "ivif" else [f"source {chr(65 + i)}" for i in range(8)]
    panels = [(n, read_image(p)) for n, p in zip(names, bench.source_paths(root, image))]
    panels += [(f"ours: {_label(k)}", v) for k, v in ours.items()]
    panels.append((f"best published: {best_published}", read_image(bench.published_path(root, best_published, image))))
    return panels


# --------------------------------------------------------------------------------------------------
# Waterloo MEF subjective database
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WaterlooRow:
    """One method's results over the Waterloo MEF scenes.

    Attributes:
        method: rated method or our operator.
        rated: whether humans rated it (its MOS is measured, not predicted).
        mef_ssim: mean MEF-SSIM over the scenes.
        mos: mean MOS (rated) or mean predicted MOS (ours).
        mef_ssim_rank: mean rank by MEF-SSIM among the 8 rated methods plus this one (1 = best).
        mos_rank: mean rank by (predicted) MOS among the 8 rated methods plus this one.
        scenes: number of scenes.
    """

    method: str
    rated: bool
    mef_ssim: float
    mos: float
    mef_ssim_rank: float
    mos_rank: float
    scenes: int


def waterloo_study(operators: Sequence[str], data: str | os.PathLike, *, cache: MetricCache | None = None,
                   progress: bool = True) -> tuple[list[WaterlooRow], float]:
    """Score MEF operators on the Waterloo MEF database and place them on its human scale.

    Per scene, MEF-SSIM is computed for the 8 rated methods' images and for each operator's fusion
    of the full exposure stack; the operator's MOS is read off the least-squares line MOS ≈ a + b·MEF-SSIM
    through that scene's rated methods (clipped to the 1–10 scale). Ranks are per scene, then averaged.

    Returns:
        Rows (rated methods and ours) and the mean per-scene Spearman correlation between
        MEF-SSIM and MOS over the rated methods (how far MEF-SSIM can be trusted to rank).
    """
    from scipy.stats import rankdata, spearmanr

    from ..metrics.mefssim import mef_ssim

    root = Path(data) / "quality" / "waterloo_mef"
    if not (root / "mos.csv").is_file():
        raise InputError(f"Waterloo MEF database not found at {root}")
    operators = check_operators(operators, "mef")
    cache = cache or MetricCache(None)
    by_scene: dict[str, list[dict[str, str]]] = {}
    with open(root / "mos.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            by_scene.setdefault(row["scene"], []).append(row)
    rated_methods = sorted({r["method"] for rows in by_scene.values() for r in rows})
    per_method: dict[str, dict[str, list[float]]] = {m: {"ssim": [], "mos": [], "ssim_rank": [], "mos_rank": []}
                                                     for m in [*rated_methods, *operators]}
    correlations = []
    runners = {name: _make_runner(name, "mef") for name in operators}
    for scene in _progress(sorted(by_scene), progress, "Waterloo MEF"):
        rows = by_scene[scene]
        files = sorted(p for p in (root / rows[0]["sources"]).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        stack = [read_image(p, mode="rgb") for p in files]

        def score(image: np.ndarray) -> float:
            key = cache.key("waterloo", scene, "MEF_SSIM", image)
            value = cache.get(key)
            if value is None:
                value = mef_ssim(stack, image)
                cache.put(key, value)
            return value

        rated = {}
        for row in rows:
            fused = read_image(root / row["fused"], mode="rgb")
            if fused.shape[:2] == stack[0].shape[:2]:
                rated[row["method"]] = (score(fused), float(row["mos"]))
        if len(rated) < 3:
            continue
        x = np.array([v[0] for v in rated.values()])
        y = np.array([v[1] for v in rated.values()])
        slope, intercept = np.polyfit(x, y, 1)
        correlations.append(float(spearmanr(x, y).statistic))
        ours = {}
        for name in operators:
            fused, _ = runners[name](stack)
            value = score(quantise_8bit(fused))
            ours[name] = (value, float(np.clip(intercept + slope * value, 1.0, 10.0)))
        for method, (value, mos) in {**rated, **ours}.items():
            field_values = {**rated, method: (value, mos)}
            names = list(field_values)
            ssim_ranks = rankdata([-field_values[n][0] for n in names], method="average")
            mos_ranks = rankdata([-field_values[n][1] for n in names], method="average")
            record = per_method[method]
            record["ssim"].append(value)
            record["mos"].append(mos)
            record["ssim_rank"].append(float(ssim_ranks[names.index(method)]))
            record["mos_rank"].append(float(mos_ranks[names.index(method)]))
        cache.save()
    cache.save()
    out = [WaterlooRow(m, m in rated_methods, float(np.mean(r["ssim"])), float(np.mean(r["mos"])),
                       float(np.mean(r["ssim_rank"])), float(np.mean(r["mos_rank"])), len(r["ssim"]))
           for m, r in per_method.items() if r["ssim"]]
    return sorted(out, key=lambda r: -r.mos), float(np.mean(correlations)) if correlations else math.nan


def waterloo_markdown(rows: Sequence[WaterlooRow], correlation: float, heading: str = "### ") -> str:
    """The Waterloo study as a Markdown table."""
    lines = [f"{heading}Waterloo MEF subjective database ({rows[0].scenes if rows else 0} scenes)", "",
             "| method | rated by humans | mean MEF-SSIM | rank by MEF-SSIM (of 9) | mean MOS (ours: predicted) "
             "| rank by MOS (of 9) |", "|---|---|---|---|---|---|"]
    for r in rows:
        name = r.method if r.rated else f"**{_label(r.method)}**"
        lines.append(f"| {name} | {'yes' if r.rated else 'no (predicted)'} | {r.mef_ssim:.4f} | "
                     f"{r.mef_ssim_rank:.2f} | {r.mos:.2f} | {r.mos_rank:.2f} |")
    lines += ["", f"Mean per-scene Spearman correlation of MEF-SSIM with MOS over the rated methods: "
                  f"{correlation:.3f}."]
    return "\n".join(lines) + "\n"
