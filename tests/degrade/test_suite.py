"""Task generators, recipes, the suite builder (determinism, resume, errors) and ``fuseagent synth``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fuseagent.cli import main
from fuseagent.degrade import list_degradations
from fuseagent.degrade.generators import exposure_bracket, multifocus_stack
from fuseagent.degrade.recipes import RECIPES, STEP_ORDER, recipes_for, resolve_recipe
from fuseagent.degrade.suite import build_suite, discover_sources, read_manifest
from fuseagent.errors import InputError, UnknownNameError
from fuseagent.io import read_image, write_image


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from skimage import data
    import cv2

    return cv2.resize(data.astronaut(), (128, 96), interpolation=cv2.INTER_AREA).astype(np.float32) / 255


@pytest.fixture
def ivif_src(tmp_path: Path, photo: np.ndarray) -> Path:
    """Three small aligned IVIF pairs in ``src/ir`` and ``src/vis``."""
    src = tmp_path / "src"
    rng = np.random.default_rng(0)
    for k in range(3):
        vis = np.clip(photo * (0.7 + 0.1 * k) + 0.02 * rng.standard_normal(photo.shape), 0, 1)
        write_image(src / "vis" / f"p{k}.png", vis)
        write_image(src / "ir" / f"p{k}.png", 1.0 - vis.mean(axis=2))
    return src


@pytest.fixture
def single_src(tmp_path: Path, photo: np.ndarray) -> Path:
    src = tmp_path / "singles"
    for k in range(2):
        write_image(src / f"s{k}.png", np.roll(photo, 17 * k, axis=1))
    return src


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


class TestGenerators:
    def test_bracket_evs_through_the_response_curve(self, photo):
        g = exposure_bracket(photo * 0.5, 3, seed=0, ev_step=1.0, gamma=2.0)
        assert g.params["evs"] == [-1.0, 0.0, 1.0]
        lin = [np.power(im, 2.0) for im in g.images]
        unclipped = g.images[2] < 0.999
        np.testing.assert_allclose(lin[2][unclipped], 2 * lin[1][unclipped], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(lin[0], lin[1] / 2, rtol=1e-4, atol=1e-6)

    def test_bracket_labels(self, photo):
        g = exposure_bracket(photo, 2, seed=0, ev_step=4.0, gamma=2.2)
        assert "low_light" in g.labels[0] and "over_exposure" in g.labels[1]

    def test_bracket_size_limits(self, photo):
        with pytest.raises(InputError, match="2..26"):
            exposure_bracket(photo, 1)

    @pytest.mark.parametrize("mode", ["depth", "region"])
    def test_multifocus_masks_mark_the_sharp_image(self, photo, mode):
        g = multifocus_stack(photo, 2, seed=1, mode=mode, max_std=3.0)
        for k in range(2):
            mask = g.masks[k]["focus"]
            assert 0.05 < mask.mean() < 0.95
            err_k = np.abs(g.images[k] - photo)[mask].mean()
            err_other = np.abs(g.images[1 - k] - photo)[mask].mean()
            assert err_k < err_other

    def test_multifocus_bad_mode(self, photo):
        with pytest.raises(InputError, match="mode"):
            multifocus_stack(photo, 2, mode="tilt")


class TestRecipes:
    def test_every_step_is_a_registered_operation(self):
        names = set(list_degradations())
        assert set(STEP_ORDER) == names
        for recipe in RECIPES.values():
            assert {s.op for s in recipe.steps} <= names

    def test_groups(self):
        for task in ("ivif", "mef", "mff"):
            assert all(len(r.steps) == 2 for r in recipes_for(task, "A") + recipes_for(task, "B"))
            assert all(len(r.steps) >= 3 for r in recipes_for(task, "C"))

    def test_resolve(self):
        assert [r.name for r in resolve_recipe("ivif", "c")] == [r.name for r in recipes_for("ivif", "C")]
        with pytest.raises(UnknownNameError, match="recipe 'ivif-z9'"):
            resolve_recipe("ivif", "ivif-z9")
        with pytest.raises(InputError, match="is for MEF"):
            resolve_recipe("ivif", "mef-a1")


class TestSuite:
    def test_discover(self, ivif_src, single_src):
        assert [s.name for s in discover_sources(ivif_src, "ivif")] == ["p0", "p1", "p2"]
        assert all(s.single for s in discover_sources(single_src, "mff"))
        with pytest.raises(InputError, match="ir/ and vis/"):
            discover_sources(single_src, "ivif")

    def test_seeded_determinism(self, ivif_src, tmp_path):
        build_suite("ivif", ivif_src, "all", 3, 7, tmp_path / "one", progress=False)
        build_suite("ivif", ivif_src, "all", 3, 7, tmp_path / "two", progress=False)
        one, two = tree(tmp_path / "one"), tree(tmp_path / "two")
        one.pop("suite.json"), two.pop("suite.json")
        assert one == two
        build_suite("ivif", ivif_src, "all", 3, 8, tmp_path / "three", progress=False)
        assert tree(tmp_path / "three")["00000/vis.png"] != one["00000/vis.png"] or \
            tree(tmp_path / "three")["00000/ir.png"] != one["00000/ir.png"]

    def test_manifest_records_every_operation(self, ivif_src, tmp_path):
        records = build_suite("ivif", ivif_src, "ivif-c1", 2, 0, tmp_path / "s", progress=False)
        assert len(records) == 2 and records == read_manifest(tmp_path / "s" / "manifest.jsonl")
        rec = records[0]
        assert [s["op"] for s in rec["steps"]] == ["geometric.homography", "photometric.low_light", "noise.gaussian"]
        assert all("params" in s and "level" in s for s in rec["steps"])
        assert rec["misalignment"]["displacement_px"] > 0 and rec["labels"]["ir"]["misalignment"] >= 1
        for f in rec["files"].values():
            assert (tmp_path / "s" / f).is_file()
        # the degraded infrared is the clean one moved by the recorded transform
        from fuseagent.degrade.geometric import warp_image

        clean = read_image(tmp_path / "s" / rec["files"]["clean_ir"])
        moved, valid = warp_image(clean, np.array(rec["misalignment"]["transform"]))
        ir = read_image(tmp_path / "s" / rec["files"]["ir"])
        assert np.abs(moved - ir)[valid].mean() < 0.01

    def test_generated_pairs_keep_their_reference(self, single_src, tmp_path):
        records = build_suite("mef", single_src, "A", 2, 0, tmp_path / "m", progress=False)
        assert all("reference" in r["files"] and "evs" in r["generator"] for r in records)

    def test_clean_inputs_are_8_bit_frames(self, single_src):
        """A generated focus pair is stored as a camera would: a re-exposure of it combs the histogram."""
        from fuseagent.degrade.photometric import change_exposure
        from fuseagent.degrade.suite import make_sample

        sample = make_sample("mff", discover_sources(single_src, "mff")[0], resolve_recipe("mff", "all"), 3, 0, None)
        for clean in sample.clean.values():
            codes = clean * 255
            assert np.abs(codes - codes.round()).max() < 1e-3
        brighter = np.round(change_exposure(sample.clean["a"], 0.6, 2.2) * 255)
        used = np.unique(brighter[(brighter > 20) & (brighter < 230)])
        assert len(used) < 0.9 * (used.max() - used.min() + 1)

    def test_prepare_re_renders_the_source_and_keeps_the_recipe_draws(self, single_src):
        from fuseagent.degrade.photometric import scale_saturation
        from fuseagent.degrade.suite import make_sample

        source, recipes = discover_sources(single_src, "mff")[0], resolve_recipe("mff", "all")
        plain = make_sample("mff", source, recipes, 3, 1, None)
        vivid = make_sample("mff", source, recipes, 3, 1, None, prepare=lambda image: scale_saturation(image, 1.5))
        # same recipe, operations and levels (parameters read from the content, e.g. an object's outline, may differ)
        assert vivid.record["recipe"] == plain.record["recipe"]
        assert [(s["op"], s["level"]) for s in vivid.record["steps"]] == [(s["op"], s["level"]) for s in plain.record["steps"]]
        assert not np.allclose(vivid.reference, plain.reference)
        np.testing.assert_allclose(vivid.reference, np.round(scale_saturation(plain.reference, 1.5) * 255) / 255, atol=1 / 255)

    def test_resume_after_interruption(self, ivif_src, tmp_path):
        out = tmp_path / "r"
        full = build_suite("ivif", ivif_src, "all", 3, 5, tmp_path / "full", progress=False)
        build_suite("ivif", ivif_src, "all", 3, 5, out, progress=False)
        # simulate a crash: last record half-written, its images partly missing, a temp file left
        lines = (out / "manifest.jsonl").read_text().splitlines()
        (out / "manifest.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][: len(lines[2]) // 2])
        (out / "00002" / "vis.png").unlink()
        (out / "00001" / ".vis.tmp123.png").write_bytes(b"partial")
        (out / "00003").mkdir()
        (out / "00003" / "ir.png").write_bytes(b"junk")
        records = build_suite("ivif", ivif_src, "all", 3, 5, out, progress=False)
        assert [r["id"] for r in records] == ["00000", "00001", "00002"]
        assert len((out / "manifest.jsonl").read_text().splitlines()) == 3
        assert not list(out.rglob(".*tmp*")) and not (out / "00003").exists()
        ref, got = tree(tmp_path / "full"), tree(out)
        ref.pop("suite.json"), got.pop("suite.json")
        assert got == ref and [r["steps"] for r in records] == [r["steps"] for r in full]

    def test_other_settings_refused(self, ivif_src, tmp_path):
        build_suite("ivif", ivif_src, "all", 1, 0, tmp_path / "x", progress=False)
        with pytest.raises(InputError, match="other settings"):
            build_suite("ivif", ivif_src, "all", 1, 1, tmp_path / "x", progress=False)
        settings = json.loads((tmp_path / "x" / "suite.json").read_text())
        (tmp_path / "x" / "suite.json").write_text(json.dumps({**settings, "version": 1}))
        with pytest.raises(InputError, match="synthesis version 1"):
            build_suite("ivif", ivif_src, "all", 1, 0, tmp_path / "x", progress=False)

    def test_n_too_large(self, ivif_src, tmp_path):
        with pytest.raises(InputError, match="too large for 3 sources"):
            build_suite("ivif", ivif_src, "all", 4, 0, tmp_path / "y", progress=False)
        assert len(build_suite("ivif", ivif_src, "all", 4, 0, tmp_path / "y", per_source=2, progress=False)) == 4

    def test_unreadable_source(self, ivif_src, tmp_path):
        (ivif_src / "vis" / "p1.png").write_bytes(b"not a png")
        with pytest.raises(InputError, match="unreadable source 'p1'"):
            build_suite("ivif", ivif_src, "all", 3, 0, tmp_path / "z", progress=False)


class TestSynthCli:
    def test_builds(self, ivif_src, tmp_path, capsys):
        assert main(["synth", "--task", "ivif", "--src", str(ivif_src), "--recipe", "A", "--n", "2",
                     "--seed", "3", "--out", str(tmp_path / "c")]) == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["samples"] == 2 and all(k.startswith("ivif-a") for k in summary["recipes"])

    @pytest.mark.parametrize("argv, message", [
        (["--recipe", "ivif-q1"], "unknown recipe 'ivif-q1'"),
        (["--n", "50"], "N=50 is too large"),
        (["--src", "/nonexistent/folder"], "does not exist"),
    ])
    def test_user_errors_are_one_line(self, ivif_src, tmp_path, capsys, argv, message):
        base = {"--task": "ivif", "--src": str(ivif_src), "--recipe": "all", "--n": "2", "--out": str(tmp_path / "e")}
        for flag, value in zip(argv[::2], argv[1::2]):
            base[flag] = value
        args = ["synth"] + [x for kv in base.items() for x in kv]
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err and err.startswith("fuseagent: error:")

    def test_list(self, capsys):
        assert main(["synth", "--list", "--task", "mff"]) == 0
        out = capsys.readouterr().out
        assert "mff-c1" in out and "ivif-a1" not in out
