"""Image input/output and colour handling.

Images inside fuseagent are ``float32`` numpy arrays in ``[0, 1]``, either ``(H, W)`` grey or
``(H, W, 3)`` RGB. Every reader normalises 8/16-bit, grey/RGB/RGBA files to that form; every
writer writes atomically (temporary file in the same folder, then rename), so a failed or
interrupted write never leaves a partial file behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .errors import ImageReadError, InputError

__all__ = [
    "IMAGE_SUFFIXES",
    "read_image",
    "write_image",
    "atomic_write",
    "as_float",
    "quantise",
    "to_gray",
    "rgb_to_ycbcr",
    "ycbcr_to_rgb",
    "split_luma",
    "merge_luma",
    "pad_to_multiple",
    "crop_to",
    "resize_to",
    "match_sizes",
    "check_image",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def as_float(array: np.ndarray) -> np.ndarray:
    """Convert an integer or float array to float32 in ``[0, 1]``.

    Integer arrays are divided by their dtype's maximum; float arrays are clipped.

    Example:
        >>> [round(float(v), 3) for v in as_float(np.array([0, 128, 255], dtype=np.uint8))]
        [0.0, 0.502, 1.0]
        >>> as_float(np.array([0, 65535], dtype=np.uint16)).tolist()
        [0.0, 1.0]
    """
    array = np.asarray(array)
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.integer):
        return (array.astype(np.float32) / float(np.iinfo(array.dtype).max)).astype(np.float32)
    out = np.nan_to_num(array.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(out, 0.0, 1.0)


def quantise(image: np.ndarray, bits: int = 8) -> np.ndarray:
    """Round a float ``[0, 1]`` image to the levels of a ``bits``-bit file (float32, clipped).

    What a camera or an editor stores: a frame saved at 8 bits and read back has exactly these values.

    Example:
        >>> (quantise(np.array([0.0, 0.31, 0.5011, 1.2], np.float32)) * 255).round(4).tolist()
        [0.0, 79.0, 128.0, 255.0]
    """
    scale = float(2 ** int(bits) - 1)
    return (np.round(np.clip(image, 0.0, 1.0) * scale) / scale).astype(np.float32)


def _normalise_channels(array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:
        return array
    if array.ndim == 3 and array.shape[2] == 1:
        return array[:, :, 0]
    if array.ndim == 3 and array.shape[2] == 2:  # grey + alpha
        return array[:, :, 0]
    if array.ndim == 3 and array.shape[2] >= 3:
        rgb = array[:, :, :3]
        return rgb
    raise InputError(f"unsupported image shape {array.shape}")


def read_image(path: str | os.PathLike, mode: str = "auto") -> np.ndarray:
    """Read an image file into float32 ``[0, 1]``.

    Args:
        path: PNG, JPEG, TIFF or BMP file; 8- or 16-bit; grey, RGB or RGBA (alpha is dropped).
        mode: ``"auto"`` keeps the file's colour (a colour file whose three channels are equal
            is returned grey), ``"gray"`` converts to luminance, ``"rgb"`` replicates grey.

    Returns:
        ``(H, W)`` or ``(H, W, 3)`` float32 array.

    Raises:
        ImageReadError: the file is missing, empty, truncated or not an image.
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"cannot read '{path}': no such file")
    if path.is_dir():
        raise ImageReadError(f"cannot read '{path}': it is a folder, not an image")
    if path.stat().st_size == 0:
        raise ImageReadError(f"cannot read '{path}': the file is empty")
    array = _decode(path)
    array = _normalise_channels(array)
    image = as_float(array)
    if image.ndim == 3 and mode == "auto":
        if np.array_equal(image[:, :, 0], image[:, :, 1]) and np.array_equal(image[:, :, 0], image[:, :, 2]):
            image = np.ascontiguousarray(image[:, :, 0])
    if mode == "gray":
        image = to_gray(image)
    elif mode == "rgb" and image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif mode not in ("auto", "gray", "rgb"):
        raise InputError(f"unknown read mode '{mode}' (valid: auto, gray, rgb)")
    return check_image(image, str(path))


def _decode(path: Path) -> np.ndarray:
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        import tifffile

        try:
            array = tifffile.imread(str(path))
        except Exception as exc:  # tifffile raises many types for corrupt files
            raise ImageReadError(f"cannot read '{path}': not a readable TIFF ({type(exc).__name__})") from None
        if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[2] not in (1, 3, 4):
            array = np.moveaxis(array, 0, -1)
        return array
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                array = np.asarray(im)
                if array.dtype != np.uint16:
                    array = np.clip(array, 0, 65535).astype(np.uint16)
                return array
            if im.mode not in ("L", "RGB", "RGBA", "LA"):
                im = im.convert("RGBA" if "A" in im.mode else "RGB")
            return np.asarray(im)
    except UnidentifiedImageError:
        raise ImageReadError(f"cannot read '{path}': not an image file") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"cannot read '{path}': corrupt or truncated image ({exc})") from None


def check_image(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Validate an in-memory image and return it as float32 ``[0, 1]``.

    Raises:
        InputError: wrong rank, channel count, or an image smaller than 2×2.
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise InputError(f"{name}: expected an (H, W) or (H, W, 3) image, got shape {image.shape}")
    image = _normalise_channels(image)
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise InputError(f"{name}: image of size {image.shape[1]}x{image.shape[0]} is too small")
    if image.dtype != np.float32 or not np.isfinite(image).all() or image.min() < 0 or image.max() > 1:
        image = as_float(image)
    return np.ascontiguousarray(image)


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` then rename the temporary file onto ``path``.

    The temporary file lives in the destination folder and keeps the suffix, so format
    detection by extension works. On any error the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_image(path: str | os.PathLike, image: np.ndarray, bits: int = 8, quality: int = 95) -> Path:
    """Write a float ``[0, 1]`` image atomically as 8- or 16-bit PNG/TIFF (8-bit for JPEG/BMP).

    Args:
        path: destination; its suffix chooses the format.
        image: ``(H, W)`` or ``(H, W, 3)``.
        bits: 8 or 16 (16 only for PNG and TIFF).
        quality: JPEG quality.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "x.png")
        >>> _ = write_image(p, np.full((4, 4), 0.5, np.float32), bits=16)
        >>> round(float(read_image(p)[0, 0]), 4)
        0.5
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise InputError(f"cannot write '{path}': unknown image format '{suffix or '(none)'}' "
                         f"(valid: {', '.join(IMAGE_SUFFIXES)})")
    if bits not in (8, 16):
        raise InputError(f"bits must be 8 or 16, got {bits}")
    if bits == 16 and suffix not in (".png", ".tif", ".tiff"):
        raise InputError(f"16-bit output needs PNG or TIFF, not '{suffix}'")
    image = check_image(image, str(path))
    scale = 65535.0 if bits == 16 else 255.0
    dtype = np.uint16 if bits == 16 else np.uint8
    array = np.round(np.clip(image, 0, 1) * scale).astype(dtype)

    def _write(tmp: str) -> None:
        if suffix in (".tif", ".tiff"):
            import tifffile

            tifffile.imwrite(tmp, array)
            return
        import cv2

        bgr = array[:, :, ::-1] if array.ndim == 3 else array
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if suffix in (".jpg", ".jpeg") else []
        if not cv2.imwrite(tmp, np.ascontiguousarray(bgr), params):
            raise InputError(f"cannot write '{path}'")

    return atomic_write(path, _write)


# ITU-R BT.601 full-range YCbCr, as MATLAB's rgb2ycbcr up to its offset/scale (fusion papers use
# this form to fuse Y and re-attach Cb/Cr).
_RGB2YCC = np.array([[0.299, 0.587, 0.114],
                     [-0.168736, -0.331264, 0.5],
                     [0.5, -0.418688, -0.081312]], dtype=np.float32)
_YCC2RGB = np.linalg.inv(_RGB2YCC).astype(np.float32)


def to_gray(image: np.ndarray) -> np.ndarray:
    """Luminance (BT.601 Y) of an RGB image; grey images pass through.

    Example:
        >>> float(to_gray(np.ones((2, 2, 3), np.float32))[0, 0])
        1.0
    """
    if image.ndim == 2:
        return image.astype(np.float32, copy=False)
    return np.clip(image[..., :3] @ _RGB2YCC[0], 0, 1).astype(np.float32)


def rgb_to_ycbcr(image: np.ndarray) -> np.ndarray:
    """RGB ``[0,1]`` → YCbCr with Y in ``[0,1]`` and Cb/Cr centred on 0.5."""
    ycc = image[..., :3].astype(np.float32) @ _RGB2YCC.T
    ycc[..., 1:] += 0.5
    return ycc


def ycbcr_to_rgb(ycc: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_ycbcr`, clipped to ``[0, 1]``.

    Example:
        >>> x = np.random.default_rng(0).random((3, 3, 3)).astype(np.float32)
        >>> bool(np.abs(ycbcr_to_rgb(rgb_to_ycbcr(x)) - x).max() < 1e-5)
        True
    """
    centred = ycc.astype(np.float32).copy()
    centred[..., 1:] -= 0.5
    return np.clip(centred @ _YCC2RGB.T, 0, 1).astype(np.float32)


def split_luma(image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Split an image into luminance and chroma ``(H, W, 2)`` (None for grey)."""
    if image.ndim == 2:
        return image, None
    ycc = rgb_to_ycbcr(image)
    return np.ascontiguousarray(ycc[..., 0]), np.ascontiguousarray(ycc[..., 1:])


def merge_luma(luma: np.ndarray, chroma: np.ndarray | None) -> np.ndarray:
    """Re-attach chroma to a (fused) luminance; returns grey when chroma is None."""
    if chroma is None:
        return np.clip(luma, 0, 1).astype(np.float32)
    ycc = np.concatenate([luma[..., None], chroma], axis=2)
    return ycbcr_to_rgb(ycc)


def pad_to_multiple(image: np.ndarray, multiple: int, mode: str = "reflect") -> tuple[np.ndarray, tuple[int, int]]:
    """Pad bottom/right so both sides are multiples of ``multiple``; returns the original size.

    Example:
        >>> padded, size = pad_to_multiple(np.zeros((5, 7), np.float32), 4)
        >>> padded.shape, size
        ((8, 8), (5, 7))
    """
    h, w = image.shape[:2]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return image, (h, w)
    pad = [(0, ph), (0, pw)] + [(0, 0)] * (image.ndim - 2)
    if mode == "reflect" and (ph >= h or pw >= w):
        mode = "symmetric" if (ph <= h and pw <= w) else "edge"
    return np.pad(image, pad, mode=mode), (h, w)


def crop_to(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Crop the top-left ``size = (H, W)`` region (inverse of :func:`pad_to_multiple`)."""
    return np.ascontiguousarray(image[: size[0], : size[1]])


def resize_to(image: np.ndarray, size: tuple[int, int], interpolation: str = "area") -> np.ndarray:
    """Resample to ``size = (H, W)``: area for shrinking, Lanczos for enlarging by default."""
    import cv2

    h, w = size
    if image.shape[:2] == (h, w):
        return image
    shrinking = h * w < image.shape[0] * image.shape[1]
    flag = {"area": cv2.INTER_AREA if shrinking else cv2.INTER_LANCZOS4,
            "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC,
            "lanczos": cv2.INTER_LANCZOS4, "nearest": cv2.INTER_NEAREST}[interpolation]
    out = cv2.resize(image, (w, h), interpolation=flag)
    return np.clip(out, 0, 1).astype(np.float32)


def match_sizes(images: Sequence[np.ndarray], reference: int = 0) -> list[np.ndarray]:
    """Resample every image to the size of ``images[reference]`` (a resolution mismatch is a
    degradation to fix, not an error). Images already of that size are returned unchanged."""
    h, w = images[reference].shape[:2]
    return [resize_to(im, (h, w)) for im in images]
