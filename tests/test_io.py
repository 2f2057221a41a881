"""Image I/O: every format, depth and channel layout; atomic writes; colour round-trips."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile
from PIL import Image

from fuseagent.errors import ImageReadError, InputError
from fuseagent.io import (
    check_image,
    crop_to,
    match_sizes,
    merge_luma,
    pad_to_multiple,
    quantise,
    read_image,
    rgb_to_ycbcr,
    split_luma,
    to_gray,
    write_image,
    ycbcr_to_rgb,
)


class TestReadImage:
    @pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".tif"])
    def test_grey_8bit_formats(self, tmp_path, suffix):
        array = (np.arange(64, dtype=np.uint8).reshape(8, 8) * 4)
        path = tmp_path / f"g{suffix}"
        Image.fromarray(array).save(path, quality=100) if suffix != ".tif" else tifffile.imwrite(path, array)
        image = read_image(path)
        assert image.dtype == np.float32 and image.shape == (8, 8)
        tol = 3 / 255 if suffix == ".jpg" else 1e-6
        assert np.abs(image - array / 255.0).max() <= tol

    def test_16bit_png_keeps_precision(self, tmp_path):
        array = np.linspace(0, 65535, 100, dtype=np.uint16).reshape(10, 10)
        path = tmp_path / "d.png"
        Image.fromarray(array).save(path)
        image = read_image(path)
        assert np.abs(image - array / 65535.0).max() < 1e-6

    def test_16bit_rgb_tiff(self, tmp_path):
        array = np.random.default_rng(1).integers(0, 65535, (6, 7, 3), dtype=np.uint16)
        path = tmp_path / "c.tif"
        tifffile.imwrite(path, array)
        image = read_image(path)
        assert image.shape == (6, 7, 3)
        assert np.abs(image - array / 65535.0).max() < 1e-6

    def test_rgba_drops_alpha(self, tmp_path):
        array = np.zeros((4, 4, 4), np.uint8)
        array[..., 0] = 255
        array[..., 3] = 10
        path = tmp_path / "a.png"
        Image.fromarray(array, "RGBA").save(path)
        image = read_image(path)
        assert image.shape == (4, 4, 3) and image[0, 0].tolist() == [1.0, 0.0, 0.0]

    def test_grey_stored_as_rgb_becomes_grey(self, tmp_path):
        array = np.repeat(np.arange(16, dtype=np.uint8).reshape(4, 4, 1), 3, axis=2)
        path = tmp_path / "g3.png"
        Image.fromarray(array).save(path)
        assert read_image(path).shape == (4, 4)
        assert read_image(path, mode="rgb").shape == (4, 4, 3)

    def test_modes(self, tmp_path, astronaut):
        path = tmp_path / "rgb.png"
        write_image(path, astronaut)
        assert read_image(path, mode="gray").shape == astronaut.shape[:2]
        with pytest.raises(InputError):
            read_image(path, mode="cmyk")

    @pytest.mark.parametrize("content, match", [(None, "no such file"), (b"", "empty"),
                                                 (b"not an image at all", "not an image")])
    def test_bad_files(self, tmp_path, content, match):
        path = tmp_path / "bad.png"
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(ImageReadError, match=match):
            read_image(path)

    def test_truncated_png(self, tmp_path, camera):
        path = tmp_path / "t.png"
        write_image(path, camera)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        with pytest.raises(ImageReadError, match="corrupt or truncated"):
            read_image(path)

    def test_truncated_tiff(self, tmp_path):
        path = tmp_path / "t.tif"
        tifffile.imwrite(path, np.zeros((64, 64), np.uint16))
        path.write_bytes(path.read_bytes()[:100])
        with pytest.raises(ImageReadError):
            read_image(path)

    def test_directory(self, tmp_path):
        with pytest.raises(ImageReadError, match="folder"):
            read_image(tmp_path)


class TestWriteImage:
    def test_roundtrip_8_and_16_bit(self, tmp_path, astronaut):
        for bits, tol in ((8, 0.5 / 255 + 1e-6), (16, 0.5 / 65535 + 1e-6)):
            path = tmp_path / f"o{bits}.png"
            write_image(path, astronaut, bits=bits)
            assert np.abs(read_image(path) - astronaut).max() <= tol

    def test_atomic_no_partial_file_on_error(self, tmp_path):
        with pytest.raises(InputError):
            write_image(tmp_path / "x.jpg", np.zeros((4, 4), np.float32), bits=16)
        with pytest.raises(InputError):
            write_image(tmp_path / "x.gif", np.zeros((4, 4), np.float32))
        assert os.listdir(tmp_path) == []

    def test_clips_out_of_range(self, tmp_path):
        path = tmp_path / "c.png"
        write_image(path, np.array([[-1.0, 2.0], [0.5, np.nan]], np.float32))
        assert read_image(path).tolist() == [[0.0, 1.0], [pytest.approx(128 / 255), 0.0]]


class TestQuantise:
    def test_levels_match_a_written_file(self, tmp_path, astronaut):
        noisy = np.clip(astronaut + 0.3 / 255, 0, 1)
        write_image(tmp_path / "q.png", noisy)
        assert np.array_equal(quantise(noisy), read_image(tmp_path / "q.png"))

    def test_16_bit_and_clipping(self):
        out = quantise(np.array([-0.5, 0.25, 2.0], np.float32), bits=16)
        assert out.dtype == np.float32 and (out * 65535).round(3).tolist() == [0.0, 16384.0, 65535.0]


class TestColour:
    def test_ycbcr_roundtrip(self, astronaut):
        assert np.abs(ycbcr_to_rgb(rgb_to_ycbcr(astronaut)) - astronaut).max() < 1e-5

    def test_luma_reference_values(self):
        rgb = np.array([[[1, 0, 0], [0, 1, 0], [0, 0, 1]]], np.float32)
        assert to_gray(rgb)[0].tolist() == pytest.approx([0.299, 0.587, 0.114], abs=1e-6)

    def test_split_merge(self, astronaut):
        luma, chroma = split_luma(astronaut)
        assert luma.shape == astronaut.shape[:2] and chroma.shape == astronaut.shape[:2] + (2,)
        assert np.abs(merge_luma(luma, chroma) - astronaut).max() < 1e-5
        grey = astronaut[..., 0]
        assert split_luma(grey)[1] is None and merge_luma(grey, None).shape == grey.shape


class TestGeometry:
    def test_pad_and_crop(self):
        image = np.random.default_rng(0).random((5, 7, 3)).astype(np.float32)
        padded, size = pad_to_multiple(image, 8)
        assert padded.shape == (8, 8, 3)
        assert np.array_equal(crop_to(padded, size), image)

    def test_pad_tiny(self):
        padded, _ = pad_to_multiple(np.ones((2, 2), np.float32), 16)
        assert padded.shape == (16, 16) and padded.min() == 1.0

    def test_match_sizes(self, camera):
        small = camera[::2, ::2]
        out = match_sizes([camera, small])
        assert out[1].shape == camera.shape and out[0] is camera

    def test_check_image(self):
        with pytest.raises(InputError):
            check_image(np.zeros((4, 4, 5)))
        with pytest.raises(InputError):
            check_image(np.zeros((1, 4)))
        assert check_image(np.full((3, 3), 255, np.uint8)).max() == 1.0


def test_written_files_get_usual_permissions(tmp_path):
    path = tmp_path / "p.png"
    write_image(path, np.zeros((4, 4), np.float32))
    umask = os.umask(0)
    os.umask(umask)
    assert (path.stat().st_mode & 0o777) == (0o666 & ~umask)
