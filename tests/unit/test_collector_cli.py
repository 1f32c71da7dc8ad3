"""`driftwarden collector run` as a user runs it: every mistake is one line and exit 2;
the config file's errors name the field."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from collector.errors import CollectorError
from collector.settings import load_config, parse_config


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "driftwarden", "collector", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_help_lists_every_flag_with_its_variable() -> None:
    out = run("run", "--help")
    assert out.returncode == 0
    for flag in (
        "--model", "--model-version", "--model-port", "--port", "--admin-port", "--bootstrap",
        "--payload-format", "--spec", "--sample-rate", "--spool-dir", "--config", "--log-level",
        "--log-format",
    ):  # fmt: skip
        assert flag in out.stdout
        assert "DRIFTWARDEN_" + flag[2:].upper().replace("-", "_") in out.stdout


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (["--model-port", "abc"], {}, "--model-port: 'abc' is not a TCP port"),
        (["--model-port", "70000"], {}, "--model-port: '70000'"),
        (["--model-port", "1", "--payload-format", "xml"], {}, "--payload-format: 'xml'"),
        (["--model-port", "1", "--sample-rate", "2"], {}, "--sample-rate: '2'"),
        (["--model-port", "1", "--sample-rate", "half"], {}, "--sample-rate: 'half'"),
        (["--model-port", "1", "--log-format", "xml"], {}, "--log-format"),
        (["--model-port", "1", "--log-level", "loud"], {}, "--log-level"),
        (["--model-port", "1", "--port", "9000", "--admin-port", "9000"], {}, "both 9000"),
        ([], {"DRIFTWARDEN_MODEL_PORT": "x1"}, "--model-port: 'x1'"),
        (["--model-port", "1", "--spec", "/nonexistent/spec.yaml"], {}, "no such spec file"),
        (["--model-port", "1", "--config", "/nonexistent/c.yaml"], {}, "--config"),
    ],
)
def test_bad_flags_are_one_line(args: list[str], env: dict[str, str], needle: str) -> None:
    line = one_line_error(run("run", "--model", "m", *args, env=env))
    assert needle in line


def test_a_spec_for_another_model_is_refused(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("model: other\nfeatures:\n  - {name: a, type: numerical}\n")
    line = one_line_error(run("run", "--model", "m", "--model-port", "1", "--spec", str(spec)))
    assert "describes model 'other'" in line


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        line = one_line_error(
            run(
                "run", "--model", "m", "--model-port", "1", "--host", "127.0.0.1",
                "--port", str(busy), "--admin-port", "0", "--bootstrap", "127.0.0.1:1",
                "--spool-dir", str(tmp_path / "spool"),
            )
        )  # fmt: skip
    assert line == f"error: --port {busy}: cannot listen (address already in use)"


def test_config_file_errors_name_the_field(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("spool:\n  fsync: sometimes\n")
    with pytest.raises(CollectorError, match=r"spool\.fsync"):
        load_config(cfg)
    cfg.write_text("redact: {featurs: [a]}\n")
    with pytest.raises(CollectorError, match=r"redact\.featurs"):
        load_config(cfg)
    cfg.write_text("json: {features: 'a..b'}\n")
    with pytest.raises(CollectorError, match=r"json\.features"):
        load_config(cfg)
    cfg.write_text(": : :\n")
    with pytest.raises(CollectorError, match="invalid YAML"):
        load_config(cfg)
    line = one_line_error(run("run", "--model", "m", "--model-port", "1", "--config", str(cfg)))
    assert "invalid YAML" in line


def test_config_file_values() -> None:
    cfg = parse_config(
        {
            "topic_prefix": "acme",
            "routes": ["/score"],
            "json": {"features": {"age": "user.age"}, "prediction": "out.p"},
            "redact": {"features": ["email"], "mode": "hash", "salt": "s"},
            "spool": {"max_bytes": 1048576, "fsync": "always", "drop_policy": "newest"},
            "delivery": {"compression": "zstd", "linger_ms": 20},
        }
    )
    assert cfg.json_paths.paths().features == {"age": "user.age"}
    assert cfg.delivery.settings().compression == "zstd"
    assert load_config(None) == parse_config({})
