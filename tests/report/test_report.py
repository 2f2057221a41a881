"""The HTML trace report: self-contained, escaped, every step shown with its status and images."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from fuseagent.agent import Agent
from fuseagent.cli import main
from fuseagent.errors import InputError
from fuseagent.io import read_image, write_image
from fuseagent.plan import FixedPlanner
from fuseagent.report import render_report, write_report


@pytest.fixture
def pair(camera):
    ir = camera[100:196, 100:228].copy()
    vis = np.clip(camera[100:196, 100:228] * 0.7 + 0.15, 0, 1).astype(np.float32)
    return [ir, vis]


def std_score(before, after, roles, task):
    """Toy step reward: more contrast is better (a black image scores 0)."""
    if list(after) == ["fused"]:
        return {"total": float(after["fused"].std())}
    gain = float(np.mean([after[r].std() - before[r].std() for r in roles]))
    return {"total": 0.5 + 0.5 * float(np.tanh(gain / 0.01)), "intrinsic": 0.5}


class TestReportSmoke:
    def test_page_shows_every_step(self, pair, black_tool, tmp_path):
        planner = FixedPlanner("<think>vis is <noisy> & dark</think><answer>[task:denoise][model:zz_black][on:vis]"
                               " -> [task:fusion][model:gff]</answer>")
        res = Agent(planner=planner, scorer=std_score, perceive=False).run(*pair, "ivif")
        path = write_report(res, tmp_path / "run.html", inputs=["ir.png", "vis.png"])
        page = path.read_text()
        assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
        assert "vis is &lt;noisy&gt; &amp; dark" in page and "<noisy>" not in page  # planner text escaped
        assert "rolled back" in page and "class='step rolled_back'" in page
        assert "class='step accepted'" in page and "[task:fusion][model:gff]" in page
        n_images = len(re.findall(r'<img src="data:image/jpeg;base64,', page))
        steps = [s for s in res.steps if s.kind in ("step", "fusion") and s.output_key]
        assert n_images == 2 + sum(len(res.states[s.output_key].images) for s in steps) + 1
        assert "http://" not in page and "https://" not in page and "<script" not in page

    def test_failed_steps_and_errors_are_shown(self, pair, tmp_path):
        res = Agent(planner=FixedPlanner("[task:fusion][model:gff]"), scorer=std_score, perceive=False).run(*pair, "ivif")
        res.steps[-1].error = "RuntimeError: <boom>"
        page = render_report(res)
        assert "RuntimeError: &lt;boom&gt;" in page and "fuseagent IVIF run" in page


class TestReportErrors:
    def test_suffix(self, pair, tmp_path):
        res = Agent(planner=FixedPlanner("[task:fusion][model:gff]"), perceive=False, reflect=False).run(*pair, "ivif")
        with pytest.raises(InputError, match="html"):
            write_report(res, tmp_path / "run.txt")


class TestFuseCommandAgent:
    def test_planner_report_trace_and_replay(self, pair, tmp_path, capsys):
        ir, vis = tmp_path / "ir.png", tmp_path / "vis.png"
        write_image(ir, pair[0])
        write_image(vis, pair[1])
        out, trace, report = tmp_path / "out.png", tmp_path / "t.json", tmp_path / "r.html"
        code = main(["fuse", str(ir), str(vis), "--task", "ivif", "-o", str(out), "--planner", "predefined",
                     "--trace", str(trace), "--report", str(report)])
        assert code == 0
        data = json.loads(trace.read_text())
        assert data["agent"]["planner"] == "predefined" and report.read_text().startswith("<!DOCTYPE html>")
        assert "planner predefined" in capsys.readouterr().out
        again = tmp_path / "again.png"
        assert main(["fuse", str(ir), str(vis), "--task", "ivif", "-o", str(again), "--replay", str(trace)]) == 0
        assert again.read_bytes() == out.read_bytes()
        assert np.array_equal(read_image(again), read_image(out))

    @pytest.mark.parametrize("extra, message", [
        (["--plan", "[task:fusion][model:gff]", "--planner", "expert"], "cannot be combined"),
        (["--report", "r.txt"], "must be an .html"),
        (["--planner", "nosuch"], "unknown planner"),
        (["--replay", "missing.json"], "cannot read trace"),
    ])
    def test_bad_options_one_line(self, pair, tmp_path, capsys, extra, message):
        ir, vis = tmp_path / "ir.png", tmp_path / "vis.png"
        write_image(ir, pair[0])
        write_image(vis, pair[1])
        code = main(["fuse", str(ir), str(vis), "--task", "ivif", "-o", str(tmp_path / "o.png"), *extra])
        err = capsys.readouterr().err
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "o.png").exists()


class TestReportAloneKeepsTheRun:
    def test_report_does_not_change_the_output(self, pair, tmp_path):
        ir, vis = tmp_path / "ir.png", tmp_path / "vis.png"
        write_image(ir, pair[0])
        write_image(vis, pair[1])
        plain, reported = tmp_path / "plain.png", tmp_path / "reported.png"
        assert main(["fuse", str(ir), str(vis), "--task", "ivif", "-o", str(plain)]) == 0
        assert main(["fuse", str(ir), str(vis), "--task", "ivif", "-o", str(reported),
                     "--report", str(tmp_path / "r.html")]) == 0
        assert plain.read_bytes() == reported.read_bytes()
        assert "rolled back" not in (tmp_path / "r.html").read_text().split("<h2>Execution")[1].split("<h2>Result")[0]
