"""The trace report: one self-contained HTML page showing how a run went.

Like the seed paper's case-study figures, for any run: the inputs, the perception summary, the
planner's think/answer text, each step with its intermediate images and reflection scores
(rolled-back and failed attempts shown as such, reschedules and drops noted), and the final result.
Images are embedded as data URLs; there is no script and no external resource. Every text that
came from a planner or a model is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..io import atomic_write, resize_to

__all__ = ["render_report", "write_report", "thumbnail_uri"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d232a;max-width:1400px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d5dbe1;padding-bottom:4px}
.meta{color:#56606b;font-size:13px} code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12.5px}
pre{background:#f4f6f8;padding:10px;border-radius:6px;white-space:pre-wrap;word-break:break-word}
.row{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
figure{margin:0;text-align:center} figcaption{font-size:12px;color:#56606b;margin-top:2px}
img{border:1px solid #cfd6dd;border-radius:4px;display:block}
table{border-collapse:collapse;font-size:13px} td,th{border:1px solid #d5dbe1;padding:3px 8px;text-align:left}
th{background:#f4f6f8} .lv0{color:#9aa3ad} .lv3,.lv4,.lv5{font-weight:600;color:#b3261e}
.step{border:1px solid #d5dbe1;border-left:6px solid #8a949e;border-radius:6px;padding:10px 12px;margin:10px 0}
.step.accepted,.step.planned{border-left-color:#2e7d32} .step.rolled_back{border-left-color:#c77700;background:#fffaf2}
.step.failed{border-left-color:#b3261e;background:#fff5f5} .step.rescheduled,.step.dropped{border-left-color:#6750a4;background:#f7f5fc}
.badge{display:inline-block;font-size:11px;font-weight:700;padding:1px 7px;border-radius:10px;color:#fff;background:#8a949e;margin-right:6px}
.accepted .badge,.planned .badge{background:#2e7d32} .rolled_back .badge{background:#c77700} .failed .badge{background:#b3261e}
.rescheduled .badge,.dropped .badge{background:#6750a4} .rolled_back img,.failed img{opacity:.55;filter:grayscale(40%)}
.scores{font-size:12.5px;color:#37414b;margin:4px 0} .think{color:#37414b;font-style:italic}
"""


def thumbnail_uri(image: np.ndarray, max_side: int = 320, fmt: str = "JPEG") -> str:
    """A ``data:`` URI of an image downscaled to ``max_side`` (JPEG or PNG).

    Example:
        >>> thumbnail_uri(np.zeros((10, 10), np.float32))[:23]
        'data:image/jpeg;base64,'
    """
    from PIL import Image

    h, w = image.shape[:2]
    if max(h, w) > max_side:
        s = max_side / max(h, w)
        image = resize_to(image, (max(1, round(h * s)), max(1, round(w * s))))
    data = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(data).save(buffer, format=fmt, **({"quality": 88} if fmt == "JPEG" else {}))
    mime = "jpeg" if fmt == "JPEG" else fmt.lower()
    return f"data:image/{mime};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _figure(image: np.ndarray, caption: str, max_side: int) -> str:
    return f'<figure><img src="{thumbnail_uri(image, max_side)}" alt="{_e(caption)}"><figcaption>{_e(caption)}</figcaption></figure>'


def _fmt(value: Any) -> str:
    return "—" if value is None else f"{value:.4f}" if isinstance(value, float) else _e(value)


def _findings_table(findings: Mapping[str, Any]) -> str:
    images = findings.get("images", {})
    kinds = sorted({k for levels in images.values() for k in levels})
    if not kinds and not findings.get("relational"):
        return "<p class='meta'>No perception findings (the planner does not use perception, or none was run).</p>"
    out = []
    if kinds:
        out.append("<table><tr><th>image</th>" + "".join(f"<th>{_e(k)}</th>" for k in kinds) + "</tr>")
        for role, levels in images.items():
            cells = "".join(f"<td class='lv{int(levels.get(k, 0))}'>{int(levels.get(k, 0))}</td>" for k in kinds)
            out.append(f"<tr><td>{_e(role)}</td>{cells}</tr>")
        out.append("</table>")
    relational = findings.get("relational", {})
    if relational:
        out.append("<p>Between the images: " + ", ".join(
            f"<span class='lv{int(v)}'>{_e(k)} {int(v)}</span>" for k, v in sorted(relational.items())) + "</p>")
    out.append("<p class='meta'>Severity levels 0 (none) … 5 (very high).</p>")
    return "\n".join(out)


def _step_html(step: Any, states: Mapping[str, Any], thumb: int) -> str:
    status = step.status
    label = {"rolled_back": "rolled back"}.get(status, status)
    head = f"<span class='badge'>{_e(label)}</span> <b>#{step.index}</b> {_e(step.kind)}"
    if step.action:
        head += f" <code>{_e(step.action)}</code>"
    if step.attempt:
        head += f" <span class='meta'>(candidate {step.attempt + 1})</span>"
    parts = [f"<div class='step {_e(status)}'><div>{head}</div>"]
    if step.planner_text and step.kind != "plan":
        parts.append(f"<div class='meta'>{_e(step.planner_text)}</div>")
    if step.kind in ("step", "fusion"):
        score = (f"reward {_fmt(step.reward)}" if step.kind == "step" else f"HQA {_fmt(step.reward)}")
        comps = ", ".join(f"{_e(k)} {v:.4f}" for k, v in step.scores.items() if k != "total" and isinstance(v, float))
        timing = "cached" if step.cached else f"{step.seconds:.3f} s"
        parts.append(f"<div class='scores'>{score}{' (' + comps + ')' if comps else ''} · {timing}</div>")
    if step.error:
        parts.append(f"<pre>{_e(step.error)}</pre>")
    state = states.get(step.output_key) if step.output_key else None
    if state is not None and step.kind in ("step", "fusion"):
        parts.append("<div class='row'>" + "".join(_figure(im, role, thumb) for role, im in state.images.items()) + "</div>")
    parts.append("</div>")
    return "\n".join(parts)


def render_report(result: Any, *, title: str | None = None, inputs: list[str] | None = None,
                  thumb_side: int = 320, final_side: int = 720) -> str:
    """The HTML page of an :class:`~fuseagent.agent.AgentResult`.

    Args:
        result: the agent's result (keeps every intermediate state).
        title: page title; default names the task and planner.
        inputs: input file names to show (optional).
        thumb_side: longest side of step images; ``final_side``: of the fused image.
    """
    trace = result.trace()
    agent = trace["agent"]
    first = result.execution.states[0]
    title = title or f"fuseagent {result.task.upper()} run — planner {result.planner}"
    names = inputs or list(first.images)
    rolled = sum(1 for s in result.steps if s.status == "rolled_back")
    failed = sum(1 for s in result.steps if s.status == "failed")
    body = [f"<h1>{_e(title)}</h1>",
            f"<p class='meta'>final trajectory <code>{_e(result.trajectory)}</code><br>"
            f"{result.tool_calls} tool calls, {rolled} rolled back, {failed} failed · "
            f"{result.seconds:.2f} s total, {result.all_tool_seconds:.2f} s in tools"
            + (f" ({result.planning_tool_seconds:.2f} s of them while planning)" if result.planning_tool_seconds else "")
            + f", {result.overhead_seconds:.2f} s agent overhead (perception {result.perception_seconds:.2f} s, "
            f"planning {result.planning_seconds - result.planning_tool_seconds:.2f} s"
            + (" besides its tools" if result.planning_tool_seconds else "")
            + f", reflection {result.reflection_seconds:.2f} s)</p>"]
    body.append("<h2>Inputs</h2><div class='row'>" + "".join(
        _figure(im, f"{role}: {name}" if name != role else role, thumb_side)
        for (role, im), name in zip(first.images.items(), names)) + "</div>")
    for note in result.notes:
        body.append(f"<p class='meta'>note: {_e(note)}</p>")
    body.append("<h2>Perception</h2>" + _findings_table(agent["findings"]))
    if agent.get("perception"):
        body.append("<details><summary>full perception report</summary><pre>"
                    f"{_e(json.dumps(agent['perception'], indent=1)[:20000])}</pre></details>")
    body.append("<h2>Plan</h2>")
    body.append(f"<p>planner <b>{_e(result.planner)}</b></p>")
    if result.proposal.trajectory.think:
        body.append(f"<p class='think'>&lt;think&gt; {_e(result.proposal.trajectory.think)} &lt;/think&gt;</p>")
    body.append(f"<p>&lt;answer&gt; <code>{_e(result.proposal.trajectory.text())}</code> &lt;/answer&gt;</p>")
    if result.proposal.attempts:
        rows = "".join(f"<tr><td>{a.get('attempt')}</td><td><pre>{_e(a.get('reply', ''))}</pre></td>"
                       f"<td>{_e(a.get('error', ''))}</td></tr>" for a in result.proposal.attempts)
        body.append("<details open><summary>model exchanges</summary><table><tr><th>#</th><th>reply</th>"
                    f"<th>error</th></tr>{rows}</table></details>")
    body.append("<h2>Execution and reflection</h2>")
    body += [_step_html(s, result.states, thumb_side) for s in result.steps if s.kind != "plan"]
    body.append("<h2>Result</h2>" + _figure(result.fused, "fused", final_side))
    body.append("<details><summary>trace (JSON)</summary><pre>"
                f"{_e(json.dumps(trace, indent=1)[:50000])}</pre></details>")
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_report(result: Any, path: str | os.PathLike, **options: Any) -> Path:
    """Write :func:`render_report` to ``path`` (``.html``) atomically."""
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"report '{path}' must be an .html file")
    text = render_report(result, **options)

    def _write(tmp: str) -> None:
        Path(tmp).write_text(text, encoding="utf-8")

    return atomic_write(path, _write)
