"""The decision benchmark: which planner makes the best decisions on a suite (the seed paper's Table 1).

For every sample of each suite and every planner, the agent runs (in a fresh environment, so tool
calls and seconds are honest) and its fused image is scored by:

* fidelity to the clean sources: MS-SSIM (IVIF: mean over the clean sources; MFF: against the
  all-in-focus reference when the suite has one) or MEF-SSIMd (MEF);
* BRISQUE, NIQE, PIQE (lower is better) and HQA (higher is better:
  :func:`fuseagent.agent.trajectory_hqa`, the quantity the oracle maximises);
* tool calls (executed tool runs, rolled-back attempts and the oracle's search included) and seconds.

Perception runs once per sample and its time is added to every planner that uses it (or the suite's
ground-truth labels stand in for it with ``ground_truth=True``). The reflection ablation repeats the
chosen planners with reflection and rollback turned off.
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..agent import Agent
from ..errors import FuseAgentError, InputError
from ..execute import Environment
from ..io import atomic_write
from ..plan.base import create_planner, planner_card
from .suite import SuiteSample, open_suite

__all__ = ["DecisionRow", "fidelity", "run_decision", "summarise", "to_markdown", "to_csv", "write_outputs",
           "METRIC_COLUMNS"]

#: summary columns: (key, header, higher is better)
METRIC_COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("fidelity", "MS-SSIM", True), ("brisque", "BRISQUE", False), ("niqe", "NIQE", False), ("piqe", "PIQE", False),
    ("hqa", "HQA", True), ("tool_calls", "tool calls", False), ("seconds", "seconds", False),
)


@dataclass
class DecisionRow:
    """One (sample, planner) result."""

    suite: str
    task: str
    sample: str
    planner: str
    reflect: bool
    trajectory: str = ""
    fidelity: float | None = None
    brisque: float | None = None
    niqe: float | None = None
    piqe: float | None = None
    hqa: float | None = None
    tool_calls: int = 0
    seconds: float = 0.0
    overhead_seconds: float = 0.0
    rolled_back: int = 0
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.planner if self.reflect else f"{self.planner} (no reflection)"


def _safe(fn: Callable[[], float]) -> float | None:
    try:
        value = float(fn())
    except (FuseAgentError, ValueError, ArithmeticError):
        return None
    return value if math.isfinite(value) else None


def fidelity(task: str, sample: SuiteSample, fused: np.ndarray) -> float | None:
    """MS-SSIM (IVIF, MFF) or MEF-SSIMd (MEF) of ``fused`` against the sample's clean data."""
    from ..io import resize_to
    from ..metrics.mefssim import mef_ssimd, ms_ssim, ms_ssim_fusion

    clean = [resize_to(c, fused.shape[:2]) if c.shape[:2] != fused.shape[:2] else c for c in sample.clean.values()]
    if task == "mef":
        return _safe(lambda: mef_ssimd(clean, fused))
    reference = sample.reference
    if task == "mff" and reference is not None:
        ref = resize_to(reference, fused.shape[:2]) if reference.shape[:2] != fused.shape[:2] else reference
        return _safe(lambda: ms_ssim(ref, fused))
    return _safe(lambda: ms_ssim_fusion(clean, fused))


def _quality(execution: Any, task: str) -> dict[str, float | None]:
    from .. import agent
    from ..metrics.nr import brisque, niqe, piqe

    fused = execution.fused
    return {"brisque": _safe(lambda: brisque(fused)), "niqe": _safe(lambda: niqe(fused)),
            "piqe": _safe(lambda: piqe(fused)),
            "hqa": _safe(lambda: agent.trajectory_hqa(execution.states, execution.actions, execution.steps, task))}


def _perceive(sample: SuiteSample) -> tuple[dict[str, Any], float]:
    from ..agent import perception_report

    t0 = time.perf_counter()
    report = perception_report([sample.images[r] for r in sample.roles], sample.task)
    return report, time.perf_counter() - t0


def run_sample(sample: SuiteSample, suite: str, planner: str, reflect: bool, *, findings: Any = None,
               report: Mapping[str, Any] | None = None, perception_seconds: float = 0.0,
               planner_options: Mapping[str, Any] | None = None, experience: Any = None,
               agent_options: Mapping[str, Any] | None = None) -> DecisionRow:
    """Run one planner on one sample and score the result."""
    row = DecisionRow(suite, sample.task, sample.id, planner, reflect)
    env = Environment()
    try:
        agent = Agent(planner=create_planner(planner, **dict(planner_options or {})), reflect=reflect,
                      environment=env, experience=experience, seed=int(sample.record.get("index", 0)),
                      **dict(agent_options or {}))
        uses = planner_card(planner).uses_perception
        result = agent.run([sample.images[r] for r in sample.roles], task=sample.task,
                           findings=findings if report is None else None, perception=report)
    except Exception as exc:  # one failing run must not end a long benchmark; the row records why
        row.error = f"{type(exc).__name__}: {exc}"
        return row
    row.trajectory = result.trajectory
    # the run's decisions, as executed serially: a step the agent ran ahead and then discarded is not one
    row.tool_calls = result.tool_calls + result.planning_tool_calls
    row.seconds = result.seconds + (perception_seconds if uses else 0.0)
    row.overhead_seconds = result.overhead_seconds + (perception_seconds if uses else 0.0)
    row.rolled_back = sum(1 for s in result.steps if s.status == "rolled_back")
    row.fidelity = fidelity(sample.task, sample, result.fused)
    row.__dict__.update(_quality(result.execution, sample.task))
    return row


def run_decision(suites: Sequence[str | os.PathLike], planners: Sequence[str], *,
                 ablation: Sequence[str] = ("expert",), ground_truth: bool = False, limit: int | None = None,
                 planner_options: Mapping[str, Mapping[str, Any]] | None = None, experience: Any = None,
                 progress: bool = True, on_row: Callable[[DecisionRow], None] | None = None) -> list[DecisionRow]:
    """Run every planner (and the no-reflection ablation of ``ablation``) on every sample of ``suites``."""
    from tqdm import tqdm

    known = set(_known_planners())
    for name in list(planners) + list(ablation):
        if name not in known:
            create_planner(name)  # raises UnknownNameError with suggestions
    opened = [(Path(s).name, *open_suite(s, limit)) for s in suites]
    runs = [(p, True) for p in planners] + [(p, False) for p in ablation if p in planners]
    total = sum(len(samples) for _, _, samples in opened) * len(runs)
    rows: list[DecisionRow] = []
    bar = tqdm(total=total, desc="decision", unit="run", disable=not progress)
    try:
        for suite_name, _settings, samples in opened:
            for sample in samples:
                report, seconds = (None, 0.0)
                findings = sample.findings if ground_truth else None
                if not ground_truth and any(planner_card(p).uses_perception for p, _ in runs):
                    report, seconds = _perceive(sample)
                for planner, reflect in runs:
                    bar.set_postfix_str(f"{suite_name} {sample.id} {planner}{'' if reflect else ' -R'}")
                    row = run_sample(sample, suite_name, planner, reflect, findings=findings, report=report,
                                     perception_seconds=seconds, experience=experience,
                                     planner_options=(planner_options or {}).get(planner))
                    rows.append(row)
                    if on_row:
                        on_row(row)
                    bar.update(1)
                sample._cache.clear()
    finally:
        bar.close()
    return rows


def _known_planners() -> list[str]:
    from ..plan.base import list_planners

    return list_planners()


def summarise(rows: Sequence[DecisionRow]) -> dict[str, dict[str, dict[str, Any]]]:
    """Means per task and planner label: ``{task: {label: {metric: mean, "n": …, "failed": …}}}``."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(row.task, {}).setdefault(row.label, {"_rows": []})["_rows"].append(row)
    for task, labels in out.items():
        for label, entry in labels.items():
            group = entry.pop("_rows")
            ok = [r for r in group if r.error is None]
            entry["n"] = len(group)
            entry["failed"] = len(group) - len(ok)
            for key, _, _ in METRIC_COLUMNS + (("overhead_seconds", "", False), ("rolled_back", "", False)):
                values = [getattr(r, key) for r in ok if getattr(r, key) is not None]
                entry[key] = float(np.mean(values)) if values else None
    return out


def _fmt(value: Any, key: str) -> str:
    if value is None:
        return "—"
    if key == "tool_calls":
        return f"{value:.1f}"
    if key == "seconds":
        return f"{value:.2f}"
    return f"{value:.4f}" if key in ("fidelity", "hqa") else f"{value:.2f}"


def to_markdown(summary: Mapping[str, Mapping[str, Mapping[str, Any]]], title_prefix: str = "") -> str:
    """One table per task, best value of each quality column in bold."""
    parts = []
    for task in sorted(summary):
        labels = summary[task]
        fid = "MEF-SSIMd" if task == "mef" else "MS-SSIM"
        header = ["planner"] + [fid if k == "fidelity" else h for k, h, _ in METRIC_COLUMNS] + ["n"]
        lines = [f"{title_prefix}{task.upper()}", "", "| " + " | ".join(header) + " |",
                 "|---|" + "---:|" * (len(header) - 1)]
        best: dict[str, Any] = {}
        for key, _, higher in METRIC_COLUMNS[:5]:
            values = [e[key] for e in labels.values() if e.get(key) is not None]
            if values:
                best[key] = max(values) if higher else min(values)
        for label, entry in labels.items():
            cells = []
            for key, _, _ in METRIC_COLUMNS:
                text = _fmt(entry.get(key), key)
                if key in best and entry.get(key) is not None and entry[key] == best[key]:
                    text = f"**{text}**"
                cells.append(text)
            n = f"{entry['n']}" + (f" ({entry['failed']} failed)" if entry["failed"] else "")
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {n} |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def to_csv(rows: Sequence[DecisionRow]) -> str:
    """Per-run rows as CSV."""
    buffer = io.StringIO()
    keys = [k for k in DecisionRow.__dataclass_fields__ if k != "extra"]
    writer = csv.DictWriter(buffer, fieldnames=keys + ["label"])
    writer.writeheader()
    for row in rows:
        data = {k: v for k, v in asdict(row).items() if k != "extra"}
        data["label"] = row.label
        writer.writerow(data)
    return buffer.getvalue()


def summary_csv(summary: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    """Per task × planner means as CSV."""
    buffer = io.StringIO()
    keys = [k for k, _, _ in METRIC_COLUMNS] + ["overhead_seconds", "rolled_back", "n", "failed"]
    writer = csv.writer(buffer)
    writer.writerow(["task", "planner"] + keys)
    for task in sorted(summary):
        for label, entry in summary[task].items():
            writer.writerow([task, label] + ["" if entry.get(k) is None else entry[k] for k in keys])
    return buffer.getvalue()


def write_outputs(out: str | os.PathLike, rows: Sequence[DecisionRow]) -> dict[str, Path]:
    """Write ``decision.md``, ``decision.csv`` (means) and ``runs.csv`` (every run) into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(rows)
    texts = {"decision.md": to_markdown(summary, "### "), "decision.csv": summary_csv(summary), "runs.csv": to_csv(rows)}
    paths = {}
    for name, text in texts.items():
        paths[name] = atomic_write(out / name, lambda tmp, text=text: Path(tmp).write_text(text))
    return paths


def check_planners(planners: Sequence[str]) -> list[str]:
    """Validate a comma-separated planner list's names (raises for unknown ones)."""
    names = [p.strip() for p in planners if p.strip()]
    if not names:
        raise InputError("no planner given")
    for name in names:
        create_planner(name)
    return names
