"""`python -m retrain_trigger.serve --artifact DIR --port P`: a model server for a trainer
artifact, speaking KServe v1 and Open Inference v2 (docs/trainer.md, "Model server").

    POST /v1/models/{name}:predict      {"instances": [...]}  -> {"predictions": [...]}
    GET  /v1/models/{name}              readiness {"name", "ready": true}
    POST /v2/models/{name}[/versions/{v}]/infer   OIP v2 tensors
    GET  /v2/models/{name}[/ready]      metadata / readiness; /v2/health/live|ready
    GET  /healthz

A raw ASGI application on uvicorn (uvloop + httptools): no framework between the socket
and the model. Each request is one batch: parse (serve_protocol), encode (vectorised), one
forward pass under `torch.inference_mode`, reduce per the spec, msgspec-encode. Bad bodies
are 4xx with `{"error": reason}`; nothing a client sends produces a 5xx.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgspec

from retrain_trigger.serve_protocol import BadRequest, OutputReducer, parse_v1, parse_v2, v2_output

__all__ = ["ModelServer", "ServeSettings", "main"]

_log = logging.getLogger("retrain_trigger.serve")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_JSON_HEADERS: Final = [(b"content-type", b"application/json")]
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.decode


@dataclass(frozen=True, slots=True)
class ServeSettings:
    host: str = "127.0.0.1"  # the collector sidecar proxies to the model on loopback
    port: int = 8080
    name: str | None = None  # model name in the URL paths; default: the artifact's model
    max_body_bytes: int = 8 * 1024 * 1024  # larger bodies are 413
    threads: int = 1  # torch intra-op threads: one request is one small batch


class ModelServer:
    """The ASGI application around one loaded artifact (`retrain_trigger.train.artifact`)."""

    def __init__(self, artifact: Any, settings: ServeSettings) -> None:
        self.artifact = artifact
        self.settings = settings
        self.name: str = settings.name or artifact.model
        self.version: str | None = artifact.version
        self.predictor = artifact.predictor
        self.features: list[str] = artifact.spec.feature_names
        self.reducer = OutputReducer(artifact.spec, artifact.predictor.labels)
        v1 = f"/v1/models/{self.name}"
        v2 = f"/v2/models/{self.name}"
        self.routes: dict[tuple[str, str], Callable[[bytes], tuple[int, Any]]] = {
            ("POST", f"{v1}:predict"): self._predict_v1,
            ("GET", v1): self._ready,
            ("GET", "/v1/models"): lambda _: (200, {"models": [self.name]}),
            ("POST", f"{v2}/infer"): self._infer_v2,
            ("GET", v2): self._metadata,
            ("GET", f"{v2}/ready"): self._ready,
            ("GET", "/v2/health/live"): lambda _: (200, {"live": True}),
            ("GET", "/v2/health/ready"): lambda _: (200, {"ready": True}),
            ("GET", "/healthz"): lambda _: (200, {"status": "ok"}),
        }
        if self.version:
            self.routes[("POST", f"{v2}/versions/{self.version}/infer")] = self._infer_v2
        self.paths = {path for _, path in self.routes}

    # --- handlers (pure but for the model call) -------------------------------------------

    def _ready(self, _: bytes) -> tuple[int, Any]:
        return 200, {"name": self.name, "ready": True}

    def _metadata(self, _: bytes) -> tuple[int, Any]:
        return 200, {
            "name": self.name,
            "versions": [self.version] if self.version else [],
            "platform": "pytorch",
            "inputs": [
                {
                    "name": f.name,
                    "datatype": "FP64" if f.type == "numerical" else "BYTES",
                    "shape": [-1],
                }
                for f in self.artifact.spec.features
            ],
            "outputs": [
                {"name": self.reducer.column, "datatype": self.reducer.datatype, "shape": [-1]}
            ],
        }

    def _run(self, columns: dict[str, list[Any]]) -> Any:
        from retrain_trigger.train.encoding import EncodingError

        try:
            encoded = self.predictor.features.transform(columns)
        except EncodingError as e:
            raise BadRequest(str(e)) from e
        except (TypeError, ValueError) as e:  # an unhashable value in a categorical column
            raise BadRequest(
                f"feature values must be numbers, strings, booleans or null ({e})"
            ) from e
        return self.predictor.predict_encoded(encoded)

    def _body(self, body: bytes) -> Any:
        try:
            return _decode(body)
        except msgspec.DecodeError as e:
            raise BadRequest(f"malformed JSON: {e}") from e

    def _predict_v1(self, body: bytes) -> tuple[int, Any]:
        columns, _ = parse_v1(self._body(body), self.features)
        return 200, {"predictions": self.reducer(self._run(columns))}

    def _infer_v2(self, body: bytes) -> tuple[int, Any]:
        columns, n, rid = parse_v2(self._body(body), self.features)
        return 200, v2_output(self.reducer, self._run(columns), n, self.name, self.version, rid)

    # --- ASGI --------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan is off; nothing else is served
            return
        status, doc = await self._dispatch(scope, receive)
        payload = _encode(doc)
        await send({"type": "http.response.start", "status": status, "headers": _JSON_HEADERS})
        await send({"type": "http.response.body", "body": payload})

    async def _dispatch(self, scope: Scope, receive: Receive) -> tuple[int, Any]:
        method, path = scope["method"], scope["path"]
        handler = self.routes.get((method, path))
        if handler is None:
            if path in self.paths:
                return 405, {"error": f"{method} is not allowed on {path}"}
            if path.startswith(("/v1/models/", "/v2/models/")):
                return 404, {
                    "error": f"no model or route at {path}; this server serves {self.name!r}"
                }
            return 404, {"error": f"no route {path}"}
        body, error = await self._read_body(scope, receive)
        if error is not None:
            return error
        try:
            return handler(body)
        except BadRequest as e:
            return e.status, {"error": str(e)}
        except Exception:  # a bug of ours, not the client's: say so, keep serving
            _log.exception("prediction failed")
            return 500, {"error": "internal error while predicting; see the server log"}

    async def _read_body(
        self, scope: Scope, receive: Receive
    ) -> tuple[bytes, tuple[int, Any] | None]:
        limit = self.settings.max_body_bytes
        for key, value in scope.get("headers", ()):
            if key == b"content-length" and value.isdigit() and int(value) > limit:
                return b"", (413, {"error": f"body over {limit} bytes"})
            if key == b"content-encoding" and value.strip().lower() not in (b"", b"identity"):
                return b"", (
                    415,
                    {
                        "error": f"Content-Encoding {value.decode('latin-1')!r} "
                        "is not supported; send plain JSON"
                    },
                )
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"", (400, {"error": "client disconnected"})
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return b"", (413, {"error": f"body over {limit} bytes"})
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m retrain_trigger.serve",
        description="Serve a trainer artifact over KServe v1 and Open Inference v2.",
    )
    p.add_argument("--artifact", required=True, help="artifact folder written by the trainer")
    p.add_argument("--port", type=int, default=8080, help="listen port (default 8080)")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--name", help="model name in the URLs (default: the artifact's model)")
    p.add_argument("--max-body-bytes", type=int, default=8 * 1024 * 1024)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--log-level", default="info")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from driftwarden.errors import DriftwardenError
    from driftwarden.logs import configure_logging

    try:
        configure_logging(args.log_level)
        if not 0 <= args.port <= 65535:
            raise DriftwardenError(f"--port: {args.port} is not a port number")
        if args.max_body_bytes < 1 or args.threads < 1:
            raise DriftwardenError("--max-body-bytes and --threads must be >= 1")
        if not Path(args.artifact, "model.pt").is_file():  # before the slow torch import
            raise DriftwardenError(
                f"--artifact: {args.artifact} has no model.pt (not a trainer artifact, or a "
                "model that failed the gate)"
            )
        import torch
        import uvicorn

        from retrain_trigger.train.artifact import load_artifact

        torch.set_num_threads(args.threads)
        settings = ServeSettings(
            host=args.host,
            port=args.port,
            name=args.name,
            max_body_bytes=args.max_body_bytes,
            threads=args.threads,
        )
        app = ModelServer(load_artifact(args.artifact), settings)
    except DriftwardenError as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
    _log.info(
        "serving model %s version %s from %s on http://%s:%d",
        app.name,
        app.version,
        args.artifact,
        args.host,
        args.port,
    )
    # uvicorn drains on SIGTERM, then re-raises the signal to the handler that was there
    # before it: make that one a no-op, so a drained server exits 0, not -15.
    signal.signal(signal.SIGTERM, lambda *_: None)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="auto",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
