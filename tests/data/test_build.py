"""Dataset build: records, determinism across executors and workers, resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fuseagent.data.build import BuildSettings, build_dataset, dataset_stats, load_records, suite_items
from fuseagent.data.executors import ray_available
from fuseagent.data.search import SearchOptions

TINY_OPTIONS = SearchOptions(models_per_task=1, max_prefixes=4, max_fusion=2, top_k=2, perturb=1)
from fuseagent.errors import InputError


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


class TestRecords:
    def test_every_pair_has_a_complete_record(self, reference_dataset: Path) -> None:
        records = [json.loads(line) for line in _lines(reference_dataset / "dataset.jsonl")]
        assert [r["key"] for r in records] == ["ivif/00000", "ivif/00001", "mef/00000"]
        for r in records:
            assert r["best"]["trajectory"].endswith("]") and "[task:fusion]" in r["best"]["trajectory"]
            scored = [c["hqa"] for c in r["candidates"] if c["hqa"] is not None]
            assert r["best"]["hqa"] == max(scored)
            assert len(r["candidates"]) == r["search"]["candidates"] == 8  # 4 prefixes x 2 fusions
            assert [t["rank"] for t in r["top_k"]] == [0, 1]
            assert r["top_k"][0]["hqa"] >= r["top_k"][1]["hqa"]
            # one hash dict per state: inputs, one per step, fused
            assert len(r["best"]["states"]) == r["best"]["trajectory"].count("->") + 2
            assert set(r["best"]["states"][-1]) == {"fused"}
            assert r["response"] == f"<think>{r['rationale']}</think><answer>{r['best']['trajectory']}</answer>"
            assert len(r["rationale"]) <= 400 and r["rationale"].startswith("I ")
            assert r["perception"] is None
            assert len(r["perturbed"]) == 1 and r["perturbed"][0]["kind"] in ("reorder", "swap")
            assert 0 < r["search"]["executions"] < r["search"]["naive_executions"]

    def test_manifest_lists_the_keys_done(self, reference_dataset: Path) -> None:
        keys = [json.loads(line) for line in _lines(reference_dataset / "manifest.jsonl")]
        assert sorted(keys) == ["ivif/00000", "ivif/00001", "mef/00000"]

    def test_statistics(self, reference_dataset: Path) -> None:
        stats = dataset_stats(load_records(reference_dataset))
        assert stats["pairs"] == 3 and stats["candidates"] == 24 and stats["failed"] == 0
        assert set(stats["tasks"]) == {"ivif", "mef"}
        assert stats["ratio"] == round(stats["naive_executions"] / stats["executions"], 3) > 1

    def test_a_rebuild_does_nothing(self, tiny_settings: BuildSettings, reference_dataset: Path,
                                   tiny_suites: list[Path]) -> None:
        before = (reference_dataset / "dataset.jsonl").read_bytes()
        summary = build_dataset(tiny_suites, reference_dataset, tiny_settings)
        assert summary["pairs_built"] == 0 and summary["complete"]
        assert (reference_dataset / "dataset.jsonl").read_bytes() == before


class TestExceptions:
    def test_other_settings_are_refused(self, reference_dataset: Path, tiny_suites: list[Path]) -> None:
        with pytest.raises(InputError, match="other settings"):
            build_dataset(tiny_suites, reference_dataset, BuildSettings(SearchOptions(top_k=3), findings="truth"))
        with pytest.raises(InputError, match="other settings"):
            build_dataset(tiny_suites, reference_dataset, BuildSettings(TINY_OPTIONS))

    def test_not_a_suite(self, tmp_path: Path) -> None:
        with pytest.raises(InputError, match="not a suite"):
            suite_items([tmp_path])

    def test_bad_arguments(self, tiny_suites: list[Path], tmp_path: Path) -> None:
        with pytest.raises(InputError, match="workers"):
            build_dataset(tiny_suites, tmp_path / "a", workers=0)
        with pytest.raises(InputError, match="executor"):
            build_dataset(tiny_suites, tmp_path / "b", executor="slurm")


class TestResume:
    def test_leftovers_of_a_crash_are_repaired(self, tiny_settings: BuildSettings, reference_dataset: Path,
                                               tiny_suites: list[Path],
                                               tmp_path: Path) -> None:
        """A crash between writing a record and its manifest line, a truncated manifest line and a
        temporary file: the next run completes the dataset identically."""
        out = tmp_path / "ds"
        build_dataset(tiny_suites, out, tiny_settings, limit=2)
        assert not (out / "dataset.jsonl").exists()
        manifest = out / "manifest.jsonl"
        first = _lines(manifest)[0]
        manifest.write_text(first + "\n" + '"ivif/000')  # second line lost mid-write
        (out / "records" / ".mef__00000.json.tmp").write_text('{"key": "mef/00')
        summary = build_dataset(tiny_suites, out, tiny_settings)
        assert summary["pairs_built"] == 1 and summary["complete"]
        assert (out / "dataset.jsonl").read_bytes() == (reference_dataset / "dataset.jsonl").read_bytes()
        assert sorted(_lines(manifest)) == sorted(_lines(reference_dataset / "manifest.jsonl"))
        assert not list((out / "records").glob(".*"))

    def test_killed_build_resumes_to_the_same_dataset(self, tiny_settings: BuildSettings, reference_dataset: Path,
                                               tiny_suites: list[Path],
                                                      tmp_path: Path) -> None:
        out = tmp_path / "ds"
        suites = [arg for s in tiny_suites for arg in ("--suite", str(s))]
        cmd = [sys.executable, "-m", "fuseagent", "dataset", "build", *suites,
               "--out", str(out), "--top-k", "2", "--models-per-task", "1", "--max-prefixes", "4",
               "--max-fusion", "2", "--perturb", "1", "--findings", "truth", "--no-progress"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=dict(os.environ, OMP_NUM_THREADS="1"))
        manifest = out / "manifest.jsonl"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if manifest.exists() and manifest.read_text().strip():
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the build ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done = [json.loads(line) for line in _lines(manifest)]
        assert 1 <= len(done) < 3 and not (out / "dataset.jsonl").exists()
        summary = build_dataset(tiny_suites, out, tiny_settings)
        assert summary["pairs_built"] == 3 - len(done)
        assert (out / "dataset.jsonl").read_bytes() == (reference_dataset / "dataset.jsonl").read_bytes()
        assert sorted(json.loads(k) for k in _lines(manifest)) == ["ivif/00000", "ivif/00001", "mef/00000"]


class TestFailures:
    def test_a_failing_pair_gets_an_error_record_and_is_retried(self, tiny_settings: BuildSettings,
                                                                 reference_dataset: Path, tiny_suites: list[Path],
                                                                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        from fuseagent.data import build as build_module

        original = build_module.PairBuilder.build

        def failing(self: build_module.PairBuilder, item: build_module.WorkItem) -> tuple:
            if item.key == "mef/00000":
                raise RuntimeError("the oracle found no trajectory that runs on these images")
            return original(self, item)

        monkeypatch.setattr(build_module.PairBuilder, "build", failing)
        out = tmp_path / "ds"
        summary = build_dataset(tiny_suites, out, tiny_settings)
        assert summary["complete"] and summary["stats"]["failed"] == 1 and summary["stats"]["pairs"] == 2
        error = json.loads((out / "records" / "mef__00000.json").read_text())
        assert error["error"] == "RuntimeError: the oracle found no trajectory that runs on these images"
        monkeypatch.setattr(build_module.PairBuilder, "build", original)
        again = build_dataset(tiny_suites, out, tiny_settings)
        assert again["pairs_built"] == 1 and again["stats"]["failed"] == 0
        assert (out / "dataset.jsonl").read_bytes() == (reference_dataset / "dataset.jsonl").read_bytes()

    def test_ground_truth_findings(self, reference_dataset: Path, tiny_suites: list[Path]) -> None:
        from fuseagent.data.build import truth_findings

        record = load_records(reference_dataset)[0]
        sample = json.loads((tiny_suites[0] / "manifest.jsonl").read_text().splitlines()[0])
        assert record["perception"] is None and record["findings"] == truth_findings(sample).to_dict()
        assert json.loads((reference_dataset / "dataset.json").read_text())["findings"] == "truth"

    def test_perception_decides_by_default(self, tiny_suites: list[Path], tmp_path: Path) -> None:
        settings = BuildSettings(SearchOptions(models_per_task=1, max_prefixes=2, max_fusion=1, top_k=1))
        build_dataset(tiny_suites[:1], tmp_path / "ds", settings, limit=1)
        record = load_records(tmp_path / "ds")[0]
        assert record.get("error") is None, record.get("error")
        assert record["perception"]["task"] == "ivif" and "seconds" not in record["perception"]
        assert "findings" not in json.loads((tmp_path / "ds" / "dataset.json").read_text())


class TestExecutors:
    def test_two_local_workers_give_identical_records(self, tiny_settings: BuildSettings, reference_dataset: Path,
                                               tiny_suites: list[Path],
                                                      tmp_path: Path) -> None:
        summary = build_dataset(tiny_suites, tmp_path / "ds", tiny_settings, workers=2)
        assert summary["pairs_built"] == 3 and summary["workers"] == 2
        assert (tmp_path / "ds" / "dataset.jsonl").read_bytes() == (reference_dataset / "dataset.jsonl").read_bytes()

    @pytest.mark.skipif(not ray_available(), reason="ray is not installed (pip install ray)")
    def test_local_ray_cluster_gives_identical_records(self, tiny_settings: BuildSettings, reference_dataset: Path,
                                               tiny_suites: list[Path],
                                                       tmp_path: Path) -> None:
        summary = build_dataset(tiny_suites, tmp_path / "ds", tiny_settings, workers=2, executor="ray")
        assert summary["executor"] == "ray" and summary["pairs_built"] == 3
        assert (tmp_path / "ds" / "dataset.jsonl").read_bytes() == (reference_dataset / "dataset.jsonl").read_bytes()
        runs = [json.loads(line) for line in _lines(tmp_path / "ds" / "runs.jsonl")]
        assert runs[-1]["executor"] == "ray" and runs[-1]["complete"]


_ORPHAN_SCRIPT = """
import multiprocessing, os, sys, time
from fuseagent.data.executors import exit_with_parent

def worker(parent_pid):
    exit_with_parent(parent_pid, poll_seconds=0.1)
    time.sleep(60)

if __name__ == "__main__":
    child = multiprocessing.get_context("spawn").Process(target=worker, args=(os.getpid(),))
    child.start()
    print(child.pid, flush=True)
    time.sleep(float(sys.argv[1]))
    os._exit(0)  # the driver dies without shutting its worker down (as under SIGKILL)
"""


class TestWorkerLifetime:
    def test_a_worker_ends_with_its_driver(self, tmp_path: Path) -> None:
        script = tmp_path / "driver.py"
        script.write_text(_ORPHAN_SCRIPT)
        driver = subprocess.run([sys.executable, str(script), "1.5"], capture_output=True, text=True, timeout=60)
        pid = int(driver.stdout.split()[0])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            status = Path(f"/proc/{pid}/status")
            try:
                os.kill(pid, 0)
                if status.is_file() and "\nState:\tZ" in status.read_text():
                    break  # ended, not yet reaped by its new parent
            except (ProcessLookupError, FileNotFoundError):
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
            pytest.fail("the worker outlived its driver by 10 s")
