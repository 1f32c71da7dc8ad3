"""A local stand-in for the Kubernetes API the retrain trigger and the canary controller use.

The demo runs the production `Trigger` (through `TriggerService`) and the production canary
`Controller`; only the adapters at their edge are local:

- `LocalJobs` is the trigger's `JobBackend` (create / list / annotate Jobs, read the model's
  Deployment, Events, and the list-then-watch of Jobs). A Job runs its pod's container —
  the same `python -m retrain_trigger.train` command line the trigger built — as a
  subprocess, and ends `Complete` or `Failed` as a Job does. A `--data kafka:<N>s` argument
  is first materialised with `driftwarden dataset export --since <N>s` into the Job's folder
  (in a cluster the trainer image's entrypoint does this).
- `LocalRollouts` is the controller's `Kube` (Deployments as the API's JSON: get, create,
  JSON/merge patch, annotate guarded by resourceVersion, delete, scale; Events; Jobs).
- `SplitRouter` is the controller's `replicas` router: where a Service would balance over
  replicas, the demo's traffic generator sends `weight` percent of its requests to the
  canary's collector (`TrafficSplit`).

`ProcessRunner` is the kubelet part, shared with `driftwarden.demo.node` (`--kubeconfig`,
where the objects live in a real API server):
A Deployment with replicas runs one local "pod": its containers' command lines, with the
pod's ports in `$(MODEL_PORT)`, `$(PROXY_PORT)`, `$(ADMIN_PORT)` and its folder in
`$(POD_DIR)` (Kubernetes' `$(VAR)` expansion), and `valueFrom.fieldRef` env values read from
the pod template's metadata (the downward API). It is ready when those ports accept
connections; then it becomes an endpoint of the split and a Prometheus target (file SD).
A changed pod template rolls out as a new pod that replaces the old one once ready.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import itertools
import json
import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonpatch
import numpy as np
from kubernetes import client as k8s

from driftwarden.errors import GiveUp, RetryLater
from driftwarden.services.ports import free_port, port_is_open
from driftwarden.services.process import ManagedProcess
from retrain_trigger.kube import job_view_json

EPOCH_LINE = re.compile(r"^epoch=(\d+)/(\d+)\b")
_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
_FIELD = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _dt(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: known variables are replaced, unknown ones kept."""
    return _VAR.sub(lambda m: env.get(m.group(1), m.group(0)), text)


def container_env(container: dict[str, Any], template_meta: dict[str, Any]) -> dict[str, str]:
    """A container's env: plain values and downward-API `fieldRef`s to the pod's metadata."""
    out: dict[str, str] = {}
    for e in container.get("env") or []:
        if "value" in e:
            out[e["name"]] = str(e["value"])
            continue
        path = ((e.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath", "")
        m = _FIELD.match(path)
        if m:
            out[e["name"]] = str((template_meta.get(m.group(1)) or {}).get(m.group(2), ""))
    return out


# --- traffic split -------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    deployment: str
    version: str
    proxy_url: str  # the collector's proxy in front of the model server
    feedback_url: str  # the collector's POST /v1/feedback


class Endpoints:
    """The ready collectors the traffic generator may send to, by key (a Deployment here, a
    pod in `driftwarden.demo.node`); thread-safe."""

    def __init__(self, seed: int = 0) -> None:
        self._endpoints: dict[str, Endpoint] = {}
        self._lock = threading.Lock()
        self._rng = random.Random(seed)

    def set_endpoint(self, key: str, endpoint: Endpoint | None) -> None:
        with self._lock:
            if endpoint is None:
                self._endpoints.pop(key, None)
            else:
                self._endpoints[key] = endpoint

    def endpoints(self) -> dict[str, Endpoint]:
        with self._lock:
            return dict(self._endpoints)

    def serves(self, deployment: str) -> bool:
        return any(e.deployment == deployment for e in self.endpoints().values())


class TrafficSplit(Endpoints):
    """The local Service: the stable Deployment's ready pod gets what the canary does not."""

    def __init__(self, stable: str, canary: str, seed: int = 0) -> None:
        super().__init__(seed)
        self.stable, self.canary = stable, canary
        self.weight = 0  # percent of requests to the canary

    def set_weight(self, weight: int) -> None:
        self.weight = max(0, min(100, int(weight)))

    def canary_weight(self) -> int:
        """The canary's percent of requests (0 while its pod is not ready)."""
        return self.weight if self.canary in self.endpoints() else 0

    def pick(self) -> Endpoint | None:
        """Where the next request goes (a canary that is not ready yet gets nothing)."""
        with self._lock:
            stable = self._endpoints.get(self.stable)
            canary = self._endpoints.get(self.canary)
        if canary is not None and (stable is None or self._rng.random() * 100 < self.weight):
            return canary
        return stable


class SplitRouter:
    """The canary controller's `replicas` router, for one machine: the weight is the share
    of the traffic generator's requests sent to the canary's collector. As with replicas,
    the stable Deployment runs no pod while the canary takes 100 % (so its metrics stop,
    and the analysis reads its last values), and gets its replicas back when the rollout ends."""

    kind = "replicas"

    def __init__(self, split: TrafficSplit, kube: Any) -> None:
        self.split = split
        self.kube = kube  # scale_deployment(namespace, name, replicas)

    def canary_replicas(self, target: Any, weight: int) -> int:
        return 1

    def set_weight(self, target: Any, weight: int) -> int:
        self.split.set_weight(weight)
        stable = 0 if weight >= 100 else max(1, target.total_replicas)
        self.kube.scale_deployment(target.namespace, target.stable, stable)
        return weight

    def finish(self, target: Any, promoted: bool) -> None:
        self.split.set_weight(0)
        self.kube.scale_deployment(target.namespace, target.stable, max(1, target.total_replicas))

    def describe(self, target: Any, weight: int) -> str:
        return f"send {weight}% of the demo's requests to {target.canary}'s collector"


# --- pods -------------------------------------------------------------------------------------


@dataclass
class Pod:
    name: str
    deployment: str
    version: str
    template: dict[str, Any]
    ports: dict[str, int]
    folder: Path
    processes: list[ManagedProcess] = field(default_factory=list)
    ready: bool = False

    def stop(self) -> None:
        for p in reversed(self.processes):
            with contextlib.suppress(Exception):
                p.stop(timeout=10)


@dataclass
class JobRun:
    """What the demo shows of a running Job: the trainer's last epoch line."""

    name: str
    started_at: float
    epoch: int = 0
    epochs: int = 0
    line: str = ""
    finished_at: float | None = None
    outcome: str = "running"
    exit_code: int | None = None


@dataclass
class ClusterEvent:
    ts: float
    reason: str
    message: str
    warning: bool
    object: str


class ProcessRunner:
    """Runs pods and Job containers as processes on this machine: what a kubelet does for
    the demo, whether the objects live in `LocalCluster` or in a real API server
    (`driftwarden.demo.node`). `close()` stops every Job process it started."""

    def __init__(
        self,
        workdir: Path,
        *,
        bootstrap: str = "",
        kafka_env: dict[str, str] | None = None,
        spec_path: Path | None = None,
        targets_dir: Path | None = None,
        after_training: Callable[[Path], None] | None = None,
        say: Callable[[str], None] = lambda _: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.workdir = workdir
        self.bootstrap = bootstrap
        self.kafka_env = dict(kafka_env or {})  # `dataset export`'s DRIFTWARDEN_KAFKA_*
        self.spec_path = spec_path
        self.targets_dir = targets_dir or workdir / "targets"
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        self.after_training = after_training
        self.say = say
        self.clock = clock
        self.runs: dict[str, JobRun] = {}
        self.failures: list[str] = []  # pods that could not start
        self._lock = threading.Lock()
        self._job_procs: dict[str, subprocess.Popen[bytes]] = {}
        self._forker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pod-forker")

    # --- pods ----------------------------------------------------------------------------

    def start_pod(
        self, pod_name: str, deployment: str, version: str, template: dict[str, Any]
    ) -> Pod | None:
        """Start the containers of `template` (a pod template in the API's JSON form) and
        wait until their ports accept connections; None (and a line in `failures`) when
        they do not."""
        meta = template.get("metadata") or {}
        ports = {k: free_port() for k in ("MODEL_PORT", "PROXY_PORT", "ADMIN_PORT")}
        folder = self.workdir / "pods" / pod_name
        pod = Pod(pod_name, deployment, version, template, ports, folder)
        base = {
            **{k: str(v) for k, v in ports.items()},
            "POD_DIR": str(folder),
            "POD_NAME": pod_name,
        }
        try:
            for c in (template.get("spec") or {}).get("containers") or []:
                env = {**base, **container_env(c, meta)}
                env = {k: expand(v, env) for k, v in env.items()}
                argv = [expand(a, env) for a in [*(c.get("command") or []), *(c.get("args") or [])]]
                proc = ManagedProcess(
                    f"{pod_name}/{c.get('name', 'main')}",
                    argv,
                    self.workdir / "logs" / f"{pod_name}-{c.get('name', 'main')}.log",
                    env={**os.environ, **env},
                )
                pod.processes.append(proc)
                # The kernel kills a child when the *thread* that forked it ends (it is
                # started with PDEATHSIG), so pods are forked by one thread that lives as
                # long as the runner, not by the short-lived one starting this pod.
                self._forker.submit(proc.start).result()
            self.say(f"pod {pod_name} starting (version {version})")
            for port in ports.values():
                pod.processes[-1].wait_ready(
                    lambda p=port: port_is_open("127.0.0.1", p), 90, f"port {port}"
                )
            _warm_up(ports["MODEL_PORT"])
        except Exception as e:
            self.failures.append(f"pod {pod_name} failed to start: {str(e).splitlines()[0]}")
            self.say(self.failures[-1])
            pod.stop()
            return None
        return pod

    def endpoint(self, pod: Pod) -> Endpoint:
        return Endpoint(
            pod.deployment,
            pod.version,
            f"http://127.0.0.1:{pod.ports['PROXY_PORT']}",
            f"http://127.0.0.1:{pod.ports['ADMIN_PORT']}/v1/feedback",
        )

    def publish(self, pod: Pod) -> None:
        """The pod's collector becomes a Prometheus target (file service discovery)."""
        path = self.targets_dir / f"{pod.name}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                [
                    {
                        "targets": [f"127.0.0.1:{pod.ports['ADMIN_PORT']}"],
                        "labels": {"pod": pod.name, "deployment": pod.deployment},
                    }
                ]
            )
        )
        tmp.rename(path)

    def unpublish(self, pod: Pod) -> None:
        (self.targets_dir / f"{pod.name}.json").unlink(missing_ok=True)

    # --- Jobs ----------------------------------------------------------------------------

    def run_job(
        self, name: str, metadata: dict[str, Any], pod_spec: dict[str, Any], deadline: float
    ) -> tuple[int, str, str]:
        """Run a Job's container to its end: (exit code, reason, message); the code is -1
        when it could not start and the reason `DeadlineExceeded` when it ran too long."""
        with self._lock:
            run = self.runs.setdefault(name, JobRun(name, self.clock()))
        container = pod_spec["containers"][0]
        env = {**os.environ, **container_env(container, metadata)}
        argv = [*(container.get("command") or []), *(container.get("args") or [])]
        folder = self.workdir / "jobs" / name
        folder.mkdir(parents=True, exist_ok=True)
        log_path = self.workdir / "logs" / f"job-{name}.log"
        code: int | None
        try:
            argv = self._materialise_data(name, argv, folder, log_path, metadata)
            code = self._exec(name, argv, env, log_path, deadline)
            if code == 0 and self.after_training is not None:
                artifact = (metadata.get("annotations") or {}).get("driftwarden.io/artifact", "")
                self.after_training(Path(artifact))
            reason, message = "", ""
            if code is None:
                code, reason = -1, "DeadlineExceeded"
                message = f"the trainer ran past {deadline:.0f}s"
            elif code != 0:
                reason = "BackoffLimitExceeded"
                message = f"trainer exited with {code}: {_last_line(log_path)}"
        except Exception as e:  # a Job that cannot run fails, as a pod that cannot start
            code, reason, message = -1, "StartError", str(e).splitlines()[0]
        ok = code == 0
        with self._lock:
            run.finished_at, run.exit_code = self.clock(), code
            run.outcome = "succeeded" if ok else "failed"
        return code, reason, message

    def stop_job(self, name: str) -> None:
        with self._lock:
            proc = self._job_procs.get(name)
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()

    def _materialise_data(
        self, name: str, argv: list[str], folder: Path, log_path: Path, metadata: dict[str, Any]
    ) -> list[str]:
        if "--data" not in argv:
            return argv
        i = argv.index("--data") + 1
        m = re.fullmatch(r"kafka:(\d+)s", argv[i]) if i < len(argv) else None
        if m is None:
            return argv
        out = folder / "data.parquet"
        model = metadata["annotations"]["driftwarden.io/model"]
        export = [
            sys.executable,
            "-m",
            "driftwarden",
            "dataset",
            "export",
            "--model",
            model,
            "--since",
            f"{m.group(1)}s",
            "-o",
            str(out),
            "--bootstrap",
            self.bootstrap,
        ]
        if self.spec_path is not None:
            export += ["--spec", str(self.spec_path)]
        env = {**os.environ, **self.kafka_env}
        code = self._exec(name, export, env, log_path, 300)
        if code != 0:
            raise RuntimeError(f"dataset export exited with {code}: {_last_line(log_path)}")
        return [*argv[:i], str(out), *argv[i + 1 :]]

    def _exec(
        self, name: str, argv: Sequence[str], env: dict[str, str], log_path: Path, deadline: float
    ) -> int | None:
        """Run one process to completion, its output to the log and epoch lines to the run;
        None when it ran past `deadline` seconds (then it is killed)."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        run = self.runs[name]
        with open(log_path, "ab") as log:
            log.write(f"--- {time.strftime('%H:%M:%S')} running: {' '.join(argv)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
            with self._lock:
                self._job_procs[name] = proc
            expired = threading.Event()

            def expire() -> None:
                expired.set()
                proc.kill()

            timer = threading.Timer(deadline, expire)
            timer.daemon = True
            timer.start()
            try:
                assert proc.stdout is not None
                for raw in proc.stdout:
                    log.write(raw)
                    log.flush()
                    line = raw.decode(errors="replace").strip()
                    m = EPOCH_LINE.match(line)
                    if m:
                        run.epoch, run.epochs, run.line = int(m.group(1)), int(m.group(2)), line
                code = proc.wait()
            finally:
                timer.cancel()
                with self._lock:
                    self._job_procs.pop(name, None)
        return None if expired.is_set() else code

    def close(self) -> None:
        """Stop every Job process and the pods' forking thread."""
        self.stop_jobs()
        self._forker.shutdown(wait=True)

    def stop_jobs(self) -> None:
        """Stop every Job process (SIGTERM, then SIGKILL)."""
        with self._lock:
            procs = list(self._job_procs.values())
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


class RunnerView:
    """What the demo's watcher reads of the Jobs and pods a `ProcessRunner` runs."""

    runner: ProcessRunner

    @property
    def runs(self) -> dict[str, JobRun]:
        return self.runner.runs

    @property
    def failures(self) -> list[str]:
        return self.runner.failures


class LocalCluster(RunnerView):
    """The shared state behind `LocalJobs` and `LocalRollouts`: Deployments, Jobs and Events
    in memory, their pods and Job containers run by `runner`; `close()` stops them all."""

    def __init__(
        self,
        split: TrafficSplit,
        runner: ProcessRunner,
        *,
        namespace: str = "default",
        say: Callable[[str], None] = lambda _: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.split = split
        self.runner = runner
        self.namespace = namespace
        self.say = say
        self.clock = clock
        self._lock = threading.RLock()
        self._rv = itertools.count(1)
        self.deployments: dict[str, dict[str, Any]] = {}
        self.pods: dict[str, Pod] = {}  # deployment -> its ready pod
        self._starting: dict[str, dict[str, Any]] = {}  # deployment -> template coming up
        self.jobs: dict[str, dict[str, Any]] = {}
        self.events: list[ClusterEvent] = []
        self._event_keys: set[str] = set()
        self._watchers: list[queue.Queue[str]] = []
        self._threads: list[threading.Thread] = []
        self._closed = threading.Event()
        self._pod_seq = itertools.count(1)

    # --- Deployments ---------------------------------------------------------------------

    def add_deployment(self, manifest: dict[str, Any]) -> bool:
        name = manifest["metadata"]["name"]
        with self._lock:
            if name in self.deployments:
                return False
            obj = copy.deepcopy(manifest)
            meta = obj["metadata"]
            meta.setdefault("namespace", self.namespace)
            meta.setdefault("annotations", {})
            meta["uid"] = f"uid-{name}"
            meta["generation"] = 1
            meta["resourceVersion"] = str(next(self._rv))
            meta["creationTimestamp"] = _rfc3339(self.clock())
            obj.setdefault("spec", {}).setdefault("replicas", 1)
            obj["status"] = {"observedGeneration": 0}
            self.deployments[name] = obj
        self._reconcile(name)
        return True

    def deployment(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            obj = self.deployments.get(name)
            return copy.deepcopy(obj) if obj is not None else None

    def patch_deployment(self, name: str, patch: dict[str, Any] | list) -> None:
        with self._lock:
            obj = self.deployments.get(name)
            if obj is None:
                raise GiveUp(f"patch Deployment {self.namespace}/{name}: HTTP 404 Not Found")
            before = copy.deepcopy(obj.get("spec"))
            if isinstance(patch, list):
                try:
                    new = jsonpatch.apply_patch(obj, patch)
                except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as e:
                    raise GiveUp(f"patch Deployment {name}: HTTP 422 {e}") from e
            else:
                rv = (patch.get("metadata") or {}).get("resourceVersion")
                if rv is not None and rv != obj["metadata"]["resourceVersion"]:
                    raise RetryLater(f"patch Deployment {name}: HTTP 409 Conflict")
                new = _merge(copy.deepcopy(obj), patch)
            if new == obj:
                return  # a no-op patch changes nothing, not even the resourceVersion
            new["metadata"]["resourceVersion"] = str(next(self._rv))
            if new.get("spec") != before:
                new["metadata"]["generation"] = obj["metadata"]["generation"] + 1
            self.deployments[name] = new
        self._reconcile(name)

    def annotate_deployment(
        self, name: str, annotations: dict[str, str], resource_version: str
    ) -> bool:
        with self._lock:
            obj = self.deployments.get(name)
            if obj is None:
                raise GiveUp(f"annotate Deployment {self.namespace}/{name}: HTTP 404 Not Found")
            if obj["metadata"]["resourceVersion"] != resource_version:
                return False
            current = obj["metadata"].setdefault("annotations", {})
            for k, v in annotations.items():
                if v is None:
                    current.pop(k, None)
                else:
                    current[k] = v
            obj["metadata"]["resourceVersion"] = str(next(self._rv))
            return True

    def delete_deployment(self, name: str) -> bool:
        with self._lock:
            obj = self.deployments.pop(name, None)
            pod = self.pods.pop(name, None)
        if pod is not None:
            self._retire(pod)
        return obj is not None

    # --- pods ----------------------------------------------------------------------------

    def _reconcile(self, name: str) -> None:
        """Bring the Deployment's pod in line with its spec (in a thread: pods take seconds)."""
        with self._lock:
            obj = self.deployments.get(name)
            if obj is None:
                return
            want = int(obj["spec"].get("replicas", 1))
            template = obj["spec"].get("template") or {}
            pod = self.pods.get(name)
            if want == 0:
                if pod is not None:
                    self.pods.pop(name)
                    self._retire(pod)
                self._set_status(name, 0)
                return
            if pod is not None and pod.template == template:
                self._set_status(name, 1 if pod.ready else 0)
                return
            if self._starting.get(name) == template:
                return  # that pod is on its way
            self._starting[name] = copy.deepcopy(template)
        t = threading.Thread(
            target=self._roll, args=(name, copy.deepcopy(template)), daemon=True, name=f"pod-{name}"
        )
        self._threads.append(t)
        t.start()

    def _set_status(self, name: str, available: int) -> None:
        obj = self.deployments.get(name)
        if obj is None:
            return
        want = int(obj["spec"].get("replicas", 1))
        obj["status"] = {
            "observedGeneration": obj["metadata"]["generation"] if available == want else 0,
            "replicas": available,
            "updatedReplicas": available,
            "availableReplicas": available,
            "readyReplicas": available,
        }

    def _roll(self, name: str, template: dict[str, Any]) -> None:
        meta = template.get("metadata") or {}
        version = str((meta.get("labels") or {}).get("version", "?"))
        pod_name = f"{name}-{version}-{next(self._pod_seq)}"
        pod = self.runner.start_pod(pod_name, name, version, template)
        with self._lock:
            if self._starting.get(name) == template:
                del self._starting[name]
            if pod is None:
                return
            obj = self.deployments.get(name)
            current = (obj or {}).get("spec", {}).get("template")
            want = int((obj or {}).get("spec", {}).get("replicas", 0))
            if obj is None or current != template or want == 0 or self._closed.is_set():
                pod.stop()  # deleted or changed again while starting
                return
            old = self.pods.get(name)
            pod.ready = True
            self.pods[name] = pod
            self.runner.publish(pod)
            self.split.set_endpoint(name, self.runner.endpoint(pod))
            self._set_status(name, 1)
        self.say(f"pod {pod_name} ready: collector on 127.0.0.1:{pod.ports['PROXY_PORT']}")
        if old is not None:
            self._retire(old)

    def _retire(self, pod: Pod) -> None:
        with self._lock:
            current = self.pods.get(pod.deployment)
            if current is None or current is pod:
                self.split.set_endpoint(pod.deployment, None)
        self.runner.unpublish(pod)
        pod.stop()
        self.say(f"pod {pod.name} stopped")

    # --- Jobs ----------------------------------------------------------------------------

    def create_job(self, manifest: dict[str, Any]) -> bool:
        name = manifest["metadata"]["name"]
        with self._lock:
            if name in self.jobs:
                return False
            job = copy.deepcopy(manifest)
            job["metadata"]["creationTimestamp"] = _rfc3339(self.clock())
            job["metadata"]["uid"] = f"uid-{name}"
            job["status"] = {"active": 1}
            self.jobs[name] = job
            self.runner.runs[name] = JobRun(name, self.clock())
        self._notify(name)
        t = threading.Thread(target=self._run_job, args=(name,), daemon=True, name=f"job-{name}")
        self._threads.append(t)
        t.start()
        return True

    def annotate_job(self, name: str, annotations: dict[str, str]) -> None:
        with self._lock:
            job = self.jobs.get(name)
            if job is None:
                raise GiveUp(f"annotate Job {self.namespace}/{name}: HTTP 404 Not Found")
            job["metadata"].setdefault("annotations", {}).update(annotations)
        self._notify(name)

    def job_objects(self) -> list[k8s.V1Job]:
        with self._lock:
            return [v1_job(j) for j in self.jobs.values()]

    def job_views(self) -> list[Any]:
        with self._lock:
            return [job_view_json(j) for j in self.jobs.values()]

    def _notify(self, name: str) -> None:
        with self._lock:
            for q in self._watchers:
                q.put(name)

    def _run_job(self, name: str) -> None:
        with self._lock:
            job = copy.deepcopy(self.jobs[name])
        spec = job["spec"]
        deadline = float(spec.get("activeDeadlineSeconds") or 4 * 3600)
        code, reason, message = self.runner.run_job(
            name, job["metadata"], spec["template"]["spec"], deadline
        )
        now = self.clock()
        ok = code == 0
        condition = {
            "type": "Complete" if ok else "Failed",
            "status": "True",
            "lastTransitionTime": _rfc3339(now),
        }
        if not ok:
            condition.update(reason=reason, message=message)
        with self._lock:
            stored = self.jobs.get(name)
            if stored is None:
                return
            stored["status"] = {
                "conditions": [condition],
                "succeeded" if ok else "failed": 1,
                **({"completionTime": _rfc3339(now)} if ok else {}),
            }
        self._notify(name)

    # --- Events ---------------------------------------------------------------------------

    def emit_event(
        self, obj: str, *, reason: str, message: str, warning: bool, key: str, now: float
    ) -> bool:
        with self._lock:
            if f"{key}/{reason}" in self._event_keys:
                return False
            self._event_keys.add(f"{key}/{reason}")
            self.events.append(ClusterEvent(now, reason, message, warning, obj))
        return True

    # --- lifecycle ----------------------------------------------------------------------

    def watcher(self) -> queue.Queue[str]:
        q: queue.Queue[str] = queue.Queue()
        with self._lock:
            self._watchers.append(q)
        return q

    def close(self) -> None:
        """Stop every Job process and every pod (SIGTERM, then SIGKILL)."""
        self._closed.set()
        with self._lock:
            pods = list(self.pods.values())
            self.pods.clear()
        self.runner.stop_jobs()
        for pod in pods:
            pod.stop()
        for t in self._threads:
            t.join(timeout=15)  # a pod still starting stops itself once it sees _closed
        self.runner.close()


def _warm_up(port: int, requests: int = 30) -> None:
    """What a readiness probe with a warm-up does: a few predictions straight to the model
    server (not through the collector, so no metrics), so the pod's first real requests do
    not pay torch's first-call costs — which the canary's latency check would see."""
    import urllib.request

    from driftwarden.demo.data import MODEL, sample_rows

    rng = np.random.default_rng(0)
    cols = sample_rows(rng, requests)
    rows = [
        {k: (v[i].item() if hasattr(v[i], "item") else v[i]) for k, v in cols.items()}
        for i in range(requests)
    ]
    url = f"http://127.0.0.1:{port}/v1/models/{MODEL}:predict"
    for row in rows:
        body = json.dumps({"instances": [row]}).encode()
        req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """JSON merge patch (RFC 7386), enough for the controller's `{"spec": {"replicas": n}}`."""
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        elif isinstance(v, dict) and isinstance(target.get(k), dict):
            _merge(target[k], v)
        else:
            target[k] = copy.deepcopy(v)
    return target


def _last_line(path: Path) -> str:
    try:
        lines = [x for x in path.read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def v1_job(job: dict[str, Any]) -> k8s.V1Job:
    """The client's V1Job for a Job in the API's JSON form (what a watch would deliver)."""
    meta = job["metadata"]
    status = job.get("status") or {}
    conditions = [
        k8s.V1JobCondition(
            type=c["type"],
            status=c["status"],
            reason=c.get("reason"),
            message=c.get("message"),
            last_transition_time=_dt(c.get("lastTransitionTime")),
        )
        for c in status.get("conditions") or []
    ]
    return k8s.V1Job(
        api_version="batch/v1",
        kind="Job",
        metadata=k8s.V1ObjectMeta(
            name=meta["name"],
            namespace=meta.get("namespace"),
            uid=meta.get("uid"),
            labels=dict(meta.get("labels") or {}),
            annotations=dict(meta.get("annotations") or {}),
            creation_timestamp=_dt(meta.get("creationTimestamp")),
        ),
        status=k8s.V1JobStatus(
            conditions=conditions or None,
            completion_time=_dt(status.get("completionTime")),
            succeeded=status.get("succeeded"),
            failed=status.get("failed"),
            active=status.get("active"),
        ),
    )


# --- the adapters -------------------------------------------------------------------------


class LocalJobs:
    """The retrain trigger's `JobBackend` over a `LocalCluster`."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.namespaces = (cluster.namespace,)

    def list_jobs(self) -> list[Any]:
        return self.cluster.job_views()

    def create_job(self, manifest: dict[str, Any]) -> bool:
        return self.cluster.create_job(manifest)

    def get_deployment(self, namespace: str, name: str) -> k8s.V1Deployment | None:
        obj = self.cluster.deployment(name) if namespace == self.cluster.namespace else None
        if obj is None:
            return None
        meta = obj["metadata"]
        return k8s.V1Deployment(
            metadata=k8s.V1ObjectMeta(
                name=meta["name"],
                namespace=meta.get("namespace"),
                uid=meta.get("uid"),
                labels=dict(meta.get("labels") or {}),
                annotations=dict(meta.get("annotations") or {}),
            )
        )

    def annotate_job(self, namespace: str, name: str, annotations: dict[str, str]) -> None:
        self.cluster.annotate_job(name, annotations)

    def emit_event(
        self,
        namespace: str,
        deployment: str,
        *,
        reason: str,
        message: str,
        warning: bool = False,
        key: str,
        uid: str | None = None,
        now: float,
    ) -> bool:
        return self.cluster.emit_event(
            f"Deployment/{deployment}",
            reason=reason,
            message=message,
            warning=warning,
            key=key,
            now=now,
        )

    def watch_jobs(
        self,
        namespace: str,
        on_job: Callable[[Any], None],
        stop: threading.Event,
        *,
        timeout_s: int = 60,
        on_listed: Callable[[str, list[Any]], None] | None = None,
    ) -> None:
        """List every Job once, then deliver each change until `stop` (as a watch does)."""
        changes = self.cluster.watcher()
        items = self.cluster.job_objects()
        if on_listed is not None:
            on_listed(namespace, items)
        for job in items:
            on_job(job)
        while not stop.is_set():
            try:
                name = changes.get(timeout=0.5)
            except queue.Empty:
                continue
            for job in self.cluster.job_objects():
                if job.metadata.name == name:
                    on_job(job)


class LocalRollouts:
    """The canary controller's `Kube` over a `LocalCluster` (objects as the API's JSON)."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster

    def get_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.cluster.deployment(name) if namespace == self.cluster.namespace else None

    def create_deployment(self, manifest: dict[str, Any]) -> bool:
        return self.cluster.add_deployment(manifest)

    def patch_deployment(self, namespace: str, name: str, patch: Any) -> None:
        self.cluster.patch_deployment(name, patch)

    def annotate_deployment(
        self, namespace: str, name: str, annotations: dict[str, str], resource_version: str
    ) -> bool:
        return self.cluster.annotate_deployment(name, annotations, resource_version)

    def delete_deployment(self, namespace: str, name: str) -> bool:
        return self.cluster.delete_deployment(name)

    def scale_deployment(self, namespace: str, name: str, replicas: int) -> None:
        self.cluster.patch_deployment(name, {"spec": {"replicas": replicas}})

    def emit_event(self, namespace: str, deployment: str, **kwargs: Any) -> bool:
        kwargs.pop("uid", None)
        kwargs.setdefault("warning", False)
        return self.cluster.emit_event(f"Deployment/{deployment}", **kwargs)

    def list_jobs_raw(self, namespace: str) -> list[k8s.V1Job]:
        return self.cluster.job_objects() if namespace == self.cluster.namespace else []
