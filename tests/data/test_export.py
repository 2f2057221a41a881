"""Exports for LLaMA-Factory, TRL, EasyR1 and verl; the framework-facing reward; the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fuseagent.cli import main
from fuseagent.data.export import FORMATS, export_dataset, validate_export
from fuseagent.errors import InputError
from fuseagent.rewards import compute_score, score_completion


def _rows(path: Path) -> list[dict]:
    return json.loads(path.read_text()) if path.suffix == ".json" else [
        json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def exports(reference_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("exports")
    out = {}
    for fmt in FORMATS:
        export_dataset(reference_dataset, fmt, root / fmt)
        out[fmt] = root / fmt
    return out


class TestLlamaFactory:
    def test_sharegpt_with_two_image_tokens(self, exports: dict[str, Path]) -> None:
        info = json.loads((exports["llamafactory"] / "dataset_info.json").read_text())
        entry = info["fuseagent_planner"]
        assert entry["formatting"] == "sharegpt" and entry["columns"] == {"messages": "messages", "images": "images"}
        assert entry["tags"]["role_tag"] == "role" and entry["tags"]["assistant_tag"] == "assistant"
        rows = _rows(exports["llamafactory"] / entry["file_name"])
        assert len(rows) == 3
        for row in rows:
            assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
            assert row["messages"][1]["content"].count("<image>") == 2 == len(row["images"])
            assert row["messages"][2]["content"].startswith("<think>I see ")
            assert "</think><answer>[task:" in row["messages"][2]["content"]
            assert all(Path(p).is_absolute() and Path(p).is_file() for p in row["images"])
        assert validate_export(exports["llamafactory"], "llamafactory") == []

    def test_copied_images_and_perturbed_examples(self, reference_dataset: Path, tmp_path: Path) -> None:
        result = export_dataset(reference_dataset, "llamafactory", tmp_path, copy_images=True, with_perturbed=True,
                                margin=1.0)
        rows = _rows(tmp_path / "fuseagent_planner.json")
        assert result["rows"] == len(rows) == 6  # 3 best + 3 perturbed within the (wide) margin
        assert {r["kind"] for r in rows} - {"best"} <= {"reorder", "swap"}
        assert all(not Path(p).is_absolute() and (tmp_path / p).is_file() for r in rows for p in r["images"])
        assert validate_export(tmp_path, "llamafactory") == []

    def test_validation_catches_a_token_mismatch(self, exports: dict[str, Path], tmp_path: Path) -> None:
        rows = _rows(exports["llamafactory"] / "fuseagent_planner.json")
        rows[0]["messages"][1]["content"] = rows[0]["messages"][1]["content"].replace("<image>", "", 1)
        (tmp_path / "fuseagent_planner.json").write_text(json.dumps(rows))
        (tmp_path / "dataset_info.json").write_text((exports["llamafactory"] / "dataset_info.json").read_text())
        assert validate_export(tmp_path, "llamafactory") == ["row 0: 1 <image> tokens for 2 images"]


class TestRLFormats:
    def test_trl_prompt_has_one_image_part_per_image(self, exports: dict[str, Path]) -> None:
        rows = _rows(exports["trl"] / "fuseagent_planner.jsonl")
        for row in rows:
            assert [m["role"] for m in row["prompt"]] == ["system", "user"]
            assert sum(p["type"] == "image" for p in row["prompt"][1]["content"]) == len(row["images"]) == 2
            assert json.loads(row["ground_truth"])["task"] == row["task"]
        assert validate_export(exports["trl"], "trl") == []

    def test_easyr1_problem_answer_images(self, exports: dict[str, Path]) -> None:
        for row in _rows(exports["easyr1"] / "fuseagent_planner.jsonl"):
            assert row["problem"].count("<image>") == len(row["images"]) == 2
            assert "best" in json.loads(row["answer"])
        assert validate_export(exports["easyr1"], "easyr1") == []

    def test_verl_schema(self, exports: dict[str, Path]) -> None:
        files = list(exports["verl"].iterdir())
        assert [f.suffix for f in files] in ([".jsonl"], [".parquet"])
        if files[0].suffix == ".jsonl":
            rows = _rows(files[0])
            assert set(rows[0]) == {"data_source", "prompt", "images", "ability", "reward_model", "extra_info"}
            assert rows[0]["data_source"].startswith("fuseagent/") and rows[0]["reward_model"]["style"] == "rule"
            assert all(im["image"].startswith("file:///") for im in rows[0]["images"])
        assert validate_export(exports["verl"], "verl") == []

    def test_unknown_format_and_missing_dataset(self, reference_dataset: Path, tmp_path: Path) -> None:
        with pytest.raises(InputError, match="unknown export format"):
            export_dataset(reference_dataset, "axolotl", tmp_path)
        with pytest.raises(InputError, match="not a dataset"):
            export_dataset(tmp_path, "trl", tmp_path / "x")


class TestComputeScore:
    def test_the_best_trajectory_scores_its_recorded_hqa(self, exports: dict[str, Path]) -> None:
        row = _rows(exports["verl"] / "fuseagent_planner.jsonl")[0]
        truth = row["reward_model"]["ground_truth"]
        best = json.loads(truth)
        result = compute_score(row["data_source"], f"<think>I see.</think><answer>{best['best']}</answer>", truth)
        assert result["score"] == best["best_hqa"] and result["relative"] == 1.0 and result["valid"] == 1.0
        assert 0 < result["intrinsic"] <= 1 and 0 < result["relational"] <= 1 and result["reason"] == ""

    def test_framework_conventions(self, exports: dict[str, Path]) -> None:
        row = _rows(exports["easyr1"] / "fuseagent_planner.jsonl")[0]
        answer = "<answer>[task:fusion][model:gff]</answer>"
        single = compute_score({"response": answer, "ground_truth": row["answer"]})
        assert single["overall"] == single["score"] > 0 and all(isinstance(v, float) for v in single.values())
        batch = compute_score([{"response": answer, "ground_truth": row["answer"]},
                               {"response": "nonsense", "ground_truth": row["answer"]}])
        assert batch[0] == single and batch[1]["overall"] == 0.0
        trl = compute_score(prompts=[None, None], completions=[[{"role": "assistant", "content": answer}], "x"],
                            ground_truth=[row["answer"], row["answer"]])
        assert trl == [single["score"], 0.0]

    @pytest.mark.parametrize(("completion", "reason"), [
        ("I would fuse them.", "syntax"),
        ("<answer>[task:denoise][model:nlm]</answer>", "no_fusion"),
        ("<answer>[task:fusion][model:gff] -> [task:fusion][model:gff]</answer>", "fusion_not_last"),
        ("<answer>[task:fusion][model:magic]</answer>", "unknown_model"),
        ("<answer>[task:fusion][model:gff]", "syntax"),
    ])
    def test_invalid_completions_score_zero_with_a_reason(self, exports: dict[str, Path], completion: str,
                                                          reason: str) -> None:
        truth = _rows(exports["trl"] / "fuseagent_planner.jsonl")[0]["ground_truth"]
        result = score_completion(completion, truth)
        assert result["score"] == 0.0 and result["valid"] == 0.0 and result["reason"].startswith(reason)

    def test_bad_ground_truth(self) -> None:
        assert score_completion("<answer>[task:fusion][model:gff]</answer>", "{}")["reason"].startswith("bad ground")
        with pytest.raises(TypeError, match="ground_truth"):
            compute_score(completions=["x"])


class TestCLI:
    def test_stats_and_export(self, reference_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
        assert main(["dataset", "stats", str(reference_dataset)]) == 0
        stats = json.loads(capsys.readouterr().out)
        assert stats["pairs"] == 3 and stats["ratio"] > 1
        assert main(["dataset", "export", str(reference_dataset), "--format", "easyr1", "--out", str(tmp_path)]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["valid"] and result["rows"] == 3

    def test_user_errors(self, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
        assert main(["dataset", "stats", str(tmp_path)]) == 2
        assert "not a dataset" in capsys.readouterr().err
        assert main(["dataset", "build", "--suite", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
        assert "not a suite" in capsys.readouterr().err
        assert main(["dataset"]) == 2
