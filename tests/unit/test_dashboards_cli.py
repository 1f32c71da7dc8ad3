"""`driftwarden dashboards export|upload` as a user runs them (a real process).

No Grafana server binary can be had here, so `upload` is tested against a small local HTTP
server implementing the few Grafana API endpoints it calls (GET/POST /api/folders, POST
/api/dashboards/db, 401 for a wrong token, 403 for a viewer token). That is a unit test of
our client handling, not an integration test against Grafana (docs/dashboards.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from dashboards import GENERATED_DIR, all_dashboards
from driftwarden.services.ports import free_port

GOOD, VIEWER = "glsa_good", "glsa_viewer"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "driftwarden", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


class FakeGrafana:
    """The endpoints `dashboards upload` uses, with Grafana's status codes and bodies."""

    def __init__(self) -> None:
        self.folders: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, str | None]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, code: int, body: Any) -> None:
                raw = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _auth(self) -> bool:
                auth = self.headers.get("Authorization")
                fake.requests.append((self.command, self.path, auth))
                if auth not in (f"Bearer {GOOD}", f"Bearer {VIEWER}"):
                    self._reply(401, {"message": "invalid API key"})
                    return False
                return True

            def _body(self) -> Any:
                return json.loads(self.rfile.read(int(self.headers["Content-Length"])))

            def do_GET(self) -> None:
                if not self._auth():
                    return
                uid = self.path.removeprefix("/api/folders/")
                if self.path.startswith("/api/folders/") and uid in fake.folders:
                    self._reply(200, fake.folders[uid])
                else:
                    self._reply(404, {"message": "folder not found", "status": "not-found"})

            def do_POST(self) -> None:
                if not self._auth():
                    return
                body = self._body()
                if self.headers["Authorization"] == f"Bearer {VIEWER}":
                    self._reply(403, {"message": "Access denied"})
                elif self.path == "/api/folders":
                    folder = {"uid": body["uid"], "title": body["title"], "id": 7}
                    fake.folders[body["uid"]] = folder
                    self._reply(200, folder)
                elif self.path == "/api/dashboards/db":
                    dash = body["dashboard"]
                    old = fake.dashboards.get(dash["uid"])
                    if old is not None and not body.get("overwrite"):
                        self._reply(412, {"message": "version-mismatch"})
                        return
                    if body.get("folderUid") not in fake.folders:
                        self._reply(400, {"message": "folder not found"})
                        return
                    version = (old["version"] + 1) if old else 1
                    fake.dashboards[dash["uid"]] = {**body, "version": version}
                    self._reply(
                        200,
                        {
                            "id": 1,
                            "uid": dash["uid"],
                            "url": f"/d/{dash['uid']}/slug",
                            "status": "success",
                            "version": version,
                        },
                    )
                else:
                    self._reply(404, {"message": "not found"})

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    fake = FakeGrafana()
    try:
        yield fake
    finally:
        fake.close()


def test_export_writes_the_committed_json(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run("dashboards", "export", str(out))
    assert result.returncode == 0, result.stderr
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(p.name for p in GENERATED_DIR.glob("*.json"))
    for name in written:
        assert (out / name).read_text() == (GENERATED_DIR / name).read_text()
    assert len(result.stdout.splitlines()) == len(all_dashboards())


def test_export_onto_a_file_is_one_line_error(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    result = run("dashboards", "export", str(target))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {target}: exists and is not a folder"


def test_upload_creates_the_folder_and_overwrites_by_uid(grafana: FakeGrafana) -> None:
    result = run("dashboards", "upload", "--url", grafana.url, "--token", GOOD)
    assert result.returncode == 0, result.stderr
    assert set(grafana.folders) == {"driftwarden"}
    assert set(grafana.dashboards) == set(all_dashboards())
    for uid, stored in grafana.dashboards.items():
        assert stored["overwrite"] is True
        assert stored["folderUid"] == "driftwarden"
        assert stored["dashboard"]["id"] is None
        assert stored["dashboard"]["title"] == all_dashboards()[uid]["title"]
    assert ("POST", "/api/folders", f"Bearer {GOOD}") in grafana.requests
    assert "driftwarden-feature-drift: driftwarden / Feature drift -> " in result.stdout

    # Second upload: folder found (not created again), dashboards replaced (version 2).
    grafana.requests.clear()
    again = run("dashboards", "upload", "--url", grafana.url, env={"DRIFTWARDEN_TOKEN": GOOD})
    assert again.returncode == 0, again.stderr
    assert ("POST", "/api/folders", f"Bearer {GOOD}") not in grafana.requests
    assert {d["version"] for d in grafana.dashboards.values()} == {2}
    assert "(version 2)" in again.stdout


def test_upload_with_a_wrong_token_is_one_clear_line(grafana: FakeGrafana) -> None:
    result = run("dashboards", "upload", "--url", grafana.url, "--token", "wrong")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: Grafana at {grafana.url} rejected the token (HTTP 401) while reading folder "
        "'driftwarden': check --token (a service account token with the Editor role)"
    )
    assert not grafana.dashboards


def test_upload_with_a_viewer_token_names_the_missing_role(grafana: FakeGrafana) -> None:
    result = run("dashboards", "upload", "--url", grafana.url, "--token", VIEWER)
    assert result.returncode == 2
    assert "(HTTP 403)" in result.stderr and "Editor role" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_upload_to_nothing_listening_is_one_clear_line() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = run("dashboards", "upload", "--url", url, "--token", GOOD, "--timeout", "2")
    assert result.returncode == 2
    assert result.stderr.strip().startswith(f"error: cannot reach Grafana at {url} ")
    assert len(result.stderr.strip().splitlines()) == 1


def test_upload_without_a_token_is_refused() -> None:
    result = run("dashboards", "upload", "--url", "http://127.0.0.1:1")
    assert result.returncode == 2
    assert "--token" in result.stderr
