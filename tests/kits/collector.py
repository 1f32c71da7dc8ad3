"""Test kit of the collector: a trivial model server, the collector in a thread, a proxy
on its own loop, and a topic reader (tests and benchmarks only; production never imports it).

The trivial model (raw asyncio + httptools):

It speaks the three payload formats on their default routes and has a few routes that
exercise the proxy: `/echo` (body and headers back as JSON), `/stream` (a chunked
response in several writes), `/status/<code>`, `/slow/<ms>`, `/close` (answers with
`Connection: close`) and `/health`. Run it in-process with `ModelServer` (its own thread
and loop) or as a process: `python -m tests.kits.collector --port 9000`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import threading
from collections.abc import Iterator
from typing import Any

import httptools
import msgspec

_decode = msgspec.json.decode
_encode = msgspec.json.encode


def _score(row: Any) -> float:
    """A deterministic 'probability' from a row's numeric values."""
    total = 0.0
    values = row.values() if isinstance(row, dict) else row if isinstance(row, list) else [row]
    for v in values:
        if isinstance(v, int | float) and not isinstance(v, bool):
            total += float(v)
    return round(1.0 / (1.0 + math.exp(-0.1 * max(-500.0, min(500.0, total)))), 6)


def predict(path: str, body: bytes) -> bytes:
    """The model: the answer to a prediction request on `path`."""
    doc = _decode(body) if body else {}
    if path.startswith("/v2/"):
        inputs = doc["inputs"]
        n = inputs[0]["shape"][0] if inputs[0]["shape"] else 1
        cols = [t["data"] for t in inputs]
        if len(inputs) == 1 and len(inputs[0]["shape"]) == 2:
            width = inputs[0]["shape"][1]
            flat = cols[0]
            rows = [flat[i * width : (i + 1) * width] for i in range(n)]
        else:
            rows = [[c[i] for c in cols] for i in range(n)]
        data = []
        for row in rows:
            p = _score(row)
            data += [1 - p, p]
        return _encode(
            {
                "model_name": "m",
                "id": doc.get("id", ""),
                "outputs": [
                    {"name": "probabilities", "shape": [n, 2], "datatype": "FP64", "data": data}
                ],
            }
        )
    if path.startswith("/v1/"):
        instances = doc.get("instances", doc.get("inputs", []))
        return _encode({"predictions": [[1 - _score(r), _score(r)] for r in instances]})
    # json format: {"features": {...}} or {"rows": [...]} -> {"prediction": p} / {"scores": [...]}
    if "rows" in doc:
        return _encode({"scores": [_score(r) for r in doc["rows"]]})
    return _encode({"prediction": _score(doc.get("features", doc))})


_FIXED = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%b"


class _ModelProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: Any = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body: list[bytes] = []
        self.headers: list[tuple[str, str]] = []

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.write(
                b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            )
            self.transport.close()

    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []
        self.headers = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        path = self.url.split(b"?", 1)[0].decode("latin-1")
        method = self.parser.get_method()
        keep = self.parser.should_keep_alive()
        body = b"".join(self.body)
        t = self.transport
        if method == b"HEAD":
            t.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\n")
        elif path == "/health":
            t.write(_FIXED % (2, b"ok"))
        elif path == "/echo":
            out = _encode(
                {
                    "method": method.decode(),
                    "url": self.url.decode("latin-1"),
                    "headers": self.headers,
                    "body": body.decode("latin-1"),
                }
            )
            t.write(_FIXED % (len(out), out))
        elif path == "/stream":
            t.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n"
            )
            for i in range(5):
                chunk = f"part {i}\n".encode()
                t.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            t.write(b"0\r\n\r\n")
        elif path.startswith("/status/"):
            code = int(path.rsplit("/", 1)[1])
            text = b'{"error": "status"}'
            t.write(b"HTTP/1.1 %d X\r\ncontent-length: %d\r\n\r\n%b" % (code, len(text), text))
        elif path.startswith("/slow/"):
            delay = int(path.rsplit("/", 1)[1]) / 1000
            asyncio.get_running_loop().call_later(delay, t.write, _FIXED % (4, b"slow"))
        elif path == "/close":
            t.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            t.close()
            return
        else:
            try:
                out = predict(path, body)
            except Exception as e:  # a well-behaved model: a bad request is a 400
                err = _encode({"error": str(e)[:200]})
                t.write(
                    b"HTTP/1.1 400 Bad Request\r\ncontent-length: %d\r\n\r\n%b" % (len(err), err)
                )
            else:
                t.write(_FIXED % (len(out), out))
        if not keep:
            t.close()


class ModelServer:
    """The trivial model on 127.0.0.1 in a background thread with its own event loop."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._server: Any = None

    def start(self) -> ModelServer:
        self._thread = threading.Thread(target=self._run, name="trivial-model", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the trivial model did not start")
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._server = loop.run_until_complete(
            loop.create_server(_ModelProtocol, "127.0.0.1", self.port, reuse_address=True)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            loop.run_until_complete(self._server.wait_closed())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class CollectorThread:
    """A `CollectorService` running in a background thread with its own uvloop loop
    (for tests and demos; production runs `driftwarden collector run`)."""

    def __init__(self, settings: Any, **service_kwargs: Any) -> None:
        self.settings = settings
        self.service_kwargs = service_kwargs
        self.service: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.report: Any = None

    @property
    def port(self) -> int:
        return self.service.port

    @property
    def admin_port(self) -> int:
        return self.service.admin_port

    def start(self) -> CollectorThread:
        self._thread = threading.Thread(target=self._run, name="collector", daemon=True)
        self._thread.start()
        self._ready.wait(60)
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        from collector.service import CollectorService

        try:
            import uvloop

            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        except ImportError:  # pragma: no cover
            loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self.service = CollectorService(self.settings, **self.service_kwargs)
            loop.run_until_complete(self.service.start())
        except BaseException as e:
            self._error = e
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop(self) -> Any:
        """Drain (as on SIGTERM) and stop; returns the delivery's `DrainReport`."""
        loop, self._loop = self._loop, None
        if loop is None or self._thread is None:
            return self.report
        future = asyncio.run_coroutine_threadsafe(self.service.stop(), loop)
        self.report = future.result(120)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(30)
        return self.report

    def __enter__(self) -> CollectorThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def read_topic(
    bootstrap: str,
    topic: str,
    *,
    at_least: int = 1,
    timeout: float = 60.0,
    settle_s: float = 1.0,
) -> list[tuple[bytes | None, bytes, int]]:
    """Every record of `topic` from the beginning: (key, value, partition), read until at
    least `at_least` arrived and nothing more came for `settle_s` (so duplicates show), or
    until `timeout`."""
    import time

    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"read-{topic}-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    out: list[tuple[bytes | None, bytes, int]] = []
    try:
        deadline = time.monotonic() + timeout
        partitions: list[int] = []
        while not partitions and time.monotonic() < deadline:
            meta = consumer.list_topics(topic, timeout=5).topics.get(topic)
            if meta is not None and meta.error is None and meta.partitions:
                partitions = sorted(meta.partitions)
            else:
                time.sleep(0.2)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        last = time.monotonic()
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None or msg.error() is not None:
                if len(out) >= at_least and time.monotonic() - last >= settle_s:
                    break
                continue
            out.append((msg.key(), msg.value(), msg.partition()))
            last = time.monotonic()
    finally:
        consumer.close()
    return out


class LoopThread:
    """An event loop in a thread, for servers under test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Any, *args: Any) -> Any:
        """Run a plain function on the loop's thread and return its result."""

        async def call() -> Any:
            return fn(*args)

        return self.run(call())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@contextlib.contextmanager
def proxy_to(port: int, **settings: Any) -> Iterator[tuple[int, Any]]:
    """A `Proxy` (no capture) to 127.0.0.1:`port` on its own loop: (listen port, proxy)."""
    from collector.metrics import CollectorStats
    from collector.proxy import Proxy, ProxySettings

    lt = LoopThread()
    proxy = Proxy(ProxySettings(upstream_port=port, **settings), stats=CollectorStats())
    try:
        listen = lt.run(proxy.start("127.0.0.1", 0))
        yield listen, proxy
    finally:
        lt.run(proxy.close())
        lt.close()


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_ModelProtocol, "127.0.0.1", port, reuse_address=True)
    print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:  # pragma: no cover - a process entry point
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    try:
        import uvloop

        run = uvloop.run
    except ImportError:
        run = asyncio.run
    with contextlib.suppress(KeyboardInterrupt):
        run(serve(args.port))


if __name__ == "__main__":  # pragma: no cover
    main()
