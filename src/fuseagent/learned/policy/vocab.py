"""The policy's token vocabulary and the grammar that keeps its output valid protocol.

A response of the learned planner is a token sequence::

    <bos> tag… <sep> action… fusion-action <eos>

* **tags** — the perceived degradations the policy sees, one token per (image, type)
  (``tag:vis:noise``) or pair relation (``tag:rel:misalignment``), in a fixed canonical order.
  The ``<think>`` text is rendered from them as the dataset's rationales are
  (:func:`fuseagent.data.rationale.template_rationale`).
* **actions** — one token per protocol action ``[task:x][model:y][on:z]`` (``act:denoise:nlm:vis``;
  the target is ``-`` for an action written without ``[on:…]``), derived from the tool registry.
* **fusion** — one of the ``act:fusion:…`` tokens, then ``<eos>``.

:class:`Grammar` gives, for a prefix, the tokens allowed next, following the rules of
:func:`fuseagent.protocol.validate` (known tools that suit the fusion task, a target that is one of
the task's images, exactly one fusion and it is last) plus the tool library's modality rules
(:func:`fuseagent.plan.library.modalities`: no thermal-only tool on a visible image), no repeated
action and at most ``max_steps`` pre-fusion steps. Sampling only among allowed tokens yields a
valid trajectory by construction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ...errors import InputError, ProtocolError
from ...protocol import Action, roles_for, validate

__all__ = ["PAD", "BOS", "SEP", "EOS", "SPECIALS", "TAG_ROLES", "TARGETS", "Vocab", "Grammar", "build_vocab",
           "tags_from_findings", "findings_from_tags", "encode_response", "decode_actions"]

PAD, BOS, SEP, EOS = "<pad>", "<bos>", "<sep>", "<eos>"
SPECIALS: tuple[str, ...] = (PAD, BOS, SEP, EOS)

#: image roles that carry tags (a pair: IVIF ``ir``/``vis``, MEF/MFF ``a``/``b``)
TAG_ROLES: tuple[str, ...] = ("ir", "vis", "a", "b")

#: action targets in the vocabulary (None: written without ``[on:…]``)
TARGETS: tuple[str | None, ...] = (None, "all", "ir", "vis", "a", "b")

_NO_TARGET = "-"


def _perceived_types() -> tuple[str, ...]:
    from ...degrade.severity import PERCEIVED_TYPES

    return tuple(PERCEIVED_TYPES)


def _relational_types() -> tuple[str, ...]:
    from ...plan.findings import RELATIONAL_TYPES

    return tuple(RELATIONAL_TYPES)


def action_token(action: Action) -> str:
    """Token of an action (parameters are not part of the protocol text, nor of the token).

    Example:
        >>> action_token(Action("denoise", "nlm", "vis")), action_token(Action("fusion", "gff"))
        ('act:denoise:nlm:vis', 'act:fusion:gff:-')
    """
    return f"act:{action.task}:{action.model}:{action.target or _NO_TARGET}"


def token_action(token: str) -> Action:
    """The action of an ``act:`` token.

    Example:
        >>> token_action("act:registration:sift:-").text()
        '[task:registration][model:sift]'
    """
    kind, task, model, target = token.split(":")
    if kind != "act":
        raise InputError(f"'{token}' is not an action token")
    return Action(task, model, None if target == _NO_TARGET else target)


@dataclass(frozen=True)
class Vocab:
    """Tokens of the policy, by id.

    Attributes:
        tokens: every token; its index is its id. Special tokens first, then tags, then actions.
    """

    tokens: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.tokens[: len(SPECIALS)] != SPECIALS:
            raise InputError("a policy vocabulary starts with the special tokens")
        if len(set(self.tokens)) != len(self.tokens):
            raise InputError("a policy vocabulary has duplicate tokens")

    @property
    def index(self) -> dict[str, int]:
        return _index(self.tokens)

    def __len__(self) -> int:
        return len(self.tokens)

    def id(self, token: str) -> int:
        try:
            return self.index[token]
        except KeyError:
            raise InputError(f"token '{token}' is not in the policy vocabulary") from None

    @property
    def pad(self) -> int:
        return 0

    @property
    def bos(self) -> int:
        return 1

    @property
    def sep(self) -> int:
        return 2

    @property
    def eos(self) -> int:
        return 3

    def is_tag(self, i: int) -> bool:
        return self.tokens[i].startswith("tag:")

    def is_action(self, i: int) -> bool:
        return self.tokens[i].startswith("act:")

    def to_dict(self) -> dict[str, Any]:
        return {"format": "fuseagent.policy-vocab/1", "tokens": list(self.tokens)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Vocab:
        if data.get("format") != "fuseagent.policy-vocab/1":
            raise InputError("not a policy vocabulary (format fuseagent.policy-vocab/1 expected)")
        return cls(tuple(data["tokens"]))


@lru_cache(maxsize=8)
def _index(tokens: tuple[str, ...]) -> dict[str, int]:
    return {t: i for i, t in enumerate(tokens)}


def build_vocab() -> Vocab:
    """The vocabulary of the current tool registry and perception types (deterministic order).

    Every registered tool enters (available or not: availability is checked at decoding time, so
    a vocabulary does not depend on the machine it was built on) with every target its inputs
    accept: stack tools (fusion) have no target.

    Example:
        >>> v = build_vocab()
        >>> v.tokens[:4], "act:denoise:nlm:vis" in v.index, "tag:vis:noise" in v.index
        (('<pad>', '<bos>', '<sep>', '<eos>'), True, True)
    """
    from ...tools import TOOLS, load_builtin_tools

    load_builtin_tools()
    tags = [f"tag:{role}:{kind}" for role in TAG_ROLES for kind in _perceived_types()]
    tags += [f"tag:rel:{kind}" for kind in _relational_types()]
    actions = []
    for entry in sorted(TOOLS, key=lambda e: (e.card.task, e.card.model)):
        card = entry.card
        targets = (None,) if card.inputs == "stack" else TARGETS
        actions += [action_token(Action(card.task, card.model, t)) for t in targets]
    return Vocab(SPECIALS + tuple(tags) + tuple(actions))


def tags_from_findings(findings: Any, task: str, roles: Sequence[str], min_level: int = 1) -> list[str]:
    """Tag tokens of perception findings, in the canonical order (roles, then types).

    Example:
        >>> from fuseagent.plan.findings import Findings
        >>> tags_from_findings(Findings({"vis": {"noise": 3, "haze": 1}}, {"misalignment": 2}), "ivif", ["ir", "vis"])
        ['tag:vis:noise', 'tag:vis:haze', 'tag:rel:misalignment']
    """
    out = []
    for role in [r for r in TAG_ROLES if r in roles[:2]]:
        for kind in _perceived_types():
            if findings.level(role, kind) >= min_level:
                out.append(f"tag:{role}:{kind}")
    for kind in _relational_types():
        if findings.relation(kind) >= min_level:
            out.append(f"tag:rel:{kind}")
    return out


def findings_from_tags(tags: Iterable[str], level: int = 3) -> Any:
    """Findings whose detected types are the tags (every one at ``level``).

    Example:
        >>> findings_from_tags(["tag:vis:noise", "tag:rel:misalignment"]).to_dict()
        {'images': {'vis': {'noise': 3}}, 'relational': {'misalignment': 3}}
    """
    from ...plan.findings import Findings

    images: dict[str, dict[str, int]] = {}
    relational: dict[str, int] = {}
    for tag in tags:
        _, role, kind = tag.split(":")
        if role == "rel":
            relational[kind] = level
        else:
            images.setdefault(role, {})[kind] = level
    return Findings(images, relational)


class Grammar:
    """Tokens allowed after a prefix, for one fusion task and its image roles.

    Args:
        vocab: the policy vocabulary.
        task: fusion task (``ivif``, ``mef``, ``mff``).
        n_images: number of input images.
        max_steps: most pre-fusion steps.
        available_only: leave out tools that cannot run here (missing weights or packages).

    Example:
        >>> g = Grammar(build_vocab(), "mff")
        >>> v = g.vocab
        >>> [v.tokens[i] for i in np.flatnonzero(g.allowed([v.bos, v.id("act:fusion:focus:-")]))]
        ['<eos>']
    """

    def __init__(self, vocab: Vocab, task: str, n_images: int = 2, *, max_steps: int = 6, available_only: bool = True):
        self.vocab = vocab
        self.task = task
        self.roles = roles_for(task, n_images)
        self.max_steps = int(max_steps)
        self.tag_ids, self.step_ids, self.fusion_ids = _task_tokens(vocab, task, n_images, available_only)
        if not self.fusion_ids:
            raise ProtocolError(f"no fusion operator of {task.upper()} is available", reason="no_fusion")
        self._tag_rank = {t: r for r, t in enumerate(self.tag_ids)}
        self._tags = np.asarray(self.tag_ids, dtype=np.int64)
        self._steps = np.asarray(self.step_ids, dtype=np.int64)
        self._fusions = np.asarray(self.fusion_ids, dtype=np.int64)
        self._fusion_set = set(self.fusion_ids)

    def allowed(self, prefix: Sequence[int]) -> np.ndarray:
        """Boolean mask over the vocabulary of the tokens that may follow ``prefix`` (starting with ``<bos>``)."""
        v = self.vocab
        mask = np.zeros(len(v), bool)
        if not prefix or prefix[0] != v.bos:
            raise InputError("a policy sequence starts with <bos>")
        body = [int(i) for i in prefix[1:]]
        if body and (body[-1] == v.eos or body[-1] in self._fusion_set):
            if body[-1] != v.eos:
                mask[v.eos] = True
            return mask
        if v.sep not in body:
            last_rank = max((self._tag_rank.get(i, -1) for i in body), default=-1)
            mask[self._tags[last_rank + 1:]] = True
            mask[v.sep] = True
            return mask
        steps = body[body.index(v.sep) + 1:]
        if len(steps) < self.max_steps:
            mask[self._steps] = True
            mask[steps] = False
        mask[self._fusions] = True
        return mask

    def accepts(self, sequence: Sequence[int]) -> bool:
        """Whether a whole sequence (``<bos>`` … ``<eos>``) follows the grammar.

        Example:
            >>> g = Grammar(build_vocab(), "ivif")
            >>> acts = [Action("denoise", "nlm", "vis"), Action("fusion", "gff")]
            >>> ids = encode_response(g.vocab, ["tag:vis:noise"], acts)
            >>> g.accepts(ids), g.accepts(ids[:-1])
            (True, False)
        """
        if not sequence or sequence[-1] != self.vocab.eos:
            return False
        return all(self.allowed(sequence[:k])[sequence[k]] for k in range(1, len(sequence)))


@lru_cache(maxsize=64)
def _task_tokens_cached(tokens: tuple[str, ...], task: str, n_images: int,
                        available_only: bool) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    from ...plan.library import modalities
    from ...tools import TOOLS, load_builtin_tools

    load_builtin_tools()
    from ...plan.library import models_for

    roles = roles_for(task, n_images)
    any_fusion = Action("fusion", models_for("fusion", task, available_only=False)[0])
    tag_roles = [r for r in TAG_ROLES if r in roles[:2]]
    tags, steps, fusions = [], [], []
    for i, token in enumerate(tokens):
        if token.startswith("tag:"):
            _, role, _ = token.split(":")
            if role == "rel" or role in tag_roles:
                tags.append(i)
            continue
        if not token.startswith("act:"):
            continue
        action = token_action(token)
        if action.tool not in TOOLS:
            continue
        entry = TOOLS.get(action.tool)
        if available_only and not entry.factory.available():
            continue
        card = entry.card
        if action.task == "fusion":
            try:
                validate([action], task, n_images)
            except ProtocolError:
                continue
            fusions.append(i)
            continue
        if card.inputs != "stack" and not all(k in card.modalities for k in modalities(action.target, task)):
            continue
        if card.inputs == "stack" and action.target is not None:
            continue
        try:
            validate([action, any_fusion], task, n_images)
        except ProtocolError:
            continue
        steps.append(i)
    return tuple(tags), tuple(steps), tuple(fusions)


def _task_tokens(vocab: Vocab, task: str, n_images: int,
                 available_only: bool) -> tuple[list[int], list[int], list[int]]:
    tags, steps, fusions = _task_tokens_cached(vocab.tokens, task, n_images, available_only)
    return list(tags), list(steps), list(fusions)


def encode_response(vocab: Vocab, tags: Sequence[str], actions: Sequence[Action]) -> list[int]:
    """Token ids ``<bos> tags <sep> actions <eos>``.

    Raises:
        InputError: a tag or an action that has no token.

    Example:
        >>> v = build_vocab()
        >>> ids = encode_response(v, [], [Action("fusion", "gff")])
        >>> [v.tokens[i] for i in ids]
        ['<bos>', '<sep>', 'act:fusion:gff:-', '<eos>']
    """
    tag_ids = [vocab.id(t) for t in tags]
    action_ids = [vocab.id(action_token(a)) for a in actions]
    return [vocab.bos, *tag_ids, vocab.sep, *action_ids, vocab.eos]


def decode_actions(vocab: Vocab, ids: Sequence[int]) -> tuple[list[str], list[Action]]:
    """Tags and actions of a token sequence (special tokens dropped).

    Example:
        >>> v = build_vocab()
        >>> decode_actions(v, encode_response(v, ["tag:a:noise"], [Action("fusion", "mertens")]))[1][0].text()
        '[task:fusion][model:mertens]'
    """
    tags, actions = [], []
    for i in ids:
        token = vocab.tokens[int(i)]
        if token.startswith("tag:"):
            tags.append(token)
        elif token.startswith("act:"):
            actions.append(token_action(token))
    return tags, actions
