"""The ``vlm`` planner: a vision-language model behind any OpenAI-compatible chat endpoint.

It sends the source images (downscaled PNG data URLs), the perception summary, the experience
notes and the tool library in a planner prompt modelled on FuseAgent's (think, then answer in the
action protocol), to ``POST {url}/chat/completions`` of vLLM, Ollama, LM Studio or any compatible
server running Qwen2.5-VL or another VLM. The reply is untrusted data: it is only parsed by the
protocol's regular expressions and validated against the tool registry, never executed or
evaluated. An invalid reply is answered with the parser's error and the question asked again; after
``max_retries`` re-asks, a timeout or a transport error, the planner falls back to ``expert``.

The API key comes from ``api_key`` or the ``FUSEAGENT_VLM_API_KEY`` environment variable.
"""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import time
import urllib.error
import urllib.request
from typing import Any

import numpy as np

from ..errors import FuseAgentError, InputError, ProtocolError
from ..io import resize_to
from ..protocol import _ACTION, _THINK, Action, Trajectory, parse_response, validate
from .base import PlanContext, Planner, PlannerCard, Proposal, create_planner, register_planner
from .library import library_text

__all__ = ["VLMPlanner", "SYSTEM_PROMPT", "build_messages", "image_data_url", "chat_completion", "lenient_parse", "VLMError"]

API_KEY_ENV = "FUSEAGENT_VLM_API_KEY"
DEFAULT_URL = "http://localhost:8000/v1"

SYSTEM_PROMPT = """You are an expert in image fusion. You plan how to fuse source images of one scene that \
were captured in the wild: they may be noisy, blurred, hazy, rainy, dark, over-exposed, low-resolution, \
striped, JPEG-compressed, misaligned, or contain moving objects. You have a library of expert tools. \
Plan a trajectory: first restore the degraded images (only the ones that need it) and align them, then \
fuse them with exactly one fusion model as the last action.

Answer in this format and nothing else:
<think>your short reasoning about the degradations and the order of the tools</think>
<answer>[task:TASK][model:MODEL][on:IMAGE] -> ... -> [task:fusion][model:MODEL]</answer>

Rules: use only the tasks and models listed; [on:IMAGE] names the image an action restores \
(omit it to act on every image); fusion is the last action and appears once."""


class VLMError(FuseAgentError):
    """The endpoint could not be reached, timed out, or answered something that is not a chat reply."""


def image_data_url(image: np.ndarray, max_side: int = 512) -> str:
    """A PNG ``data:`` URL of an image downscaled to ``max_side``.

    Example:
        >>> image_data_url(np.zeros((8, 8), np.float32))[:22]
        'data:image/png;base64,'
    """
    from PIL import Image

    h, w = image.shape[:2]
    if max(h, w) > max_side:
        scale = max_side / max(h, w)
        image = resize_to(image, (max(1, round(h * scale)), max(1, round(w * scale))))
    data = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(data).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _perception_text(context: PlanContext) -> str:
    lines = []
    for role in context.roles:
        found = {k: v for k, v in context.findings.images.get(role, {}).items() if v > 0}
        summary = ", ".join(f"{k} level {v}/5" for k, v in sorted(found.items())) or "no degradation found"
        lines.append(f"- image '{role}': {summary}")
    rel = {k: v for k, v in context.findings.relational.items() if v > 0}
    if rel:
        lines.append("- between the images: " + ", ".join(f"{k} level {v}/5" for k, v in sorted(rel.items())))
    return "\n".join(lines)


def _task_text(task: str, roles: list[str]) -> str:
    if task == "ivif":
        return "infrared-visible image fusion (IVIF). Image 'ir' is the infrared image, 'vis' the visible one."
    what = "multi-exposure (MEF)" if task == "mef" else "multi-focus (MFF)"
    return f"{what} image fusion of {len(roles)} images named {', '.join(repr(r) for r in roles)} in input order."


def build_messages(context: PlanContext, image_side: int = 512, include_images: bool = True) -> list[dict[str, Any]]:
    """The chat messages of the planner prompt for a context.

    Example:
        >>> from fuseagent.plan.base import PlanContext
        >>> msgs = build_messages(PlanContext.create("ivif"), include_images=False)
        >>> [m["role"] for m in msgs], "[task:fusion]" in msgs[1]["content"][0]["text"]
        (['system', 'user'], True)
    """
    parts = [f"Task: {_task_text(context.task, context.roles)}",
             "Perception report (severity 0 = none … 5 = very high):", _perception_text(context),
             "Tool library:", library_text(context.task)]
    if context.experience is not None:
        notes = context.experience.prompt_notes(context.task)
        if notes:
            parts += ["Experience from earlier runs:", notes]
    content: list[dict[str, Any]] = [{"type": "text", "text": "\n".join(parts)}]
    if include_images:
        for role in context.roles:
            if role in context.images:
                content.append({"type": "text", "text": f"Image '{role}':"})
                content.append({"type": "image_url",
                                "image_url": {"url": image_data_url(context.images[role], image_side)}})
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": content}]


def chat_completion(url: str, model: str, messages: list[dict[str, Any]], *, api_key: str | None = None,
                    timeout: float = 60.0, max_tokens: int = 512, temperature: float = 0.0) -> str:
    """POST a chat completion and return the reply text.

    Raises:
        VLMError: unreachable endpoint, timeout, HTTP error or a body that is not a chat reply.
    """
    body = json.dumps({"model": model, "messages": messages, "max_tokens": max_tokens,
                       "temperature": temperature}).encode()
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(url.rstrip("/") + "/chat/completions", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (user-given URL)
            raw = response.read(1 << 22)
    except urllib.error.HTTPError as exc:
        raise VLMError(f"VLM endpoint answered HTTP {exc.code}") from None
    except (socket.timeout, TimeoutError):
        raise VLMError(f"VLM endpoint timed out after {timeout:g}s") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, (socket.timeout, TimeoutError)):
            raise VLMError(f"VLM endpoint timed out after {timeout:g}s") from None
        raise VLMError(f"VLM endpoint unreachable: {reason}") from None
    try:
        data = json.loads(raw)
        content = data["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise VLMError("VLM endpoint reply is not an OpenAI chat completion") from None
    if isinstance(content, list):  # some servers return content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str):
        raise VLMError("VLM reply content is not text")
    return content


def lenient_parse(reply: str) -> Trajectory:
    """Parse a reply; without an ``<answer>`` tag, take the actions written anywhere in it.

    Models often wrap the chain in prose or code fences. The text is only matched against the
    protocol's action pattern: nothing in it is executed.

    Example:
        >>> lenient_parse("Sure! Plan: `[task:denoise][model:nlm][on:vis] -> [task:fusion][model:gff]`.").text()
        '[task:denoise][model:nlm][on:vis] -> [task:fusion][model:gff]'
    """
    try:
        return parse_response(reply)
    except ProtocolError as exc:
        if exc.reason != "syntax" or "<answer>" in reply.lower():
            raise  # a malformed <answer> is re-asked, not guessed at
        found = [Action(m["task"].lower(), m["model"].lower(), m["on"].lower() if m["on"] else None)
                 for m in _ACTION.finditer(reply)]
        if not found:
            raise
        think = _THINK.search(reply)
        return Trajectory(tuple(found), think.group(1).strip() if think else "")


@register_planner
class VLMPlanner(Planner):
    """Zero-shot planning by a VLM behind an OpenAI-compatible endpoint, with re-asks and a fallback.

    Args:
        url: base URL of the API (``http://host:port/v1``).
        model: model name the server knows (``Qwen/Qwen2.5-VL-7B-Instruct``).
        api_key: bearer key; default ``$FUSEAGENT_VLM_API_KEY``.
        timeout: seconds per request.
        max_retries: re-asks after an invalid answer.
        image_side: longest side of the images sent.
        fallback: planner used when no valid answer comes (``expert``; None raises instead).
    """

    card = PlannerCard("vlm", "zero-shot VLM behind an OpenAI-compatible chat endpoint (falls back to expert)")

    def __init__(self, url: str = DEFAULT_URL, model: str = "Qwen/Qwen2.5-VL-7B-Instruct", api_key: str | None = None,
                 timeout: float = 60.0, max_retries: int = 2, image_side: int = 512, fallback: str | None = "expert",
                 max_tokens: int = 512):
        if not str(url).startswith(("http://", "https://")):
            raise InputError(f"VLM url must start with http:// or https://, got '{url}'")
        if timeout <= 0:
            raise InputError("VLM timeout must be positive")
        self.url = str(url)
        self.model = str(model)
        self.api_key = api_key if api_key is not None else os.environ.get(API_KEY_ENV) or None
        self.timeout = float(timeout)
        self.max_retries = max(0, int(max_retries))
        self.image_side = int(image_side)
        self.fallback = fallback
        self.max_tokens = int(max_tokens)

    def __repr__(self) -> str:  # never show the key
        return f"VLMPlanner(url={self.url!r}, model={self.model!r})"

    def plan(self, context: PlanContext) -> Trajectory:
        return self.propose(context).trajectory

    def propose(self, context: PlanContext) -> Proposal:
        messages = build_messages(context, self.image_side)
        attempts: list[dict[str, Any]] = []
        for attempt in range(self.max_retries + 1):
            t0 = time.perf_counter()
            try:
                reply = chat_completion(self.url, self.model, messages, api_key=self.api_key, timeout=self.timeout,
                                        max_tokens=self.max_tokens)
            except VLMError as exc:
                attempts.append({"attempt": attempt, "error": str(exc), "seconds": round(time.perf_counter() - t0, 3)})
                break  # the endpoint is down or too slow: asking again would only wait longer
            record: dict[str, Any] = {"attempt": attempt, "reply": reply[:4000],
                                      "seconds": round(time.perf_counter() - t0, 3)}
            attempts.append(record)
            try:
                trajectory = lenient_parse(reply)
                validate(list(trajectory.actions), context.task, len(context.roles))
            except ProtocolError as exc:
                record["error"] = str(exc)
                messages = messages + [
                    {"role": "assistant", "content": reply[:4000]},
                    {"role": "user", "content": f"Your answer cannot be used: {exc}. Answer again in the format "
                                                "<think>…</think><answer>[task:…][model:…] -> … -> "
                                                "[task:fusion][model:…]</answer> using only the listed tools."}]
                continue
            return Proposal(trajectory, trajectory.response(), self.name, attempts)
        if self.fallback is None:
            last = attempts[-1].get("error", "no answer") if attempts else "no answer"
            raise VLMError(f"the VLM gave no valid plan: {last}")
        fallback = create_planner(self.fallback).propose(context)
        reason = attempts[-1].get("error", "") if attempts else ""
        think = f"VLM planning failed ({reason}); fell back to {fallback.planner}. {fallback.trajectory.think}"
        trajectory = Trajectory(fallback.trajectory.actions, think)
        return Proposal(trajectory, trajectory.response(), f"{self.name}->{fallback.planner}", attempts)
