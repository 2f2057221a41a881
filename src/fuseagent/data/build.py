"""``fuseagent dataset build``: the training-data engine (the seed paper's Stage II).

For each degraded pair of one or more suites (``fuseagent synth``), a record holds the
perception report, the optimal trajectory found by exhaustive search (:mod:`.search`), every
candidate's HQA, the top-K candidates with their intermediate-image hashes, a first-person
rationale (:mod:`.rationale`), optional perturbed trajectories (:mod:`.perturb`), and the search's
deterministic cost figures (distinct tool executions against naive enumeration).

Layout of ``DS``::

    dataset.json        the settings (a re-run with other settings is refused)
    records/KEY.json    one record per pair, written to a temporary name then renamed
    manifest.jsonl      the keys done, one per line (appended after the record's rename)
    dataset.jsonl       every record, sorted by key (written when the build completes)
    runs.jsonl          per run: executor, workers, seconds, tool calls actually run, cache hits

A record never holds a timing or a cache figure, so the same suites and settings give the same
``dataset.jsonl`` whichever executor, worker count or interruption history produced it. A build
killed at any moment is completed by running the same command again: temporary files are
removed, the manifest is rebuilt from the records present, and only the missing pairs are built.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..io import atomic_write, read_image
from .cache import DEFAULT_DISK_BYTES, DEFAULT_MEMORY_BYTES, ToolCallCache
from .search import SearchEnvironment, SearchOptions, ToolPool, search_pair

__all__ = ["FORMAT", "BuildSettings", "truth_findings", "WorkItem", "PairBuilder", "build_dataset", "load_records", "dataset_stats",
           "suite_items", "read_settings"]

FORMAT = "fuseagent.dataset/1"


@dataclass(frozen=True)
class BuildSettings:
    """Everything a record depends on (part of the dataset's identity) plus where the cache is.

    Attributes:
        search: the per-pair search settings.
        refine_url, refine_model: OpenAI-compatible endpoint and model rewriting the rationales
            (None: template rationales only).
        findings: ``perception`` (the perception report decides the searched tasks, as at
            inference) or ``truth`` (the suite's ground-truth labels; no perception report).
        cache_dir: disk layer of the tool-call cache (None: memory only); not part of the identity.
        cache_bytes: bound of the disk layer; ``memory_bytes``: bound of each worker's memory layer.
    """

    search: SearchOptions = field(default_factory=SearchOptions)
    refine_url: str | None = None
    refine_model: str | None = None
    cache_dir: str | None = None
    cache_bytes: int = DEFAULT_DISK_BYTES
    memory_bytes: int = DEFAULT_MEMORY_BYTES
    findings: str = "perception"

    def identity(self) -> dict[str, Any]:
        identity = {"search": self.search.to_dict(), "refine_url": self.refine_url, "refine_model": self.refine_model}
        if self.findings != "perception":
            identity["findings"] = self.findings
        return identity


@dataclass(frozen=True)
class WorkItem:
    """One pair to build: its key (``suite/id``), its suite folder and its suite manifest record."""

    key: str
    suite: str
    suite_dir: str
    sample: Mapping[str, Any]


def suite_items(suites: Sequence[str | os.PathLike]) -> list[WorkItem]:
    """Work items of every sample of every suite, sorted by key.

    Raises:
        InputError: a folder is not a suite, or two suites share a name.
    """
    from ..degrade.suite import read_manifest

    items: list[WorkItem] = []
    names: set[str] = set()
    for suite in suites:
        folder = Path(suite).resolve()
        manifest = folder / "manifest.jsonl"
        if not manifest.is_file():
            raise InputError(f"'{suite}' is not a suite (no manifest.jsonl; build one with fuseagent synth)")
        if folder.name in names:
            raise InputError(f"two suites are named '{folder.name}'; give them different folder names")
        names.add(folder.name)
        for record in read_manifest(manifest):
            items.append(WorkItem(f"{folder.name}/{record['id']}", folder.name, str(folder), record))
    if not items:
        raise InputError("the suites hold no samples")
    return sorted(items, key=lambda item: item.key)


def truth_findings(sample: Mapping[str, Any]) -> Any:
    """:class:`~fuseagent.plan.findings.Findings` from a suite sample's ground truth: its per-image
    labels of perceived types, its relational labels, and the level of its known displacement.

    Example:
        >>> s = {"roles": ["ir", "vis"], "labels": {"ir": {"motion": 2}, "vis": {"rain": 4, "blur": 3}},
        ...      "misalignment": {"displacement_px": 6.0}}
        >>> f = truth_findings(s)
        >>> f.images, f.relational["motion"], f.relational["misalignment"] > 0
        ({'ir': {}, 'vis': {'rain': 4, 'blur': 3}}, 2, True)
    """
    from ..degrade.severity import PERCEIVED_TYPES, level_of
    from ..plan.findings import RELATIONAL_TYPES, Findings

    labels = sample.get("labels") or {}
    images = {r: {k: int(v) for k, v in (labels.get(r) or {}).items() if k in PERCEIVED_TYPES} for r in sample["roles"]}
    relational: dict[str, int] = {}
    for role in sample["roles"]:
        for kind, level in (labels.get(role) or {}).items():
            if kind in RELATIONAL_TYPES and int(level) > 0:
                relational[kind] = max(relational.get(kind, 0), int(level))
    displacement = float((sample.get("misalignment") or {}).get("displacement_px", 0.0))
    if displacement >= 1.0:
        relational["misalignment"] = max(relational.get("misalignment", 0), max(1, level_of("misalignment", displacement)))
    return Findings(images, relational)


def _strip_timing(report: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k != "seconds"}


class PairBuilder:
    """Builds records; one per worker, holding the tools (loaded once) and the call cache.

    Example:
        >>> builder = PairBuilder(BuildSettings())
        >>> builder.pool.loaded
        []
    """

    def __init__(self, settings: BuildSettings):
        self.settings = settings
        cache = ToolCallCache(settings.cache_dir, memory_bytes=settings.memory_bytes, disk_bytes=settings.cache_bytes)
        self.pool = ToolPool(cache)

    def build(self, item: WorkItem) -> tuple[dict[str, Any], dict[str, Any]]:
        """The record of one pair and this call's runtime figures (seconds, tool calls run)."""
        from ..agent import perception_report
        from ..plan.base import PlanContext
        from ..plan.findings import Findings
        from ..protocol import format_response, parse_actions
        from .perturb import perturbations, score_trajectory
        from .rationale import refine_rationale, template_rationale

        t0 = time.perf_counter()
        executed0, tool_seconds0 = self.pool.executed, self.pool.tool_seconds
        sample, task = item.sample, item.sample["task"]
        roles = list(sample["roles"])
        folder = Path(item.suite_dir)
        loaded = [read_image(folder / sample["files"][role]) for role in roles]
        env = SearchEnvironment(self.pool)
        state0, notes = env.initial_state(loaded, task)
        images = dict(state0.images)
        if self.settings.findings == "truth":
            report: dict[str, Any] | None = None
            findings = truth_findings(sample)
        else:
            report = _strip_timing(perception_report([images[r] for r in roles], task))
            findings = Findings.from_report(report, roles)
        context = PlanContext(task=task, roles=roles, findings=findings, report=report, images=images,
                              environment=env)
        options = self.settings.search
        result = search_pair(env, images, task, context, options)
        best = result.best
        best_actions = parse_actions(best["trajectory"])
        rationale = template_rationale(findings, best_actions, task)
        source = "template"
        if self.settings.refine_url and self.settings.refine_model:
            rationale, source = refine_rationale(rationale, (report or {}).get("caption", ""), best_actions,
                                                 url=self.settings.refine_url, model=self.settings.refine_model)
        perturbed = []
        if options.perturb > 0:
            known = {c["trajectory"]: c["hqa"] for c in result.candidates}
            for kind, variant in perturbations(best_actions, task, roles)[: options.perturb]:
                text = " -> ".join(a.text() for a in variant)
                entry: dict[str, Any] = {"kind": kind, "trajectory": text, "in_search": text in known}
                try:
                    score = known.get(text)
                    entry["hqa"] = score if score is not None else score_trajectory(env, images, task, variant)
                    entry["rationale"] = template_rationale(findings, variant, task)
                except Exception as exc:  # a variant that does not run is recorded as such
                    entry["hqa"], entry["error"] = None, f"{type(exc).__name__}: {exc}"
                perturbed.append(entry)
        record = {
            "key": item.key,
            "suite": item.suite,
            "id": sample["id"],
            "task": task,
            "roles": roles,
            "files": {r: sample["files"][r] for r in roles},
            "suite_dir": item.suite_dir,
            "recipe": sample.get("recipe"),
            "labels": sample.get("labels", {}),
            "inputs": best["states"][0],
            "notes": notes,
            "perception": report,
            "findings": findings.to_dict(),
            "best": {"trajectory": best["trajectory"], "hqa": best["hqa"], "states": best["states"]},
            "rationale": rationale,
            "rationale_source": source,
            "response": format_response(best_actions, rationale),
            "top_k": result.top,
            "candidates": result.candidates,
            "perturbed": perturbed,
            "search": {"candidates": len(result.candidates),
                       "scored": sum(1 for c in result.candidates if c["hqa"] is not None),
                       "prefixes": result.prefixes, "fusions": result.fusions,
                       "executions": result.executions, "naive_executions": result.naive_executions,
                       "executions_by_tool": result.by_tool, **options.to_dict()},
        }
        runtime = {"key": item.key, "seconds": time.perf_counter() - t0,
                   "tool_calls_run": self.pool.executed - executed0,
                   "tool_seconds": self.pool.tool_seconds - tool_seconds0, "worker_pid": os.getpid()}
        return record, runtime


# ---------------------------------------------------------------------------------- the folder
def read_settings(out: str | os.PathLike) -> dict[str, Any]:
    """The settings a dataset folder was built with."""
    path = Path(out) / "dataset.json"
    if not path.is_file():
        raise InputError(f"'{out}' is not a dataset (no dataset.json)")
    return json.loads(path.read_text())


def _record_path(out: Path, key: str) -> Path:
    return out / "records" / (key.replace("/", "__") + ".json")


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def _reconcile(out: Path) -> set[str]:
    """Remove temporary files, unreadable records and error records (retried); rebuild the manifest
    from the records left."""
    records_dir = out / "records"
    records_dir.mkdir(parents=True, exist_ok=True)
    for tmp in list(out.glob(".*")) + list(records_dir.glob(".*")) + list(out.glob("cache/*/.*.tmp")):
        if tmp.is_file():
            tmp.unlink()
    done: set[str] = set()
    for path in records_dir.glob("*.json"):
        if path.name.startswith("."):
            continue
        try:
            record = json.loads(path.read_text())
            key = record["key"]
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink()
            continue
        if record.get("error"):  # a failed pair is tried again by every run
            path.unlink()
            continue
        done.add(key)
    manifest = out / "manifest.jsonl"
    lines = manifest.read_text().splitlines() if manifest.exists() else []
    if sorted(lines) != sorted(json.dumps(k) for k in done) or len(lines) != len(done):
        _write_text(manifest, "".join(json.dumps(k) + "\n" for k in sorted(done)))
    return done


def load_records(out: str | os.PathLike) -> list[dict[str, Any]]:
    """Every record of a dataset folder, sorted by key (complete or not)."""
    folder = Path(out)
    records = []
    for path in sorted((folder / "records").glob("*.json")):
        if path.name.startswith("."):
            continue
        try:
            records.append(json.loads(path.read_text()))
        except ValueError:
            continue
    return sorted(records, key=lambda r: r["key"])


def dataset_stats(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Deterministic statistics of records: pairs, candidates, executions against naive, per task.

    Example:
        >>> dataset_stats([{"task": "ivif", "search": {"candidates": 4, "executions": 5, "naive_executions": 12},
        ...                 "perturbed": []}])["ratio"]
        2.4
    """
    per_task: dict[str, dict[str, float]] = {}
    total = {"pairs": 0, "candidates": 0, "executions": 0, "naive_executions": 0, "perturbed": 0}
    failed = 0
    for r in records:
        if r.get("error"):
            failed += 1
            continue
        s = r["search"]
        row = per_task.setdefault(r["task"], {k: 0 for k in total})
        for target in (row, total):
            target["pairs"] += 1
            target["candidates"] += s["candidates"]
            target["executions"] += s["executions"]
            target["naive_executions"] += s["naive_executions"]
            target["perturbed"] += len(r.get("perturbed", []))
    for row in [total, *per_task.values()]:
        row["ratio"] = round(row["naive_executions"] / row["executions"], 3) if row["executions"] else None
    return {**total, "failed": failed, "tasks": dict(sorted(per_task.items()))}


Executor = Callable[[Sequence[WorkItem], BuildSettings, int], Iterator[tuple[dict[str, Any], dict[str, Any]]]]


def build_dataset(suites: Sequence[str | os.PathLike], out: str | os.PathLike, settings: BuildSettings | None = None, *,
                  workers: int = 1, executor: str = "local", ray_address: str | None = None,
                  limit: int | None = None, progress: bool = False,
                  on_record: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Build (or complete) a dataset from suites; returns this run's summary.

    Args:
        suites: suite folders (``fuseagent synth`` output).
        out: dataset folder.
        settings: search, rationale and cache settings.
        workers: parallel workers (processes or Ray actors).
        executor: ``local`` (a process pool) or ``ray``.
        ray_address: Ray cluster to join (None: start a local one of ``workers`` CPUs).
        limit: build at most this many new pairs in this run (the rest is left for a later run).
        progress: show a progress bar.
        on_record: called with each new record once it is on disk.

    Raises:
        InputError: bad arguments, or ``out`` holding a dataset built with other settings.
    """
    from .executors import run_items

    settings = settings or BuildSettings()
    if workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    if executor not in ("local", "ray"):
        raise InputError(f"unknown executor '{executor}' (valid: local, ray)")
    if settings.findings not in ("perception", "truth"):
        raise InputError(f"unknown findings source '{settings.findings}' (valid: perception, truth)")
    if settings.search.top_k < 1:
        raise InputError(f"--top-k must be at least 1, got {settings.search.top_k}")
    items = suite_items(suites)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    identity = {"format": FORMAT, "suites": sorted({i.suite_dir for i in items}), **settings.identity()}
    settings_path = folder / "dataset.json"
    if settings_path.exists():
        try:
            old = json.loads(settings_path.read_text())
        except ValueError:
            old = None
        if old != identity:
            raise InputError(f"'{out}' holds a dataset built with other settings; use an empty folder")
    else:
        _write_text(settings_path, json.dumps(identity, indent=2) + "\n")
    if settings.cache_dir is None:
        settings = BuildSettings(settings.search, settings.refine_url, settings.refine_model,
                                 str(folder / "cache"), settings.cache_bytes, settings.memory_bytes, settings.findings)
    done = _reconcile(folder)
    todo = [i for i in items if i.key not in done]
    if limit is not None:
        todo = todo[: max(0, limit)]
    t0 = time.perf_counter()
    runtimes: list[dict[str, Any]] = []
    manifest = folder / "manifest.jsonl"
    from tqdm import tqdm

    bar = tqdm(total=len(items), initial=len(items) - len(todo) if limit is None else len(done), desc="dataset",
               unit="pair", disable=not progress)
    try:
        for record, runtime in run_items(todo, settings, workers, executor, ray_address):
            _write_text(_record_path(folder, record["key"]), json.dumps(record, sort_keys=True) + "\n")
            with open(manifest, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record["key"]) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            runtimes.append(runtime)
            if on_record is not None:
                on_record(record)
            bar.update(1)
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    records = load_records(folder)
    complete = len(records) == len(items)
    if complete:
        _write_text(folder / "dataset.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    run = {"executor": executor, "workers": workers, "pairs_built": len(runtimes), "seconds": round(seconds, 3),
           "seconds_per_pair": round(seconds / len(runtimes), 3) if runtimes else None,
           "worker_seconds": round(sum(r["seconds"] for r in runtimes), 3),
           "tool_calls_run": sum(r["tool_calls_run"] for r in runtimes),
           "complete": complete, "pairs": len(items), "done": len(records)}
    with open(folder / "runs.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(run) + "\n")
    return {**run, "stats": dataset_stats(records)}
