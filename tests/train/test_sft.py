"""SFT of the planning policy on tiny synthetic dataset records."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest
import torch

from fuseagent.errors import InputError
from fuseagent.learned.policy import build_vocab, decode_actions, generate, load_policy
from fuseagent.protocol import format_actions
from fuseagent.train.sft import (SFTSettings, evaluate_plans, examples_from_records, settings_from,
                                 sft_loss, split_examples, train_sft)

torch.set_num_threads(1)

TINY = {"image_size": 16, "channels": [8, 8, 8, 8], "task_dim": 4, "perception_dim": 16, "embed_dim": 16,
        "hidden_dim": 32}

#: (task, roles, findings, best trajectory): the plan follows from the task and the findings
RULES = [
    ("ivif", ["ir", "vis"], {"images": {"vis": {"noise": 3}}, "relational": {}},
     "[task:denoise][model:nlm][on:vis] -> [task:fusion][model:gff]"),
    ("ivif", ["ir", "vis"], {"images": {}, "relational": {}}, "[task:fusion][model:laplacian]"),
    ("mef", ["a", "b"], {"images": {}, "relational": {"misalignment": 2}},
     "[task:registration][model:sift] -> [task:fusion][model:mertens]"),
    ("mff", ["a", "b"], {"images": {"a": {"noise": 2}, "b": {"noise": 2}}, "relational": {}},
     "[task:denoise][model:nlm] -> [task:fusion][model:focus]"),
]


def toy_records(n_per_rule: int = 6, seed: int = 0) -> list[dict]:
    """Dataset records (the data engine's format, trimmed to what SFT reads) following :data:`RULES`."""
    records = []
    for r, (task, roles, findings, best) in enumerate(RULES):
        for i in range(n_per_rule):
            records.append({
                "key": f"toy/{r}-{i}", "task": task, "roles": roles, "files": {}, "suite_dir": "", "seed": seed,
                "perception": None, "findings": findings,
                "best": {"trajectory": best, "hqa": 0.7},
                "candidates": [{"trajectory": best, "hqa": 0.7}]
                + ([{"trajectory": best.rsplit(" -> ", 1)[-1], "hqa": 0.6}] if " -> " in best else []),
                "perturbed": [
                    {"kind": "swap", "trajectory": best.replace("[model:nlm]", "[model:tv]"), "hqa": 0.695},
                    {"kind": "swap", "trajectory": best.replace("[model:nlm]", "[model:wavelet]"), "hqa": 0.5}],
                "top_k": [{"rank": 0, "trajectory": best, "hqa": 0.7}],
            })
    records.append({"key": "toy/failed", "task": "ivif", "error": "RuntimeError: nothing runs"})
    return records


def toy_images(record: dict) -> list[np.ndarray]:
    rng = np.random.default_rng(zlib.crc32(record["key"].encode()))
    return [rng.random((20, 28)).astype(np.float32) for _ in record["roles"]]


@pytest.fixture(scope="module")
def vocab():
    return build_vocab()


class TestExamples:
    def test_best_and_perturbed_within_margin(self, vocab):
        data = examples_from_records(toy_records(2), vocab, image_size=16, perturbed=True, perturbed_margin=0.01,
                                     image_loader=toy_images)
        # rules 0 and 3 use nlm: one perturbed variant within the margin each; 8 best examples
        assert data.stats["errors"] == 1 and data.stats["records"] == 9
        assert data.stats["perturbed"] == 4 and data.stats["examples"] == 12
        tv = [e for e in data.examples if e.source == "perturbed"]
        assert all("model:tv" in format_actions(decode_actions(vocab, e.ids)[1]) for e in tv)

    def test_without_perturbation(self, vocab):
        data = examples_from_records(toy_records(2), vocab, image_size=16, perturbed=False, image_loader=toy_images)
        assert data.stats["examples"] == 8 and all(e.source == "best" for e in data.examples)

    def test_target_sequence_holds_tags_then_actions(self, vocab):
        data = examples_from_records(toy_records(1), vocab, image_size=16, perturbed=False, image_loader=toy_images)
        first = data.examples[0]
        assert [vocab.tokens[i] for i in first.ids] == ["<bos>", "tag:vis:noise", "<sep>", "act:denoise:nlm:vis",
                                                        "act:fusion:gff:-", "<eos>"]
        assert first.candidates["[task:fusion][model:gff]"] == 0.6 and first.best_hqa == 0.7

    def test_trajectory_outside_the_grammar_is_counted(self, vocab):
        record = dict(toy_records(1)[0], key="toy/bad", best={"trajectory": "[task:fusion][model:mertens]", "hqa": 0.5},
                      perturbed=[])
        data = examples_from_records([record], vocab, image_size=16, image_loader=toy_images)
        assert data.examples == [] and data.stats["outside_grammar"] == 1

    def test_missing_images_raise(self, vocab, tmp_path):
        record = dict(toy_records(1)[0], suite_dir=str(tmp_path), files={"ir": "ir.png", "vis": "vis.png"})
        with pytest.raises(InputError, match="not found"):
            examples_from_records([record], vocab)


class TestSplit:
    def test_variants_of_a_pair_stay_together(self, vocab):
        data = examples_from_records(toy_records(6), vocab, image_size=16, image_loader=toy_images)
        train, val = split_examples(data.examples, 0.3, seed=0)
        assert train and val
        assert {e.key for e in train}.isdisjoint({e.key for e in val})
        assert split_examples(data.examples, 0.3, seed=0)[1] == val


class TestSettings:
    def test_unknown_key_and_test_sets_refused(self):
        with pytest.raises(InputError, match="unknown setting"):
            settings_from(SFTSettings, {"datasets": ["d"], "stepz": 3})
        with pytest.raises(InputError, match="test set"):
            settings_from(SFTSettings, {"datasets": ["out/datasets/vifb"]})
        with pytest.raises(InputError, match="no dataset"):
            settings_from(SFTSettings, {})

    def test_committed_config_parses(self):
        from pathlib import Path

        from fuseagent.train.sft import load_config

        config = Path(__file__).resolve().parents[2] / "configs" / "sft.json"
        settings = settings_from(SFTSettings, load_config(config))
        assert settings.seed == 0 and settings.threads == 1 and settings.perturbed


class TestTraining:
    def test_loss_decreases_and_plans_are_learned(self, vocab):
        from fuseagent.learned.policy import PolicyConfig, PolicyNet

        torch.manual_seed(0)
        model = PolicyNet(vocab, PolicyConfig.from_dict(TINY))
        data = examples_from_records(toy_records(3), vocab, image_size=16, perturbed=False, image_loader=toy_images)
        optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
        first = float(sft_loss(model, data.examples).detach())
        for _ in range(80):
            loss = sft_loss(model, data.examples)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        last = float(sft_loss(model, data.examples).detach())
        assert last < 0.1 * first
        result = evaluate_plans(model, data.examples)
        assert result["plan_accuracy"] == 1.0 and result["tag_accuracy"] == 1.0
        assert result["in_search"] == 1.0 and result["hqa"] == pytest.approx(0.7)

    def test_train_sft_writes_weights_record_and_curve(self, tmp_path):
        out = tmp_path / "sft.pt"
        settings = SFTSettings(datasets=("toy",), policy=TINY, steps=100, batch=8, lr=1e-2, warmup=5, log_every=25,
                               val_fraction=0.25, perturbed=False, out=str(out))
        record = train_sft(settings, records=toy_records(6), image_loader=toy_images)
        assert out.is_file() and out.with_suffix(".png").is_file()
        saved = json.loads(out.with_suffix(".json").read_text())
        assert saved["steps"] == 100 and len(saved["curve"]) == 4
        assert saved["curve"][-1]["train_loss"] < 0.2 * saved["curve"][0]["train_loss"]
        # held-out pairs (never trained on) follow the same rules: the plan comes from task + perception
        assert record["val"]["n"] == 6 and record["val"]["plan_accuracy"] >= 0.8
        model, meta = load_policy(out)
        assert meta["stage"] == "sft" and model.config.hidden_dim == 32

    def test_select_keeps_the_lowest_validation_loss(self, tmp_path):
        settings = SFTSettings(datasets=("toy",), policy=TINY, steps=60, batch=8, lr=1e-2, warmup=5, log_every=10,
                               val_fraction=0.25, perturbed=False, select="val_loss", out=str(tmp_path / "s.pt"))
        record = train_sft(settings, records=toy_records(6), image_loader=toy_images)
        losses = {p["step"]: p["val_loss"] for p in record["curve"]}
        assert record["selected_step"] == min(losses, key=losses.get)
        assert record["val"]["loss"] == pytest.approx(min(losses.values()), rel=1e-5)
        with pytest.raises(InputError, match="select"):
            settings_from(SFTSettings, {"datasets": ["d"], "select": "best"})
        with pytest.raises(InputError, match="validation split"):
            settings_from(SFTSettings, {"datasets": ["d"], "select": "val_loss", "val_fraction": 0.0})

    def test_same_seed_same_weights(self, tmp_path):
        outs = []
        for name in ("a", "b"):
            settings = SFTSettings(datasets=("toy",), policy=TINY, steps=10, batch=4, log_every=10,
                                   out=str(tmp_path / f"{name}.pt"))
            train_sft(settings, records=toy_records(2), image_loader=toy_images)
            outs.append(load_policy(tmp_path / f"{name}.pt")[0])
        for key, tensor in outs[0].state_dict().items():
            assert torch.equal(tensor, outs[1].state_dict()[key])

    def test_decoded_plan_after_training_is_valid(self, tmp_path):
        from fuseagent.protocol import validate

        settings = SFTSettings(datasets=("toy",), policy=TINY, steps=20, batch=8, log_every=20,
                               out=str(tmp_path / "p.pt"))
        train_sft(settings, records=toy_records(2), image_loader=toy_images)
        model, _ = load_policy(tmp_path / "p.pt")
        data = examples_from_records(toy_records(1), model.vocab, image_size=16, perturbed=False,
                                     image_loader=toy_images)
        for example, sample in zip(data.examples, generate(model, [e.input for e in data.examples], greedy=True)):
            validate(decode_actions(model.vocab, sample.ids)[1], example.input.task)


def write_toy_dataset(folder, n_per_rule: int = 2):
    """A dataset folder in the data engine's layout (records/KEY.json) with its pairs on disk."""
    from fuseagent.io import write_image

    (folder / "records").mkdir(parents=True)
    suite = folder / "suite"
    for record in toy_records(n_per_rule)[:-1]:
        name = record["key"].replace("/", "__")
        files = {}
        for role, image in zip(record["roles"], toy_images(record)):
            files[role] = f"{name}/{role}.png"
            write_image(suite / files[role], np.kron(image, np.ones((3, 3), np.float32)))
        record = dict(record, suite_dir=str(suite), files=files)
        (folder / "records" / f"{name}.json").write_text(json.dumps(record))
    return folder


class TestCommand:
    def test_fuseagent_train_sft(self, tmp_path, capsys):
        from fuseagent.cli import main

        dataset = write_toy_dataset(tmp_path / "ds")
        out = tmp_path / "cli.pt"
        code = main(["train", "sft", "--dataset", str(dataset), "--steps", "4", "--out", str(out),
                     "--set", f"policy={json.dumps(TINY)}", "--set", "batch=4", "--set", "log_every=2"])
        assert code == 0 and out.is_file()
        assert "sft: 4 steps" in capsys.readouterr().out
        assert load_policy(out)[0].config.image_size == 16

    def test_missing_dataset_is_a_user_error(self, tmp_path, capsys):
        from fuseagent.cli import main

        assert main(["train", "sft", "--dataset", str(tmp_path / "nothing")]) == 2
        assert "not a dataset folder" in capsys.readouterr().err


class TestEvaluation:
    def test_scorer_fills_in_plans_outside_the_search(self, vocab):
        from fuseagent.learned.policy import PolicyConfig, PolicyNet

        torch.manual_seed(0)
        model = PolicyNet(vocab, PolicyConfig.from_dict(TINY))  # untrained: its plans are not the searched ones
        data = examples_from_records(toy_records(1), vocab, image_size=16, perturbed=False, image_loader=toy_images)
        asked = []

        def scorer(key, actions):
            asked.append(key)
            return None if key == "toy/0-0" else 0.35

        result = evaluate_plans(model, data.examples, scorer=scorer)
        assert result["n"] == 4 and len(asked) == 4 - round(result["in_search"] * 4)
        assert result["failed"] == int("toy/0-0" in asked)
        assert result["best_hqa_all"] == pytest.approx(0.7)
        assert result["relative_hqa"] == pytest.approx(result["hqa_all"] / 0.7)

    def test_evaluate_dataset_executes_real_plans(self, tmp_path):
        from fuseagent.train.sft import evaluate_dataset

        dataset = write_toy_dataset(tmp_path / "ds", n_per_rule=1)
        settings = SFTSettings(datasets=(str(dataset),), policy=TINY, steps=2, batch=4, log_every=2,
                               val_fraction=0.0, out=str(tmp_path / "p.pt"))
        train_sft(settings)
        result = evaluate_dataset(tmp_path / "p.pt", [str(dataset)])
        assert set(result) == {"all", "data", "ivif", "mef", "mff"}
        assert result["all"]["n"] == 4 and result["ivif"]["n"] == 2
        assert 0.0 <= result["all"]["hqa_all"] <= 1.0 and result["all"]["failed"] <= 4
