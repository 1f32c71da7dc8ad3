"""Service defaults are stated once (on the settings classes) and the CLI loads only what a
command uses: the flags of `driftwarden detectors run` and `python -m detectors.service`
come from `ServiceSettings` + `FLAGS`; `collector run` reads `CollectorSettings`."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from collector.settings import CollectorSettings
from detectors.service.settings import FLAGS, ServiceSettings
from driftwarden.errors import DriftwardenError
from driftwarden.flags import Flag, settings_from_args
from driftwarden.kafka import KAFKA_SECURITY_FLAGS


def _options(module: str) -> dict[str, object]:
    """Option name -> default of a command group's `run` command."""
    app = __import__(module, fromlist=["app"]).app
    group = typer.main.get_command(app)
    run = group.commands["run"] if hasattr(group, "commands") else group
    completion = {"--install-completion", "--show-completion"}
    return {p.opts[0]: p.default for p in run.params if p.opts[0] not in completion}


def test_detectors_cli_defaults_are_the_settings_defaults() -> None:
    options = _options("driftwarden.cli.detectors")
    # The service's own flags, plus the shared Kafka security group (stated once too).
    assert set(options) == {f.option for f in FLAGS} | {f.option for f in KAFKA_SECURITY_FLAGS}
    fields = {f.name: f for f in dataclasses.fields(ServiceSettings)}
    for flag in FLAGS:
        field = fields[flag.field]
        if field.default is not dataclasses.MISSING:
            assert options[flag.option] == field.default, flag.option
    assert options["--checkpoint-interval"] == ServiceSettings.checkpoint_interval_s == 5.0


def test_collector_cli_defaults_are_the_settings_defaults() -> None:
    options = _options("driftwarden.cli.collector")
    assert options["--port"] == str(CollectorSettings.port)
    assert options["--admin-port"] == str(CollectorSettings.admin_port)
    assert options["--bootstrap"] == CollectorSettings.bootstrap
    assert options["--payload-format"] == CollectorSettings.payload_format
    assert float(options["--sample-rate"]) == CollectorSettings.sample_rate  # type: ignore[arg-type]


def test_module_entry_point_reads_flags_then_environment(tmp_path: Path) -> None:
    env = {"DRIFTWARDEN_BOOTSTRAP": "10.0.0.1:9092", "DRIFTWARDEN_MAX_BATCH": "50"}
    s = settings_from_args(
        ServiceSettings,
        FLAGS,
        ["--specs", str(tmp_path), "--max-batch", "20", "--no-publish-results"],
        env,
        prog="test",
    )
    assert s.specs == tmp_path and isinstance(s.specs, Path)
    assert s.max_batch == 20  # the flag wins over the variable
    assert s.bootstrap == "10.0.0.1:9092"
    assert s.publish_results is False
    assert s.checkpoint_interval_s == ServiceSettings.checkpoint_interval_s
    env_bool = settings_from_args(
        ServiceSettings, FLAGS, [], {"DRIFTWARDEN_SPECS": "x", "DRIFTWARDEN_PUBLISH_RESULTS": "0"},
        prog="test",
    )  # fmt: skip
    assert env_bool.publish_results is False and env_bool.specs == Path("x")


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        ([], {}, "--specs is required"),
        (["--specs", "d", "--max-batch", "many"], {}, "--max-batch (or DRIFTWARDEN_MAX_BATCH): "),
        (["--specs", "d"], {"DRIFTWARDEN_PUBLISH_RESULTS": "maybe"}, "'maybe' is not a boolean"),
        (["--specs", "d", "--colour"], {}, "unknown option(s): --colour"),
        (["--specs", "d", "--max-batch", "0"], {}, "--max-batch must be between 1 and 1000"),
    ],
)
def test_module_entry_point_errors_are_one_line(
    argv: list[str], env: dict[str, str], message: str
) -> None:
    with pytest.raises(DriftwardenError) as info:
        settings_from_args(ServiceSettings, FLAGS, argv, env, prog="test")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_flag_names_its_variable() -> None:
    assert Flag("x", "metrics-port", "h").envvar == "DRIFTWARDEN_METRICS_PORT"


def test_help_imports_no_component() -> None:
    """`driftwarden --help` loads the CLI shell only: no component, no numpy or Kafka."""
    code = (
        "import sys\n"
        "from driftwarden.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = {'collector', 'detectors', 'dashboards', 'alerts', 'numpy', 'pandas',"
        " 'confluent_kafka', 'aiohttp', 'pydantic'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"
