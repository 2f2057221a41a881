"""Experience: what self-exploration on a training suite learned, for the ``expert`` and ``vlm`` planners.

As AgenticIR (Zhu et al., 2024) explores before it plans, :func:`explore` runs, on every sample of a
training suite, the fusion operators alone, each restoration task with each of its models, and
every pair of the sample's tasks in both orders, and scores each trajectory as the oracle does (HQA
with the steps' reflection rewards, :func:`fuseagent.agent.trajectory_hqa`).
A trial *fails* when it does not beat fusing the degraded inputs directly. The counts become an
:class:`Experience`: fail rates per tool, per order of a pair of tasks, and win rates of the fusion
operators, per fusion task. It is saved as ``experience.json`` plus a readable ``EXPERIENCE.md``;
planners consult it through :meth:`Experience.rank_models`, :meth:`Experience.task_order` and
:meth:`Experience.prompt_notes`.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import FuseAgentError, InputError
from ..execute import Environment
from ..io import atomic_write
from ..protocol import Action
from .findings import Findings
from .library import applicable_actions, models_for

__all__ = ["Experience", "ExploreSample", "explore", "FORMAT"]

FORMAT = "fuseagent.experience/1"
FusedScorer = Callable[[np.ndarray, Sequence[np.ndarray], str, Sequence[float]], float]


def _rate(failed: float, tried: float) -> float:
    """Fail rate with a Laplace prior (an untried option counts as 50 %)."""
    return (failed + 1.0) / (tried + 2.0)


@dataclass
class Experience:
    """Counts from exploration, per fusion task.

    ``data[fusion_task]`` holds ``tools`` (``"task.model" -> {tried, failed, gain}``), ``orders``
    (``"first>second" -> {tried, failed, wins, gain}``) and ``fusion`` (``model -> {tried, wins, score}``);
    ``gain`` and ``score`` are sums (divide by ``tried`` for means).

    Example:
        >>> e = Experience()
        >>> e.add_tool("ivif", "denoise", "tv", failed=False, gain=0.1)
        >>> e.add_tool("ivif", "denoise", "nlm", failed=True, gain=-0.1)
        >>> e.rank_models("denoise", "ivif", ["nlm", "tv", "wavelet"])
        ['tv', 'wavelet', 'nlm']
    """

    data: dict[str, dict[str, dict[str, dict[str, float]]]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def _section(self, fusion_task: str, kind: str) -> dict[str, dict[str, float]]:
        return self.data.setdefault(fusion_task, {}).setdefault(kind, {})

    # -- recording ---------------------------------------------------------------------------
    def add_tool(self, fusion_task: str, task: str, model: str, *, failed: bool, gain: float) -> None:
        entry = self._section(fusion_task, "tools").setdefault(f"{task}.{model}", {"tried": 0, "failed": 0, "gain": 0.0})
        entry["tried"] += 1
        entry["failed"] += int(failed)
        entry["gain"] += float(gain)

    def add_order(self, fusion_task: str, first: str, second: str, *, failed: bool, won: bool, gain: float) -> None:
        entry = self._section(fusion_task, "orders").setdefault(
            f"{first}>{second}", {"tried": 0, "failed": 0, "wins": 0, "gain": 0.0})
        entry["tried"] += 1
        entry["failed"] += int(failed)
        entry["wins"] += int(won)
        entry["gain"] += float(gain)

    def add_fusion(self, fusion_task: str, model: str, *, won: bool, score: float) -> None:
        entry = self._section(fusion_task, "fusion").setdefault(model, {"tried": 0, "wins": 0, "score": 0.0})
        entry["tried"] += 1
        entry["wins"] += int(won)
        entry["score"] += float(score)

    def merge(self, other: Experience) -> Experience:
        """Add another experience's counts to this one (returns self)."""
        for ft, kinds in other.data.items():
            for kind, entries in kinds.items():
                section = self._section(ft, kind)
                for name, counts in entries.items():
                    mine = section.setdefault(name, {k: 0 for k in counts})
                    for k, v in counts.items():
                        mine[k] = mine.get(k, 0) + v
        return self

    # -- consulting --------------------------------------------------------------------------
    def rank_models(self, task: str, fusion_task: str, models: Sequence[str]) -> list[str]:
        """``models`` sorted by experience: lowest fail rate (fusion: highest win rate) first.

        Models never tried keep their relative order, ranked as a 50 % fail rate.
        """
        if task == "fusion":
            fusion = self.data.get(fusion_task, {}).get("fusion", {})

            def fusion_key(m: str) -> float:
                e = fusion.get(m)
                return _rate(e["tried"] - e["wins"], e["tried"]) if e else 0.5

            return sorted(models, key=fusion_key)
        tools = self.data.get(fusion_task, {}).get("tools", {})

        def key(m: str) -> tuple[float, float]:
            e = tools.get(f"{task}.{m}")
            if not e:
                return 0.5, 0.0
            return _rate(e["failed"], e["tried"]), -e["gain"] / max(1, e["tried"])

        return sorted(models, key=key)

    def prefers(self, first: str, second: str, fusion_task: str) -> int:
        """-1 when experience puts ``first`` before ``second``, 1 for the reverse, 0 when it has no opinion."""
        orders = self.data.get(fusion_task, {}).get("orders", {})
        ab, ba = orders.get(f"{first}>{second}"), orders.get(f"{second}>{first}")
        if not ab or not ba:
            return 0
        score_ab = (_rate(ab["failed"], ab["tried"]), -ab["wins"] / ab["tried"])
        score_ba = (_rate(ba["failed"], ba["tried"]), -ba["wins"] / ba["tried"])
        if score_ab == score_ba:
            return 0
        return -1 if score_ab < score_ba else 1

    def task_order(self, tasks: Sequence[str], fusion_task: str, default: Sequence[str]) -> tuple[str, ...]:
        """An order of ``tasks`` (and the rest of ``default``): learned pairwise preferences, else ``default``.

        Example:
            >>> e = Experience()
            >>> for _ in range(3):
            ...     e.add_order("ivif", "dehaze", "denoise", failed=False, won=True, gain=0.1)
            ...     e.add_order("ivif", "denoise", "dehaze", failed=True, won=False, gain=-0.1)
            >>> e.task_order(["denoise", "dehaze"], "ivif", ("denoise", "dehaze", "registration"))
            ('dehaze', 'denoise', 'registration')
        """
        rank = {t: i for i, t in enumerate(default)}

        def compare(a: str, b: str) -> int:
            learned = self.prefers(a, b, fusion_task)
            if learned:
                return learned
            return (rank.get(a, len(rank)) > rank.get(b, len(rank))) - (rank.get(a, len(rank)) < rank.get(b, len(rank)))

        ordered = sorted(dict.fromkeys(tasks), key=functools.cmp_to_key(compare))
        return tuple(ordered) + tuple(t for t in default if t not in ordered)

    # -- summaries ---------------------------------------------------------------------------
    def prompt_notes(self, fusion_task: str, max_lines: int = 12) -> str:
        """A few lines for a planner prompt: reliable and unreliable tools, better orders, best fusion."""
        section = self.data.get(fusion_task, {})
        lines = []
        fusion = section.get("fusion", {})
        if fusion:
            best = max(fusion, key=lambda m: (fusion[m]["wins"] / max(1, fusion[m]["tried"]), fusion[m]["score"]))
            lines.append(f"- fusion model '{best}' gave the best result in {fusion[best]['wins']}/{fusion[best]['tried']} "
                         "explored cases")
        pairs = sorted({tuple(sorted(k.split(">"))) for k in section.get("orders", {})})
        for a, b in pairs:
            pref = self.prefers(a, b, fusion_task)
            if pref:
                first, second = (a, b) if pref < 0 else (b, a)
                lines.append(f"- when both {first} and {second} are needed, do {first} first")
        for name, e in sorted(section.get("tools", {}).items(), key=lambda kv: _rate(kv[1]["failed"], kv[1]["tried"])):
            rate = e["failed"] / max(1, e["tried"])
            lines.append(f"- [task:{name.split('.')[0]}][model:{name.split('.')[1]}] failed in {rate:.0%} of {e['tried']} trials")
        return "\n".join(lines[:max_lines])

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "meta": self.meta, "tasks": self.data}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Experience:
        if data.get("format") != FORMAT:
            raise InputError(f"not a fuseagent experience file ({FORMAT} expected)")
        return cls({ft: {k: {n: dict(c) for n, c in v.items()} for k, v in kinds.items()}
                    for ft, kinds in data.get("tasks", {}).items()}, dict(data.get("meta", {})))

    def to_markdown(self) -> str:
        """The readable experience document."""
        meta = self.meta
        out = ["# Experience", "",
               f"Learned by `fuseagent explore` on {meta.get('samples', '?')} training samples "
               f"({', '.join(meta.get('suites', [])) or 'unknown suites'}), scored by {meta.get('scorer', 'HQA')}. "
               "A trial fails when its fused result does not beat fusing the degraded inputs directly.", ""]
        for ft in sorted(self.data):
            section = self.data[ft]
            out += [f"## {ft.upper()}", ""]
            notes = self.prompt_notes(ft, max_lines=6)
            if notes:
                out += ["Advice:", "", notes, ""]
            if section.get("fusion"):
                out += ["| fusion model | trials | best in | mean score |", "|---|---:|---:|---:|"]
                for m, e in sorted(section["fusion"].items(), key=lambda kv: -kv[1]["wins"]):
                    out.append(f"| `{m}` | {e['tried']} | {e['wins']} | {e['score'] / max(1, e['tried']):.4f} |")
                out.append("")
            if section.get("tools"):
                out += ["| tool | trials | failed | fail rate | mean gain |", "|---|---:|---:|---:|---:|"]
                for n, e in sorted(section["tools"].items()):
                    out.append(f"| `{n}` | {e['tried']} | {e['failed']} | {e['failed'] / max(1, e['tried']):.0%} | "
                               f"{e['gain'] / max(1, e['tried']):+.4f} |")
                out.append("")
            if section.get("orders"):
                out += ["| order | trials | failed | better order | mean gain |", "|---|---:|---:|---:|---:|"]
                for n, e in sorted(section["orders"].items()):
                    out.append(f"| {n.replace('>', ' → ')} | {e['tried']} | {e['failed']} | {e['wins']} | "
                               f"{e['gain'] / max(1, e['tried']):+.4f} |")
                out.append("")
        return "\n".join(out).rstrip() + "\n"

    def save(self, folder: str | os.PathLike) -> tuple[Path, Path]:
        """Write ``experience.json`` and ``EXPERIENCE.md`` into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_dict(), indent=1)
        js = atomic_write(folder / "experience.json", lambda tmp: Path(tmp).write_text(text + "\n"))
        md_text = self.to_markdown()
        md = atomic_write(folder / "EXPERIENCE.md", lambda tmp: Path(tmp).write_text(md_text))
        return js, md

    @classmethod
    def load(cls, path: str | os.PathLike) -> Experience:
        """Read ``experience.json`` (or the folder holding it)."""
        path = Path(path)
        if path.is_dir():
            path = path / "experience.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read experience '{path}': {exc}") from None
        if not isinstance(data, dict):
            raise InputError(f"'{path}' is not a fuseagent experience file")
        return cls.from_dict(data)


@dataclass
class ExploreSample:
    """One training sample: images by role, its fusion task, and what is wrong with it."""

    name: str
    task: str
    images: dict[str, np.ndarray]
    findings: Findings


def explore_sample(sample: ExploreSample, experience: Experience, *, environment: Environment | None = None,
                   scorer: FusedScorer | None = None, models_per_task: int = 3, margin: float = 0.0) -> int:
    """Explore one sample into ``experience``; returns the number of trajectories scored.

    Each trajectory is scored like the oracle scores it: ``scorer(fused, fusion_inputs, task,
    step_rewards)``, HQA by default.
    """
    from ..agent import Reflector, step_reward
    from .oracle import hqa_score

    env = environment or Environment()
    scorer = scorer or hqa_score
    reflector = Reflector()
    task = sample.task
    state0, _ = env.initial_state(sample.images, task)
    fusions = models_for("fusion", task)
    scored = 0

    def score(actions: Sequence[Action]) -> float | None:
        nonlocal scored
        state, rewards = state0, []
        try:
            for action in actions[:-1]:
                new, record, _ = env.step(state, action, task)
                rewards.append(step_reward(reflector, state, new, action, record, task))
                state = new
            fused, _, _ = env.step(state, actions[-1], task)
            value = float(scorer(fused.images["fused"], list(state.images.values()), task, rewards))
        except (FuseAgentError, ArithmeticError, ValueError, RuntimeError, cv2.error):
            return None  # a tool failing, or a result the scorer cannot rate, is a failed trial
        scored += 1
        return value if np.isfinite(value) else None

    direct = {m: score([Action("fusion", m)]) for m in fusions}
    valid = {m: s for m, s in direct.items() if s is not None}
    if not valid:
        return scored
    best_fusion = max(valid, key=valid.get)
    for m, s in valid.items():
        experience.add_fusion(task, m, won=m == best_fusion, score=s)
    fusion = Action("fusion", best_fusion)
    base = valid[best_fusion]
    slots = applicable_actions(sample.findings, task, list(state0.images))
    for slot in slots:
        for model in models_for(slot.task, task, slot.target)[:models_per_task]:
            s = score([Action(slot.task, model, slot.target), fusion])
            gain = (s - base) if s is not None else 0.0
            experience.add_tool(task, slot.task, model, failed=s is None or gain <= margin, gain=gain)
    for a, b in itertools.combinations(slots, 2):
        if a.task == b.task:
            continue
        s_ab, s_ba = score([a, b, fusion]), score([b, a, fusion])
        for (first, second), s, other in (((a, b), s_ab, s_ba), ((b, a), s_ba, s_ab)):
            gain = (s - base) if s is not None else 0.0
            won = s is not None and (other is None or s > other)
            experience.add_order(task, first.task, second.task, failed=s is None or gain <= margin, won=won, gain=gain)
    return scored


def explore(samples: Iterable[ExploreSample], *, environment: Environment | None = None,
            scorer: FusedScorer | None = None, models_per_task: int = 3, progress: bool = False,
            total: int | None = None, meta: Mapping[str, Any] | None = None) -> Experience:
    """Self-exploration over training samples → :class:`Experience`."""
    from tqdm import tqdm

    experience = Experience(meta=dict(meta or {}))
    t0 = time.perf_counter()
    n = trials = 0
    for sample in tqdm(samples, total=total, desc="explore", unit="pair", disable=not progress):
        env = environment or Environment()  # a fresh cache per sample keeps memory flat
        trials += explore_sample(sample, experience, environment=env, scorer=scorer, models_per_task=models_per_task)
        n += 1
    experience.meta.update({"samples": n, "trajectories": trials, "seconds": round(time.perf_counter() - t0, 1),
                            "models_per_task": models_per_task})
    return experience
