"""`fuseagent fuse` and `fuseagent tools`: outputs, traces, and one-line errors on bad input."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tifffile
from PIL import Image

from fuseagent.cli import main
from fuseagent.io import read_image, write_image


@pytest.fixture
def pair_files(tmp_path, camera):
    ir, vis = tmp_path / "ir.png", tmp_path / "vis.png"
    write_image(ir, camera[:120, :160])
    write_image(vis, np.clip(camera[:120, :160] * 0.6 + 0.1, 0, 1))
    return ir, vis


def outputs(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("out"))


class TestFuseCommand:
    def test_writes_image_and_trace(self, tmp_path, pair_files, capsys):
        out, trace = tmp_path / "out.png", tmp_path / "out.json"
        code = main(["fuse", *map(str, pair_files), "--task", "ivif", "-o", str(out), "--trace", str(trace),
                     "--plan", "[task:fusion][model:gff]"])
        assert code == 0 and read_image(out).shape == (120, 160)
        data = json.loads(trace.read_text())
        assert data["trajectory"] == "[task:fusion][model:gff]" and data["steps"][0]["tool"] == "fusion.gff"
        assert "wrote" in capsys.readouterr().out

    def test_16_bit_output(self, tmp_path, pair_files):
        out = tmp_path / "out.png"
        assert main(["fuse", *map(str, pair_files), "--task", "ivif", "-o", str(out), "--bits", "16",
                     "--plan", "[task:fusion][model:laplacian]"]) == 0
        assert np.asarray(Image.open(out)).dtype == np.uint16

    def test_16bit_rgba_and_mismatched_inputs_are_handled(self, tmp_path, astronaut):
        a = tmp_path / "a.tif"
        tifffile.imwrite(a, (astronaut[:100, :140] * 65535).astype(np.uint16))
        b = tmp_path / "b.png"
        rgba = np.concatenate([(astronaut[:50, :70] * 255).astype(np.uint8), np.full((50, 70, 1), 200, np.uint8)], 2)
        Image.fromarray(rgba, "RGBA").save(b)
        out = tmp_path / "out.png"
        assert main(["fuse", str(a), str(b), "--task", "mff", "-o", str(out),
                     "--plan", "[task:fusion][model:focus]"]) == 0
        assert read_image(out).shape == (100, 140, 3)

    @pytest.mark.parametrize("case", ["missing", "empty", "corrupt", "truncated", "single", "badplan",
                                      "badsuffix", "three_ivif", "unknown_model"])
    def test_bad_input_one_line_exit_2_no_output(self, tmp_path, pair_files, camera, capsys, case):
        ir, vis = map(str, pair_files)
        bad = tmp_path / "bad.png"
        args = [ir, vis]
        plan = ["--plan", "[task:fusion][model:gff]"]
        out = tmp_path / "out.png"
        if case == "missing":
            args = [ir, str(tmp_path / "nope.png")]
        elif case == "empty":
            bad.write_bytes(b"")
            args = [ir, str(bad)]
        elif case == "corrupt":
            bad.write_bytes(os.urandom(300))
            args = [ir, str(bad)]
        elif case == "truncated":
            write_image(bad, camera)
            bad.write_bytes(bad.read_bytes()[:2000])
            args = [ir, str(bad)]
        elif case == "single":
            args = [ir]
        elif case == "badplan":
            plan = ["--plan", "[task:fusion]"]
        elif case == "badsuffix":
            out = tmp_path / "out.gif"
        elif case == "three_ivif":
            args = [ir, vis, ir]
        elif case == "unknown_model":
            plan = ["--plan", "[task:fusion][model:magic]"]
        code = main(["fuse", *args, "--task", "ivif", "-o", str(out), *plan])
        err = capsys.readouterr().err.strip()
        assert code == 2
        assert err.startswith("fuseagent: error:") and "\n" not in err and "Traceback" not in err
        assert outputs(tmp_path) == []

    def test_argparse_errors_are_one_line(self, capsys):
        with pytest.raises(SystemExit) as exc:
            main(["fuse", "a.png", "b.png", "-o", "x.png"])
        assert exc.value.code == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1


class TestToolsCommand:
    def test_table_and_filter(self, capsys):
        assert main(["tools", "list", "dehaze*"]) == 0
        out = capsys.readouterr().out
        assert "dehaze.dcp" in out and "denoise.nlm" not in out

    def test_json_and_show(self, capsys):
        assert main(["tools", "list", "--json"]) == 0
        cards = json.loads(capsys.readouterr().out)
        tasks = {c["task"] for c in cards}
        assert {"registration", "flow", "inpaint", "denoise", "dehaze", "derain", "destripe", "deblur", "sr",
                "lighten", "exposure", "white_balance", "fusion"} <= tasks
        assert main(["tools", "show", "fusion.gff"]) == 0
        assert json.loads(capsys.readouterr().out)["inputs"] == "stack"

    def test_unknown_tool_suggests(self, capsys):
        assert main(["tools", "show", "denoise.nml"]) == 2
        assert "did you mean denoise.nlm" in capsys.readouterr().err


class TestToolbox:
    def test_at_least_two_models_per_category(self):
        import fuseagent

        categories = {
            "registration": ["registration"], "flow": ["flow"], "inpaint": ["inpaint"], "denoise": ["denoise"],
            "weather": ["dehaze", "derain", "destripe"], "deblur_sr": ["deblur", "sr"],
            "illumination": ["lighten", "exposure", "white_balance"], "fusion": ["fusion"],
        }
        for category, tasks in categories.items():
            for task in tasks:
                assert len(fuseagent.list_tools(f"{task}.*")) >= 2, task
        for task in ("ivif", "mef", "mff"):
            ops = [n for n in fuseagent.list_tools("fusion.*") if task in fuseagent.tool_card(n).fusion_tasks]
            assert len(ops) >= 2, task
