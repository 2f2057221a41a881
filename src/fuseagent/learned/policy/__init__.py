"""The learned planning policy: a compact vision-language policy that writes the action protocol.

* :mod:`.vocab` — the token vocabulary (perceived-degradation tags, protocol actions) and the
  grammar that keeps decoding valid;
* :mod:`.features` — what the policy sees (downscaled pair, task, perception features);
* :mod:`.model` — the network, grammar-masked log-probabilities, decoding, save / load.

Trained by :mod:`fuseagent.train.sft` (supervised, on the data engine's searched trajectories) and
:mod:`fuseagent.train.grpo` (GRPO-F with intrinsic and relational rewards); used by the ``learned``
planner (:mod:`fuseagent.plan.learned`).
"""

from __future__ import annotations

from .features import PERCEPTION_SIZE, TASK_IDS, pair_tensor, perception_vector
from .model import (PolicyConfig, PolicyInput, PolicyNet, Sample, beam_plans, generate, load_policy, policy_input, save_policy,
                    sequence_logprobs)
from .vocab import Grammar, Vocab, build_vocab, decode_actions, encode_response, findings_from_tags, tags_from_findings

__all__ = ["PERCEPTION_SIZE", "TASK_IDS", "Grammar", "PolicyConfig", "PolicyInput", "PolicyNet", "Sample", "Vocab",
           "beam_plans", "build_vocab", "decode_actions", "encode_response", "findings_from_tags", "generate", "load_policy",
           "pair_tensor", "perception_vector", "policy_input", "save_policy", "sequence_logprobs",
           "tags_from_findings"]
