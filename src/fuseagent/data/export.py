"""``fuseagent dataset export``: the dataset in the formats of SFT and RL frameworks.

=============== ===================================================================================
``llamafactory`` ShareGPT JSON for LLaMA-Factory SFT (Qwen2.5-VL): ``messages`` (system, user with one
                 ``<image>`` token per input image, assistant ``<think>rationale</think><answer>…``)
                 and ``images``, plus the ``dataset_info.json`` entry
``trl``          JSONL for TRL's ``GRPOTrainer``: a conversational ``prompt`` whose user turn holds one
                 ``{"type": "image"}`` part per image, ``images`` (paths), ``ground_truth``
``easyr1``       JSONL for EasyR1: ``problem`` (with ``<image>`` tokens), ``answer`` (the ground
                 truth), ``images``
``verl``         verl's RL schema: ``data_source``, ``prompt`` (chat with ``<image>`` tokens),
                 ``images`` (``{"image": "file://…"}``), ``ability``, ``reward_model``
                 (``style``, ``ground_truth``), ``extra_info``; Parquet when pyarrow is installed,
                 else JSONL of the same rows
=============== ===================================================================================

The prompt is the ``vlm`` planner's own (:func:`fuseagent.plan.vlm.build_messages`: task, perception
summary, tool library), so a model trained on it is asked the same question at inference. The
ground truth of the RL formats is a JSON string read by :func:`fuseagent.rewards.compute_score`:
the task, the input images and the best trajectory found with its HQA.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..io import atomic_write

__all__ = ["FORMATS", "export_dataset", "validate_export", "prompt_parts", "ground_truth", "IMAGE_TOKEN"]

FORMATS = ("llamafactory", "trl", "easyr1", "verl")
IMAGE_TOKEN = "<image>"
DATASET_NAME = "fuseagent_planner"


def prompt_parts(record: Mapping[str, Any]) -> tuple[str, str, list[str]]:
    """``(system, user_text, image_labels)`` of a record's planner prompt.

    ``user_text`` is the ``vlm`` planner's text; ``image_labels`` the line introducing each image
    (``Image 'ir':``), in input order.
    """
    from ..plan.base import PlanContext
    from ..plan.findings import Findings
    from ..plan.vlm import SYSTEM_PROMPT, build_messages

    context = PlanContext(task=record["task"], roles=list(record["roles"]),
                          findings=Findings.from_dict(record.get("findings") or {}))
    user = build_messages(context, include_images=False)[1]["content"][0]["text"]
    return SYSTEM_PROMPT, user, [f"Image '{role}':" for role in record["roles"]]


def _with_tokens(user: str, labels: Sequence[str]) -> str:
    return user + "\n" + "\n".join(f"{label} {IMAGE_TOKEN}" for label in labels)


def ground_truth(record: Mapping[str, Any], images: Sequence[str], root: str) -> str:
    """The JSON ground truth of a record for :func:`fuseagent.rewards.compute_score`."""
    return json.dumps({"format": "fuseagent.reward/1", "key": record["key"], "task": record["task"],
                       "roles": list(record["roles"]), "images": list(images), "root": root,
                       "best": record["best"]["trajectory"], "best_hqa": record["best"]["hqa"]}, sort_keys=True)


def _records(ds: str | os.PathLike) -> list[dict[str, Any]]:
    from .build import load_records

    folder = Path(ds)
    full = folder / "dataset.jsonl"
    if full.is_file():
        records = [json.loads(line) for line in full.read_text().splitlines() if line.strip()]
    elif (folder / "records").is_dir():
        records = load_records(folder)
    else:
        raise InputError(f"'{ds}' is not a dataset folder (no dataset.jsonl nor records/)")
    usable = [r for r in records if not r.get("error")]
    if not usable:
        raise InputError(f"'{ds}' holds no usable record")
    return usable


def _image_paths(record: Mapping[str, Any], out: Path, copy_images: bool) -> list[str]:
    sources = [Path(record["suite_dir"]) / record["files"][role] for role in record["roles"]]
    if not copy_images:
        return [str(p.resolve()) for p in sources]
    paths = []
    for role, src in zip(record["roles"], sources):
        rel = Path("images") / record["key"].replace("/", "__") / f"{role}{src.suffix}"
        dst = out / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.exists():
            shutil.copy2(src, dst)
        paths.append(rel.as_posix())
    return paths


def _write_json(path: Path, data: Any) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n"))


def _write_jsonl(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def _sft_examples(record: Mapping[str, Any], with_perturbed: bool, margin: float) -> list[tuple[str, str]]:
    """``(kind, assistant response)`` of the SFT examples of a record."""
    from ..protocol import format_response, parse_actions

    examples = [("best", record["response"])]
    if with_perturbed:
        best = record["best"]["hqa"]
        for p in record.get("perturbed", []):
            if p.get("hqa") is not None and p["hqa"] >= best - margin and p.get("rationale"):
                examples.append((p["kind"], format_response(parse_actions(p["trajectory"]), p["rationale"])))
    return examples


def export_dataset(ds: str | os.PathLike, fmt: str, out: str | os.PathLike, *, copy_images: bool = False,
                   with_perturbed: bool = False, margin: float = 0.02, name: str = DATASET_NAME) -> dict[str, Any]:
    """Write a dataset in a framework's format; returns ``{"format", "files", "rows"}``.

    Args:
        ds: dataset folder (``fuseagent dataset build`` output).
        fmt: ``llamafactory``, ``trl``, ``easyr1`` or ``verl``.
        out: output folder.
        copy_images: copy the input images into ``out/images`` and refer to them relatively
            (LLaMA-Factory resolves them against its ``dataset_dir``); default: absolute paths.
        with_perturbed: SFT only: add the perturbed trajectories scoring within ``margin`` of the
            best as extra examples.
        name: dataset name (LLaMA-Factory ``dataset_info.json`` key; file stem).

    Raises:
        InputError: unknown format or not a dataset.
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown export format '{fmt}' (valid: {', '.join(FORMATS)})")
    records = _records(ds)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    root = str(folder.resolve())
    files: list[str] = []
    rows: list[dict[str, Any]] = []
    for index, record in enumerate(records):
        system, user, labels = prompt_parts(record)
        images = _image_paths(record, folder, copy_images)
        truth = ground_truth(record, images, root)
        if fmt == "llamafactory":
            for kind, response in _sft_examples(record, with_perturbed, margin):
                rows.append({"messages": [{"role": "system", "content": system},
                                          {"role": "user", "content": _with_tokens(user, labels)},
                                          {"role": "assistant", "content": response}],
                             "images": images, "key": record["key"], "kind": kind})
        elif fmt == "trl":
            content: list[dict[str, Any]] = [{"type": "text", "text": user}]
            for label in labels:
                content += [{"type": "text", "text": label}, {"type": "image"}]
            rows.append({"prompt": [{"role": "system", "content": [{"type": "text", "text": system}]},
                                    {"role": "user", "content": content}],
                         "images": images, "ground_truth": truth, "task": record["task"], "key": record["key"]})
        elif fmt == "easyr1":
            rows.append({"problem": system + "\n\n" + _with_tokens(user, labels), "answer": truth,
                         "images": images, "key": record["key"]})
        else:
            absolute = [p if Path(p).is_absolute() else str(folder.resolve() / p) for p in images]
            rows.append({"data_source": f"fuseagent/{record['task']}",
                         "prompt": [{"role": "system", "content": system},
                                    {"role": "user", "content": _with_tokens(user, labels)}],
                         "images": [{"image": f"file://{p}"} for p in absolute],
                         "ability": "image_fusion_planning",
                         "reward_model": {"style": "rule", "ground_truth": truth},
                         "extra_info": {"index": index, "key": record["key"], "task": record["task"],
                                        "split": "train"}})
    if fmt == "llamafactory":
        data_file = folder / f"{name}.json"
        _write_json(data_file, rows)
        info_path = folder / "dataset_info.json"
        info = json.loads(info_path.read_text()) if info_path.exists() else {}
        info[name] = {"file_name": data_file.name, "formatting": "sharegpt",
                      "columns": {"messages": "messages", "images": "images"},
                      "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                               "assistant_tag": "assistant", "system_tag": "system"}}
        _write_json(info_path, info)
        files = [data_file.name, info_path.name]
    elif fmt == "verl" and _has_pyarrow():
        import pyarrow as pa
        import pyarrow.parquet as pq

        data_file = folder / f"{name}.parquet"
        table = pa.Table.from_pylist(rows)
        atomic_write(data_file, lambda tmp: pq.write_table(table, tmp))
        files = [data_file.name]
    else:
        data_file = folder / f"{name}.jsonl"
        _write_jsonl(data_file, rows)
        files = [data_file.name]
    return {"format": fmt, "files": files, "rows": len(rows), "out": root}


def _has_pyarrow() -> bool:
    import importlib.util

    return importlib.util.find_spec("pyarrow") is not None


def _load_rows(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    if path.suffix == ".json":
        return json.loads(path.read_text())
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _check_truth(text: Any, where: str, problems: list[str]) -> None:
    try:
        truth = json.loads(text)
        missing = {"task", "images", "best", "best_hqa"} - set(truth)
        if missing:
            problems.append(f"{where}: ground truth lacks {sorted(missing)}")
    except (TypeError, ValueError):
        problems.append(f"{where}: ground truth is not JSON")


def _check_images(images: Any, root: Path, where: str, problems: list[str]) -> int:
    if not isinstance(images, list) or not images:
        problems.append(f"{where}: images must be a non-empty list")
        return 0
    for image in images:
        path = image.get("image", "") if isinstance(image, dict) else image
        path = str(path).removeprefix("file://")
        if not (root / path).is_file():
            problems.append(f"{where}: image not found: {path}")
    return len(images)


def validate_export(out: str | os.PathLike, fmt: str, name: str = DATASET_NAME) -> list[str]:
    """Problems of an export against its framework's documented schema (empty when valid).

    Checks field names and types, one image token (or ``{"type": "image"}`` part) per image,
    message roles, that every image exists, and that the ground truth parses.
    """
    folder = Path(out)
    problems: list[str] = []
    if fmt == "llamafactory":
        info_path = folder / "dataset_info.json"
        if not info_path.is_file():
            return ["dataset_info.json is missing"]
        entry = json.loads(info_path.read_text()).get(name)
        if not entry:
            return [f"dataset_info.json has no '{name}' entry"]
        if entry.get("formatting") != "sharegpt" or entry.get("columns", {}).get("images") != "images" \
                or entry.get("columns", {}).get("messages") != "messages":
            problems.append("dataset_info entry: formatting sharegpt with messages/images columns expected")
        tags = entry.get("tags", {})
        if (tags.get("role_tag"), tags.get("content_tag"), tags.get("user_tag"), tags.get("assistant_tag")) != \
                ("role", "content", "user", "assistant"):
            problems.append("dataset_info entry: tags must map role/content/user/assistant")
        data_file = folder / entry.get("file_name", "")
        if not data_file.is_file():
            return problems + [f"data file {data_file.name} is missing"]
        rows = _load_rows(data_file)
        for i, row in enumerate(rows):
            where = f"row {i}"
            messages = row.get("messages")
            if not isinstance(messages, list) or len(messages) < 2:
                problems.append(f"{where}: messages must be a list of at least 2 turns")
                continue
            turns = [m.get("role") for m in messages if m.get("role") != "system"]
            if turns[::2] != ["user"] * len(turns[::2]) or turns[1::2] != ["assistant"] * len(turns[1::2]) \
                    or turns[-1] != "assistant":
                problems.append(f"{where}: turns must alternate user/assistant and end with the assistant")
            if any(m.get("role") == "system" for m in messages[1:]):
                problems.append(f"{where}: the system turn must come first")
            tokens = sum(str(m.get("content", "")).count(IMAGE_TOKEN) for m in messages)
            n = _check_images(row.get("images"), folder, where, problems)
            if tokens != n:
                problems.append(f"{where}: {tokens} {IMAGE_TOKEN} tokens for {n} images")
        return problems
    candidates = [folder / f"{name}.{ext}" for ext in ("parquet", "jsonl")]
    data_file = next((p for p in candidates if p.is_file()), None)
    if data_file is None:
        return [f"no {name}.jsonl or {name}.parquet in {folder}"]
    rows = _load_rows(data_file)
    required = {"trl": {"prompt", "images", "ground_truth"}, "easyr1": {"problem", "answer", "images"},
                "verl": {"data_source", "prompt", "images", "ability", "reward_model", "extra_info"}}.get(fmt)
    if required is None:
        return [f"unknown export format '{fmt}'"]
    for i, row in enumerate(rows):
        where = f"row {i}"
        missing = required - set(row)
        if missing:
            problems.append(f"{where}: missing fields {sorted(missing)}")
            continue
        n = _check_images(row["images"], folder, where, problems)
        if fmt == "trl":
            prompt = row["prompt"]
            if not isinstance(prompt, list) or not all({"role", "content"} <= set(m) for m in prompt):
                problems.append(f"{where}: prompt must be a list of {{role, content}} messages")
                continue
            parts = [p for m in prompt for p in (m["content"] if isinstance(m["content"], list) else [])]
            images = sum(1 for p in parts if p.get("type") == "image")
            if images != n:
                problems.append(f"{where}: {images} image parts for {n} images")
            _check_truth(row["ground_truth"], where, problems)
        elif fmt == "easyr1":
            tokens = str(row["problem"]).count(IMAGE_TOKEN)
            if tokens != n:
                problems.append(f"{where}: {tokens} {IMAGE_TOKEN} tokens for {n} images")
            _check_truth(row["answer"], where, problems)
        else:
            prompt = row["prompt"]
            if not isinstance(prompt, list) or not all(isinstance(m.get("content"), str) for m in prompt):
                problems.append(f"{where}: prompt must be a list of chat messages with text content")
                continue
            tokens = sum(m["content"].count(IMAGE_TOKEN) for m in prompt)
            if tokens != n:
                problems.append(f"{where}: {tokens} {IMAGE_TOKEN} tokens for {n} images")
            if not all(isinstance(im, dict) and "image" in im for im in row["images"]):
                problems.append(f"{where}: images must be {{'image': path}} entries")
            reward = row["reward_model"]
            if not isinstance(reward, dict) or {"style", "ground_truth"} - set(reward):
                problems.append(f"{where}: reward_model needs style and ground_truth")
            else:
                _check_truth(reward["ground_truth"], where, problems)
    return problems
