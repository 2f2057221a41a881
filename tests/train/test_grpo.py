"""GRPO-F: advantages, the clipped objective with KL, rewards through the environment, a toy run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fuseagent.errors import InputError
from fuseagent.learned.policy import PolicyConfig, PolicyNet, build_vocab, load_policy, save_policy
from fuseagent.protocol import parse_actions
from fuseagent.train.grpo import (EnvironmentReward, GRPOSettings, TrajectoryReward, adaptive_advantages,
                                  combine_reward, group_advantages, grpo_loss, train_grpo)
from fuseagent.train.sft import load_config, settings_from

sys.path.insert(0, str(Path(__file__).parent))
from test_sft import TINY, toy_images, toy_records  # noqa: E402

torch.set_num_threads(1)


class TestGroupAdvantages:
    def test_zero_mean_unit_std(self):
        adv = group_advantages([0.2, 0.9, 0.4, 0.5])
        assert adv.mean() == pytest.approx(0.0, abs=1e-9)
        assert adv.std() == pytest.approx(1.0, abs=1e-5)
        assert np.argsort(adv).tolist() == [0, 2, 3, 1]

    def test_reference_values(self):
        # mean 0.5, population std 0.25
        assert group_advantages([0.25, 0.75, 0.25, 0.75]).round(5).tolist() == [-1.0, 1.0, -1.0, 1.0]

    def test_uniform_group_has_no_signal(self):
        assert group_advantages([0.7] * 4).tolist() == [0.0] * 4

    def test_invariant_to_shift_and_scale(self):
        r = np.array([0.1, 0.3, 0.35, 0.8])
        assert np.allclose(group_advantages(r), group_advantages(10 * r + 3), atol=1e-5)


class TestAdaptiveAdvantages:
    def test_component_scale_does_not_matter(self):
        rng = np.random.default_rng(0)
        c = rng.random((4, 3))
        scaled = c * np.array([1.0, 100.0, 0.01])
        assert np.allclose(adaptive_advantages(c, [1, 1, 3]), adaptive_advantages(scaled, [1, 1, 3]), atol=1e-4)

    def test_differs_from_plain_normalisation_when_spreads_differ(self):
        # the fusion column varies a little, the intrinsic one a lot: plain totals follow intrinsic
        c = np.array([[0.9, 0.5, 0.50], [0.1, 0.5, 0.52], [0.5, 0.5, 0.51], [0.5, 0.5, 0.51]])
        totals = c @ np.array([1.0, 1.0, 3.0]) / 5.0
        plain = group_advantages(totals)
        adaptive = adaptive_advantages(c, [1.0, 1.0, 3.0])
        assert plain[0] > plain[1]
        assert adaptive[1] > adaptive[0]  # fusion weighs 3: its (small) gain wins once normalised
        assert adaptive.std() == pytest.approx(1.0, abs=1e-5)

    def test_weight_zero_ignores_component(self):
        c = np.array([[0.9, 0.1, 0.5], [0.1, 0.9, 0.5], [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]])
        assert adaptive_advantages(c, [1.0, 0.0, 1.0]).round(4).tolist() == [1.4142, -1.4142, 0.0, 0.0]


class TestLoss:
    def _grad(self, advantage: float, logp_old: float, clip: float = 0.2, kl: float = 0.0):
        logp = torch.tensor([[-1.0]], requires_grad=True)
        loss, stats = grpo_loss(logp, torch.tensor([[logp_old]]), torch.tensor([[-1.0]]), torch.tensor([advantage]),
                                torch.ones(1, 1), clip, kl)
        loss.backward()
        return float(logp.grad), loss.item(), stats

    def test_positive_advantage_raises_the_token_probability(self):
        grad, loss, _ = self._grad(1.0, -1.0)
        assert grad == pytest.approx(-1.0) and loss == pytest.approx(-1.0)  # descent raises logp

    def test_negative_advantage_lowers_it(self):
        grad, _, _ = self._grad(-1.0, -1.0)
        assert grad == pytest.approx(1.0)

    def test_clipped_ratio_has_no_gradient(self):
        # ratio = e^{0.5} ≈ 1.65 > 1.2 with a positive advantage: the clipped branch is taken
        grad, loss, stats = self._grad(1.0, -1.5)
        assert grad == 0.0 and loss == pytest.approx(-1.2) and stats["clip_fraction"] == 1.0

    def test_kl_penalty_is_zero_at_the_reference_and_positive_away(self):
        _, _, stats = self._grad(0.0, -1.0, kl=0.1)
        assert stats["kl"] == 0.0
        logp = torch.tensor([[-0.5]])
        _, stats = grpo_loss(logp, logp, torch.tensor([[-1.0]]), torch.tensor([0.0]), torch.ones(1, 1), 0.2, 0.1)
        assert stats["kl"] == pytest.approx(np.exp(-0.5) + 0.5 - 1, abs=1e-6)

    def test_padding_is_ignored(self):
        logp = torch.tensor([[-1.0, -5.0]])
        w = torch.tensor([[1.0, 0.0]])
        loss, _ = grpo_loss(logp, logp, None, torch.tensor([2.0]), w, 0.2, 0.1)
        assert float(loss) == pytest.approx(-2.0)


class TestCombineReward:
    def test_hqa_form(self):
        r = combine_reward([{"intrinsic": 0.8, "relational": 0.4}, {"intrinsic": 0.6, "relational": 0.6}], 0.5)
        assert r.intrinsic == pytest.approx(0.7) and r.relational == pytest.approx(0.5)
        assert r.total == pytest.approx((3 * 0.5 + 0.6) / 4) and r.steps == 2

    def test_iqr_only_and_rqr_only(self):
        steps = [{"intrinsic": 0.9, "relational": 0.1}]
        assert combine_reward(steps, 0.5, w_relational=0.0).total == pytest.approx((1.5 + 0.9) / 4)
        assert combine_reward(steps, 0.5, w_intrinsic=0.0).total == pytest.approx((1.5 + 0.1) / 4)

    def test_alignment_steps_are_judged_by_alignment(self):
        steps = [{"intrinsic": 0.2, "relational": 0.8, "alignment": True}]
        assert combine_reward(steps, 0.5).total == pytest.approx((1.5 + 0.8) / 4)
        assert combine_reward(steps, 0.5, w_relational=0.0).total == pytest.approx((1.5 + 0.2) / 4)

    def test_no_steps_is_the_fusion_reward(self):
        r = combine_reward([], 0.37)
        assert r.total == 0.37 and r.components() == [0.5, 0.5, 0.37]


class TestSettings:
    def test_committed_config_parses(self):
        config = Path(__file__).resolve().parents[2] / "configs" / "grpo.json"
        s = settings_from(GRPOSettings, load_config(config))
        assert (s.group, s.kl, s.seed) == (4, 0.1, 0)

    def test_bad_values_refused(self):
        with pytest.raises(InputError, match="group"):
            settings_from(GRPOSettings, {"datasets": ["d"], "group": 1})
        with pytest.raises(InputError):
            settings_from(GRPOSettings, {"datasets": ["d"], "clip": 1.5})
        with pytest.raises(InputError, match="test set"):
            settings_from(GRPOSettings, {"datasets": ["out/lytro"]})


class TestEnvironmentReward:
    def test_executes_and_rewards_a_real_pair(self, tmp_path, camera):
        from fuseagent.io import write_image

        ir = camera[100:196, 150:278].copy()
        noise = np.random.default_rng(0).normal(0, 0.08, ir.shape)
        vis = np.clip(camera[100:196, 150:278] * 0.9 + noise, 0, 1).astype(np.float32)
        write_image(tmp_path / "ir.png", ir)
        write_image(tmp_path / "vis.png", vis)
        record = {"key": "t/0", "task": "ivif", "roles": ["ir", "vis"], "suite_dir": str(tmp_path),
                  "files": {"ir": "ir.png", "vis": "vis.png"}}
        reward = EnvironmentReward(GRPOSettings(datasets=("t",)), cache_dir=tmp_path / "cache")
        plain = reward(record, parse_actions("[task:fusion][model:laplacian]"))
        denoised = reward(record, parse_actions("[task:denoise][model:nlm][on:vis] -> [task:fusion][model:laplacian]"))
        assert plain.error is None and denoised.error is None
        assert plain.steps == 0 and denoised.steps == 1
        assert 0.0 < plain.total < 1.0 and 0.0 < denoised.total < 1.0
        assert denoised.intrinsic > 0.5  # removing strong noise raises the intrinsic quality
        again = reward(record, parse_actions("[task:denoise][model:nlm][on:vis] -> [task:fusion][model:laplacian]"))
        assert again.total == pytest.approx(denoised.total)
        assert reward.pool.cache.stats()["memory_hits"] >= 2  # the second run came from the tool-call cache
        registered = reward(record, parse_actions("[task:registration][model:ecc][on:ir] -> [task:fusion][model:laplacian]"))
        assert registered.error is None and registered.steps == 1  # an alignment step has no intrinsic score
        iqr_only = EnvironmentReward(GRPOSettings(datasets=("t",), w_relational=0.0))(
            record, parse_actions("[task:registration][model:ecc][on:ir] -> [task:fusion][model:laplacian]"))
        assert iqr_only.error is None and 0.0 <= iqr_only.intrinsic <= 1.0  # computed when it weighs in

    def test_failure_earns_zero(self, tmp_path):
        record = {"key": "t/1", "task": "ivif", "roles": ["ir", "vis"], "suite_dir": str(tmp_path),
                  "files": {"ir": "missing.png", "vis": "missing.png"}}
        r = EnvironmentReward(GRPOSettings(datasets=("t",)))(record, parse_actions("[task:fusion][model:gff]"))
        assert r.total == 0.0 and "not found" in r.error


def toy_reward(record, actions) -> TrajectoryReward:
    """1 for the record's best fusion operator (0.2 for another), 0.1 less per pre-fusion step (also
    seen by the step components, for the adaptive re-weighting)."""
    best = parse_actions(record["best"]["trajectory"])[-1]
    fusion = 1.0 if actions[-1] == best else 0.2
    steps = len(actions) - 1
    step_score = max(0.0, 0.5 - 0.1 * steps)
    return TrajectoryReward(max(0.0, fusion - 0.1 * steps), step_score, step_score, fusion, steps)


class TestTraining:
    def _settings(self, tmp_path, **changes):
        values = dict(datasets=("toy",), init=None, group=4, pairs_per_step=4, steps=20, inner_epochs=2, lr=1e-2,
                      kl=0.0, val_fraction=0.25, eval_every=0, out=str(tmp_path / "grpo.pt"))
        values.update(changes)
        return GRPOSettings(**values)

    def test_reward_rises_on_a_toy_objective(self, tmp_path):
        torch.manual_seed(0)
        init = PolicyNet(build_vocab(), PolicyConfig.from_dict(TINY))
        record = train_grpo(self._settings(tmp_path), records=toy_records(6), image_loader=toy_images,
                            reward_fn=toy_reward, init_model=init)
        rewards = [p["reward"] for p in record["curve"]]
        assert len(rewards) == 20
        # the margin is ~0.35 whichever fusion operators are installed (the grammar follows availability)
        assert np.mean(rewards[-5:]) > np.mean(rewards[:5]) + 0.15
        assert record["val_after"]["reward"] >= record["val_before"]["reward"]
        assert Path(tmp_path / "grpo.png").is_file()
        saved = json.loads((tmp_path / "grpo.json").read_text())
        assert saved["rounds"] == 20 and saved["curve"][0]["step"] == 1

    def test_adaptive_option_runs_and_learns(self, tmp_path):
        torch.manual_seed(0)
        init = PolicyNet(build_vocab(), PolicyConfig.from_dict(TINY))
        record = train_grpo(self._settings(tmp_path, adaptive=True), records=toy_records(6), image_loader=toy_images,
                            reward_fn=toy_reward, init_model=init)
        rewards = [p["reward"] for p in record["curve"]]
        assert np.mean(rewards[-5:]) > np.mean(rewards[:5]) + 0.15

    def test_kl_keeps_the_policy_near_its_reference(self, tmp_path):
        torch.manual_seed(0)
        init = PolicyNet(build_vocab(), PolicyConfig.from_dict(TINY))
        path = save_policy(tmp_path / "init.pt", init)
        free = train_grpo(self._settings(tmp_path, init=str(path), steps=15, out=str(tmp_path / "a.pt")),
                          records=toy_records(4), image_loader=toy_images, reward_fn=toy_reward)
        tied = train_grpo(self._settings(tmp_path, init=str(path), steps=15, kl=5.0, out=str(tmp_path / "b.pt")),
                          records=toy_records(4), image_loader=toy_images, reward_fn=toy_reward)

        def distance(p: Path) -> float:
            model, _ = load_policy(p)
            pairs = zip(model.state_dict().values(), init.state_dict().values())
            return sum(float((a - b).pow(2).sum()) for a, b in pairs)

        assert free["curve"][0]["kl"] == 0.0 and tied["curve"][-1]["kl"] > 0.0
        assert distance(tmp_path / "b.pt") < distance(tmp_path / "a.pt")

    def test_same_seed_same_curve(self, tmp_path):
        curves = []
        for name in ("a", "b"):
            torch.manual_seed(0)
            init = PolicyNet(build_vocab(), PolicyConfig.from_dict(TINY))
            record = train_grpo(self._settings(tmp_path, steps=5, out=str(tmp_path / f"{name}.pt")),
                                records=toy_records(2), image_loader=toy_images, reward_fn=toy_reward, init_model=init)
            curves.append([(p["reward"], p["loss"]) for p in record["curve"]])
        assert curves[0] == curves[1]


class TestCommand:
    def test_fuseagent_train_grpo_executes_real_tools(self, tmp_path, capsys):
        from fuseagent.cli import main
        from test_sft import write_toy_dataset

        dataset = write_toy_dataset(tmp_path / "ds", n_per_rule=1)
        torch.manual_seed(0)
        init = save_policy(tmp_path / "init.pt", PolicyNet(build_vocab(), PolicyConfig.from_dict(TINY)))
        out = tmp_path / "g.pt"
        code = main(["train", "grpo", "--dataset", str(dataset), "--init", str(init), "--steps", "1", "--out", str(out),
                     "--set", "group=2", "--set", "pairs_per_step=1", "--set", "val_fraction=0",
                     "--set", "reflect_size=64"])
        assert code == 0 and out.is_file()
        saved = json.loads(out.with_suffix(".json").read_text())
        point = saved["curve"][0]
        assert 0.0 <= point["reward"] <= point["reward_max"] <= 1.0
        assert "grpo: 1 rounds" in capsys.readouterr().out


class TestAlignmentSteps:
    """Registration steps have no intrinsic score in the step reflection: the reward still runs."""

    def test_alignment_step_without_intrinsic(self) -> None:
        from fuseagent.train.grpo import combine_reward

        r = combine_reward([{"intrinsic": None, "relational": 0.8, "alignment": True},
                            {"intrinsic": 0.7, "relational": 0.5}], 0.6)
        assert r.intrinsic == 0.7 and r.relational == pytest.approx(0.65)
        assert r.total == pytest.approx((3 * 0.6 + 1 * (0.8 + 0.6) / 2) / 4)
