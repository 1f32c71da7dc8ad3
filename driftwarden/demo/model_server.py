"""A tiny KServe-v1 model server for the demo: POST /v1/models/<name>:predict."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

from aiohttp import web

from driftwarden.demo.data import MODEL, score


async def _predict(request: web.Request) -> web.Response:
    try:
        body = json.loads(await request.read())
        rows = body["instances"]
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ValueError("instances must be a list of objects")
        predictions = score(rows)
    except (ValueError, KeyError, TypeError) as e:
        return web.json_response({"error": str(e)}, status=400)
    return web.json_response({"predictions": predictions})


async def _ready(_: web.Request) -> web.Response:
    return web.json_response({"name": MODEL, "ready": True})


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_post(f"/v1/models/{MODEL}:predict", _predict)
    app.router.add_get(f"/v1/models/{MODEL}", _ready)
    return app


async def serve(port: int) -> None:
    runner = web.AppRunner(make_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description="driftwarden demo model server (KServe v1)")
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
