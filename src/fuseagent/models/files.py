"""Where the shipped weights of the learned networks live (torch-free, so listing tools is fast)."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError

__all__ = ["WEIGHTS_DIR", "VARIANTS", "weights_path"]

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"

#: IVTFuse ablation variants: name → switches overriding the full model's
VARIANTS: dict[str, dict[str, bool]] = {
    "full": {},
    "notext": {"use_text": False},
    "nofsa": {"use_fsa": False},
    "nohpa": {"use_hpa": False},
}


def weights_path(variant: str = "full") -> Path:
    """The shipped weight file of an IVTFuse variant (``ivtfuse.pt``, ``ivtfuse_notext.pt``...).

    Example:
        >>> weights_path("nofsa").name
        'ivtfuse_nofsa.pt'
    """
    if variant not in VARIANTS:
        raise InputError(f"unknown IVTFuse variant '{variant}' (valid: {', '.join(VARIANTS)})")
    return WEIGHTS_DIR / ("ivtfuse.pt" if variant == "full" else f"ivtfuse_{variant}.pt")
