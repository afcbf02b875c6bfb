"""Local HTTP servers on 127.0.0.1 that speak the OpenAI chat-completions and the Anthropic
Messages protocols, for testing providers through their real client libraries.

Each server counts and keeps every request it receives, and injects faults on demand::

    with FakeLLMServer("openai", latency=0.05) as server:
        server.inject(Fault(status=429, retry_after=0.01), Fault(status=500))  # next two requests
        server.fault_for = lambda body: Fault(drop=True) if "boom" in str(body) else None
        ...  # point a client at server.base_url
        assert server.count == 3

Faults: an HTTP error status (with Retry-After), a reply slower than the client's timeout
(``delay``), a dropped connection (``drop``), and a reply with a given text (a malformed
judge verdict, say). ``hold_after(n)`` makes every request after the n-th wait until
``release()``, so a test can kill a client mid-run at a known point.
Also used by benchmarks/api_throughput.py.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PATHS = {"openai": ("/v1/chat/completions", "/chat/completions"), "anthropic": ("/v1/messages",)}
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
               429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}


@dataclass
class Fault:
    """What to do with one request instead of answering it normally."""

    status: int = 0  # answer with this HTTP error status
    retry_after: float | None = None  # with a Retry-After header (seconds)
    delay: float = 0.0  # wait this long first (longer than the client's timeout: a timeout)
    drop: bool = False  # close the connection without a reply
    text: str | None = None  # answer 200 with this text instead of the responder's
    message: str | None = None  # the error message of an error status


@dataclass
class Received:
    """One request as the server saw it, and the status it answered with (0: no answer, or
    none yet: a dropped connection, or a reply still being delayed)."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    status: int = 0
    at: float = field(default_factory=time.monotonic)  # when it arrived
    done: threading.Event = field(default_factory=threading.Event, repr=False)

    def user_text(self) -> str:
        """The content of the last user message."""
        users = [m for m in self.body.get("messages", []) if m.get("role") == "user"]
        return _content(users[-1]) if users else ""


def default_responder(body: dict[str, Any]) -> str:
    """A deterministic reply: the last user message, marked."""
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    return "ECHO: " + (_content(users[-1]) if users else "")


def _content(message: dict[str, Any]) -> str:
    content = message.get("content", "")
    if isinstance(content, list):  # Anthropic content blocks
        return "".join(b.get("text", "") for b in content if isinstance(b, dict))
    return str(content)


def _words(text: str) -> int:
    return len(text.split())


class FakeLLMServer:
    """One server speaking ``protocol`` ("openai" or "anthropic") on a free local port."""

    def __init__(self, protocol: str = "openai", *, latency: float = 0.0, port: int = 0,
                 responder: Callable[[dict[str, Any]], str] = default_responder):
        if protocol not in PATHS:
            raise ValueError(f"unknown protocol {protocol!r}")
        self.protocol = protocol
        self.latency = latency  # added to every answer (the benchmark's 50 ms)
        self.responder = responder
        self.fault_for: Callable[[dict[str, Any]], Fault | None] | None = None  # content-based faults
        self.requests: list[Received] = []
        self.in_flight = 0
        self.max_in_flight = 0  # most requests being served at once
        self._port = port
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._hold_after: int | None = None
        self._release = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- control ------------------------------------------------------------------------------

    def start(self) -> FakeLLMServer:
        handler = type("Handler", (_Handler,), {"server_state": self})
        httpd = _Server(("127.0.0.1", self._port), handler)
        self._port = httpd.server_address[1]  # a restart keeps the port (and so the cache keys)
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "the server is not running"
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        """What the client's ``base_url`` must be (the openai client appends /chat/completions,
        the anthropic one /v1/messages)."""
        root = f"http://127.0.0.1:{self.port}"
        return root + "/v1" if self.protocol == "openai" else root

    def inject(self, *faults: Fault) -> None:
        """Faults for the next requests, one each, in order of arrival."""
        with self._lock:
            self._faults.extend(faults)

    def hold_after(self, n: int | None) -> None:
        """Requests after the ``n``-th wait (unanswered) until :meth:`release`."""
        self._hold_after = n
        self._release.clear()

    def release(self) -> None:
        self._release.set()

    def reset(self) -> None:
        """Forget the requests seen and the faults not used yet."""
        with self._lock:
            self.requests.clear()
            self._faults.clear()
            self.max_in_flight = 0
        self.fault_for = None

    # ---- what happened ------------------------------------------------------------------------

    @property
    def count(self) -> int:
        """Requests received, failed ones and retries included."""
        with self._lock:
            return len(self.requests)

    def answered(self) -> list[Received]:
        """Requests answered with 200, in order of arrival."""
        with self._lock:
            return [r for r in self.requests if r.status == 200]

    def statuses(self) -> list[int]:
        with self._lock:
            return [r.status for r in self.requests]

    # ---- serving ------------------------------------------------------------------------------

    def _record(self, rec: Received) -> int:
        with self._lock:
            self.requests.append(rec)
            return len(self.requests)

    def _reply(self, body: dict[str, Any], text: str) -> dict[str, Any]:
        model = body.get("model", "")
        tokens_in = sum(_words(_content(m)) for m in body.get("messages", [])) + _words(str(body.get("system", "")))
        tokens_out = _words(text)
        if self.protocol == "openai":
            return {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
                    "model": model,
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out,
                              "total_tokens": tokens_in + tokens_out}}
        return {"id": "msg_fake", "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                "stop_sequence": None, "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out}}

    def _error(self, status: int, message: str | None = None) -> dict[str, Any]:
        kind = ERROR_TYPES.get(status, "api_error")
        message = message or f"injected fault: HTTP {status}"
        if self.protocol == "openai":
            return {"error": {"message": message, "type": kind, "code": None}}
        return {"type": "error", "error": {"type": kind, "message": message}}


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a handler still sleeping (a slow fault) does not hold up stop()
    request_queue_size = 256  # many clients connect at once under high concurrency


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the clients expect
    disable_nagle_algorithm = True  # headers and body go out at once, not 40 ms apart (delayed ACK)
    server_state: FakeLLMServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        # GET /_stats: the counts, for a client in another process (the benchmark)
        state = self.server_state
        if self.path != "/_stats":
            self._send_json(404, {"error": {"message": f"no such path {self.path}"}})
            return
        self._send_json(200, {"count": state.count, "answered": len(state.answered()),
                              "max_in_flight": state.max_in_flight})

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        state = self.server_state
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path not in PATHS[state.protocol]:
            self._send_json(404, {"error": {"message": f"no such path {self.path}"}})
            return
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self._send_json(400, state._error(400))
            return
        rec = Received(self.path, body, {k.lower(): v for k, v in self.headers.items()})
        number = state._record(rec)
        with state._lock:
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            self._serve(state, rec, number)
        finally:
            with state._lock:
                state.in_flight -= 1
            rec.done.set()

    def _serve(self, state: FakeLLMServer, rec: Received, number: int) -> None:
        with state._lock:
            fault = state._faults.pop(0) if state._faults else None
        if fault is None and state.fault_for is not None:
            fault = state.fault_for(rec.body)
        if state._hold_after is not None and number > state._hold_after:
            state._release.wait(60)
        delay = state.latency + (fault.delay if fault else 0.0)
        if delay:
            time.sleep(delay)
        if fault is not None and fault.drop:
            self.close_connection = True  # no reply at all: the client sees the connection close
            return
        if fault is not None and fault.status:
            headers = {"retry-after": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
            rec.status = fault.status  # before sending: the client may look as soon as it has the reply
            self._send_json(fault.status, state._error(fault.status, fault.message), headers)
            return
        text = fault.text if fault is not None and fault.text is not None else state.responder(rec.body)
        rec.status = 200
        self._send_json(200, state._reply(rec.body, text))

    def _send_json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        """Send a JSON reply (quietly nothing when the client has gone: it timed out)."""
        data = json.dumps(payload).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass


def _serve_main() -> None:
    """``python tests/fake_llm_servers.py --protocol openai --latency 0.05``: serve until killed,
    in a process of its own (so that a client under test does not share its GIL); prints
    the base URL on the first line."""
    import argparse

    ap = argparse.ArgumentParser(description=_serve_main.__doc__)
    ap.add_argument("--protocol", choices=sorted(PATHS), default="openai")
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    server = FakeLLMServer(a.protocol, latency=a.latency, port=a.port).start()
    print(server.base_url, flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    _serve_main()
