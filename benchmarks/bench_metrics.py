"""Time fuseagent's metrics and rewards on one 640×480 infrared–visible pair; compare with peers.

What is timed (median of ``--repeat`` calls after one warm-up call, ``--threads`` threads):

1. the full VIFB metric set (``list_metrics(variant="vifb")``) on ``([visible, infrared], fused)``;
2. the no-reference metrics and the rewards of :mod:`fuseagent.metrics.rewards`;
3. the metrics fuseagent shares with **piq** and **pyiqa**, run in a *separate* interpreter
   (``--peer-python``, a virtual environment holding torch + piq [+ pyiqa]; they are never
   dependencies of fuseagent). Fusion metrics are computed against both sources, so a peer's
   full-reference call is made twice (visible→fused and infrared→fused) and the two timed together.
   Peer metrics that would need to download weights (piq / pyiqa BRISQUE, pyiqa NIQE) are skipped.

The pair is ``../shared/data/ivif/drmf_degraded/{vis,ir}/<first file>`` (DRMF, Tang et al.; 640×480)
when present, otherwise a synthetic 640×480 pair; the fused image is the pixel average.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_metrics.py --peer-python /tmp/peers/bin/python

Prints Markdown tables (seconds, ratio peer / fuseagent: above 1 means fuseagent is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"

#: fuseagent metric → (peer metric key, how fuseagent calls it) for the shared metrics
SHARED = {
    "ssim": "ssim",
    "ms_ssim_fusion": "ms_ssim",
    "psnr": "psnr",
    "vifp_fusion": "vifp",
    "brisque": "brisque",
    "niqe": "niqe",
    "piqe": "piqe",
}

PEER_CODE = r'''
import json, os, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np
import torch

path, repeat, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
arrays = np.load(path)
def tensor(a):
    a = a if a.ndim == 3 else np.repeat(a[..., None], 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None].float()
vis, ir, fused = (tensor(arrays[k]) for k in ("vis", "ir", "fused"))

def timed(fn):
    fn()
    runs = []
    for _ in range(repeat):
        start = time.perf_counter(); fn(); runs.append(time.perf_counter() - start)
    return float(np.median(runs))

def pair(fn):
    return lambda: (fn(vis, fused), fn(ir, fused))

out = {}
try:
    import piq
    res = {"version": piq.__version__}
    res["ssim"] = timed(pair(lambda a, b: piq.ssim(a, b, data_range=1.0, downsample=False)))
    res["ms_ssim"] = timed(pair(lambda a, b: piq.multi_scale_ssim(a, b, data_range=1.0)))
    res["psnr"] = timed(pair(lambda a, b: piq.psnr(a, b, data_range=1.0)))
    res["vifp"] = timed(pair(lambda a, b: piq.vif_p(a, b, data_range=1.0)))
    res["brisque"] = "skipped: piq downloads its SVR weights"
    out["piq"] = res
except ImportError as exc:
    out["piq"] = {"error": str(exc)}
try:
    import pyiqa
    res = {"version": getattr(pyiqa, "__version__", "?")}
    for ours, theirs in (("ssim", "ssim"), ("ms_ssim", "ms_ssim"), ("psnr", "psnr"), ("vifp", "vif")):
        metric = pyiqa.create_metric(theirs, device="cpu")
        res[ours] = timed(pair(lambda a, b, m=metric: m(a, b)))
    metric = pyiqa.create_metric("piqe", device="cpu")
    res["piqe"] = timed(lambda: metric(fused))
    res["brisque"] = "skipped: pyiqa downloads its SVR weights"
    res["niqe"] = "skipped: pyiqa downloads its NIQE parameters"
    out["pyiqa"] = res
except ImportError as exc:
    out["pyiqa"] = {"error": str(exc)}
print(json.dumps(out))
'''


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer-python", default="/tmp/peers/bin/python",
                        help="interpreter of a separate venv with torch + piq (+ pyiqa); '' to skip peers")
    parser.add_argument("--repeat", type=int, default=5, help="timed calls per metric (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="threads for numpy/OpenCV/torch")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("FUSEAGENT_DATA", DEFAULT_DATA)),
                        help="the shared data folder")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw numbers here")
    return parser.parse_args()


def _load_pair(data: Path) -> tuple[Any, Any, str]:
    import numpy as np

    from fuseagent.io import read_image, resize_to

    folder = data / "ivif" / "drmf_degraded"
    if (folder / "vis").is_dir():
        name = sorted(p.name for p in (folder / "vis").iterdir())[0]
        vis = read_image(folder / "vis" / name, "rgb")
        ir = read_image(folder / "ir" / name, "gray")
        vis, ir = resize_to(vis, (480, 640)), resize_to(ir, (480, 640))
        return vis, ir, f"DRMF {name} (640×480)"
    rng = np.random.default_rng(0)
    import cv2

    base = cv2.GaussianBlur(rng.random((480, 640)).astype(np.float32), (0, 0), 3)
    vis = np.stack([base, base * 0.9, base * 0.8], axis=2).clip(0, 1).astype(np.float32)
    ir = cv2.GaussianBlur(rng.random((480, 640)).astype(np.float32), (0, 0), 5)
    return vis, ir, "synthetic 640×480 (shared data absent)"


def _timed(fn: Callable[[], Any], repeat: int) -> float:
    import numpy as np

    fn()
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return float(np.median(runs))


def _peers(peer_python: str, arrays: dict[str, Any], repeat: int, threads: int) -> dict[str, dict[str, Any]]:
    import numpy as np

    if not peer_python:
        return {}
    if not Path(peer_python).is_file():
        return {"peers": {"error": f"{peer_python} not found"}}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pair.npz"
        np.savez(path, **arrays)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        done = subprocess.run([peer_python, "-c", PEER_CODE, str(path), str(repeat), str(threads)],
                              capture_output=True, text=True, env=env, timeout=3600, check=False)
    if done.returncode != 0:
        return {"peers": {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "n/a"


def main() -> int:
    args = _parse()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import cv2
    import numpy as np

    cv2.setNumThreads(args.threads)
    from fuseagent.metrics import create_metric, list_metrics
    from fuseagent.metrics import rewards

    vis, ir, label = _load_pair(args.data)
    ir_rgb = np.repeat(ir[..., None], 3, axis=2)
    fused = ((vis + ir_rgb) / 2).astype(np.float32)
    sources = [vis, ir]
    repeat = args.repeat

    vifb = {}
    for name in list_metrics(variant="vifb"):
        metric = create_metric(name)
        vifb[name] = _timed(lambda m=metric: m(sources, fused), repeat)

    nr = {name: _timed(lambda m=create_metric(name): m(fused), repeat) for name in ("brisque", "niqe", "piqe")}
    denoised = cv2.GaussianBlur(vis, (3, 3), 0.8)
    reward_costs = {
        "intrinsic_reward (IQR)": _timed(lambda: rewards.intrinsic_reward(fused), repeat),
        "intrinsic_reward, max_side=320": _timed(
            lambda: rewards.intrinsic_reward(fused, rewards.IntrinsicConfig(max_side=320)), repeat),
        "relational_reward enhancement": _timed(
            lambda: rewards.relational_reward("enhancement", vis, denoised, ir), repeat),
        "relational_reward alignment": _timed(
            lambda: rewards.relational_reward("alignment", vis, vis, ir, transform=np.eye(3)), repeat),
        "relational_reward fusion": _timed(lambda: rewards.relational_reward("fusion", sources, fused), repeat),
        "hqa": _timed(lambda: rewards.hqa(sources, fused, [0.6, 0.7]), repeat),
    }

    ours_shared: dict[str, float] = {}
    for name, key in SHARED.items():
        metric = create_metric(name)
        call = (lambda m=metric: m(fused)) if metric.card.mode == "nr" else (lambda m=metric: m(sources, fused))
        ours_shared[key] = _timed(call, repeat)
    peers = _peers(args.peer_python, {"vis": vis, "ir": ir, "fused": fused}, repeat, args.threads)

    print(f"Pair: {label}; median of {repeat} calls after a warm-up; {args.threads} thread(s); "
          f"python {sys.version.split()[0]}, numpy {np.__version__}, OpenCV {cv2.__version__}.\n")
    print("### VIFB metric set (fusion mode: ([visible, infrared], fused), RGB per channel)\n")
    print("| metric | seconds |\n|---|---:|")
    for name, seconds in vifb.items():
        print(f"| {name} | {seconds:.4f} |")
    print(f"| **total** | **{sum(vifb.values()):.4f}** |\n")
    print("### No-reference metrics and rewards\n")
    print("| call | seconds |\n|---|---:|")
    for name, seconds in {**nr, **reward_costs}.items():
        print(f"| {name} | {seconds:.4f} |")
    print()
    libraries = [lib for lib in peers if "error" not in peers[lib]]
    if peers:
        versions = ", ".join(f"{lib} {peers[lib].get('version', '?')}" for lib in libraries)
        print(f"### Shared metrics vs peers ({versions or 'none ran'})\n")
        header = "| metric | fuseagent s | " + " | ".join(f"{lib} s | {lib} / fuseagent" for lib in libraries) + " |"
        print(header)
        print("|---|---:|" + "---:|---:|" * len(libraries))
        for key, seconds in ours_shared.items():
            cells = []
            for lib in libraries:
                theirs = peers[lib].get(key)
                ratio = f"{theirs / seconds:.2f}" if isinstance(theirs, float) else "n/a"
                cells += [_fmt(theirs), ratio]
            print(f"| {key} | {seconds:.4f} | " + " | ".join(cells) + " |")
        notes = {f"{lib}.{k}": v for lib in peers for k, v in peers[lib].items()
                 if isinstance(v, str) and k != "version"}
        print()
        for where, why in notes.items():
            print(f"- {where}: {why}")
        print("- The work is not identical: fuseagent `ssim` averages the three RGB channels over both sources "
              "(VIFB convention), `ms_ssim_fusion` and `vifp_fusion` use luma, `psnr` the RGB image; piq `ssim`, "
              "`multi_scale_ssim` and `psnr` use RGB, `vif_p` luma; pyiqa `ssim`, `ms_ssim` use the Y channel, "
              "`psnr` RGB, `piqe` grey. Each peer full-reference call is made twice (visible, infrared).")
    if args.json:
        args.json.write_text(json.dumps({"pair": label, "vifb": vifb, "nr": nr, "rewards": reward_costs,
                                         "shared": ours_shared, "peers": peers}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
