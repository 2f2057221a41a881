"""Executors of the dataset build: in-process, a local process pool, or a Ray cluster.

Each worker (process or Ray actor) holds one :class:`~fuseagent.data.build.PairBuilder` for its
lifetime, so tools are created once per worker and its memory cache serves all its pairs; the
disk cache is shared by all workers. Items are dispatched one pair at a time and results come
back as they finish; the driver alone writes the dataset folder. A pair whose search fails
yields an error record (deterministic, like any other) instead of stopping the build.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

from ..errors import InputError

__all__ = ["run_items", "build_one", "exit_with_parent", "RAY_OBJECT_STORE_BYTES", "ray_available"]

#: object store of a local Ray cluster: records are small, images are read by the workers themselves
RAY_OBJECT_STORE_BYTES = 80 * 1024**2

_BUILDER: Any = None


def _single_thread() -> None:
    """One compute thread per worker: workers are the parallelism (and results stay reproducible)."""
    import cv2

    cv2.setNumThreads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def build_one(builder: Any, item: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """``builder.build(item)``, or an error record when the pair cannot be searched."""
    try:
        return builder.build(item)
    except Exception as exc:  # noqa: BLE001 (any failure of one pair is that pair's record)
        error = f"{type(exc).__name__}: {exc}"
        record = {"key": item.key, "suite": item.suite, "id": item.sample["id"], "task": item.sample["task"],
                  "error": error}
        return record, {"key": item.key, "seconds": 0.0, "tool_calls_run": 0, "tool_seconds": 0.0,
                        "worker_pid": os.getpid()}


def exit_with_parent(parent_pid: int, poll_seconds: float = 1.0) -> None:
    """End this process (a pool worker) as soon as ``parent_pid`` is no longer its parent.

    A worker whose driver was killed (``SIGTERM``, ``SIGKILL``) is re-parented; without this it
    would go on searching the pairs already handed to it, for nobody, beside a restarted build.
    """
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_seconds)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _init_process(settings: Any, parent_pid: int) -> None:
    global _BUILDER
    from .build import PairBuilder

    exit_with_parent(parent_pid)
    _single_thread()
    _BUILDER = PairBuilder(settings)


def _process_build(item: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    return build_one(_BUILDER, item)


def _local_items(items: Sequence[Any], settings: Any, workers: int) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    from .build import PairBuilder

    if workers == 1 or len(items) <= 1:
        _single_thread()
        builder = PairBuilder(settings)
        for item in items:
            yield build_one(builder, item)
        return
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    context = multiprocessing.get_context("spawn")  # fork after threads (cv2, torch) can deadlock
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_process,
                             initargs=(settings, os.getpid())) as pool:
        pending = {pool.submit(_process_build, item) for item in items}
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in sorted(finished, key=lambda f: f.result()[0]["key"]):
                    yield future.result()
        finally:
            for future in pending:
                future.cancel()


def ray_available() -> bool:
    """Whether Ray can be imported.

    Example:
        >>> isinstance(ray_available(), bool)
        True
    """
    import importlib.util

    return importlib.util.find_spec("ray") is not None


class _RayPairWorker:
    """A Ray actor holding one builder (tools loaded once per actor)."""

    def __init__(self, settings: Any):
        from .build import PairBuilder

        _single_thread()
        self.builder = PairBuilder(settings)

    def build(self, item: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        return build_one(self.builder, item)


def _ray_items(items: Sequence[Any], settings: Any, workers: int,
               address: str | None) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    if not ray_available():
        raise InputError("--executor ray needs Ray: pip install 'ray>=2.9'")
    import ray
    from ray.util import ActorPool

    started = False
    if not ray.is_initialized():
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address:
            ray.init(address=address, **options)
        else:
            ray.init(num_cpus=workers, object_store_memory=RAY_OBJECT_STORE_BYTES, **options)
        started = True
    actor_class = ray.remote(num_cpus=1)(_RayPairWorker)
    actors = [actor_class.remote(settings) for _ in range(workers)]
    try:
        pool = ActorPool(actors)
        yield from pool.map_unordered(lambda actor, item: actor.build.remote(item), list(items))
    finally:
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()


def run_items(items: Sequence[Any], settings: Any, workers: int, executor: str = "local",
              ray_address: str | None = None) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Build ``items`` with ``workers`` workers of ``executor``; yields ``(record, runtime)`` as
    pairs finish (in completion order)."""
    if not items:
        return iter(())
    if executor == "ray":
        return _ray_items(items, settings, workers, ray_address)
    if executor != "local":
        raise InputError(f"unknown executor '{executor}' (valid: local, ray)")
    return _local_items(items, settings, workers)
