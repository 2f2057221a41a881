"""The planning policy: vocabulary, grammar, features, network, decoding, save / load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fuseagent.errors import InputError, ProtocolError
from fuseagent.learned.policy import (PERCEPTION_SIZE, Grammar, PolicyConfig, PolicyNet, build_vocab, decode_actions,
                                      encode_response, findings_from_tags, generate, load_policy, pair_tensor,
                                      perception_vector, policy_input, save_policy, tags_from_findings)
from fuseagent.learned.policy.model import collate_inputs, grammar_masks, pad_sequences, sequence_logprobs
from fuseagent.learned.policy.vocab import action_token, token_action
from fuseagent.plan.findings import Findings
from fuseagent.protocol import Action, parse_actions, validate

torch.set_num_threads(1)

TINY = PolicyConfig(image_size=16, channels=(8, 8, 8, 8), task_dim=4, perception_dim=8, embed_dim=8, hidden_dim=16)


@pytest.fixture(scope="module")
def vocab():
    return build_vocab()


def _net(vocab, seed: int = 0, config: PolicyConfig = TINY) -> PolicyNet:
    torch.manual_seed(seed)
    return PolicyNet(vocab, config)


def _input(task: str, seed: int = 0, size: int = 16, findings: Findings | None = None):
    rng = np.random.default_rng(seed)
    images = [rng.random((24, 32)).astype(np.float32), rng.random((24, 32, 3)).astype(np.float32)]
    return policy_input(images, task, None, findings, None, size)


class TestVocab:
    def test_specials_tags_and_every_registered_tool(self, vocab):
        from fuseagent.tools import TOOLS

        assert vocab.tokens[:4] == ("<pad>", "<bos>", "<sep>", "<eos>")
        assert (vocab.pad, vocab.bos, vocab.sep, vocab.eos) == (0, 1, 2, 3)
        tools = {f"{t.split(':')[1]}.{t.split(':')[2]}" for t in vocab.tokens if t.startswith("act:")}
        assert tools == {e.name for e in TOOLS}
        assert "tag:ir:stripe" in vocab.index and "tag:rel:misalignment" in vocab.index

    def test_build_is_deterministic(self, vocab):
        assert build_vocab().tokens == vocab.tokens

    def test_fusion_tokens_have_no_target(self, vocab):
        fusion = [t for t in vocab.tokens if t.startswith("act:fusion:")]
        assert fusion and all(t.endswith(":-") for t in fusion)

    def test_action_token_round_trip(self):
        for action in (Action("denoise", "nlm", "vis"), Action("registration", "sift"), Action("fusion", "gff")):
            assert token_action(action_token(action)) == action

    def test_dict_round_trip_and_bad_format(self, vocab):
        from fuseagent.learned.policy import Vocab

        assert Vocab.from_dict(vocab.to_dict()) == vocab
        with pytest.raises(InputError):
            Vocab.from_dict({"format": "other", "tokens": list(vocab.tokens)})

    def test_unknown_token_raises(self, vocab):
        with pytest.raises(InputError, match="not in the policy vocabulary"):
            vocab.id("act:denoise:nope:-")


class TestTags:
    def test_canonical_order_and_roles_of_the_task(self):
        f = Findings({"vis": {"haze": 2, "noise": 4}, "ir": {"stripe": 1}, "c": {"noise": 3}}, {"motion": 2})
        assert tags_from_findings(f, "ivif", ["ir", "vis"]) == ["tag:ir:stripe", "tag:vis:noise", "tag:vis:haze",
                                                                "tag:rel:motion"]

    def test_round_trip_through_findings(self):
        tags = ["tag:a:noise", "tag:b:blur", "tag:rel:misalignment"]
        assert tags_from_findings(findings_from_tags(tags), "mff", ["a", "b"]) == tags


class TestGrammar:
    @pytest.mark.parametrize("task", ["ivif", "mef", "mff"])
    def test_every_step_token_is_valid_protocol(self, vocab, task):
        g = Grammar(vocab, task)
        fusion = token_action(vocab.tokens[g.fusion_ids[0]])
        for i in g.step_ids:
            validate([token_action(vocab.tokens[i]), fusion], task)
        for i in g.fusion_ids:
            validate([token_action(vocab.tokens[i])], task)

    def test_fusion_operators_suit_the_task(self, vocab):
        def names(task):
            return {token_action(vocab.tokens[i]).model for i in Grammar(vocab, task).fusion_ids}

        assert "mertens" in names("mef") and "mertens" not in names("ivif")
        assert "focus" in names("mff") and "focus" not in names("mef")

    def test_modalities_keep_thermal_tools_off_visible_images(self, vocab):
        ivif = {vocab.tokens[i] for i in Grammar(vocab, "ivif").step_ids}
        mef = {vocab.tokens[i] for i in Grammar(vocab, "mef").step_ids}
        assert "act:destripe:column:ir" in ivif and "act:destripe:column:vis" not in ivif
        assert not any(t.startswith("act:destripe:") for t in mef)
        assert not any(t.endswith(":ir") or t.endswith(":vis") for t in mef)

    def test_phases(self, vocab):
        g = Grammar(vocab, "ivif")
        start = g.allowed([vocab.bos])
        assert start[vocab.sep] and start[vocab.id("tag:vis:noise")] and not start[vocab.eos]
        assert not start[g.fusion_ids].any()
        after_tag = g.allowed([vocab.bos, vocab.id("tag:vis:noise")])
        assert not after_tag[vocab.id("tag:ir:noise")] and after_tag[vocab.id("tag:rel:misalignment")]
        actions = g.allowed([vocab.bos, vocab.sep])
        assert actions[g.fusion_ids].all() and not actions[vocab.eos] and not actions[vocab.sep]
        step = vocab.id("act:denoise:nlm:vis")
        assert not g.allowed([vocab.bos, vocab.sep, step])[step]

    def test_max_steps_forces_fusion(self, vocab):
        g = Grammar(vocab, "mef", max_steps=2)
        prefix = [vocab.bos, vocab.sep, g.step_ids[0], g.step_ids[1]]
        assert set(np.flatnonzero(g.allowed(prefix))) == set(g.fusion_ids)

    def test_accepts(self, vocab):
        g = Grammar(vocab, "mff")
        plan = parse_actions("[task:denoise][model:nlm] -> [task:fusion][model:focus]")
        good = encode_response(vocab, ["tag:a:noise"], plan)
        assert g.accepts(good)
        bad = encode_response(vocab, [], parse_actions("[task:fusion][model:mertens]"))
        assert not g.accepts(bad)

    def test_prefix_without_bos_raises(self, vocab):
        with pytest.raises(InputError):
            Grammar(vocab, "ivif").allowed([vocab.sep])

    def test_unknown_task_raises(self, vocab):
        with pytest.raises(ProtocolError):
            Grammar(vocab, "hdr")


class TestFeatures:
    def test_pair_tensor_channels(self):
        a = np.full((20, 30), 0.25, np.float32)
        b = np.tile(np.linspace(0, 1, 30, dtype=np.float32), (20, 1))
        t = pair_tensor([a, b], 8)
        assert t.shape == (4, 8, 8) and t.dtype == np.float32
        assert np.allclose(t[0], 0.25, atol=1e-5) and np.allclose(t[2], 0.0, atol=1e-6)
        assert t[3].mean() > 0.0

    def test_perception_from_report(self):
        report = {"images": [{"role": "ir", "degradations": {"stripe": {"level": 4, "probability": 0.9}}},
                             {"role": "vis", "degradations": {"noise": {"level": 2, "probability": 0.7}}}],
                  "misalignment": {"level": 3, "displacement_px": 12.0}, "moving_objects": {"detected": True,
                                                                                          "area_fraction": 0.1}}
        v = perception_vector(report, None, "ivif", ["ir", "vis"])
        assert v.shape == (PERCEPTION_SIZE,)
        assert v[-1] == 1.0  # has_report
        assert pytest.approx(0.8) in v.tolist() and pytest.approx(0.9) in v.tolist()

    def test_perception_from_findings_and_empty(self):
        v = perception_vector(None, Findings({"b": {"blur": 5}}, {"misalignment": 5}), "mff", ["a", "b"])
        assert v.max() == 1.0 and v[-1] == 0.0
        assert not perception_vector(None, None, "mff", ["a", "b"]).any()


class TestNetwork:
    def test_logits_shape_and_parameter_count(self, vocab):
        net = _net(vocab)
        x = _input("ivif")
        ctx = net.context(*collate_inputs([x, x]))
        assert net(ctx, torch.tensor([[vocab.bos, vocab.sep]] * 2)).shape == (2, 2, len(vocab))
        default = PolicyNet(vocab)
        assert 100_000 < default.parameter_count() < 1_000_000

    def test_masked_logprobs_are_normalised_over_allowed_tokens(self, vocab):
        net = _net(vocab)
        x = _input("mef")
        g = Grammar(vocab, "mef")
        seq = [vocab.bos, vocab.sep, g.fusion_ids[0], vocab.eos]
        ids, _ = pad_sequences([seq])
        masks = grammar_masks([g], [seq], ids.shape[1])
        with torch.no_grad():
            logp = sequence_logprobs(net, net.context(*collate_inputs([x])), ids, masks)
        assert logp.shape == (1, 3)
        assert float(logp[0, 2]) == pytest.approx(0.0, abs=1e-6)  # after fusion only <eos> is allowed
        assert (logp <= 0).all()


class TestDecoding:
    @pytest.mark.parametrize("task", ["ivif", "mef", "mff"])
    def test_sampled_plans_are_always_valid(self, vocab, task):
        net = _net(vocab, seed=1)
        inputs = [_input(task, seed=s) for s in range(16)]
        gen = torch.Generator().manual_seed(0)
        for _ in range(4):
            for sample in generate(net, inputs, temperature=2.0, generator=gen):
                g = Grammar(vocab, task)
                assert g.accepts(sample.ids)
                _, actions = decode_actions(vocab, sample.ids)
                validate(actions, task)
                assert len(actions) - 1 <= net.config.max_steps
                assert len(sample.logprobs) == len(sample.ids) - 1

    def test_greedy_is_deterministic_and_seeded_sampling_repeats(self, vocab):
        net = _net(vocab, seed=2)
        x = _input("ivif")
        assert generate(net, [x], greedy=True)[0].ids == generate(net, [x], greedy=True)[0].ids
        a = generate(net, [x] * 3, generator=torch.Generator().manual_seed(5))
        b = generate(net, [x] * 3, generator=torch.Generator().manual_seed(5))
        assert [s.ids for s in a] == [s.ids for s in b]

    def test_sample_logprobs_match_teacher_forced_ones(self, vocab):
        net = _net(vocab, seed=3)
        x = _input("mff")
        sample = generate(net, [x], generator=torch.Generator().manual_seed(1))[0]
        ids, _ = pad_sequences([sample.ids])
        masks = grammar_masks([Grammar(vocab, "mff")], [sample.ids], ids.shape[1])
        with torch.no_grad():
            logp = sequence_logprobs(net, net.context(*collate_inputs([x])), ids, masks)[0]
        assert np.allclose(logp.numpy(), sample.logprobs, atol=1e-5)


class TestSaveLoad:
    def test_round_trip_gives_the_same_plans(self, vocab, tmp_path):
        net = _net(vocab, seed=4)
        path = save_policy(tmp_path / "p.pt", net, {"stage": "test", "value": np.float32(0.5)})
        loaded, meta = load_policy(path)
        assert meta == {"stage": "test", "value": 0.5}
        assert loaded.config == net.config and loaded.vocab == net.vocab
        for key, tensor in net.state_dict().items():
            assert torch.equal(tensor, loaded.state_dict()[key])
        inputs = [_input(t, seed=i) for i, t in enumerate(["ivif", "mef", "mff"])]
        original = [s.ids for s in generate(net, inputs, greedy=True)]
        assert [s.ids for s in generate(loaded, inputs, greedy=True)] == original

    def test_missing_and_foreign_files(self, tmp_path):
        with pytest.raises(InputError, match="not found"):
            load_policy(tmp_path / "none.pt")
        torch.save({"format": "other"}, tmp_path / "x.pt")
        with pytest.raises(InputError, match="not a policy file"):
            load_policy(tmp_path / "x.pt")
        (tmp_path / "junk.pt").write_bytes(b"not a torch file")
        with pytest.raises(InputError, match="not a readable policy"):
            load_policy(tmp_path / "junk.pt")
