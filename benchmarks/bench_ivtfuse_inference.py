"""IVTFuse inference: band by band (the default without autograd) against the whole-image path.

Runs the shipped weights of each variant on the agent benchmark's 640×480 pair, alternating the
banded path (``torch.no_grad``) with the whole-image path (grad mode, no parameter requiring
grad: :meth:`RestormerBlock.forward_plain` and its peers run), and prints the median seconds of
each, their ratio and the largest output difference.

With ``--large``, it instead fuses one 4000×3000 colour + infrared pair with the registered tool
(default tiling) and prints the seconds and the process's peak resident memory.

Usage: OMP_NUM_THREADS=1 python benchmarks/bench_ivtfuse_inference.py [--threads 1] [--repeats 3] [--variants full,notext] [--large]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from bench_agent import load_pair
from fuseagent.models.ivtfuse import VARIANTS, load_weights, weights_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", default="full", help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--large", action="store_true", help="one 4000x3000 pair through the tool: seconds, peak memory")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.large:
        large()
        return
    ir, vis = load_pair()
    a, b = torch.from_numpy(ir)[None, None], torch.from_numpy(vis)[None, None]
    text = torch.randn(1, 7, 384, generator=torch.Generator().manual_seed(0))
    valid = torch.ones(1, 7, dtype=torch.bool)
    for variant in args.variants.split(","):
        model, _ = load_weights(weights_path(variant))
        model.eval().requires_grad_(False)

        def run(banded: bool) -> tuple[float, torch.Tensor]:
            with torch.set_grad_enabled(not banded):
                t0 = time.perf_counter()
                out = model(a, b, text, valid)
                return time.perf_counter() - t0, out

        run(True)  # warm-up
        seconds: dict[bool, list[float]] = {True: [], False: []}
        outputs = {}
        for _ in range(args.repeats):
            for banded in (True, False):
                t, outputs[banded] = run(banded)
                seconds[banded].append(t)
        whole, banded = statistics.median(seconds[False]), statistics.median(seconds[True])
        diff = (outputs[True] - outputs[False]).abs().max().item()
        print(f"{variant}: {tuple(a.shape[2:])} {args.threads} thread(s): whole image {whole:.2f} s, "
              f"banded {banded:.2f} s ({whole / banded:.2f}x), max difference {diff:.1e}", flush=True)


def large() -> None:
    import resource

    import cv2
    import numpy as np

    import fuseagent

    rng = np.random.default_rng(0)
    ir = cv2.resize(cv2.GaussianBlur(rng.random((750, 1000)).astype(np.float32), (0, 0), 2), (4000, 3000))
    vis = cv2.resize(cv2.GaussianBlur(rng.random((750, 1000, 3)).astype(np.float32), (0, 0), 2), (4000, 3000))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    out = fuseagent.create_tool("fusion.ivtfuse")([ir, vis]).image
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"4000x3000 colour + IR: {time.perf_counter() - t0:.0f} s, peak resident memory {peak:.0f} MiB "
          f"({before:.0f} MiB before the call), output {out.shape}", flush=True)


if __name__ == "__main__":
    main()
