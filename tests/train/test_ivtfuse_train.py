"""IVTFuse training: settings, loss, batches, a tiny end-to-end run with resume, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fuseagent.cli import main  # noqa: E402
from fuseagent.errors import InputError  # noqa: E402
from fuseagent.io import write_image  # noqa: E402
from fuseagent.models.ivtfuse import load_weights  # noqa: E402
from fuseagent.train.ivtfuse import (  # noqa: E402
    Batcher,
    PairData,
    TrainSettings,
    fusion_loss,
    knockout_variant,
    learning_rate,
    load_pairs,
    cached_embeddings,
    load_settings,
    resolve_device,
    sobel_magnitude,
    train,
)

TINY_MODEL = {"channels": 8, "text_dim": 16, "text_hidden": 16, "heads": 2, "blocks": 1, "decoder_blocks": 1,
              "token_patch": 2}
CONFIG = Path(__file__).resolve().parents[2] / "configs" / "ivtfuse.json"


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    """Three synthetic pairs in ``root/ivif/toy/{ir,vis}`` (one smaller than the crop)."""
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(40, 50), (36, 44), (20, 26)]):
        folder = tmp_path / "ivif" / "toy"
        write_image(folder / "ir" / f"p{i}.png", rng.random((h, w)).astype(np.float32))
        write_image(folder / "vis" / f"p{i}.png", rng.random((h, w, 3)).astype(np.float32))
    return tmp_path


def tiny_settings(root: Path, **changes) -> TrainSettings:
    values = {"variant": "notext", "model": TINY_MODEL, "data_root": str(root), "datasets": ["ivif/toy"],
              "crop": 24, "batch": 2, "steps": 4, "warmup": 1, "threads": 1, "device": "cpu", "log_every": 2,
              "checkpoint_every": 2, "perception_captions": False, "run_dir": str(root / "run"),
              "out": str(root / "w.pt")}
    values.update(changes)
    return TrainSettings.from_dict(values)


class TestSettings:
    def test_shipped_config_loads(self):
        settings = load_settings(CONFIG)
        assert settings.variant == "full" and settings.seed == 1 and settings.crop == 128
        assert set(settings.datasets) == {"ivif/roadscene", "ivif/tno"}

    def test_overrides_and_yaml(self, tmp_path):
        pytest.importorskip("yaml")
        path = tmp_path / "c.yaml"
        path.write_text("crop: 32\nbatch: 2\n")
        settings = load_settings(path, steps=7, device=None)
        assert (settings.crop, settings.batch, settings.steps, settings.device) == (32, 2, 7, "auto")

    def test_rejections(self, tmp_path):
        with pytest.raises(InputError, match="test set"):
            TrainSettings.from_dict({"datasets": ["ivif/vifb"]})
        with pytest.raises(InputError, match="unknown training setting"):
            TrainSettings.from_dict({"epochs": 3})
        with pytest.raises(InputError):
            TrainSettings.from_dict({"variant": "nothing"})
        with pytest.raises(InputError):
            load_settings(tmp_path / "missing.json")
        (tmp_path / "bad.json").write_text("{not json")
        with pytest.raises(InputError):
            load_settings(tmp_path / "bad.json")

    def test_device(self):
        assert resolve_device("cpu") == "cpu"
        assert resolve_device("auto") in ("cpu", "cuda")
        with pytest.raises(InputError):
            resolve_device("tpu")


class TestLoss:
    def test_sobel_of_a_ramp_and_an_edge(self):
        ramp = torch.arange(6.0).repeat(6, 1)[None, None]
        assert torch.allclose(sobel_magnitude(ramp)[0, 0, 1:-1, 1:-1], torch.full((4, 4), 8.0))
        flat = torch.full((1, 1, 5, 5), 0.4)
        assert float(sobel_magnitude(flat).abs().max()) < 1e-6

    def test_terms(self):
        ir = torch.zeros(1, 1, 6, 6)
        vis = torch.zeros(1, 1, 6, 6)
        vis[..., 3:] = 1.0                                   # a vertical edge
        total, intensity, gradient = fusion_loss(vis, ir, vis, 10.0)
        assert float(total) == pytest.approx(0.0)
        total, intensity, gradient = fusion_loss(torch.full_like(vis, 0.5), ir, vis, 2.0)
        assert float(intensity) == pytest.approx(0.5)
        assert float(gradient) > 0 and float(total) == pytest.approx(0.5 + 2.0 * float(gradient))


class TestBatcher:
    def test_shapes_padding_and_seed(self):
        rng = np.random.default_rng(1)
        data = PairData(["a", "b"], [rng.random((30, 40), np.float32), rng.random((10, 12), np.float32)],
                        [rng.random((30, 40), np.float32), rng.random((10, 12), np.float32)], [["x"], ["y", "z"]])
        emb = {"x": np.ones((3, 384), np.float32), "y": np.ones((5, 384), np.float32), "z": np.ones((2, 384), np.float32)}
        first = Batcher(data, emb, 16, 4, seed=3).next()
        again = Batcher(data, emb, 16, 4, seed=3).next()
        ir, vis, text, valid = first
        assert ir.shape == vis.shape == (4, 1, 16, 16) and text.shape[0] == 4 and text.shape[2] == 384
        assert all(np.array_equal(a, b) for a, b in zip(first, again))
        assert valid.sum(1).tolist() == [int(np.abs(t).sum(1).astype(bool).sum()) for t in text]


class TestTrainRun:
    def test_pairs_and_captions(self, tiny_data):
        data = load_pairs(tiny_data, ["ivif/toy"], perception_captions=False)
        assert data.names == ["toy/p0", "toy/p1", "toy/p2"] and all(len(c) == 1 for c in data.captions)
        assert data.ir[0].ndim == 2 and data.vis[0].shape == (40, 50)

    def test_train_resume_and_export(self, tiny_data):
        lines: list[str] = []
        record = train(tiny_settings(tiny_data, steps=2), log=lines.append)
        assert record["steps"] == 2 and len(record["curve"]) == 1
        resumed = train(tiny_settings(tiny_data, steps=4), log=lines.append)
        assert any("resumed" in line for line in lines)
        assert resumed["steps"] == 4 and [c["step"] for c in resumed["curve"]] == [2, 4]
        model, payload = load_weights(tiny_data / "w.pt")
        assert not model.cfg.use_text and payload["training"]["steps"] == 4
        assert np.isfinite([c["loss"] for c in resumed["curve"]]).all()

    def test_same_seed_same_weights(self, tiny_data):
        a = train(tiny_settings(tiny_data, steps=2, out=str(tiny_data / "a.pt"), run_dir=str(tiny_data / "ra")),
                  log=lambda _: None)
        b = train(tiny_settings(tiny_data, steps=2, out=str(tiny_data / "b.pt"), run_dir=str(tiny_data / "rb")),
                  log=lambda _: None)
        assert a["curve"][0]["loss"] == b["curve"][0]["loss"]
        wa, wb = load_weights(tiny_data / "a.pt")[0], load_weights(tiny_data / "b.pt")[0]
        assert all(torch.equal(x, y) for x, y in zip(wa.state_dict().values(), wb.state_dict().values()))

    def test_missing_data(self, tmp_path):
        with pytest.raises(InputError):
            train(tiny_settings(tmp_path), log=lambda _: None)


class TestCachedEmbeddings:
    def test_cache_answers_without_the_encoder(self, tmp_path, monkeypatch):
        import fuseagent.models.text as text

        calls: list[list[str]] = []

        def fake_embed(captions):
            calls.append(list(captions))
            return {c: np.full((len(c.split()), 384), len(c), np.float32) for c in captions}

        monkeypatch.setattr(text, "embed_captions", fake_embed)
        cache = tmp_path / "embeddings.npz"
        first = cached_embeddings(["A night  road.", "Fog."], cache)
        assert calls == [["A night road.", "Fog."]] and set(first) == {"A night road.", "Fog."}
        again = cached_embeddings(["Fog.", "A night road."], cache)
        assert len(calls) == 1                                    # both read back from the file
        assert np.array_equal(again["A night road."], first["A night road."]) and again["Fog."].shape == (1, 384)
        cached_embeddings(["Fog.", "Snow falls."], cache)
        assert calls[-1] == ["Snow falls."]                      # only the new caption is embedded
        with np.load(cache) as archive:
            assert sorted(str(c) for c in archive["captions"]) == ["A night road.", "Fog.", "Snow falls."]


class TestKnockout:
    def test_derived_variants_keep_trained_values(self, tiny_data):
        train(tiny_settings(tiny_data, variant="full", steps=1), log=lambda _: None)
        full, _ = load_weights(tiny_data / "w.pt")
        for variant in ("nofsa", "nohpa"):
            derived, payload = load_weights(knockout_variant(tiny_data / "w.pt", variant, tiny_data / f"{variant}.pt"))
            assert payload["training"]["derived"]["method"].startswith("knock-out")
            shared = set(derived.state_dict()) & set(full.state_dict())
            assert len(shared) == len(derived.state_dict())
            assert all(torch.equal(derived.state_dict()[k], full.state_dict()[k]) for k in shared)
        with pytest.raises(InputError):
            knockout_variant(tiny_data / "w.pt", "full", tiny_data / "x.pt")

    def test_schedule_follows_time_budget(self):
        s = TrainSettings(lr=1e-3, min_lr=0.0, warmup=2, steps=10, time_budget_s=10.0)
        assert learning_rate(0, s) == pytest.approx(5e-4)            # warm-up
        assert learning_rate(2, s, elapsed=10.0) == pytest.approx(0.0)   # budget spent: annealed


class TestCli:
    def test_list(self, capsys):
        assert main(["train", "list"]) == 0
        assert "ivtfuse" in capsys.readouterr().out

    def test_train_ivtfuse(self, tiny_data, capsys):
        config = tiny_data / "c.json"
        config.write_text(json.dumps({k: v for k, v in vars(tiny_settings(tiny_data)).items()
                                      if k not in ("datasets", "snapshot_steps")} | {"datasets": ["ivif/toy"]}))
        assert main(["train", "ivtfuse", "--config", str(config), "--steps", "2", "--no-resume"]) == 0
        assert "trained notext: 2 steps" in capsys.readouterr().out
        assert main(["train", "ivtfuse", "--config", str(config), "--steps", "1", "--no-resume", "--crop", "16",
                     "--batch", "1", "--warmup", "3", "--json"]) == 0
        settings = json.loads(capsys.readouterr().out)["settings"]
        assert (settings["crop"], settings["batch"], settings["warmup"]) == (16, 1, 3)
        assert main(["train", "ivtfuse", "--config", str(tiny_data / "none.json")]) == 2
