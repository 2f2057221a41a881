"""A helper process that computes beside the agent: ratings run there while the next tool runs here.

The agent's reflection and perception are many small numpy passes that hold the GIL, so a thread
cannot run them beside a tool or beside each other. One helper process per Python process can
(:class:`~fuseagent.agent.Agent` has it measure one image's perception features, rate steps and
compute the fused image's no-reference term): :func:`helper`
starts it (``python -m fuseagent.offload``, nothing of the caller's ``__main__`` is imported
again, nothing is forked), and :meth:`Helper.submit` sends it a call of one of the functions
registered with :func:`offloadable` (pickled over its stdin, answered over its stdout) and returns a
:class:`~concurrent.futures.Future`. The helper keeps its own caches between calls (a
:class:`~fuseagent.agent.Reflector` per setting), so analyses of an image it has seen are reused
as they are in this process.

It is an accelerator, never a dependency: :meth:`Helper.ready` is False until its start-up
(about 0.4 s) is done, and callers then compute here; a helper that dies fails its pending calls
with :class:`HelperError` and is not restarted (callers compute here); ``FUSEAGENT_OFFLOAD=0``
disables it. Its error output is discarded (errors come back as exceptions on the futures).

Example:
    >>> from fuseagent.offload import helper
    >>> h = helper()
    >>> h is None or not h.wait_ready(60) or h.submit("offload.echo", 41).result(60) == 41
    True
"""

from __future__ import annotations

import atexit
import importlib
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from typing import Any, BinaryIO

from .errors import FuseAgentError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["Helper", "HelperError", "helper", "offloadable", "offload_enabled", "ENV_SWITCH"]

#: environment variable that disables the helper process when set to 0, no, false or off
ENV_SWITCH = "FUSEAGENT_OFFLOAD"
#: modules whose import registers the functions a helper may run
HELPER_MODULES: tuple[str, ...] = ("fuseagent.offload", "fuseagent.agent", "fuseagent.perceive")
_HEADER = struct.Struct("<Q")
_FUNCTIONS: dict[str, Callable[..., Any]] = {}


class HelperError(FuseAgentError):
    """The helper process could not answer (it is not running, died, or failed to start)."""


def offloadable(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a module-level function under ``name`` as one a helper may run."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        _FUNCTIONS[name] = fn
        return fn

    return register


@offloadable("offload.echo")
def _echo(value: Any) -> Any:
    return value


@offloadable("offload.package")
def _package() -> str:
    """Where the helper found this package (it must be the caller's)."""
    return os.path.dirname(os.path.abspath(__file__))


def offload_enabled() -> bool:
    """False when ``FUSEAGENT_OFFLOAD`` says no (0, no, false, off)."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "no", "false", "off")


def _write(stream: BinaryIO, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)))
    stream.write(data)
    stream.flush()


def _read(stream: BinaryIO) -> Any:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError("stream closed")
    size = _HEADER.unpack(header)[0]
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("stream closed")
    return pickle.loads(data)


#: Linux's fcntl command that sets a pipe's buffer size (``fcntl.F_SETPIPE_SZ`` from Python 3.10 on)
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031) if fcntl is not None else None
#: buffer asked for each pipe (Linux allows 1 MiB to unprivileged processes by default)
PIPE_BYTES = 1 << 20


def _widen_pipe(stream: Any) -> None:
    """Let a pipe hold a thumbnail or a grey 640×480 frame whole, so that a write returns before
    the reader has read it (Linux only; elsewhere the default buffer stays)."""
    if _F_SETPIPE_SZ is None:
        return
    try:
        fcntl.fcntl(stream.fileno(), _F_SETPIPE_SZ, PIPE_BYTES)
    except OSError:  # a smaller system limit: keep the default
        pass


class Helper:
    """One helper process and the calls it has not answered yet (safe to use from several threads)."""

    def __init__(self) -> None:
        env = dict(os.environ, **{ENV_SWITCH: "0"})  # a helper starts no helper of its own
        # the helper imports this very package, wherever this process found it
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = os.pathsep.join([package_root, *filter(None, [env.get("PYTHONPATH")])])
        self._process = subprocess.Popen([sys.executable, "-m", "fuseagent.offload"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        for stream in (self._process.stdin, self._process.stdout):
            _widen_pipe(stream)
        self._lock = threading.Lock()
        self._pending: dict[int, Future] = {}
        self._next = 0
        self._dead: str | None = None
        self._ready = self.submit("offload.echo", True)
        self._reader = threading.Thread(target=self._read_replies, name="fuseagent-offload-reader", daemon=True)
        self._reader.start()

    def ready(self) -> bool:
        """True once the helper has started and answers (never blocks)."""
        return self._dead is None and self._ready.done() and self._ready.exception() is None

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds for the helper to start; whether it did."""
        try:
            self._ready.result(timeout)
        except Exception:  # noqa: BLE001 - a helper that failed to start is simply not ready
            return False
        return self.ready()

    @property
    def alive(self) -> bool:
        return self._dead is None

    def submit(self, name: str, *args: Any) -> Future:
        """Run the registered function ``name`` on ``args`` in the helper; its future result.

        The future fails with :class:`HelperError` when the helper cannot answer, and with the
        function's own exception when it raised (exceptions that cannot be pickled become
        :class:`HelperError` with their message).
        """
        future: Future = Future()
        with self._lock:
            if self._dead is not None:
                future.set_exception(HelperError(self._dead))
                return future
            ident = self._next
            self._next += 1
            self._pending[ident] = future
            try:  # the arguments' own pickle: ones the helper cannot rebuild fail this call only
                _write(self._process.stdin, (ident, name, pickle.dumps(args, protocol=pickle.HIGHEST_PROTOCOL)))
            except (OSError, ValueError, pickle.PicklingError, AttributeError, TypeError) as exc:
                del self._pending[ident]
                if isinstance(exc, (OSError, ValueError)):
                    self._fail(f"helper process unreachable: {exc}")
                future.set_exception(HelperError(f"cannot send {name} to the helper: {exc}"))
        return future

    def _read_replies(self) -> None:
        stream = self._process.stdout
        while True:
            try:
                ident, ok, payload = _read(stream)
            except Exception as exc:  # noqa: BLE001 - EOF or a broken pipe: the helper is gone
                with self._lock:
                    self._fail(f"helper process exited ({type(exc).__name__})")
                return
            try:
                value = pickle.loads(payload)
            except Exception as exc:  # noqa: BLE001 - e.g. an exception class that cannot be rebuilt here
                ok, value = False, HelperError(f"the helper's reply could not be read: {type(exc).__name__}: {exc}")
            with self._lock:
                future = self._pending.pop(ident, None)
            if future is None:
                continue
            try:
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
            except InvalidStateError:  # the caller cancelled it (and computed it itself)
                continue

    def _fail(self, why: str) -> None:
        """Mark the helper dead and fail its pending calls (the caller holds the lock)."""
        if self._dead is None:
            self._dead = why
        pending, self._pending = self._pending, {}
        for future in pending.values():
            try:
                future.set_exception(HelperError(why))
            except InvalidStateError:  # cancelled by its caller
                continue

    def close(self, timeout: float = 2.0) -> None:
        """Stop the helper: it exits when its input closes; one still starting is killed (nothing
        of it is needed, and waiting for its imports would delay this process's exit)."""
        starting = not self._ready.done()
        with self._lock:
            self._fail("helper process closed")
            try:
                self._process.stdin.close()
            except OSError:
                pass
        try:
            if starting:
                self._process.kill()
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


_HELPER: tuple[int, Helper] | None = None
_HELPER_LOCK = threading.Lock()


def helper(start: bool = True) -> Helper | None:
    """This process's helper, started on the first call (None when disabled, when it could not
    start, or when ``start`` is False and none runs). A helper that died is not restarted."""
    global _HELPER
    if not offload_enabled():
        return None
    with _HELPER_LOCK:
        if _HELPER is not None and _HELPER[0] == os.getpid():
            return _HELPER[1] if _HELPER[1].alive else None
        if not start:
            return None
        try:
            _HELPER = (os.getpid(), Helper())
        except OSError:
            return None
        atexit.register(_HELPER[1].close)
        return _HELPER[1]


def _serve(inp: BinaryIO, out: BinaryIO) -> None:
    for module in HELPER_MODULES:
        importlib.import_module(module)
    while True:
        try:
            ident, name, payload = _read(inp)
        except EOFError:
            return
        try:
            value, ok = _FUNCTIONS[name](*pickle.loads(payload)), True
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the caller
            value, ok = exc, False
        try:  # the reply's own pickle: one that cannot be read fails its call only
            payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 - an unpicklable result or exception
            ok, payload = False, pickle.dumps(HelperError(f"{name}: {type(value).__name__}: {value}"))
        _write(out, (ident, ok, payload))


def main() -> None:
    """The helper's side: answer calls on stdin over stdout until stdin closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the caller; the helper ends with its input
    import cv2

    cv2.setNumThreads(1)  # one core beside the caller's tools, not a second pool competing with them
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints must not corrupt the replies
    serve = importlib.import_module("fuseagent.offload")._serve  # this file runs as __main__: use the package's
    serve(sys.stdin.buffer, out)


if __name__ == "__main__":
    main()
