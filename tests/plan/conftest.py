"""A local fake OpenAI-compatible chat server (no network) and planning fixtures."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest


class FakeChatServer:
    """Answers ``POST /v1/chat/completions`` with scripted replies, one per request.

    A reply is a string (the message content), ``("sleep", seconds)`` (answer late), ``("status", code)``
    (an HTTP error) or ``("raw", text)`` (a body that is not a chat completion). Requests are kept.
    """

    def __init__(self, replies: list) -> None:
        self.replies = list(replies)
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                server.requests.append(json.loads(self.rfile.read(length)))
                server.headers.append(dict(self.headers))
                reply = server.replies.pop(0) if server.replies else "no more replies"
                if isinstance(reply, tuple) and reply[0] == "sleep":
                    time.sleep(reply[1])
                    reply = "<answer>[task:fusion][model:gff]</answer>"
                if isinstance(reply, tuple) and reply[0] == "status":
                    self.send_response(reply[1])
                    self.end_headers()
                    return
                if isinstance(reply, tuple) and reply[0] == "raw":
                    body = reply[1].encode()
                else:
                    body = json.dumps({"id": "x", "object": "chat.completion", "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}]}).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake_vlm() -> Iterator:
    """``fake_vlm(replies)`` starts a fake chat server answering with ``replies`` in turn."""
    servers: list[FakeChatServer] = []

    def start(replies: list) -> FakeChatServer:
        server = FakeChatServer(replies)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def small_pair(camera) -> list[np.ndarray]:
    """A 96×128 IR-like / noisy visible pair cut from the camera image."""
    ir = camera[200:296, 180:308].copy()
    noise = np.random.default_rng(3).normal(0, 0.06, ir.shape)
    vis = np.clip(camera[200:296, 180:308] * 0.8 + 0.1 + noise, 0, 1).astype(np.float32)
    return [ir, vis]
