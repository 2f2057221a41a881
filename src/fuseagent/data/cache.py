"""Content-hash cache of tool calls, in memory and on disk, and the pooled tools that use it.

A tool's output is a pure function of its inputs' content and its parameters, so a call is keyed
by the tool name, the hashes of the arrays given to it (the image, the reference of a pair tool,
every image of a fusion, an inpainting mask) and its other parameters. :class:`CachedTool` wraps
a tool instance of the :class:`~fuseagent.execute.Environment`'s model pool and answers a call
from :class:`ToolCallCache` when it was seen before — in this search, in an earlier pair, or in
an earlier run (the disk layer). Below the environment's own step cache (whole states), this
catches the redundancy a step cache cannot see: two orders of steps on different images, or
``denoise`` on every image after ``denoise`` on one of them, call the tool on the same image.

Every call key is also entered in a :class:`CallLedger`, which counts the *distinct* calls a
search needed. That count does not depend on what the caches held, so it is the same in every
run, on every worker.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..execute import image_hash, jsonable
from ..tools.base import ToolResult

__all__ = ["ToolCallCache", "CachedTool", "CallLedger", "call_key", "DEFAULT_MEMORY_BYTES", "DEFAULT_DISK_BYTES"]

DEFAULT_MEMORY_BYTES = 512 << 20
DEFAULT_DISK_BYTES = 2 << 30


def _digest_value(value: Any, h: Any) -> None:
    if isinstance(value, np.ndarray):
        h.update(b"A" + image_hash(value).encode())
    elif isinstance(value, (list, tuple)) and any(isinstance(v, np.ndarray) for v in value):
        h.update(b"L%d" % len(value))
        for v in value:
            _digest_value(v, h)
    else:
        h.update(b"J" + json.dumps(jsonable(value), sort_keys=True).encode())


def call_key(tool: str, args: Sequence[Any], params: Mapping[str, Any]) -> str:
    """Content key of a tool call: the tool, its array arguments by content, its parameters.

    Example:
        >>> a = np.zeros((4, 4), np.float32)
        >>> call_key("denoise.nlm", [a], {}) == call_key("denoise.nlm", [a.copy()], {})
        True
        >>> call_key("denoise.nlm", [a], {}) == call_key("denoise.tv", [a], {})
        False
    """
    h = hashlib.blake2b(digest_size=20)
    h.update(tool.encode())
    for arg in args:
        _digest_value(arg, h)
    for name in sorted(params):
        h.update(b"P" + name.encode())
        _digest_value(params[name], h)
    return h.hexdigest()


def _result_bytes(result: ToolResult) -> int:
    return int(result.image.nbytes + sum(np.asarray(m).nbytes for m in result.masks.values()))


@dataclass
class CallLedger:
    """Distinct tool calls requested during one search (deterministic: independent of the caches).

    Attributes:
        keys: call keys seen, in first-request order.
        requests: every request, repeats included.
    """

    keys: dict[str, str] = field(default_factory=dict)
    requests: int = 0

    def enter(self, key: str, tool: str) -> None:
        self.requests += 1
        self.keys.setdefault(key, tool)

    @property
    def distinct(self) -> int:
        """Tool executions the search needed (each distinct call once)."""
        return len(self.keys)

    def by_tool(self) -> dict[str, int]:
        """Distinct calls per tool name."""
        counts: dict[str, int] = {}
        for tool in self.keys.values():
            counts[tool] = counts.get(tool, 0) + 1
        return dict(sorted(counts.items()))


class ToolCallCache:
    """LRU cache of tool results by :func:`call_key`: a bounded memory layer over an optional
    bounded disk layer shared by workers and runs.

    Disk entries are written to a temporary name then renamed, so concurrent workers and a run
    killed mid-write never leave a partial entry; the least recently used entries are deleted
    when the folder grows past ``disk_bytes``.

    Args:
        directory: folder of the disk layer (None: memory only).
        memory_bytes: bound of the memory layer.
        disk_bytes: bound of the disk layer.

    Example:
        >>> cache = ToolCallCache()
        >>> cache.put("k", ToolResult(np.ones((2, 2), np.float32), {"sigma": 0.1}))
        >>> cache.get("k").info, cache.get("missing")
        ({'sigma': 0.1}, None)
    """

    def __init__(self, directory: str | os.PathLike | None = None, memory_bytes: int = DEFAULT_MEMORY_BYTES,
                 disk_bytes: int = DEFAULT_DISK_BYTES):
        self.directory = Path(directory) if directory is not None else None
        self.memory_bytes = int(memory_bytes)
        self.disk_bytes = int(disk_bytes)
        self._memory: OrderedDict[str, ToolResult] = OrderedDict()
        self._bytes = 0
        self._disk_estimate: int | None = None
        self._lock = threading.Lock()
        self.memory_hits = 0
        self.disk_hits = 0
        self.misses = 0
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)

    # -- memory ------------------------------------------------------------------------------
    def _remember(self, key: str, result: ToolResult) -> None:
        size = _result_bytes(result)
        if size > self.memory_bytes or key in self._memory:
            return
        self._memory[key] = result
        self._bytes += size
        while self._bytes > self.memory_bytes:
            _, old = self._memory.popitem(last=False)
            self._bytes -= _result_bytes(old)

    # -- disk --------------------------------------------------------------------------------
    def _path(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / key[:2] / f"{key}.npz"

    def _read(self, key: str) -> ToolResult | None:
        if self.directory is None:
            return None
        path = self._path(key)
        try:
            with np.load(path, allow_pickle=False) as data:
                image = np.array(data["image"])
                info = json.loads(bytes(data["info"]).decode())
                masks = {name[5:]: np.array(data[name]) for name in data.files if name.startswith("mask:")}
            os.utime(path)  # recently used
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            return None
        return ToolResult(image, info, masks)

    def _write(self, key: str, result: ToolResult) -> None:
        if self.directory is None:
            return
        path = self._path(key)
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"image": result.image,
                  "info": np.frombuffer(json.dumps(jsonable(result.info)).encode(), dtype=np.uint8)}
        arrays.update({f"mask:{name}": np.asarray(m) for name, m in result.masks.items()})
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(buffer.getvalue())
        os.replace(tmp, path)
        if self._disk_estimate is None:
            self._disk_estimate = self.disk_usage()
        else:
            self._disk_estimate += len(buffer.getvalue())
        if self._disk_estimate > self.disk_bytes:
            self.evict()

    def disk_usage(self) -> int:
        """Bytes held by the disk layer."""
        if self.directory is None:
            return 0
        return sum(p.stat().st_size for p in self.directory.glob("*/*.npz"))

    def evict(self, target: float = 0.8) -> int:
        """Delete least recently used disk entries until the layer holds ``target`` × its bound;
        returns the number deleted (entries another worker deleted first are skipped)."""
        if self.directory is None:
            return 0
        entries = []
        for p in self.directory.glob("*/*.npz"):
            try:
                st = p.stat()
            except OSError:
                continue
            entries.append((st.st_mtime, st.st_size, p))
        entries.sort()
        total = sum(e[1] for e in entries)
        removed = 0
        for _, size, p in entries:
            if total <= target * self.disk_bytes:
                break
            try:
                p.unlink()
                removed += 1
            except OSError:
                pass
            total -= size
        self._disk_estimate = total
        return removed

    # -- interface ---------------------------------------------------------------------------
    def get(self, key: str) -> ToolResult | None:
        """The cached result of a call (memory, then disk), or None."""
        with self._lock:
            hit = self._memory.get(key)
            if hit is not None:
                self._memory.move_to_end(key)
                self.memory_hits += 1
                return hit
        hit = self._read(key)
        with self._lock:
            if hit is None:
                self.misses += 1
                return None
            self.disk_hits += 1
            self._remember(key, hit)
        return hit

    def put(self, key: str, result: ToolResult) -> None:
        """Store a result in memory and on disk."""
        with self._lock:
            self._remember(key, result)
        self._write(key, result)

    def stats(self) -> dict[str, int]:
        return {"memory_hits": self.memory_hits, "disk_hits": self.disk_hits, "misses": self.misses,
                "memory_entries": len(self._memory), "memory_bytes": self._bytes}


class CachedTool:
    """A pooled tool whose calls go through a :class:`ToolCallCache` and are entered in a ledger.

    It is called exactly like the tool it wraps (``tool(image, **params)``,
    ``tool(moving, reference, **params)``, ``tool([images], **params)``) and exposes its ``card``.

    Attributes:
        executed: calls actually run by the tool (cache misses).
        seconds: time spent running the tool.
    """

    def __init__(self, name: str, tool: Any, cache: ToolCallCache):
        self.name = name
        self.tool = tool
        self.card = tool.card
        self.cache = cache
        self.ledger: CallLedger | None = None
        self.executed = 0
        self.seconds = 0.0

    def __call__(self, *args: Any, **params: Any) -> ToolResult:
        key = call_key(self.name, args, params)
        if self.ledger is not None:
            self.ledger.enter(key, self.name)
        hit = self.cache.get(key)
        if hit is not None:
            return ToolResult(hit.image, dict(hit.info), dict(hit.masks))
        t0 = time.perf_counter()
        result = self.tool(*args, **params)
        self.seconds += time.perf_counter() - t0
        self.executed += 1
        self.cache.put(key, result)
        return ToolResult(result.image, dict(result.info), dict(result.masks))
