"""The command-line checkers shipped with the Debian packages: `promtool` and `amtool`."""

from __future__ import annotations

import subprocess
from pathlib import Path

from driftwarden.errors import ServiceError
from driftwarden.services.process import require_binary


def run_tool(
    binary: str, *args: str | Path, check: bool = True, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run `binary args...`; with `check`, ServiceError (with its output) on non-zero exit."""
    argv = [require_binary(binary), *(str(a) for a in args)]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as e:
        raise ServiceError(f"{' '.join(argv)} did not finish within {timeout:.0f}s") from e
    if check and done.returncode != 0:
        raise ServiceError(
            f"{' '.join(argv)} exited with {done.returncode}:\n{done.stdout}{done.stderr}"
        )
    return done


def promtool_test_rules(
    *test_files: str | Path, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`promtool test rules FILE...` (rule unit tests)."""
    return run_tool("promtool", "test", "rules", *test_files, check=check)


def promtool_check_rules(
    *rule_files: str | Path, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`promtool check rules FILE...` (syntax and PromQL of rule files)."""
    return run_tool("promtool", "check", "rules", *rule_files, check=check)


def promtool_check_config(
    config_file: str | Path, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`promtool check config FILE`."""
    return run_tool("promtool", "check", "config", config_file, check=check)


def amtool_check_config(
    *config_files: str | Path, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`amtool check-config FILE...`."""
    return run_tool("amtool", "check-config", *config_files, check=check)
