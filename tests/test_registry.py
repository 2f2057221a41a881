"""The generic registry: factories, cards, patterns, suggestions, plugins."""

from __future__ import annotations

import pytest

from fuseagent.errors import FuseAgentError, UnknownNameError, suggest
from fuseagent.registry import Registry


class TestRegistry:
    def test_register_create_list(self):
        reg = Registry("thing")
        reg.register("a.one", card="card1", factory=lambda x=1: ("one", x))
        reg.register("b.two", card="card2", factory=lambda: "two")
        assert reg.create("a.one", x=5) == ("one", 5)
        assert reg.names() == ["a.one", "b.two"] and reg.names("b*") == ["b.two"]
        assert reg.card("b.two") == "card2" and len(reg) == 2 and "a.one" in reg

    def test_duplicate_rejected(self):
        reg = Registry("thing")
        reg.register("x", factory=lambda: 1)
        with pytest.raises(FuseAgentError, match="already registered"):
            reg.register("x", factory=lambda: 2)

    def test_unknown_suggests(self):
        reg = Registry("tool")
        reg.register("denoise.nlm", factory=lambda: 1)
        with pytest.raises(UnknownNameError, match="did you mean denoise.nlm") as err:
            reg.create("denoise.nml")
        assert err.value.suggestions == ["denoise.nlm"]

    def test_suggest_by_model_name(self):
        assert suggest("nlm", ["denoise.nlm", "dehaze.dcp"]) == ["denoise.nlm"]

    def test_broken_plugin_is_reported_not_raised(self, monkeypatch):
        import importlib.metadata as md

        class FakeEP:
            name = "broken"

            def load(self):
                raise ImportError("boom")

        monkeypatch.setattr(md, "entry_points", lambda group: [FakeEP()])
        reg = Registry("tool", entry_point_group="fuseagent.test")
        assert reg.names() == []
        assert reg.plugin_errors == {"broken": "ImportError: boom"}

    def test_plugin_callable_registers(self, monkeypatch):
        import importlib.metadata as md

        class FakeEP:
            name = "good"

            def load(self):
                return lambda registry: registry.register("plug.in", factory=lambda: "plugged")

        monkeypatch.setattr(md, "entry_points", lambda group: [FakeEP()])
        reg = Registry("tool", entry_point_group="fuseagent.test")
        assert reg.create("plug.in") == "plugged"
