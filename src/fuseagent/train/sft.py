"""Supervised fine-tuning (SFT) of the planning policy on the data engine's searched trajectories.

Each record of a dataset (``fuseagent dataset build``; :func:`fuseagent.data.load_records`) gives
one example: the pair (read from ``suite_dir/files[role]``), its perception report, and the target
sequence ``<bos> tags <sep> actions <eos>`` — the perceived-degradation tags of its findings and the
best trajectory the search found. With ``perturbed`` (TIR-Agent's augmentation), the record's
perturbed trajectories that score within ``perturbed_margin`` of the best are added as examples of
the same pair, and ``top_k_margin`` does the same for the search's other top candidates.

The loss is the cross-entropy of the target tokens under the grammar-masked policy (every token
after ``<bos>``: tags, separator, actions, end). Pairs are split into training and validation by a
hash of their key (``val_fraction``), so a pair and its variants never straddle the split. AdamW with
a cosine learning-rate decay, a fixed seed, one CPU thread by default; every ``log_every`` steps the
validation loss, the exact-plan accuracy of greedy decoding and the mean HQA of the decoded plan
*when it was one of the pair's searched candidates* (its rank among them) are logged.

Example configuration (``configs/sft.json``)::

    {"datasets": ["out/datasets/train"], "steps": 3000, "batch": 32, "lr": 0.003, "seed": 0,
     "perturbed": true, "out": "out/train/policy/sft.pt"}
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .config import read_config

__all__ = ["SFTSettings", "Example", "ExampleSet", "load_config", "parse_overrides", "settings_from",
           "examples_from_records", "split_examples", "sft_loss", "evaluate_plans", "plan_scorer", "evaluate_dataset",
           "train_sft", "add_arguments", "run"]

#: test sets that must never be trained on
FORBIDDEN = ("vifb", "mefb", "lytro")


def load_config(path: str | os.PathLike | None) -> dict[str, Any]:
    """Settings from a JSON (or YAML) file; an empty mapping for None (see :func:`read_config`)."""
    return read_config(path)


def settings_from(cls: type, values: Mapping[str, Any]) -> Any:
    """A settings dataclass from a mapping, rejecting unknown keys (lists become tuples)."""
    known = {f.name for f in fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise InputError(f"unknown setting(s): {', '.join(sorted(unknown))} (valid: {', '.join(sorted(known))})")
    values = {k: tuple(v) if isinstance(v, list) and k != "policy" else v for k, v in values.items()}
    settings = cls(**values)
    settings.check()
    return settings


def parse_overrides(items: Sequence[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` command-line overrides; values are read as JSON when they parse, else as text.

    Example:
        >>> parse_overrides(["w_relational=0", "adaptive=true", "init=null", "out=x.pt"])
        {'w_relational': 0, 'adaptive': True, 'init': None, 'out': 'x.pt'}
    """
    values: dict[str, Any] = {}
    for item in items or ():
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--set expects KEY=VALUE, got '{item}'")
        try:
            values[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            values[key.strip()] = text
    return values


def _check_datasets(datasets: Sequence[str]) -> None:
    if not datasets:
        raise InputError("no dataset given (settings 'datasets': folders built by fuseagent dataset build)")
    for d in datasets:
        if any(bad in str(d).lower() for bad in FORBIDDEN):
            raise InputError(f"'{d}' looks like a test set ({', '.join(FORBIDDEN)}): never train on it")


@dataclass(frozen=True)
class SFTSettings:
    """Settings of an SFT run (a JSON config holds any subset).

    Attributes:
        datasets: dataset folders (``fuseagent dataset build`` output).
        policy: :class:`~fuseagent.learned.policy.PolicyConfig` overrides.
        perturbed: add the records' perturbed trajectories within ``perturbed_margin`` HQA of the best.
        perturbed_margin: HQA margin for perturbed variants.
        top_k_margin: also add the search's top-k candidates within this HQA margin (None: off).
        val_fraction: share of pairs held out for validation (by key hash).
        steps, batch, lr, min_lr, weight_decay, warmup: optimisation (AdamW, cosine decay).
        flip: random horizontal flips of the pair (plans do not depend on them).
        seed: seed of every random choice; threads: torch CPU threads.
        log_every: steps between validation passes.
        select: which weights are kept: ``last`` (the final step's) or ``val_loss`` (those of the
            validation pass with the lowest loss: early stopping; needs ``val_fraction`` > 0).
        time_budget_s: stop after this many seconds (0: none).
        out: weight file; its ``.json`` sibling holds the training record, ``.png`` the curves.
    """

    datasets: tuple[str, ...] = ()
    policy: Mapping[str, Any] = field(default_factory=dict)
    perturbed: bool = True
    perturbed_margin: float = 0.01
    top_k_margin: float | None = None
    val_fraction: float = 0.1
    steps: int = 2000
    batch: int = 32
    lr: float = 3e-3
    min_lr: float = 1e-4
    weight_decay: float = 1e-4
    warmup: int = 50
    flip: bool = True
    seed: int = 0
    threads: int = 1
    log_every: int = 100
    select: str = "last"
    time_budget_s: float = 0.0
    out: str = "out/train/policy/sft.pt"

    def check(self) -> None:
        _check_datasets(self.datasets)
        if self.steps < 0 or self.batch < 1 or self.lr <= 0 or self.log_every < 1 or self.threads < 1:
            raise InputError("steps >= 0, batch >= 1, lr > 0, log_every >= 1 and threads >= 1 are required")
        if not 0.0 <= self.val_fraction < 1.0:
            raise InputError("val_fraction must lie in [0, 1)")
        if self.select not in ("last", "val_loss"):
            raise InputError(f"select must be 'last' or 'val_loss', got '{self.select}'")
        if self.select == "val_loss" and self.val_fraction == 0.0:
            raise InputError("select 'val_loss' needs a validation split (val_fraction > 0)")


@dataclass
class Example:
    """One training example: the policy input, the target ids, and where it came from.

    Attributes:
        input: the pair as the policy sees it.
        ids: target sequence ``<bos>`` … ``<eos>``.
        key: the pair's key (``suite/id``); ``source``: ``best``, ``perturbed`` or ``top_k``.
        candidates: the pair's searched candidates, trajectory text → HQA (for evaluation).
        best_hqa: HQA of the pair's best trajectory.
    """

    input: Any
    ids: list[int]
    key: str
    source: str = "best"
    candidates: dict[str, float] = field(default_factory=dict)
    best_hqa: float | None = None


@dataclass
class ExampleSet:
    """Examples and how many records were used or skipped (and why)."""

    examples: list[Example]
    stats: dict[str, int]


def _record_images(record: Mapping[str, Any]) -> list[np.ndarray]:
    from ..io import read_image

    folder = Path(record.get("suite_dir", ""))
    images = []
    for role in record["roles"]:
        path = folder / record["files"][role]
        if not path.is_file():
            raise InputError(f"record {record['key']}: image '{path}' not found (is the suite still there?)")
        images.append(read_image(path))
    return images


def examples_from_records(records: Sequence[Mapping[str, Any]], vocab: Any, *, image_size: int = 64,
                          max_steps: int = 6, perturbed: bool = True, perturbed_margin: float = 0.01,
                          top_k_margin: float | None = None,
                          image_loader: Callable[[Mapping[str, Any]], list[np.ndarray]] | None = None) -> ExampleSet:
    """Examples of dataset records (see the module docstring).

    Records with an ``error``, and target sequences outside the grammar (a tool no longer
    registered, more than ``max_steps`` steps), are skipped and counted in ``stats``.
    """
    from ..learned.policy import Grammar, encode_response, policy_input, tags_from_findings
    from ..plan.findings import Findings
    from ..protocol import parse_actions

    load = image_loader or _record_images
    stats = {"records": 0, "errors": 0, "outside_grammar": 0, "examples": 0, "perturbed": 0, "top_k": 0}
    examples: list[Example] = []
    for record in records:
        stats["records"] += 1
        if record.get("error") or "best" not in record:
            stats["errors"] += 1
            continue
        task, roles = record["task"], list(record["roles"])
        findings = Findings.from_dict(record.get("findings") or {})
        x = policy_input(load(record), task, record.get("perception"), findings, roles, image_size)
        grammar = Grammar(vocab, task, len(roles), max_steps=max_steps)
        tags = tags_from_findings(findings, task, roles)
        best_hqa = record["best"].get("hqa")
        candidates = {c["trajectory"]: c["hqa"] for c in record.get("candidates", []) if c.get("hqa") is not None}
        targets = [("best", record["best"]["trajectory"])]
        if perturbed and best_hqa is not None:
            targets += [("perturbed", p["trajectory"]) for p in record.get("perturbed", [])
                        if p.get("hqa") is not None and p["hqa"] >= best_hqa - perturbed_margin]
        if top_k_margin is not None and best_hqa is not None:
            targets += [("top_k", c["trajectory"]) for c in record.get("top_k", [])[1:]
                        if c.get("hqa") is not None and c["hqa"] >= best_hqa - top_k_margin]
        seen: set[str] = set()
        for source, text in targets:
            if text in seen:
                continue
            seen.add(text)
            try:
                ids = encode_response(vocab, tags, parse_actions(text))
            except InputError:
                stats["outside_grammar"] += 1
                continue
            if not grammar.accepts(ids):
                stats["outside_grammar"] += 1
                continue
            examples.append(Example(x, ids, record["key"], source, candidates, best_hqa))
            stats["examples"] += 1
            if source != "best":
                stats[source] += 1
    return ExampleSet(examples, stats)


def _key_fraction(key: str, seed: int) -> float:
    digest = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def split_examples(examples: Sequence[Example], val_fraction: float,
                   seed: int = 0) -> tuple[list[Example], list[Example]]:
    """Training and validation examples, split by a hash of the pair key (variants stay together).

    Example:
        >>> ex = [Example(None, [1, 3], f"s/{i}") for i in range(200)]
        >>> train, val = split_examples(ex, 0.25)
        >>> len(train) + len(val), 30 < len(val) < 70, {e.key for e in train}.isdisjoint({e.key for e in val})
        (200, True, True)
    """
    train, val = [], []
    for e in examples:
        (val if _key_fraction(e.key, seed) < val_fraction else train).append(e)
    return train, val


def _flip(x: Any) -> Any:
    from ..learned.policy.model import PolicyInput

    return PolicyInput(np.ascontiguousarray(x.pair[:, :, ::-1]), x.task, x.perception, x.n_images, x.meta)


def sft_loss(model: Any, batch: Sequence[Example]) -> Any:
    """Mean cross-entropy per target token of a batch under the grammar-masked policy."""
    from ..learned.policy.model import Grammar, collate_inputs, grammar_masks, pad_sequences, sequence_logprobs

    ids, weights = pad_sequences([e.ids for e in batch], model.vocab.pad)
    grammars = [Grammar(model.vocab, e.input.task, e.input.n_images, max_steps=model.config.max_steps) for e in batch]
    masks = grammar_masks(grammars, [e.ids for e in batch], ids.shape[1])
    context = model.context(*collate_inputs([e.input for e in batch]))
    logp = sequence_logprobs(model, context, ids, masks)
    return -(logp * weights).sum() / weights.sum()


PlanScorer = Callable[[str, Sequence[Any]], "float | None"]


def plan_scorer(records: Sequence[Mapping[str, Any]], cache_dir: str | os.PathLike | None = None) -> PlanScorer:
    """``scorer(key, actions) -> HQA`` executing a plan on a record's pair as the data engine scored
    its candidates (:func:`fuseagent.data.perturb.score_trajectory`), through a content-hash
    tool-call cache (the dataset's ``cache/`` makes the searched steps free); None when it fails."""
    from ..data.cache import ToolCallCache
    from ..data.perturb import score_trajectory
    from ..data.search import SearchEnvironment, ToolPool

    by_key = {r["key"]: r for r in records if not r.get("error")}
    pool = ToolPool(ToolCallCache(cache_dir))

    def score(key: str, actions: Sequence[Any]) -> float | None:
        record = by_key[key]
        env = SearchEnvironment(pool)
        try:
            state, _ = env.initial_state(_record_images(record), record["task"])
            return float(score_trajectory(env, dict(state.images), record["task"], list(actions)))
        except Exception:  # a plan that does not run scores nothing
            return None

    return score


def evaluate_plans(model: Any, examples: Sequence[Example], batch: int = 64,
                   scorer: PlanScorer | None = None) -> dict[str, float]:
    """Greedy decoding on examples (their ``best`` ones): exact plan and tag accuracy, and the HQA
    of the decoded plans.

    Args:
        model: the policy.
        examples: examples (only ``source == "best"`` ones are used: one per pair).
        batch: decoding batch.
        scorer: executes plans that are not among a pair's searched candidates (:func:`plan_scorer`);
            without it only the searched ones are scored.

    Returns:
        ``loss``, ``plan_accuracy`` (the decoded actions equal the target's), ``tag_accuracy``,
        ``in_search`` (share of decoded plans among the pair's candidates), ``hqa`` and ``best_hqa``
        (mean HQA of the decoded plans found in the search, and of the best plans of the same
        pairs), ``n``; with a ``scorer`` also ``hqa_all`` (mean over every pair, a failed plan
        counting 0), ``best_hqa_all``, ``relative_hqa`` (their ratio) and ``failed``.
    """
    import torch

    from ..learned.policy import decode_actions, generate
    from ..protocol import format_actions

    chosen = [e for e in examples if e.source == "best"]
    if not chosen:
        return {"n": 0}
    exact = tags_ok = found = failed = 0
    hqas, bests, losses, every, every_best = [], [], [], [], []
    with torch.no_grad():
        for start in range(0, len(chosen), batch):
            part = chosen[start:start + batch]
            losses.append(float(sft_loss(model, part)) * len(part))
            samples = generate(model, [e.input for e in part], greedy=True)
            for e, s in zip(part, samples):
                tags, actions = decode_actions(model.vocab, s.ids)
                gold_tags, gold_actions = decode_actions(model.vocab, e.ids)
                exact += actions == gold_actions
                tags_ok += tags == gold_tags
                text = format_actions(actions)
                value = e.candidates.get(text)
                if value is not None:
                    found += 1
                    hqas.append(value)
                    bests.append(e.best_hqa)
                elif scorer is not None:
                    value = scorer(e.key, actions)
                    failed += value is None
                if scorer is not None and e.best_hqa is not None:
                    every.append(value or 0.0)
                    every_best.append(e.best_hqa)
    n = len(chosen)
    result = {"n": n, "loss": sum(losses) / n, "plan_accuracy": exact / n, "tag_accuracy": tags_ok / n,
              "in_search": found / n, "hqa": float(np.mean(hqas)) if hqas else float("nan"),
              "best_hqa": float(np.mean(bests)) if bests else float("nan")}
    if scorer is not None and every:
        result.update(hqa_all=float(np.mean(every)), best_hqa_all=float(np.mean(every_best)),
                      relative_hqa=float(np.mean(every) / np.mean(every_best)), failed=failed)
    return result


def evaluate_dataset(weights: str | os.PathLike, datasets: Sequence[str], execute: bool = True) -> dict[str, Any]:
    """Greedy plans of a trained policy on every pair of held-out datasets (built from suites the
    policy never trained on), per fusion task and overall (:func:`evaluate_plans`; with ``execute``
    the plans outside the search are executed through the first dataset's cache)."""
    from ..learned.policy import load_policy

    model, _ = load_policy(weights)
    records = _load_all(datasets)
    data = examples_from_records(records, model.vocab, image_size=model.config.image_size,
                                 max_steps=model.config.max_steps, perturbed=False)
    cache = Path(datasets[0]) / "cache"
    scorer = plan_scorer(records, cache if cache.is_dir() else None) if execute else None
    out: dict[str, Any] = {"all": evaluate_plans(model, data.examples, scorer=scorer), "data": data.stats}
    for task in sorted({e.input.task for e in data.examples}):
        out[task] = evaluate_plans(model, [e for e in data.examples if e.input.task == task], scorer=scorer)
    return out


def _lr_at(step: int, settings: Any) -> float:
    if step < settings.warmup:
        return settings.lr * (step + 1) / settings.warmup
    span = max(1, settings.steps - settings.warmup)
    progress = min(1.0, (step - settings.warmup) / span)
    return settings.min_lr + 0.5 * (settings.lr - settings.min_lr) * (1 + math.cos(math.pi * progress))


def _load_all(datasets: Sequence[str]) -> list[dict[str, Any]]:
    from ..data import load_records

    records: list[dict[str, Any]] = []
    for folder in datasets:
        if not (Path(folder) / "records").is_dir():
            raise InputError(f"'{folder}' is not a dataset folder (no records/; "
                             "build one with fuseagent dataset build)")
        records += load_records(folder)
    if not records:
        raise InputError(f"the datasets {', '.join(datasets)} hold no records")
    return records


def train_sft(settings: SFTSettings, *, records: Sequence[Mapping[str, Any]] | None = None,
              image_loader: Callable[[Mapping[str, Any]], list[np.ndarray]] | None = None,
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train the policy by SFT and write its weights, record (``.json``) and curves (``.png``).

    Args:
        settings: the run's settings.
        records: dataset records to use instead of reading ``settings.datasets`` (tests).
        image_loader: ``loader(record) -> images`` replacing reading the suite files (tests).
        log: called with one line per validation pass.

    Returns:
        The training record: settings, data statistics, curve, final validation figures, seconds.
    """
    import torch

    from ..learned.policy import PolicyConfig, PolicyNet, build_vocab, save_policy
    from ..learned.policy.plot import plot_curves

    torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    vocab = build_vocab()
    config = PolicyConfig.from_dict(dict(settings.policy))
    data = examples_from_records(records if records is not None else _load_all(settings.datasets), vocab,
                                 image_size=config.image_size, max_steps=config.max_steps,
                                 perturbed=settings.perturbed, perturbed_margin=settings.perturbed_margin,
                                 top_k_margin=settings.top_k_margin, image_loader=image_loader)
    train, val = split_examples(data.examples, settings.val_fraction, settings.seed)
    if not train:
        raise InputError(f"no training example ({data.stats})")
    model = PolicyNet(vocab, config)
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    curve: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    steps_done = 0
    running: list[float] = []
    best: tuple[float, int, dict[str, Any]] | None = None  # (val loss, step, weights) when select == val_loss
    for step in range(settings.steps):
        if settings.time_budget_s and time.perf_counter() - t0 > settings.time_budget_s:
            break
        for group in optimiser.param_groups:
            group["lr"] = _lr_at(step, settings)
        picks = rng.choice(len(train), size=min(settings.batch, len(train)), replace=len(train) < settings.batch)
        batch = [train[i] for i in picks]
        if settings.flip:
            batch = [Example(_flip(e.input), e.ids, e.key, e.source) if rng.random() < 0.5 else e for e in batch]
        model.train()
        loss = sft_loss(model, batch)
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        running.append(loss.item())
        steps_done = step + 1
        if steps_done % settings.log_every == 0 or steps_done == settings.steps:
            point: dict[str, Any] = {"step": steps_done, "train_loss": float(np.mean(running)),
                                     "lr": _lr_at(step, settings), "seconds": round(time.perf_counter() - t0, 2)}
            running = []
            if val:
                point.update({f"val_{k}": v for k, v in evaluate_plans(model, val).items()})
                if settings.select == "val_loss" and (best is None or point["val_loss"] < best[0]):
                    best = (point["val_loss"], steps_done,
                            {k: v.detach().clone() for k, v in model.state_dict().items()})
            curve.append(point)
            if log:
                log(json.dumps(point))
    if best is not None:
        model.load_state_dict(best[2])
    final_val = evaluate_plans(model, val) if val else {"n": 0}
    final_train = evaluate_plans(model, train[: 512])
    record = {"stage": "sft", "settings": asdict(settings), "data": data.stats, "train_examples": len(train),
              "val_examples": len(val), "parameters": model.parameter_count(), "steps": steps_done,
              "selected_step": best[1] if best is not None else steps_done,
              "seconds": round(time.perf_counter() - t0, 2), "curve": curve, "val": final_val,
              "train_eval": final_train}
    out = Path(settings.out)
    save_policy(out, model, record)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2, default=float) + "\n")
    series = {"train loss": [(p["step"], p["train_loss"]) for p in curve]}
    if val:
        series["val loss"] = [(p["step"], p.get("val_loss", float("nan"))) for p in curve]
    plot_curves(out.with_suffix(".png"), series, "SFT: cross-entropy per token")
    return record


def add_arguments(p: Any) -> None:
    """Arguments of ``fuseagent train sft``."""
    p.add_argument("--config", type=Path, default=None, help="JSON settings (see configs/sft.json)")
    p.add_argument("--dataset", dest="datasets", action="append", default=None,
                   help="dataset folder (repeatable; overrides the config's datasets)")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (overrides the config)")
    p.add_argument("--time-budget", type=float, default=None, dest="time_budget_s", help="stop after this many seconds")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--out", default=None, help="weight file to write")
    p.add_argument("--set", dest="overrides", action="append", default=None, metavar="KEY=VALUE",
                   help="override any setting (repeatable; VALUE read as JSON when it parses)")
    p.add_argument("--json", action="store_true", help="print the training record as JSON at the end")


def run(args: Any) -> int:
    """``fuseagent train sft``."""
    values = load_config(args.config)
    values.update(parse_overrides(getattr(args, "overrides", None)))
    for key in ("datasets", "steps", "time_budget_s", "threads", "out"):
        if getattr(args, key, None) is not None:
            values[key] = getattr(args, key)
    settings = settings_from(SFTSettings, values)
    record = train_sft(settings, log=lambda line: print(line, file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps(record, indent=2, default=float))
    else:
        val = record["val"]
        print(f"sft: {record['steps']} steps in {record['seconds']}s on {record['train_examples']} examples; "
              f"val plan accuracy {val.get('plan_accuracy', float('nan')):.3f}, "
              f"val loss {val.get('loss', float('nan')):.4f}; weights {settings.out}")
    return 0
