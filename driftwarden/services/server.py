"""What Prometheus and Alertmanager servers share: a real binary on a free loopback port,
with its own data folder, a generated config file and a log, ready when `GET /-/ready`
answers. Subclasses say only which binary and which flags."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar, Self

from driftwarden.services.http import http_ok
from driftwarden.services.ports import LOOPBACK, free_port
from driftwarden.services.process import ManagedProcess, require_binary


class HttpServerProcess(ABC):
    name: ClassVar[str]  # "prometheus": names the config and log files
    default_binary: ClassVar[str]

    def __init__(
        self,
        data_dir: Path | str,
        *,
        config_yaml: str,
        port: int | None = None,
        binary: str | None = None,
        detach: bool = False,
        start_timeout: float = 30.0,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.config_yaml = config_yaml
        self.port = port or free_port()
        self.binary = binary or self.default_binary
        self.detach = detach
        self.start_timeout = start_timeout
        self.config_path = self.data_dir / f"{self.name}.yml"
        self.log_path = self.data_dir / f"{self.name}.log"
        self.startup_seconds: float | None = None
        self._process: ManagedProcess | None = None

    @abstractmethod
    def flags(self) -> list[str]:
        """Command-line flags after the binary (config, storage, listen address, ...)."""

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def running(self) -> bool:
        return self._process is not None and self._process.running()

    def launch(self) -> None:
        binary = require_binary(self.binary)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_yaml)
        self._t0 = time.monotonic()
        self._process = ManagedProcess(
            f"{self.name} {self.url}", [binary, *self.flags()], self.log_path, detach=self.detach
        )
        self._process.start()

    def wait_ready(self, timeout: float | None = None) -> float:
        assert self._process is not None, "launch() first"
        self._process.wait_ready(
            lambda: http_ok(f"{self.url}/-/ready"), timeout or self.start_timeout, "GET /-/ready"
        )
        self.startup_seconds = time.monotonic() - self._t0
        return self.startup_seconds

    def start(self, timeout: float | None = None) -> Self:
        try:
            self.launch()
            self.wait_ready(timeout)
        except BaseException:
            if self._process is not None:
                self._process.kill()
            raise
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._process is not None:
            self._process.stop(timeout)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self.url!r}, data_dir={str(self.data_dir)!r})"
