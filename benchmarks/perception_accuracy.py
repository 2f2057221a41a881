"""Perception accuracy on a held-out wild suite, written to docs/PERCEPTION.md (and the speed ratio
to docs/BENCHMARKS.md).

The suite is built with the ``synth`` code (recipes of groups A, B and C) from sources that the
classifier never saw while it was trained and its thresholds tuned (see
``fuseagent.perceive.train``): RoadScene pairs after the first 100 (IVIF), the MEFB scenes that are
not among its 16 validation scenes (MEF) and the 20 Lytro pairs (MFF). Usage::

    OMP_NUM_THREADS=1 python benchmarks/perception_accuracy.py [--data ../shared/data] [--n 540] [--seed 7]
    OMP_NUM_THREADS=1 python benchmarks/perception_accuracy.py --speed-only   # timing only, prints it

The suites are cached in ``--cache`` (one folder per ``--n`` and ``--seed``, resumable; a suite built by an
older synthesis version is rebuilt), so a re-run only re-perceives.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import machine, update_section  # noqa: E402

from fuseagent.degrade.severity import LEVEL_NAMES, PERCEIVED_TYPES  # noqa: E402
from fuseagent.degrade.suite import SUITE_VERSION, Source, build_suite, discover_sources  # noqa: E402
from fuseagent.io import read_image  # noqa: E402
from fuseagent.perceive import moving_and_reference, perceive  # noqa: E402
from fuseagent.perceive.train import f1_score, ground_truth, load_config, roadscene_split, transform_error  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "PERCEPTION.md"
TYPES = tuple(PERCEIVED_TYPES)
WEAKNESSES = """Where it falls short, and why (observed on this suite and on the tuning suite's out-of-fold predictions):

* **Counts.** The suite has 540 pairs per task (since session 14; 180 in sessions 11–13, 60 before), so
  each type has 133–616 positives and one image moves a type's F1 by 0.002–0.007. At 180 pairs two draws
  of the same sources put session 13's haze at 0.889 (seed 7) and 0.948 (seed 8); at 60, one model
  (session 11's network, with thresholds from folds by sample) scored haze 0.80–0.94, over-exposure 0.88–0.95 and rain 0.89–0.92 on suites of seeds
  7, 8 and 9. The sources stay few (36 RoadScene pairs, 41 MEFB scenes, 20 Lytro pairs, each used 13–27
  times), which is why the intervals resample sources, not pairs.
* **Refits.** The training draws (fold assignment, the members' initialisation) move the figures too
  (the figures of this bullet are on the former 180-pair suite, synthesis version 2). Session 13's
  settings refitted on the same tuning rows with the seed + 100 score haze 0.877, rain 0.921,
  over-exposure 0.949 and low resolution 0.861 here (session 13's fit: 0.889, 0.915, 0.925 and 0.865; blur
  0.938 against 0.951, the other types within 0.01). Before session 13's threshold rule (below) two fits
  put rain's threshold at 0.83 and 0.69 and scored it 0.894 and 0.931 here; with it their thresholds agree
  within 0.05, and what still moves the figures is the networks: four fits of those settings (two
  seeds, on tuning rows that differ in 4 of 4294) gave haze 0.877–0.893, rain 0.915–0.938, over-exposure
  0.925–0.949 and low resolution 0.861–0.869. Session 12's settings gave, over four fits, haze
  0.870–0.908, rain 0.903–0.938, over-exposure 0.921–0.937 and low resolution 0.851–0.870. On this suite
  session 13's fit and its refit on the version-3 tuning rows (shipped) score low resolution 0.856 and
  0.835, haze 0.916 and 0.910, rain 0.905 and 0.915, over-exposure 0.921 and 0.917: low resolution is below
  0.9 whatever the fit, haze, rain and over-exposure are above it by less than a refit moves them.
* **Low resolution vs blur.** Down/up-sampling and defocus both remove high frequencies; with one image
  and no reference the features (edge width, spectrum bands, resampling residuals) separate them only
  partly. The periodicity of second-difference profiles (interpolation leaves a trace at the sampling
  period, defocus does not), now read over the whole frame, and the finest detail that the frame's
  sharpest parts keep (down-sampling removes it everywhere, the defocus of a multi-focus frame spares the
  in-focus parts: on frames made from tuning sources, `benchmarks/perception_cues.py`, it tells
  down-sampling from such defocus with AUC 0.83, against 0.71 for the best earlier cue; 0.85 and 0.76 before the
  frames were made 8-bit in session 11) separate them best. Since session 13 that cue is also read along
  fixed-pattern stripes, which the infrared recipes may add after a down-sampling, and the spectrum bands
  leave out the frequency axes, where the stripes' additive part lies (their gain part still reaches the
  bands: a level-5 pattern raises the 0.37–0.42 cycles/px band of a down-sampled frame by about 1 decade). The
  misses are mild down-sampling of RoadScene infrared frames, which are soft already (and carry a
  resampling trace of their own): 16 of the 19 misses here, 13 of them level 1 (13 of the 24 level-1
  infrared positives are missed). The false detections (53) are Lytro frames (36), the over-exposed
  frame of one MEFB scene (ICCV_15 B, 10; a recipe had warped or blurred most of them) and six infrared
  frames under defocus and noise. Of the Lytro ones, 14 are the defocused frame of one scene (lytro_05 A,
  4 of them untouched by any operation), where only a wire fence is sharp; of the other 22, 16 are hazed
  frames (a veil takes contrast from the finest detail first), 2 untouched and 4 warped or re-exposed. The
  Lytro frames are renders of a light-field camera,
  which has a fraction of its sensor's resolution (one spatial sample per microlens), and they carry an
  interpolation trace before any degradation: the second-difference period peak (`interp_period_*`) has a
  median of 16.8 over the 40 clean Lytro frames (at 640 px or less, as the suites use them), against 5.5, 4.8
  and 5.3 for MEFB, Waterloo and LOL frames. Their own resolution is therefore not known, yet it is scored
  as none; scoring low resolution on the infrared-visible and multi-exposure pairs alone would give
  0.884, still short. Relative cues of an infrared frame against
  its visible partner (edge widths, finest detail) raised the tuning pairs' out-of-fold low-resolution F1
  (0.898 → 0.918) but rain's far more (0.873 → 0.931): the recipes pair an infrared change with a visible
  one (snow on the visible frame with a smaller infrared frame, for instance), so such a cue names the
  recipe rather than the degradation, and it was not kept. In session 12, reading the finest-detail cue of
  an infrared frame past its stripes by removing the column and row offsets raised the tuning pairs'
  out-of-fold infrared low-resolution F1 0.866 → 0.880 but lowered low resolution here to 0.841; it was not
  kept (a choice made after seeing this suite). Session 13's reading along the stripes replaces it.
* **Blur** is read by edge widths along every 8th row and column of the whole frame (not only in a
  central window) and, for multi-exposure pairs, relative to the partner frame; the ratio of widths along
  rows and columns shows the direction of a motion blur. Five of its ten misses here are level-1 blurs of
  RoadScene infrared frames, the other five blurs of MEFB frames at levels 1–3 (two of them on ICCV_15 B,
  which also reads as down-sampled).
* **Rain and snow.** Falling streaks — thin bright lines, about 3 px wide, that continue over 10 px at full
  resolution in one direction within 30° of vertical, counted per direction against thin dark ones and
  read in the direction where they most outnumber them (the drops of one shower share a direction) —
  separate rain from textured and compressed scenes (on frames made from tuning sources,
  `benchmarks/perception_cues.py`: AUC 0.96, against 0.74 for the top-hat streak counts (0.78 on the float frames
  before session 11) and, during
  development, 0.76 for the earlier count of near-vertical lines of any width, which JPEG ringing and
  one-pixel texture also fed); snow flakes are round and rest on the spot counts, read on a log scale and against the dark
  spots (a textured close-up holds thousands of bright specks of its own). The misses here are mostly
  sparse or smeared precipitation on RoadScene visible frames (14 of 24, 7 of them level 1) and rain over
  Lytro close-ups (10, 6 of them on one scene); the false detections are four RoadScene frames and one
  Lytro frame.
* **Haze** is read from the dark channel (its mean, its darkest patches, those of the top third and their
  rise over the bottom third's) and contrast, and decided jointly for the two frames of a same-modality
  pair (the mean of their probabilities: haze is in the scene, which both frames show). The misses are
  level-1 haze (density 0.2–0.32) on colourful Lytro close-ups: 54 of their 80 level-1 frames here (on
  the former 180 pairs 22 of 28 in session 13, 20 in session 12, all 28 in session 11), and 10 of their 258
  frames at higher levels; level-1 haze on RoadScene frames is missed on 11 of 34. A close-up is near the camera everywhere, so the synthetic veil is thin
  (transmission 0.64–0.94) and the scene's own colours stay vivid; the two false detections are the frames
  of one pale Lytro scene. The tuning sources explain the gap: RoadScene's visible frames, most of the single
  images that tuning pairs are made from, already read as hazy by the dark-channel prior (median
  darkest-patch level 0.35 and dark-channel density 0.49, against 0.0 and 0.22 for Lytro and 0.01–0.04
  and 0.21–0.34 for the LOL, scikit-image and Waterloo photographs); drawing the haze-free collections
  more often and the top-third cues narrowed it (out-of-fold level-1 recall on pairs made from Waterloo
  frames 4/24 in session 11, 34/40 now), but no tuning source is a close-up.
* **Held-out domain shift.** The tuning suite's MEF/MFF pairs are mostly generated from single images;
  MEFB brackets and Lytro focus pairs look different (real noise, real defocus, real clipping). Real
  exposure pairs from the Waterloo stacks narrowed the gap for MEF (noise and blur on real brackets); no
  real focus pairs are available for tuning, so MFF inputs (Lytro: bright, saturated close-ups) remain the
  least familiar, and the classifier's out-of-fold F1 on the tuning sources stays above this suite's.
* **Moving objects in infrared-visible pairs** are hard: edge structure of the two modalities agrees only
  loosely everywhere, so a moved object barely stands out (F1 far below the same-modality pairs'); MEF/MFF
  pairs use exposure-matched intensity differences and do much better.
* **IVIF misalignment** is measured against the synthetic transform, but RoadScene's pairs already carry a
  few px of real misregistration (different cameras, parallax); detection therefore needs a threshold of
  about 4 px for IVIF (tuned on TNO/RoadScene-train), which misses the smallest synthetic shifts.
* **Over-exposure** is judged on a single image against a level-1 edge of +0.7 EV, while MFF recipes drift
  a frame's exposure by up to ±0.6 EV (not a degradation by that edge): a naturally bright frame or a
  drifted one looks like a mild over-exposure; all 4 false detections here are Lytro frames. For
  MEF/MFF pairs the classifier also reads each image's exposure and luminance statistics relative to its
  partner, which tells drift from over-exposure when the other frame is unchanged, and which frame is
  abnormal when one was darkened; IVIF visible frames have no such reference. It is told whether the pair
  is an exposure bracket (`pair_bracket`): in a bracket a frame 3 EV brighter than its partner is the
  bracket's bright frame, in a focus pair the same difference means one frame was mis-exposed, and
  without the flag the classifier took the normal frame of a focus pair whose partner was darkened for
  over-exposed (on the tuning pairs' out-of-fold predictions of one network, folds by sample, multi-focus over-exposure F1 0.892 → 0.938,
  false detections 29 → 12 of 2400 frames). The histogram-combing cue
  (empty 8-bit codes after a tone-curve change) sees the suites' *digital* re-exposure of 8-bit data; a
  camera that over-exposes at capture leaves no combing, so on real captures over-exposure rests on the
  clipping cues and the pair's exposure difference, and the suite's over-exposure score overstates
  real-world accuracy there. A re-exposure by ``ev`` through a response of exponent ``γ`` scales 8-bit
  codes by ``2^(ev/γ)``, so labels are now read on the effective EV ``ev · 2.2 / γ`` (the suites draw γ in
  1.8–2.6); the measured scaling (from the partner) matches it to 0.04 EV (median, MFF). The drift of the
  MFF recipes reaches +0.73 effective EV, across the +0.7 edge. The suites' clean inputs are 8-bit frames
  (session 11: a generated focus pair or a shrunk source is rounded to 8-bit levels before it is degraded,
  as a camera stores it), so a drift combs the histogram as it does on a Lytro frame read from disk; the
  tuning pairs generated from single images used to be left in floating point, where no re-exposure
  combs, so the classifier had never seen a combed frame that was not over-exposed. All 17 misses here are
  Lytro frames: 11 over-exposed and then made noisy (noise fills the combing; one recipe, whose partner is
  compressed), 6 mildly over-exposed frames (levels 1–3) beside a partner; of the 4 false detections, two
  are an unchanged frame whose partner was darkened by 3.2–3.8 EV and two a frame of one bright scene.
* **JPEG** is read from the quantisation step of the 8×8 blocks' DCT coefficients in the central window
  (the coefficients of a decoded JPEG cluster at multiples of the step; Fan & de Queiroz 2003), turned into
  100 − quality through the standard table: where a step is found it decides (present from the scale's
  level-1 edge, 100 − quality ≥ 45) and gives the level, because the step is the compression's own
  parameter and reads the same on any scene. Sources that were themselves saved as JPEG (RoadScene visible
  frames, Lytro: about 100 − quality = 25) are therefore no longer taken for compressed, which the
  classifier's boundary, tuned on other scenes, did. Where no step is found (a frame resampled after
  compression, or a grid at another phase, i.e. a cropped JPEG) the classifier decides, on the jump at the
  8-px block grid against its other phases over the whole frame (clipped areas left out). A tone change
  after compression scales the steps: the nine false detections here are frames saved as JPEG (RoadScene,
  Lytro: about 100 − quality = 25) and then over-exposed by 1.8–2.5 EV, which stretches their steps.
* **Speed.** To cost less than a classical fusion call, pixel-level statistics (noise, 2-D edge width,
  column/row patterns, resampling residuals, the spectrum, the DCT quantisation step) are read in the
  central 256×192 px at full resolution, thin structures, haze and texture in the central 512×384 px at half
  resolution; luminance and clipping use the whole half-size frame; edge widths, the block grid, the
  resampling period and falling streaks use every 4th or 8th row and column (or every other row) of the
  whole full-resolution frame. Degradations confined to the frame's border are therefore seen only by the
  latter. Haze, rain, clipping and re-exposure cues are not measured on infrared frames, which is what pays
  for the whole-frame cues on an infrared-visible pair; a pair of two colour frames (MEF/MFF) costs about
  1.5× an IVIF pair. The homography comes from one round of tile phase correlation at 256 px width, the
  relations at 256 px. Perception and the fusion operators are timed interleaved in CPU seconds; on the
  shared, loaded machine the ratio moves by about ±15 % from run to run."""

COMMAND = "OMP_NUM_THREADS=1 python benchmarks/perception_accuracy.py --data ../shared/data --n {n} --seed {seed}"


def report_sources(data: Path) -> dict[str, list[Source]]:
    """Held-out sources per task (never used for training or tuning)."""
    _, test = roadscene_split(data, int(load_config()["roadscene_train"]))
    ivif = [s for s in discover_sources(data / "ivif" / "roadscene", "ivif") if s.name in set(test)]
    validation = {p.stem for p in (data / "mef" / "mefb_fused" / "DEM").iterdir()}
    mef = [s for s in discover_sources(data / "mef" / "mefb", "mef") if s.name not in validation and not s.single]
    mff = [s for s in discover_sources(data / "mff" / "lytro", "mff") if not s.single]
    return {"ivif": ivif, "mef": mef, "mff": mff}


def _motion_truth(folder: Path, record: dict[str, Any], ref_shape: tuple[int, int]) -> np.ndarray | None:
    moving = record["moving"]
    key = f"mask_motion_{moving}"
    if key not in record["files"]:
        return None
    mask = read_image(folder / record["files"][key]) > 0.5
    h, w = ref_shape
    mask = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    transform = np.array(record["misalignment"]["transform"], np.float64)
    back = cv2.warpPerspective(mask, transform, (w, h), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP)
    return back.astype(bool)


def evaluate(task: str, folder: Path, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for rec in records:
        roles = rec["roles"]
        images = [read_image(folder / rec["files"][r], mode="gray" if r == "ir" else "auto") for r in roles]
        rep = perceive(images[0], images[1], task)
        gt = ground_truth(rec)
        moving, reference = moving_and_reference(task, roles)
        ref_shape = images[roles.index(reference)].shape[:2]
        pred_levels = np.array([[rep.image(r).degradations[t].level for t in TYPES] for r in roles])
        est = np.array(rep.misalignment["transform"])
        motion_gt = _motion_truth(folder, rec, ref_shape)
        iou = None
        if motion_gt is not None and rep.moving_objects["detected"] and rep.motion_mask is not None:
            inter = float((motion_gt & rep.motion_mask).sum())
            iou = inter / max(1.0, float((motion_gt | rep.motion_mask).sum()))
        rows.append({
            "task": task, "source": f"{task}:{rec['source']['name']}", "group": rec["group"], "recipe": rec["recipe"],
            "levels": gt["levels"], "known": gt["known"],
            "pred": pred_levels, "gt_disp": gt["displacement_px"], "est_disp": rep.misalignment["displacement_px"],
            "mis_detected": rep.misalignment["detected"],
            "epe": transform_error(gt["transform"], est, ref_shape),
            "gt_motion": gt["motion"], "motion_detected": rep.moving_objects["detected"], "iou": iou,
            "gt_ev": gt["ev"], "est_ev": rep.exposure_mismatch["ev"][0],
            "gt_log_rb": gt["log_rb"], "wb_detected": rep.white_balance_mismatch["detected"],
            "seconds": rep.seconds, "size": ref_shape,
        })
    return rows


def _fmt(x: float) -> str:
    return f"{x:.3f}"


def type_table(rows: list[dict[str, Any]]) -> tuple[str, dict[str, float], dict[str, tuple[float, float]]]:
    """The per-type table, each type's F1 and its 95 % bootstrap interval."""
    levels = np.concatenate([r["levels"] for r in rows])
    known = np.concatenate([r["known"] for r in rows])
    pred = np.concatenate([r["pred"] for r in rows])
    lines = ["| degradation | images scored | positives | precision | recall | F1 | F1 95 % interval | "
             "level accuracy (exact) | level within ±1 |",
             "|---|---|---|---|---|---|---|---|---|"]
    low, high = f1_intervals(rows)
    f1s = {}
    for j, kind in enumerate(TYPES):
        sel = known[:, j]
        truth, guess = levels[sel, j] > 0, pred[sel, j] > 0
        p, r, f = f1_score(guess, truth)
        f1s[kind] = f
        both = truth & guess
        exact = float((levels[sel, j][both] == pred[sel, j][both]).mean()) if both.any() else float("nan")
        near = float((np.abs(levels[sel, j][both] - pred[sel, j][both]) <= 1).mean()) if both.any() else float("nan")
        lines.append(f"| {kind} | {int(sel.sum())} | {int(truth.sum())} | {_fmt(p)} | {_fmt(r)} | {_fmt(f)} | "
                     f"{_fmt(low[j])}–{_fmt(high[j])} | {_fmt(exact)} | {_fmt(near)} |")
    return "\n".join(lines), f1s, {kind: (float(low[j]), float(high[j])) for j, kind in enumerate(TYPES)}


def f1_intervals(rows: list[dict[str, Any]], draws: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """2.5 and 97.5 percentiles of each type's F1 over bootstrap resamples of the source scenes
    (percentile bootstrap; within each task, the sources are drawn with replacement and a drawn source
    brings all its pairs: pairs made from one source share its content, so they are not independent)."""
    sources = sorted({(r["task"], r["source"]) for r in rows})
    index = {s: i for i, s in enumerate(sources)}
    counts = np.zeros((len(sources), 3, len(TYPES)))  # per source: true positives, false positives, false negatives
    for r in rows:
        truth, guess, known = r["levels"] > 0, r["pred"] > 0, r["known"]
        counts[index[(r["task"], r["source"])]] += [(truth & guess & known).sum(0), (~truth & guess & known).sum(0),
                                                     (truth & ~guess & known).sum(0)]
    strata = [np.array([i for i, s in enumerate(sources) if s[0] == task]) for task in sorted({s[0] for s in sources})]
    rng = np.random.default_rng(seed)
    draws_f1 = np.empty((draws, len(TYPES)))
    for b in range(draws):
        tp, fp, fn = sum(counts[members[rng.integers(len(members), size=len(members))]].sum(0) for members in strata)
        draws_f1[b] = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    return np.percentile(draws_f1, 2.5, axis=0), np.percentile(draws_f1, 97.5, axis=0)


def relational_table(rows: list[dict[str, Any]]) -> tuple[str, dict[str, float]]:
    lines = ["| task | pairs | misaligned | misalignment F1 | EPE median, all pairs (px) | EPE median, misaligned (px) | "
             "moving-object F1 | motion mask IoU (detected) | exposure-mismatch error median (EV) |",
             "|---|---|---|---|---|---|---|---|---|"]
    out = {}
    for task in ("ivif", "mef", "mff", "all"):
        sub = [r for r in rows if task in ("all", r["task"])]
        if not sub:
            continue
        mis_t = np.array([r["gt_disp"] >= 1.0 for r in sub])
        mis_p = np.array([r["mis_detected"] for r in sub])
        epe = np.array([r["epe"] for r in sub])
        mot_t = np.array([r["gt_motion"] for r in sub])
        mot_p = np.array([r["motion_detected"] for r in sub])
        ious = [r["iou"] for r in sub if r["iou"] is not None]
        evs = [abs(r["gt_ev"] - r["est_ev"]) for r in sub if r["gt_ev"] is not None]
        mf = f1_score(mis_p, mis_t)[2]
        of = f1_score(mot_p, mot_t)[2]
        out[task] = float(np.median(epe))
        out[f"{task}_mis_f1"] = mf
        out[f"{task}_motion_f1"] = of
        lines.append(f"| {task} | {len(sub)} | {int(mis_t.sum())} | {_fmt(mf)} | {np.median(epe):.2f} | "
                     f"{np.median(epe[mis_t]) if mis_t.any() else float('nan'):.2f} | {_fmt(of)} | "
                     f"{np.mean(ious) if ious else float('nan'):.2f} | "
                     f"{np.median(evs) if evs else float('nan'):.2f} |")
    return "\n".join(lines), out


def speed(data: Path) -> tuple[str, dict[str, float]]:
    """Seconds to perceive a 640×480 pair vs one call of each available IVIF fusion operator.

    Calls are interleaved (perceive, then each operator, repeated) so that a shared machine's load
    affects both alike; CPU seconds of this process are reported next to wall-clock seconds.
    """
    from fuseagent.tools import create_tool, list_tools, tool_card

    # OMP_NUM_THREADS does not reach OpenCV's own thread pool: one thread for every call timed here.
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        return _speed(data, create_tool, list_tools, tool_card)
    finally:
        cv2.setNumThreads(threads)


def _speed(data: Path, create_tool: Any, list_tools: Any, tool_card: Any) -> tuple[str, dict[str, float]]:
    names = sorted(discover_sources(data / "ivif" / "roadscene", "ivif"), key=lambda s: s.name)[-3:]
    pairs = []
    for s in names:
        vis = cv2.resize(read_image(s.files["vis"]), (640, 480), interpolation=cv2.INTER_CUBIC)
        ir = cv2.resize(read_image(s.files["ir"], mode="gray"), (640, 480), interpolation=cv2.INTER_CUBIC)
        pairs.append((np.clip(ir, 0, 1).astype(np.float32), np.clip(vis, 0, 1).astype(np.float32)))
    tools = {}
    candidates = [n for n in list_tools("fusion.*", available_only=True) if "ivif" in tool_card(n).fusion_tasks]
    # One learned (high-cost) operator is timed for reference; its ablation variants cost the same.
    learned = sorted((n for n in candidates if tool_card(n).cost == "high"), key=lambda n: (len(n), n))[:1]
    for name in candidates:
        if tool_card(name).cost == "high" and name not in learned:
            continue
        try:
            tool = create_tool(name)
            tool(list(pairs[0]))
        except Exception:  # an operator that cannot run here is left out of the comparison
            continue
        tools[name] = tool
    perceive(*pairs[0], "ivif")
    wall: dict[str, list[float]] = {"perceive": [], **{n: [] for n in tools}}
    cpu: dict[str, list[float]] = {"perceive": [], **{n: [] for n in tools}}
    slow = {n for n in tools if tool_card(n).cost == "high"}
    for repeat in range(3):
        for i, (ir, vis) in enumerate(pairs):
            # operators of "high" cost (learned, seconds per call) are timed once, not nine times
            for name in ["perceive", *[n for n in tools if n not in slow or (repeat == 0 and i == 0)]]:
                w0, c0 = time.perf_counter(), time.process_time()
                if name == "perceive":
                    perceive(ir, vis, "ivif")
                else:
                    tools[name]([ir, vis])
                wall[name].append(time.perf_counter() - w0)
                cpu[name].append(time.process_time() - c0)
    med_w = {k: float(np.median(v)) for k, v in wall.items()}
    med_c = {k: float(np.median(v)) for k, v in cpu.items()}
    per_w, per_c = med_w.pop("perceive"), med_c.pop("perceive")
    lines = [f"Perceiving one 640×480 IVIF pair (3 RoadScene pairs resized to 640×480, 9 runs, single thread: "
             f"OMP_NUM_THREADS=1 and OpenCV set to one thread; "
             f"operators of high cost timed once): "
             f"**{per_c:.3f} CPU s** ({per_w:.3f} s wall)."]
    if med_c:
        cheapest = min(med_c, key=med_c.get)
        classical = [v for k, v in med_c.items() if k not in slow] or list(med_c.values())
        fusion_median = float(np.median(classical))
        lines.append(f"One IVIF fusion operator call on the same pairs, interleaved with the perception runs: median "
                     f"over the {len(classical)} classical operators {fusion_median:.3f} CPU s; cheapest `{cheapest}` "
                     f"{med_c[cheapest]:.3f} CPU s. Ratio perception / median fusion call = "
                     f"**{per_c / fusion_median:.2f}**; perception / cheapest call = **{per_c / med_c[cheapest]:.2f}**.")
        lines.append("")
        lines.append("| call | CPU s | wall s | perception / call (CPU) |")
        lines.append("|---|---|---|---|")
        lines.append(f"| `perceive` | {per_c:.3f} | {per_w:.3f} | 1.00 |")
        for name in sorted(med_c, key=med_c.get):
            lines.append(f"| `{name}` | {med_c[name]:.3f} | {med_w[name]:.3f} | {per_c / med_c[name]:.2f} |")
    return "\n".join(lines), {"perceive_cpu_s": per_c, **{f"fusion:{k}": v for k, v in med_c.items()}}


def previous_speed(doc: Path) -> str:
    """The speed section of an earlier report at ``doc`` (kept by a run that does not time), if any."""
    text = doc.read_text() if doc.is_file() else ""
    start, end = text.find("## Speed\n"), text.find("\n## Verdict")
    if start < 0 or end < start:
        return "(speed not measured in this run)"
    return text[start + len("## Speed\n"):end].strip()


def drop_stale_cache(folder: Path) -> None:
    """Remove a cached suite that an older version of the synthesis built (it would be refused)."""
    settings = folder / "suite.json"
    if settings.is_file():
        try:
            version = json.loads(settings.read_text()).get("version")
        except (json.JSONDecodeError, AttributeError):
            version = None
        if version != SUITE_VERSION:
            shutil.rmtree(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--n", type=int, default=540, help="pairs per task")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache", default=str(ROOT / "out" / "perception_suite"))
    parser.add_argument("--doc", default=str(DOC))
    parser.add_argument("--no-speed", action="store_true", help="do not time perception (the report keeps its previous speed section)")
    parser.add_argument("--speed-only", action="store_true",
                        help="only time perception against the fusion operators and print it (writes nothing)")
    args = parser.parse_args(argv)
    data = Path(args.data)
    if not data.is_dir():
        print(f"data folder '{data}' not found", file=sys.stderr)
        return 2
    if args.speed_only:
        print(speed(data)[0])
        return 0
    sources = report_sources(data)
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for task, srcs in sources.items():
        folder = Path(args.cache) / f"n{args.n}-seed{args.seed}" / task
        drop_stale_cache(folder)
        per_source = -(-args.n // len(srcs))
        records = build_suite(task, srcs, "all", args.n, args.seed, folder, per_source=per_source, max_side=640,
                              progress=sys.stderr.isatty())
        rows += evaluate(task, folder, records)
        print(f"{task}: {len(records)} pairs from {len(srcs)} sources", file=sys.stderr)
    elapsed = time.perf_counter() - start
    table, f1s, intervals = type_table(rows)
    rel, rel_out = relational_table(rows)
    per_group = []
    for group in ("A", "B", "C"):
        sub = [r for r in rows if r["group"] == group]
        if sub:
            _, g, _ = type_table(sub)
            scored = {k: v for k, v in g.items() if not np.isnan(v)}
            per_group.append(f"| {group} | {len(sub)} | {np.mean(list(scored.values())):.3f} | "
                             f"{min(scored.values()):.3f} ({min(scored, key=scored.get)}) |")
    speed_text, speed_out = (previous_speed(Path(args.doc)), {}) if args.no_speed else speed(data)
    failing = [k for k, v in f1s.items() if v < 0.9 - 1e-9]  # (an F1 of exactly 0.9 in floating point passes)
    close = [k for k in f1s if k not in failing and intervals[k][0] < 0.9]
    n_sizes = {f"{r['size'][1]}×{r['size'][0]}" for r in rows}
    from fuseagent.perceive.model import load_model

    model = load_model()
    n_features, n_members = len(model.feature_names), 1 + len(model.extra_members)
    doc = f"""# Perception accuracy

Reproduce with:

```
{COMMAND.format(n=args.n, seed=args.seed)}
```

## How perception works

`fuseagent.perceive(a, b, task)` (CLI: `fuseagent perceive A B --task ivif [--json]`) measures each image
(pixel-level statistics in a central window, sparse cues on strided rows and columns of the whole frame; see
the Verdict) with cheap estimators — Immerkær's noise estimate over the flattest blocks and the wavelet MAD
estimate, edge width at strong edges (in 2-D in the window, and along every 8th row and column of the frame,
whose ratio shows the direction of a motion blur), radial spectrum bands (the two frequency axes left out: column
and row stripes put their energy there) and down/up-sampling residuals, the
dark channel (its mean, its darkest patches, and the darkest patches of the frame's top third, alone and against
its bottom third: haze thickens with distance, and the far part of a scene is mostly its upper part), thin bright/dark structures
(top-hat components: streaks and spots; oriented line energy of bright against dark thin structures; thin
bright lines a few px wide that fall in one direction within 30° of vertical over 10 px, read in the direction
where they most outnumber dark ones, i.e. falling rain), luminance statistics, clipped regions and the texture
left in highlights, the periodicity of second-difference profiles over the whole frame (the sampling-period
trace that interpolated upsampling leaves and defocus does not), the finest detail kept by the sharpest 64-px
runs of every 4th row and column (down-sampling removes it from the whole frame, defocus spares the in-focus
parts; also read on rows and on columns apart, the lower of the two, since stripes add fine detail across
themselves only), column/row patterns, the jump at the 8-px JPEG block grid against its other phases
(clipped areas left out), the JPEG quantisation step of the blocks' DCT coefficients (Fan & de Queiroz 2003)
read as 100 − quality, and the combing of the 8-bit histogram (empty codes / spikes that a tone-curve change
of 8-bit data leaves; Stamm & Liu 2010); for a multi-exposure or multi-focus pair also each image's exposure,
luminance statistics and histogram combing relative to its partner, and for a multi-exposure pair its edge width relative to its
partner (a frame blurred by shake beside a sharp one) — and feeds the {n_features} numbers to a small classifier (`perceive_weights.npz`: an ensemble of {n_members} two-hidden-layer
perceptrons whose outputs are averaged) that outputs, per type, a presence probability (compared with a per-type
threshold tuned for F1 on the tuning suite's synthesised pairs) and a continuous severity read on the type's
scale. Haze is decided jointly for the two frames of a multi-exposure or multi-focus pair (the mean of their
probabilities: it is in the scene), and JPEG is read directly from the quantisation step wherever one is
found (present from 100 − quality ≥ 45, the scale's level-1 edge), the classifier deciding elsewhere.
Cues of haze, rain, over-exposure and re-exposure are not measured on infrared images (the classifier
never sees those types there). For the pair it estimates the reference→moving homography (tile phase correlation of normalised gradient
fields, robust fit, correlation check), and, after warping, the exposure and white-balance mismatch, moving
objects (blocks disagreeing far more than typical) and complementarity (focus / well-exposedness shares); a
caption summarises the report.

## Suite

{len(rows)} pairs built by the `synth` code (every recipe of groups A, B and C, drawn per pair; seed {args.seed}),
from sources never used to train the classifier or tune a threshold:

| task | sources | pairs |
|---|---|---|
| IVIF | RoadScene pairs after the first 100 in sorted order ({len(sources['ivif'])} pairs; Xu et al., U2Fusion) | {sum(r['task'] == 'ivif' for r in rows)} |
| MEF | MEFB scenes outside its 16 validation scenes ({len(sources['mef'])} scenes; Zhang 2021) | {sum(r['task'] == 'mef' for r in rows)} |
| MFF | Lytro multi-focus pairs ({len(sources['mff'])}; Nejati et al. 2015) | {sum(r['task'] == 'mff' for r in rows)} |

Sources larger than 640 px are shrunk to 640 px on their long side ({len(n_sizes)} distinct sizes).
Tuning used a separate in-memory suite (`python -m fuseagent.perceive.train`, settings in
`src/fuseagent/perceive/train_config.json`): TNO and RoadScene-train pairs, exposure brackets / focus
pairs generated from LOL-high, scikit-image sample photographs, RoadScene-train/TNO visible frames and the
best-exposed frames of the Waterloo MEF stacks, real exposure pairs from those stacks (the 4 stacks showing
scenes that MEFB also holds — Balloons, Candle, Lamp, Memorial — left out), and single frames of the same
sources with 0–2 random degradations (focus pairs drawn 4× as often from LOL and Waterloo frames and 2× from
scikit-image's as from RoadScene's and TNO's; every photograph a pair or frame is made from rendered with a
random saturation gain); each type's threshold is the middle of those whose F1 (averaged over ±0.05) is within 0.02 of the best, on out-of-fold predictions of the
tuning pairs (whose mix of degradations is the suites' one; haze pooled over a same-modality pair's frames,
as perception decides it), with folds by scene: every pair and single frame made from one scene falls in one
fold, so each is predicted by a model that never saw its scene, as a user's images are.

Ground truth comes from the manifest: an image is positive for a type when an operation of the recipe caused
it at level ≥ 1 (levels on the scales of `fuseagent.degrade.severity`: {', '.join(LEVEL_NAMES)}). Types that are
the nature of the source rather than a degradation are not scored: low light and over-exposure on MEFB inputs
(real under/over-exposed brackets) and blur on Lytro inputs (real focus pairs). Over-exposure, low light and
the pair's exposure mismatch are levelled on the effective EV `ev · 2.2 / gamma`
(`fuseagent.degrade.photometric.effective_ev`): an exposure change of `ev` stops through a response of
exponent `gamma` multiplies pixel values by `2^(ev/gamma)`, so only that ratio is visible, and the raw `ev`
gave identical images different labels (e.g. +0.59 EV at gamma 1.83 and +0.71 EV at gamma 2.2).

The shipped classifier (session 14) has session 13's settings, refitted after a fix to the synthesis,
and this suite grew. (1) The suite has 540 pairs per task instead of 180 (the former 180 are its first:
sample i depends only on the seed and i), and the F1 intervals resample source scenes instead of pairs.
Both were decided before this size was run, with one draw's figures known: at 180 pairs, seed 8 had put
session 13's haze at 0.948 and low resolution at 0.878 (seed 7: 0.889 and 0.865). On the 540 pairs session
13's weights scored haze 0.913, rain 0.913, over-exposure 0.925, low resolution 0.846, blur 0.964. (2)
Synthesis version 3: geometric warps and moved objects were interpolated bilinearly, which softens the
moved frame (a fine texture shifted by half a pixel keeps about half its second-difference energy,
85 % with Lanczos), a degradation no label named; now Lanczos. Reading this suite's low-resolution false
detections prompted the look (many were frames a recipe had warped). On 120 tuning frames a warp raised
the mean low-resolution probability from 0.019 to 0.034 with bilinear interpolation, to 0.020 with
Lanczos. Session 13's weights on the version-3 suite: low resolution 0.846 → 0.856 (false detections 46
→ 41), the other types within 0.008. The tuning pairs were collected again (the single frames have no
warp) and the unchanged settings refitted; the refit was to ship whatever this suite said, since the
shipped model must match the synthesis. Out-of-fold F1 on the tuning pairs, session 13's fit → the refit:
rain 0.847 → 0.873, low resolution 0.926 → 0.936, blur 0.899 → 0.909, haze 0.931 → 0.936, the others within
0.003; here: low resolution 0.856 → 0.835, rain 0.905 → 0.915, haze 0.916 → 0.910, over-exposure 0.921 →
0.917, blur 0.959 → 0.972, within what a refit moves them. In the paragraphs below, "here" is the former
180-pair suite at synthesis version 2.

The session-13 classifier differed from session 12's in two cues, each kept on the out-of-fold F1
(folds by scene) of the tuning pairs, this suite run after each, and in how a threshold is read off its F1
curve. Both let the low-resolution cues see past
fixed-pattern stripes, which the infrared recipes may add after a down-sampling: stripes add fine detail
across themselves, so a striped down-sampled frame read as sharp. On infrared frames made from tuning
sources (`benchmarks/perception_cues.py`, set `striped`: 200 down-sampled by levels 1–2 against 200 clean or
defocused, 60 % of all striped afterwards), the pooled finest-detail cue tells down-sampled from clean frames
with AUC 0.52, the same cue read along the stripes (rows and columns apart, the lower of the two:
`segment_hf_least_q90`) with 0.99, and the spectrum band 0.37–0.42 cycles/px with the frequency axes left
out with 0.97 (on 240 such frames without defocused ones, 0.67 with the axes kept). (1) The per-direction
finest-detail cues: out-of-fold low resolution 0.898 → 0.926 (false detections on TNO infrared frames 7 → 1),
blur 0.880 → 0.901, the others within 0.01 (rain 0.873 → 0.863); here low resolution 0.870 → 0.886, blur
0.938 → 0.957, haze 0.908 → 0.901. (2) Spectrum bands without the frequency axes: out-of-fold low resolution
0.926 → 0.931, blur 0.901 → 0.910, rain 0.863 → 0.870, no type lower; here low resolution 0.886 → 0.871
(recall 0.899 → 0.928, with 5 more false detections, 4 of them on one over-exposed MEFB frame), haze 0.901 →
0.893, rain 0.921 → 0.894, over-exposure 0.923 → 0.909. These moves are within what a refit alone does here:
refitted with the seed + 100, the fit with (1) alone scores low resolution 0.843, the fit with both 0.869
(session 12's settings 0.851–0.870 over four fits). The out-of-fold rule, fixed beforehand, ships both.
(3) Each threshold is now the middle of the thresholds whose averaged F1 (±0.05, as before) is within 0.02
of the best (`threshold_tolerance`), not the middle of the best point's stretch: on flat curves the best
point is noise. The fits at the seed and the seed + 100 put rain's threshold at 0.83 and 0.69 before, at
0.69 and 0.72 after; summed over the nine types the two fits' thresholds differed by 0.59 before, and by
0.39, 0.27 and 0.13 with tolerances 0.005, 0.01 and 0.02. The tolerance taken is the smallest of these that
brings every type's two thresholds within 0.05 of each other, a rule on the tuning pairs alone (this
suite prompted the look: with the first fit's networks and the second fit's thresholds rain scored 0.938
here against 0.894). It costs out-of-fold F1 at most 0.018 (rain) against each fit's best point. Here,
with the same networks: rain 0.894 → 0.938, over-exposure 0.909 → 0.937, blur 0.944 → 0.951, low
resolution 0.871 → 0.865, haze 0.893 (unchanged). Last, crops under 64 px keep the frequency axes (their
lowest band, the other bands' reference, would be empty without them); that changed the features of 4 of the
4294 tuning rows, and the refit on the rows collected again moved the figures here as any refit does: haze
0.893 → 0.889, rain 0.938 → 0.915, over-exposure 0.937 → 0.925, low resolution 0.865, the others within
0.002. On the second draw (`--seed 8`, used for no decision), session 12 → 13: haze 0.949 → 0.948, rain
0.927 → 0.951, over-exposure 0.962 → 0.962, low resolution 0.897 → 0.878, blur 0.951 → 0.964, noise 0.969 →
0.974, low light 0.993 → 1.000, stripe 1.000, JPEG 0.974.

The session-12 classifier differed from session 11's in four ways, each kept on the out-of-fold F1
(folds by scene) of the tuning pairs, this suite run after each. (1) Multi-focus tuning pairs are drawn 4× as
often from LOL and Waterloo frames and 2× from scikit-image's (a source spec's `*K` in `train_config.json`),
so that haze-free colourful frames weigh as much as RoadScene's hazy-looking ones: out-of-fold level-1 haze
recall on pairs made from Waterloo frames 4/24 → 22/40, from LOL 6/14 → 34/44, haze F1 0.924 → 0.923 over a
pool that changed with it (here haze 0.836 → 0.870). (2) The single frames that tuning pairs and frames are
made from are rendered with a random colour-saturation gain (0.8–1.8, log-uniform; cameras render one scene
more or less vivid): out-of-fold rain 0.854 → 0.882, low resolution 0.903 → 0.913, blur 0.908 → 0.886, haze
the same (here haze 0.870 → 0.857, rain 0.912 → 0.938). (3) The two haze cues of the frame's top third (above): out-of-fold haze 0.924 → 0.941, level-1
recall on Waterloo pairs 18/40 → 34/40 (here haze 0.857 → 0.893). (4) The mean and 90th-percentile colour
saturation are measured but no longer fed to the classifier: without them the out-of-fold F1 is the same
(haze 0.940 against 0.941, rain 0.873 against 0.859, low resolution 0.898 against 0.907), and with them a
vivid scene under a veil (a Lytro close-up keeps a saturation of 0.40 under level-1 haze, the tuning
frames 0.12–0.18) read as clear. Last, each type's threshold maximises the out-of-fold F1 averaged over
thresholds within ±0.05 rather than at one point: the F1 curves are flat (rain 0.857–0.868 between 0.55 and
0.85), so the single best point rests on a few samples, and two fits of one pool (with and without the
saturation features) put rain's at 0.71 and 0.81 (here rain 0.910 → 0.896 with the second); the window's middle (0.63) gives rain 0.917 here, the
network unchanged. Over session 12, on this suite: haze 0.836 → 0.908, rain 0.913 → 0.917, over-exposure
0.905 → 0.937, low resolution 0.873 → 0.870, blur 0.944 → 0.938, the others within 0.003. On a second
draw of 540 pairs from the same sources (`--seed 8`, run once at the end and used for no decision), session
11 → 12: haze 0.879 → 0.949, rain 0.911 → 0.927, over-exposure 0.912 → 0.962, low resolution 0.883 → 0.897,
the others within 0.001 (noise 0.969, blur 0.951, low light 0.993, stripe 1.000, JPEG 0.974).

The session-11 classifier (8-bit tuning frames, the `pair_bracket` flag, 1200 multi-focus tuning pairs,
thresholds from folds by scene) scored noise 0.958, blur 0.944, haze 0.836, rain 0.913, low light 0.987,
over-exposure 0.905, low resolution 0.873, stripe 1.000 and JPEG 0.984 on this suite (`git show
cf7e688:docs/PERCEPTION.md` tells how it was reached); the session-9 weights noise 0.958, blur 0.933, haze
0.853, rain 0.878, low light 0.973, over-exposure 0.835, low resolution 0.865, stripe 1.000 and JPEG 0.984.

## Per-image degradations

{table}

Level accuracy is measured on true positives (detected and present). The F1 interval is a percentile bootstrap over the suite's source scenes
(2000 resamples; within each task the sources are drawn with replacement, each with all the pairs made from it, since pairs of one
source share its content): the uncertainty that the choice of sources leaves (the same 20 Lytro scenes, for instance, make every
multi-focus pair), wider than one over pairs.

Mean F1 per recipe group:

| group | pairs | mean F1 over types | worst type |
|---|---|---|---|
{chr(10).join(per_group)}

## Relations of the pair

{rel}

EPE = mean end-point error (px, at the reference image's resolution) between the true and the estimated
reference→moving transform over a 16-px grid, i.e. the misalignment error. A pair is misaligned when its
synthetic displacement is ≥ 1 px. The ground truth is relative to the source pair: real misregistration
already present in the sources (RoadScene's infrared and visible cameras are only roughly registered: the
estimator finds a few px on clean pairs) counts as error.

## Speed

{speed_text}

## Verdict

{"Every degradation type reaches F1 ≥ 0.9." if not failing else "Below the F1 ≥ 0.9 target: " + ", ".join(f"{k} ({f1s[k]:.3f}; 95 % interval {intervals[k][0]:.3f}–{intervals[k][1]:.3f})" for k in failing) + "."}
{"" if not close else "At or above 0.9 here, with a 95 % interval (sources resampled) that reaches below it: " + ", ".join(f"{k} ({intervals[k][0]:.3f}–{intervals[k][1]:.3f})" for k in close) + "."}
Misalignment EPE median over all pairs: {rel_out.get('all', float('nan')):.2f} px (target < 2 px).

{WEAKNESSES}

Measured on {machine()}; the whole run took {elapsed:.0f} s.
"""
    Path(args.doc).parent.mkdir(parents=True, exist_ok=True)
    Path(args.doc).write_text(doc)
    if speed_out:
        update_section("perception", "## Perception speed (benchmarks/perception_accuracy.py)\n\n" + speed_text
                       + f"\n\nMeasured on {machine()}.")
    print(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
