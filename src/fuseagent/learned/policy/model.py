"""The planning policy: a small CNN over the pair, the task and perception features, and a GRU
decoder over the protocol vocabulary.

Architecture (about 0.3 M parameters with the defaults; well under a second per pair on one
CPU core)::

    pair (4×S×S) ─ conv s2 ×4 ─ global mean ─┐
    task ─ embedding ─────────────────────────┼─ MLP ─ context c
    perception vector ─ linear ───────────────┘
    token embedding ⊕ c ─ GRU (h₀ = tanh(W c)) ─ linear ─ logits over the vocabulary

Every log-probability is taken under the grammar (:class:`~.vocab.Grammar`): logits of tokens the
grammar forbids are −∞ before the softmax, so training (SFT cross-entropy, GRPO ratios and KL) and
decoding (greedy or sampled) see the same distribution, and decoding always yields valid protocol.
Weights are saved with the vocabulary and the configuration (:func:`save_policy`) and loaded from
an explicit local path (:func:`load_policy`); nothing is downloaded.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ...errors import FuseAgentError, InputError
from .features import PERCEPTION_SIZE, TASK_IDS, pair_tensor, perception_vector
from .vocab import Grammar, Vocab

__all__ = ["PolicyConfig", "PolicyInput", "PolicyNet", "Sample", "policy_input", "collate_inputs", "grammar_masks",
           "pad_sequences", "sequence_logprobs", "generate", "beam_plans", "save_policy", "load_policy", "FORMAT"]

FORMAT = "fuseagent.policy/1"


@dataclass(frozen=True)
class PolicyConfig:
    """Shape of the policy network.

    Attributes:
        image_size: side ``S`` of the downscaled pair.
        channels: output channels of the four stride-2 convolutions.
        task_dim: task embedding size.
        perception_dim: size of the projected perception features (0: the policy ignores them).
        embed_dim: token embedding size.
        hidden_dim: context and GRU state size.
        max_steps: most pre-fusion steps a plan may have.
    """

    image_size: int = 64
    channels: tuple[int, ...] = (16, 32, 48, 64)
    task_dim: int = 16
    perception_dim: int = 64
    embed_dim: int = 64
    hidden_dim: int = 128
    max_steps: int = 6

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PolicyConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if "channels" in known:
            known["channels"] = tuple(int(c) for c in known["channels"])
        return cls(**known)


@dataclass
class PolicyInput:
    """One pair as the policy sees it (numpy, not yet batched)."""

    pair: np.ndarray
    task: str
    perception: np.ndarray
    n_images: int = 2
    meta: dict[str, Any] = field(default_factory=dict)


def policy_input(images: Sequence[np.ndarray], task: str, report: Mapping[str, Any] | None = None,
                 findings: Any = None, roles: Sequence[str] | None = None, image_size: int = 64) -> PolicyInput:
    """Build a :class:`PolicyInput` from images (in role order) and perception.

    Example:
        >>> a = np.random.default_rng(0).random((32, 48)).astype(np.float32)
        >>> x = policy_input([a, a], "mef")
        >>> x.pair.shape, x.perception.shape == (PERCEPTION_SIZE,)
        ((4, 64, 64), True)
    """
    from ...protocol import roles_for

    if task not in TASK_IDS:
        raise InputError(f"unknown fusion task '{task}' (valid: {', '.join(TASK_IDS)})")
    roles = list(roles or roles_for(task, len(images)))
    return PolicyInput(pair_tensor(images, image_size), task, perception_vector(report, findings, task, roles),
                       len(roles))


def collate_inputs(inputs: Sequence[PolicyInput]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch tensors ``(pairs, task ids, perception)`` of inputs."""
    pairs = torch.from_numpy(np.stack([x.pair for x in inputs]))
    tasks = torch.tensor([TASK_IDS[x.task] for x in inputs], dtype=torch.long)
    perception = torch.from_numpy(np.stack([x.perception for x in inputs]))
    return pairs, tasks, perception


class PolicyNet(nn.Module):
    """CNN + task + perception context, GRU decoder over ``vocab``.

    Example:
        >>> from fuseagent.learned.policy.vocab import build_vocab
        >>> _ = torch.manual_seed(0)
        >>> net = PolicyNet(build_vocab(), PolicyConfig(image_size=32, channels=(8, 8, 8, 8), hidden_dim=32))
        >>> x = policy_input([np.zeros((32, 32), np.float32)] * 2, "ivif", image_size=32)
        >>> ctx = net.context(*collate_inputs([x]))
        >>> net(ctx, torch.tensor([[net.vocab.bos]])).shape[-1] == len(net.vocab)
        True
    """

    def __init__(self, vocab: Vocab, config: PolicyConfig | None = None):
        super().__init__()
        self.vocab = vocab
        self.config = config = config or PolicyConfig()
        layers: list[nn.Module] = []
        previous = 4
        for channels in config.channels:
            layers += [nn.Conv2d(previous, channels, 3, stride=2, padding=1), nn.GELU()]
            previous = channels
        self.encoder = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.task_embedding = nn.Embedding(len(TASK_IDS), config.task_dim)
        context_in = previous + config.task_dim
        if config.perception_dim > 0:
            self.perception = nn.Sequential(nn.Linear(PERCEPTION_SIZE, config.perception_dim), nn.GELU())
            context_in += config.perception_dim
        else:
            self.perception = None
        self.context_mlp = nn.Sequential(nn.Linear(context_in, config.hidden_dim), nn.GELU(),
                                         nn.Linear(config.hidden_dim, config.hidden_dim))
        self.initial = nn.Linear(config.hidden_dim, config.hidden_dim)
        self.token_embedding = nn.Embedding(len(vocab), config.embed_dim)
        self.gru = nn.GRU(config.embed_dim + config.hidden_dim, config.hidden_dim, batch_first=True)
        self.head = nn.Linear(config.hidden_dim, len(vocab))

    def context(self, pairs: torch.Tensor, tasks: torch.Tensor, perception: torch.Tensor) -> torch.Tensor:
        """Context vectors ``(B, hidden_dim)`` of a batch."""
        parts = [self.encoder(pairs), self.task_embedding(tasks)]
        if self.perception is not None:
            parts.append(self.perception(perception))
        return self.context_mlp(torch.cat(parts, dim=1))

    def initial_state(self, context: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.initial(context)).unsqueeze(0)

    def step(self, context: torch.Tensor, tokens: torch.Tensor,
             state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(B, T, V)`` after each of ``tokens`` ``(B, T)``, and the GRU state."""
        if state is None:
            state = self.initial_state(context)
        embedded = self.token_embedding(tokens)
        ctx = context.unsqueeze(1).expand(-1, tokens.shape[1], -1)
        out, state = self.gru(torch.cat([embedded, ctx], dim=2), state)
        return self.head(out), state

    def forward(self, context: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return self.step(context, tokens)[0]

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


def grammar_masks(grammars: Sequence[Grammar], sequences: Sequence[Sequence[int]], length: int) -> torch.Tensor:
    """Allowed-token masks ``(B, length - 1, V)`` for predicting ``sequences[b][t + 1]`` (padding rows all True)."""
    v = len(grammars[0].vocab)
    masks = np.ones((len(sequences), length - 1, v), bool)
    for b, (grammar, seq) in enumerate(zip(grammars, sequences)):
        for t in range(len(seq) - 1):
            masks[b, t] = grammar.allowed(seq[: t + 1])
    return torch.from_numpy(masks)


def pad_sequences(sequences: Sequence[Sequence[int]], pad: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded ids ``(B, T)`` and a float mask ``(B, T - 1)`` of the predicted positions."""
    length = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), length), pad, dtype=torch.long)
    weights = torch.zeros((len(sequences), length - 1))
    for b, seq in enumerate(sequences):
        ids[b, : len(seq)] = torch.tensor(list(seq), dtype=torch.long)
        weights[b, : len(seq) - 1] = 1.0
    return ids, weights


def sequence_logprobs(model: PolicyNet, context: torch.Tensor, ids: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Log-probabilities ``(B, T - 1)`` of ``ids[:, 1:]`` under the grammar-masked policy."""
    logits = model(context, ids[:, :-1])
    logits = logits.masked_fill(~masks, float("-inf"))
    logp = torch.log_softmax(logits, dim=-1)
    return logp.gather(2, ids[:, 1:].unsqueeze(2)).squeeze(2)


@dataclass
class Sample:
    """A decoded sequence, its per-token log-probabilities, and the alternatives' probabilities.

    Attributes:
        ids: token ids ``<bos>`` … ``<eos>``.
        logprobs: log-probability of each token after ``<bos>`` (under the grammar).
        step_probs: per position, the probability of every allowed token (for alternatives).
    """

    ids: list[int]
    logprobs: list[float]
    step_probs: list[dict[int, float]] = field(default_factory=list)


@torch.no_grad()
def generate(model: PolicyNet, inputs: Sequence[PolicyInput], *, temperature: float = 1.0, greedy: bool = False,
             generator: torch.Generator | None = None, max_length: int = 48) -> list[Sample]:
    """Decode one sequence per input under the grammar (greedy, or sampled at ``temperature``).

    Example:
        >>> from fuseagent.learned.policy.vocab import build_vocab, decode_actions
        >>> from fuseagent.protocol import validate
        >>> _ = torch.manual_seed(0)
        >>> net = PolicyNet(build_vocab(), PolicyConfig(image_size=32, channels=(8, 8, 8, 8), hidden_dim=32))
        >>> x = policy_input([np.zeros((32, 32), np.float32)] * 2, "mff", image_size=32)
        >>> s = generate(net, [x], generator=torch.Generator().manual_seed(1))[0]
        >>> len(validate(decode_actions(net.vocab, s.ids)[1], "mff")) >= 1
        True
    """
    was_training = model.training
    model.eval()
    vocab = model.vocab
    grammars = [Grammar(vocab, x.task, x.n_images, max_steps=model.config.max_steps) for x in inputs]
    context = model.context(*collate_inputs(inputs))
    samples = [Sample([vocab.bos], []) for _ in inputs]
    state = model.initial_state(context)
    last = torch.full((len(inputs), 1), vocab.bos, dtype=torch.long)
    done = [False] * len(inputs)
    for _ in range(max_length):
        logits, state = model.step(context, last, state)
        logits = logits[:, -1]
        next_ids = []
        for b, sample in enumerate(samples):
            if done[b]:
                next_ids.append(vocab.pad)
                continue
            allowed = torch.from_numpy(grammars[b].allowed(sample.ids))
            masked = logits[b].masked_fill(~allowed, float("-inf"))
            logp = torch.log_softmax(masked, dim=-1)
            if greedy:
                choice = int(torch.argmax(masked))
            else:
                probs = torch.softmax(masked / max(temperature, 1e-6), dim=-1)
                choice = int(torch.multinomial(probs, 1, generator=generator))
            probs_here = torch.exp(logp)
            sample.step_probs.append({int(i): float(probs_here[i]) for i in torch.nonzero(allowed).flatten()})
            sample.ids.append(choice)
            sample.logprobs.append(float(logp[choice]))
            if choice == vocab.eos:
                done[b] = True
            next_ids.append(choice)
        if all(done):
            break
        last = torch.tensor(next_ids, dtype=torch.long).unsqueeze(1)
    model.train(was_training)
    if not all(done):
        raise FuseAgentError(f"the policy did not finish a plan within {max_length} tokens")
    return samples


@torch.no_grad()
def beam_plans(model: PolicyNet, x: PolicyInput, width: int, *, max_length: int = 48) -> list[Sample]:
    """The ``width`` most probable plans of one input: tags decoded greedily, then a beam search over
    the actions (so the candidates differ in what they do, not in how they describe the pair).

    Candidates are ranked by the summed log-probability of their tokens; the first is the greedy
    plan whenever the greedy plan is the most probable one of the beam (it usually is).

    Example:
        >>> from fuseagent.learned.policy.vocab import build_vocab, decode_actions
        >>> _ = torch.manual_seed(0)
        >>> net = PolicyNet(build_vocab(), PolicyConfig(image_size=32, channels=(8, 8, 8, 8), hidden_dim=32))
        >>> x = policy_input([np.zeros((32, 32), np.float32)] * 2, "mff", image_size=32)
        >>> plans = beam_plans(net, x, 3)
        >>> len(plans), len({tuple(p.ids) for p in plans}), plans[0].logprobs[-1] <= 0.0
        (3, 3, True)
    """
    if width < 1:
        raise InputError(f"beam width must be at least 1, not {width}")
    was_training = model.training
    model.eval()
    vocab = model.vocab
    grammar = Grammar(vocab, x.task, x.n_images, max_steps=model.config.max_steps)
    context = model.context(*collate_inputs([x]))
    # greedy through the tags and the separator
    ids, logprobs = [vocab.bos], []
    state = model.initial_state(context)
    logits, state = model.step(context, torch.tensor([[vocab.bos]]), state)
    while True:
        allowed = torch.from_numpy(grammar.allowed(ids))
        logp = torch.log_softmax(logits[0, -1].masked_fill(~allowed, float("-inf")), dim=-1)
        choice = int(torch.argmax(logp))
        ids.append(choice)
        logprobs.append(float(logp[choice]))
        logits, state = model.step(context, torch.tensor([[choice]]), state)
        if choice == vocab.sep or len(ids) >= max_length:
            break
    # beam over the actions: (score, ids, logprobs, logits after the last token, state)
    beams = [(sum(logprobs), ids, logprobs, logits[0, -1], state)]
    finished: list[tuple[float, list[int], list[float]]] = []
    # log-probabilities only fall as a sequence grows: stop once no live beam can beat the width-th finished one
    while beams and (len(finished) < width or beams[0][0] > sorted(f[0] for f in finished)[-width]):
        expansions = []
        for score, b_ids, b_lp, b_logits, b_state in beams:
            allowed = torch.from_numpy(grammar.allowed(b_ids))
            logp = torch.log_softmax(b_logits.masked_fill(~allowed, float("-inf")), dim=-1)
            top = torch.topk(logp, min(width, int(allowed.sum())))
            for value, token in zip(top.values.tolist(), top.indices.tolist()):
                expansions.append((score + value, b_ids + [int(token)], b_lp + [value], b_state))
        expansions.sort(key=lambda e: -e[0])
        beams = []
        for score, e_ids, e_lp, e_state in expansions[: width]:
            if e_ids[-1] == vocab.eos:
                finished.append((score, e_ids, e_lp))
            elif len(e_ids) < max_length:
                out, new_state = model.step(context, torch.tensor([[e_ids[-1]]]), e_state)
                beams.append((score, e_ids, e_lp, out[0, -1], new_state))
    model.train(was_training)
    finished.sort(key=lambda f: -f[0])
    return [Sample(f_ids, f_lp) for _, f_ids, f_lp in finished[:width]]


def save_policy(path: str | os.PathLike, model: PolicyNet, meta: Mapping[str, Any] | None = None) -> Path:
    """Write the weights with their vocabulary, configuration and ``meta`` (training record)."""
    from ...execute import jsonable
    from ...io import atomic_write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "vocab": model.vocab.to_dict(), "config": model.config.to_dict(),
               "meta": jsonable(dict(meta or {})),
               "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))
    return path


def load_policy(path: str | os.PathLike) -> tuple[PolicyNet, dict[str, Any]]:
    """Load a policy written by :func:`save_policy` (local file only); returns it with its ``meta``.

    Raises:
        InputError: the file is missing or is not a policy.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"policy weights not found at '{path}' "
                         "(train them: fuseagent train sft --config configs/sft.json)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt or foreign file
        raise InputError(f"'{path}' is not a readable policy file: {type(exc).__name__}") from None
    if not isinstance(payload, Mapping) or payload.get("format") != FORMAT:
        raise InputError(f"'{path}' is not a policy file (format {FORMAT} expected)")
    model = PolicyNet(Vocab.from_dict(payload["vocab"]), PolicyConfig.from_dict(payload["config"]))
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, dict(payload.get("meta") or {})
