"""How well single perception cues separate a degradation from its confusers, on images made from tuning sources.

Two seeded sets of frames drawn from the perception tuning sources (``fuseagent.perceive.train``:
never the accuracy report's RoadScene pairs after the first 100, MEFB or Lytro), at most 640 px and 8-bit (as the tuning suite's frames):

* ``rain`` — half with rain or snow (levels 1–3; a quarter of them then motion-blurred), half clean
  or with JPEG, noise, motion blur or haze; 30 % of all re-compressed as JPEG afterwards;
* ``lowres`` — half down-sampled (``resolution.low``, levels 1–3), half clean, one frame of a
  multi-focus pair made from it (region or depth defocus), uniformly defocused, JPEG or noisy;
  30 % then lightly compressed or made noisy;
* ``striped`` — infrared frames only: half down-sampled (levels 1–2), half clean or defocused
  (levels 1–3); 60 % of all then given fixed-pattern stripe noise (``noise.stripe``, levels 1–5), as
  the infrared recipes do after a down-sampling.

For each feature of :func:`fuseagent.perceive.features.image_features` named below it prints the
ROC AUC of positives against all negatives and against each confuser (0.5: no separation; values
under 0.5 mean the feature is lower for positives, read 1 − AUC).

Usage: OMP_NUM_THREADS=1 python benchmarks/perception_cues.py [--n 400] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RAIN_FEATURES = ("falling_ratio", "falling_angle_contrast", "falling_excess", "streaks_ratio", "spots_ratio",
                 "spots_bright", "streak_orient_excess", "rain_excess")
LOWRES_FEATURES = ("segment_hf_q90", "segment_hf_q99", "resample_1.5", "resample_2", "band_8", "interp_period_row",
                   "blur_w25")
STRIPED_FEATURES = ("segment_hf_q90", "segment_hf_least_q90", "segment_hf_least_q99", "band_8", "band_9",
                    "interp_period_row")


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """ROC AUC (Mann–Whitney) of ``positive`` scoring above ``negative``."""
    if len(positive) == 0 or len(negative) == 0:
        return float("nan")
    ranks = np.concatenate([positive, negative]).argsort().argsort() + 1
    return float((ranks[:len(positive)].sum() - len(positive) * (len(positive) + 1) / 2) / (len(positive) * len(negative)))


def frames(kind: str, n: int, data: Path) -> list[tuple[bool, str, np.ndarray, str]]:
    """``(positive, what, image, modality)`` of the ``kind`` set."""
    from fuseagent.degrade import degrade
    from fuseagent.degrade.generators import multifocus_stack
    from fuseagent.degrade.suite import limit_size
    from fuseagent.io import quantise, read_image
    from fuseagent.perceive.train import load_config, single_sources

    sources = single_sources(load_config(), data)
    if kind == "rain":
        sources = [s for s in sources if s[1] == "vis"]
    elif kind == "striped":
        sources = [s for s in sources if s[1] == "ir"]
    out = []
    for i in range(n):
        rng = np.random.default_rng([{"rain": 99, "lowres": 77, "striped": 11}[kind], i])
        path, modality = sources[int(rng.integers(len(sources)))]
        image = quantise(limit_size(read_image(path, mode="gray" if modality == "ir" else "auto"), 640))
        positive = i % 2 == 0
        if kind == "rain" and positive:
            u = rng.random()
            what = "rain" if u < 0.5 else "snow"
            image = degrade(f"weather.{what}", image, rng, int(rng.choice([1, 1, 2, 3]))).image
            if u > 0.75:
                what = "snow+motion blur"
                image = degrade("blur.motion", image, rng, int(rng.integers(1, 6))).image
        elif kind == "lowres" and positive:
            what = "down-sampled"
            image = degrade("resolution.low", image, rng, int(rng.choice([1, 1, 2, 3]))).image
        elif kind == "striped":
            what = "down-sampled" if positive else str(rng.choice(["clean", "blur.defocus"]))
            if positive:
                image = degrade("resolution.low", image, rng, int(rng.choice([1, 1, 2]))).image
            elif what != "clean":
                image = degrade(what, image, rng, int(rng.integers(1, 4))).image
            if rng.random() < 0.6:
                image = degrade("noise.stripe", image, rng, int(rng.integers(1, 6))).image
            out.append((positive, what, quantise(image), modality))
            continue
        else:
            confusers = (["clean", "sensor.jpeg", "noise.gaussian", "blur.motion", "haze.scattering"] if kind == "rain"
                         else ["clean", "multi-focus", "multi-focus", "blur.defocus", "sensor.jpeg", "noise.gaussian"])
            what = str(rng.choice(confusers))
            if what == "multi-focus":
                stack = multifocus_stack(image, 2, seed=rng, mode=str(rng.choice(["region", "depth"])))
                image = stack.images[int(rng.integers(2))]
            elif what != "clean":
                image = degrade(what, image, rng, int(rng.integers(1, 6 if kind == "rain" else 4))).image
        if rng.random() < 0.3:
            after = "sensor.jpeg" if kind == "rain" else str(rng.choice(["sensor.jpeg", "noise.gaussian"]))
            image = degrade(after, image, rng, int(rng.integers(1, 4)) if kind == "rain" else 1).image
        out.append((positive, what, quantise(image), modality))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="frames per set")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    args = parser.parse_args()
    from fuseagent.perceive.features import image_features

    for kind, names in (("rain", RAIN_FEATURES), ("lowres", LOWRES_FEATURES), ("striped", STRIPED_FEATURES)):
        rows = frames(kind, args.n, Path(args.data))
        values = np.array([[image_features(img, modality)[f] for f in names] for _, _, img, modality in rows])
        positive = np.array([r[0] for r in rows])
        what = np.array([r[1] for r in rows])
        groups = [w for w in dict.fromkeys(what) if not positive[what == w].any()]
        kinds = [w for w in dict.fromkeys(what) if positive[what == w].any()]
        print(f"\n{kind}: {positive.sum()} positives ({', '.join(f'{k} {int((what == k).sum())}' for k in kinds)}), "
              f"{(~positive).sum()} negatives")
        print("| feature | all | " + " | ".join(f"{k} vs all negatives" for k in kinds) + " | "
              + " | ".join(f"vs {g}" for g in groups) + " |")
        for j, name in enumerate(names):
            v = values[:, j]
            cells = [auc(v[positive], v[~positive])] + [auc(v[what == k], v[~positive]) for k in kinds]
            cells += [auc(v[positive], v[what == g]) for g in groups]
            print(f"| {name} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
