"""Reward function for RL frameworks: parse a completion, execute its trajectory, score the result.

:func:`compute_score` is the custom reward function of TRL's ``GRPOTrainer``, EasyR1 and verl; it
recognises each framework's calling convention:

============ ==========================================================================================
TRL          ``compute_score(completions=…, ground_truth=[…], **columns) -> list[float]``
             (``reward_funcs=[compute_score]``; ``ground_truth`` is a column of the export)
EasyR1       ``compute_score(reward_input) -> dict[str, float]`` (``reward_type=sequential``) or
             ``compute_score(reward_inputs) -> list[dict]`` (``batch``); ``reward_input["response"]``
             and ``["ground_truth"]``; the dict's ``overall`` is the reward
verl         ``compute_score(data_source, solution_str, ground_truth, extra_info=None) -> dict``
             (``custom_reward_function.name=compute_score``); the dict's ``score`` is the reward
============ ==========================================================================================

The ground truth is the JSON string the exports write (:func:`fuseagent.data.export.ground_truth`):
the fusion task, the input images and the best trajectory with its HQA. A completion
``<think>…</think><answer>[task:…][model:…] -> … -> [task:fusion][model:…]</answer>`` is parsed
and validated by the action protocol, executed on the sample's images, and scored with the
rewards of :mod:`fuseagent.metrics.rewards`: the reward is the trajectory's HQA
(:func:`fuseagent.agent.trajectory_hqa`: the fusion's relational reward — structure, detail and the
fused image's intrinsic quality against the sources — with the intrinsic + relational rewards of
each pre-fusion step), the very quantity the training trajectories were ranked by. The intrinsic
and relational parts are reported separately, with ``relative`` = HQA / best HQA. A completion that
does not parse, breaks the protocol or whose tools fail scores 0 with a ``reason``.

Tools are created once per process and their calls are cached by content (as in the dataset
build), so the many completions of a GRPO group that share steps execute them once. Set
``FUSEAGENT_REWARD_MAX_SIDE`` to score on downscaled inputs (faster; default: full size).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["compute_score", "score_completion"]

_ENV: Any = None


def _environment() -> Any:
    global _ENV
    if _ENV is None:
        from fuseagent.data.cache import ToolCallCache
        from fuseagent.data.search import SearchEnvironment, ToolPool

        _ENV = SearchEnvironment(ToolPool(ToolCallCache(memory_bytes=256 << 20)))
    return _ENV


def _truth(ground_truth: str | Mapping[str, Any]) -> dict[str, Any]:
    truth = json.loads(ground_truth) if isinstance(ground_truth, str) else dict(ground_truth)
    if not isinstance(truth, dict) or "task" not in truth or "images" not in truth:
        raise ValueError("ground truth must hold 'task' and 'images' (fuseagent export)")
    return truth


def _resolve(path: str, truth: Mapping[str, Any]) -> Path:
    p = Path(str(path).removeprefix("file://"))
    if p.is_absolute():
        return p
    root = os.environ.get("FUSEAGENT_DATA_ROOT") or truth.get("root") or "."
    return Path(root) / p


def _zero(reason: str, fmt: float = 0.0) -> dict[str, Any]:
    return {"score": 0.0, "hqa": 0.0, "intrinsic": 0.0, "relational": 0.0, "steps": 0.0, "relative": 0.0,
            "format": fmt, "valid": 0.0, "reason": reason}


def score_completion(completion: str, ground_truth: str | Mapping[str, Any]) -> dict[str, Any]:
    """Execute a completion's trajectory on the ground truth's images and score it.

    Returns:
        ``score`` (the reward: HQA in ``[0, 1]``), ``hqa``, ``intrinsic`` (IQR of the fused
        image), ``relational`` (fusion RQR against the sources), ``steps`` (mean step reward),
        ``relative`` (HQA / best HQA), ``format`` and ``valid`` (1 or 0), and ``reason`` (empty
        when valid).

    Example:
        >>> score_completion("no answer here", {"task": "ivif", "images": []})["reason"]
        "syntax: action 1 is not of the form [task:T][model:M][on:X]: 'no answer here'"
    """
    from fuseagent.errors import FuseAgentError, ProtocolError
    from fuseagent.protocol import parse_response, validate

    try:
        truth = _truth(ground_truth)
    except (TypeError, ValueError) as exc:
        return _zero(f"bad ground truth: {exc}")
    task = truth["task"]
    try:
        trajectory = parse_response(str(completion))
        actions = list(trajectory.actions)
        validate(actions, task, len(truth["images"]) or 2)
    except ProtocolError as exc:
        return _zero(f"{exc.reason}: {exc}")
    if not truth["images"]:
        return _zero("the ground truth lists no images", 1.0)
    from fuseagent.agent import Reflector, step_reward
    from fuseagent.io import read_image, resize_to
    from fuseagent.metrics.rewards import hqa

    try:
        images = [read_image(_resolve(p, truth)) for p in truth["images"]]
    except (OSError, FuseAgentError) as exc:
        return _zero(f"images unreadable: {exc}", 1.0)
    max_side = int(os.environ.get("FUSEAGENT_REWARD_MAX_SIDE", "0") or 0)
    if max_side:
        from fuseagent.degrade.suite import limit_size

        images = [limit_size(im, max_side) for im in images]
    env = _environment()
    try:
        execution = env.run(images, task, actions)
    except Exception as exc:  # noqa: BLE001 (a tool failing on this input is a failed completion)
        return _zero(f"execution failed: {type(exc).__name__}: {exc}", 1.0)
    reflector = Reflector()
    states = execution.states
    rewards = [step_reward(reflector, states[i], states[i + 1], a, execution.steps[i], task)
               for i, a in enumerate(actions[:-1])]
    fused = execution.fused
    sources = [im if im.shape[:2] == fused.shape[:2] else resize_to(im, fused.shape[:2])
               for im in states[-2].images.values()]
    reward = hqa(sources, fused, rewards, task=task)
    best = truth.get("best_hqa")
    value = float(reward.value)
    return {"score": value, "hqa": value, "intrinsic": float(reward.terms.get("iqa", 0.0)),
            "relational": float(reward.terms.get("fusion", value)),
            "steps": float(reward.terms.get("steps", 0.0)),
            "relative": value / best if best else 0.0, "format": 1.0, "valid": 1.0, "reason": ""}


def _numeric(result: Mapping[str, Any]) -> dict[str, float]:
    out = {k: float(v) for k, v in result.items() if isinstance(v, (int, float))}
    out["overall"] = out["score"]
    return out


def _text(completion: Any) -> str:
    if isinstance(completion, list):  # conversational: [{"role": "assistant", "content": …}]
        return "".join(m.get("content", "") if isinstance(m.get("content"), str) else
                       "".join(p.get("text", "") for p in m.get("content", []) if isinstance(p, dict))
                       for m in completion if isinstance(m, dict))
    return str(completion)


def compute_score(*args: Any, **kwargs: Any) -> Any:
    """Reward of completions, in the calling convention of TRL, EasyR1 or verl (see the module doc).

    Example:
        >>> compute_score(completions=["<answer>[task:nothing][model:x]</answer>"],
        ...               ground_truth=['{"task": "ivif", "images": []}'])
        [0.0]
        >>> r = compute_score("fuseagent/ivif", "garbage", '{"task": "ivif", "images": []}')
        >>> r["score"], r["valid"]
        (0.0, 0.0)
    """
    if "completions" in kwargs:  # TRL
        truths = kwargs.get("ground_truth")
        if truths is None:
            raise TypeError("compute_score: the dataset needs a 'ground_truth' column (fuseagent export --format trl)")
        return [float(score_completion(_text(c), t)["score"]) for c, t in zip(kwargs["completions"], truths)]
    if "solution_str" in kwargs or len(args) >= 3:  # verl
        solution = kwargs.get("solution_str", args[1] if len(args) > 1 else "")
        truth = kwargs.get("ground_truth", args[2] if len(args) > 2 else "")
        return score_completion(solution, truth)
    single = kwargs.get("reward_input", args[0] if args else None)
    batch = kwargs.get("reward_inputs")
    if batch is None and isinstance(single, Sequence) and not isinstance(single, (str, Mapping)):
        batch, single = single, None
    if batch is not None:  # EasyR1, reward_type=batch
        return [_numeric(score_completion(r["response"], r["ground_truth"])) for r in batch]
    if isinstance(single, Mapping):  # EasyR1, reward_type=sequential
        return _numeric(score_completion(single["response"], single["ground_truth"]))
    raise TypeError("compute_score: call it as TRL (completions=…, ground_truth=…), EasyR1 (reward_input dict) "
                    "or verl (data_source, solution_str, ground_truth)")
