"""A real Kubernetes control plane on 127.0.0.1 for tests and people: etcd,
kube-apiserver, kube-controller-manager, kube-scheduler and kwok (a fake node whose pods
"run" without containers).

    plane = KubeControlPlane(tmp_path / "k8s").start()   # ~5-10 s
    plane.kubeconfig, plane.server, plane.ca_file, plane.admin_token
    plane.stop()                                          # by PID, leaves nothing running

Binaries come from `scripts/install-k8s.sh` (`make k8s-install`, built from the Go module
proxy into `.cache/k8s/bin`). Certificates and keys are generated here (pure functions on
the `cryptography` package); authentication is a static token file (admin, the two
controllers, kwok, a few test users) plus ServiceAccount tokens; authorization is RBAC.
kwok's fake pod IPs are never contacted: every connection stays on 127.0.0.1.

`python -m driftwarden.services k8s-up` / `k8s-down` run the same, detached, with state in
`.services/k8s/` (see `up` and `down` below).
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import os
import secrets
import shutil
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from driftwarden.errors import ServiceError
from driftwarden.services.ports import LOOPBACK, free_port
from driftwarden.services.process import ManagedProcess, pid_alive, stop_pid

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BIN_DIR = REPO_ROOT / ".cache" / "k8s" / "bin"
KWOK_STAGES = Path(__file__).with_name("kubernetes-kwok-stages.yaml")
INSTALL_HINT = "run `make k8s-install` (scripts/install-k8s.sh) first"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
#: Start order; `stop()` goes backwards.
COMPONENTS = BINARIES
#: The annotation kwok selects its nodes by.
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
ADMIN_USER = "driftwarden-admin"


@dataclass(frozen=True)
class KubeSettings:
    """What the control plane looks like; the defaults suit tests on a 2-core machine."""

    #: ClusterIP range of Services; the API's own Service takes its first address.
    service_cidr: str = "10.0.0.0/24"
    #: Where kwok draws fake pod IPs from (never contacted).
    pod_cidr: str = "10.244.0.0/16"
    #: The one fake node; pods without a nodeSelector land on it.
    node_name: str = "kwok-node-0"
    #: Test users with a static bearer token: name -> groups (besides system:authenticated).
    #: kube-apiserver reads the token file once, so these are fixed at start.
    users: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: {"alice": (), "bob": (), "trigger": (), "injector": ()}
    )
    #: Seconds for the whole start (etcd .. fake node Ready), slow CPUs included.
    start_timeout: float = 120.0
    #: Folder of the binaries; None: $DRIFTWARDEN_K8S_BIN, else .cache/k8s/bin.
    bin_dir: Path | None = None


# --- certificates and keys (pure: bytes in, bytes out) ------------------------------------


@dataclass(frozen=True)
class CertKey:
    """A PEM certificate and its PEM private key."""

    cert_pem: bytes
    key_pem: bytes


def _new_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert(
    subject_cn: str,
    key: Any,
    *,
    issuer: CertKey | None,
    is_ca: bool = False,
    organizations: Sequence[str] = (),
    dns_names: Sequence[str] = (),
    ips: Sequence[str] = (),
    client: bool = False,
    days: int = 30,
) -> CertKey:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, subject_cn))
    subject = x509.Name(attrs)
    if issuer is None:
        issuer_name, signing_key = subject, key
    else:
        issuer_cert = x509.load_pem_x509_certificate(issuer.cert_pem)
        issuer_name = issuer_cert.subject
        signing_key = serialization.load_pem_private_key(issuer.key_pem, password=None)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if is_ca:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), True
        )
    else:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), True
        ).add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(signing_key, hashes.SHA256())
    return CertKey(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def new_ca(name: str = "driftwarden-test-ca") -> CertKey:
    """A self-signed certificate authority (ECDSA P-256, valid 30 days)."""
    return _cert(name, _new_key(), issuer=None, is_ca=True)


def issue_serving_cert(
    ca: CertKey,
    common_name: str,
    *,
    ips: Sequence[str] = (LOOPBACK,),
    dns_names: Sequence[str] = (),
) -> CertKey:
    """A TLS server certificate signed by `ca` for the given IP and DNS names."""
    return _cert(common_name, _new_key(), issuer=ca, ips=ips, dns_names=dns_names)


def issue_client_cert(ca: CertKey, user: str, groups: Sequence[str] = ()) -> CertKey:
    """A TLS client certificate signed by `ca`: Kubernetes reads CN as the user name and
    O as the groups."""
    return _cert(user, _new_key(), issuer=ca, organizations=groups, client=True)


def new_signing_key_pair() -> tuple[bytes, bytes]:
    """(private PEM, public PEM) for signing ServiceAccount tokens (ES256)."""
    from cryptography.hazmat.primitives import serialization

    key = _new_key()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return _key_pem(key), public


# --- configuration files (pure) ----------------------------------------------------------


def render_token_file(tokens: Mapping[str, tuple[str, tuple[str, ...]]]) -> str:
    """kube-apiserver's static token file: `token,user,uid,"group1,group2"` per line, from
    token -> (user, groups)."""
    lines = []
    for token, (user, groups) in tokens.items():
        line = f"{token},{user},{user}"
        if groups:
            line += ',"' + ",".join(groups) + '"'
        lines.append(line)
    return "\n".join(lines) + "\n"


def render_kubeconfig(server: str, ca_pem: bytes, token: str, user: str = "admin") -> str:
    """A kubeconfig (JSON, which is YAML) with one cluster, one token user, one context."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "driftwarden",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "driftwarden", "context": {"cluster": "driftwarden", "user": user}}],
        "current-context": "driftwarden",
    }
    return json.dumps(config, indent=2) + "\n"


def fake_node_manifest(name: str) -> dict[str, Any]:
    """The Node kwok manages: annotated for kwok's selector, no taints, so plain pods
    schedule onto it."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
    }


# --- the control plane --------------------------------------------------------------------


def k8s_bin_dir(bin_dir: Path | str | None = None) -> Path:
    """The folder holding all five binaries, or ServiceError saying how to build them."""
    path = Path(bin_dir or os.environ.get("DRIFTWARDEN_K8S_BIN") or DEFAULT_BIN_DIR)
    missing = [name for name in BINARIES if not (path / name).is_file()]
    if missing:
        raise ServiceError(f"{', '.join(missing)} not found in {path}; {INSTALL_HINT}")
    return path


class KubeControlPlane:
    """etcd + kube-apiserver + controller-manager + scheduler + kwok, each a
    `ManagedProcess` with its log in `state_dir/<name>.log`.

    Attributes after `start()`: `server` ("https://127.0.0.1:PORT"), `kubeconfig` (admin),
    `ca_file`, `ca` (CertKey: sign more certificates with it), `admin_token`,
    `user_tokens` (user -> token), `startup_seconds`, `timings` (seconds per step).
    """

    def __init__(
        self, state_dir: Path | str, settings: KubeSettings | None = None, *, detach: bool = False
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.settings = settings or KubeSettings()
        self.detach = detach
        self.port = free_port()
        self.etcd_port = free_port()
        self.etcd_peer_port = free_port()
        self.server = f"https://{LOOPBACK}:{self.port}"
        self.kubeconfig = self.state_dir / "kubeconfig"
        self.ca_file = self.state_dir / "pki" / "ca.crt"
        self.admin_token = secrets.token_hex(16)
        self.user_tokens = {user: secrets.token_hex(16) for user in self.settings.users}
        self.ca: CertKey | None = None
        self.startup_seconds: float | None = None
        self.timings: dict[str, float] = {}
        self.processes: dict[str, ManagedProcess] = {}

    # -- files --

    def _write(self, relative: str, content: str | bytes, mode: int = 0o600) -> Path:
        path = self.state_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode() if isinstance(content, str) else content
        path.write_bytes(data)
        path.chmod(mode)
        return path

    def _prepare_files(self) -> None:
        pki = "pki"
        self.ca = new_ca()
        serving = issue_serving_cert(
            self.ca,
            "kube-apiserver",
            ips=[LOOPBACK, _first_host(self.settings.service_cidr)],
            dns_names=[
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ],
        )
        sa_private, sa_public = new_signing_key_pair()
        self._write(f"{pki}/ca.crt", self.ca.cert_pem, 0o644)
        self._write(f"{pki}/ca.key", self.ca.key_pem)
        self._write(f"{pki}/apiserver.crt", serving.cert_pem, 0o644)
        self._write(f"{pki}/apiserver.key", serving.key_pem)
        self._write(f"{pki}/sa.key", sa_private)
        self._write(f"{pki}/sa.pub", sa_public, 0o644)

        self._component_tokens = {
            "kube-controller-manager": secrets.token_hex(16),
            "kube-scheduler": secrets.token_hex(16),
            "kwok": secrets.token_hex(16),
        }
        tokens: dict[str, tuple[str, tuple[str, ...]]] = {
            self.admin_token: (ADMIN_USER, ("system:masters",)),
            self._component_tokens["kube-controller-manager"]: (
                "system:kube-controller-manager",
                (),
            ),
            self._component_tokens["kube-scheduler"]: ("system:kube-scheduler", ()),
            # kwok writes node and pod status, leases and deletes pods: cluster admin.
            self._component_tokens["kwok"]: ("kwok-controller", ("system:masters",)),
        }
        for user, token in self.user_tokens.items():
            tokens[token] = (user, tuple(self.settings.users[user]))
        self._write("tokens.csv", render_token_file(tokens))
        self._write(
            "kubeconfig", render_kubeconfig(self.server, self.ca.cert_pem, self.admin_token)
        )
        for name, token in self._component_tokens.items():
            self._write(
                f"{name}.kubeconfig", render_kubeconfig(self.server, self.ca.cert_pem, token, name)
            )

    # -- argv per component --

    def _argv(self, name: str, bin_dir: Path) -> list[str]:
        d, s = self.state_dir, self.settings
        binary = str(bin_dir / name)
        etcd_url = f"http://{LOOPBACK}:{self.etcd_port}"
        peer_url = f"http://{LOOPBACK}:{self.etcd_peer_port}"
        if name == "etcd":
            return [
                binary,
                f"--data-dir={d / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ]
        if name == "kube-apiserver":
            return [
                binary,
                f"--etcd-servers={etcd_url}",
                f"--bind-address={LOOPBACK}",
                f"--advertise-address={LOOPBACK}",
                f"--secure-port={self.port}",
                # The endpoint reconciler refuses a loopback advertise address.
                "--endpoint-reconciler-type=none",
                f"--service-cluster-ip-range={s.service_cidr}",
                "--authorization-mode=RBAC",
                f"--token-auth-file={d / 'tokens.csv'}",
                f"--client-ca-file={d / 'pki' / 'ca.crt'}",
                f"--tls-cert-file={d / 'pki' / 'apiserver.crt'}",
                f"--tls-private-key-file={d / 'pki' / 'apiserver.key'}",
                f"--cert-dir={d / 'pki'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={d / 'pki' / 'sa.pub'}",
                f"--service-account-signing-key-file={d / 'pki' / 'sa.key'}",
                "--profiling=false",
                "--v=0",
            ]
        if name == "kube-controller-manager":
            return [
                binary,
                f"--kubeconfig={d / 'kube-controller-manager.kubeconfig'}",
                "--leader-elect=false",
                "--secure-port=0",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={d / 'pki' / 'sa.key'}",
                f"--root-ca-file={d / 'pki' / 'ca.crt'}",
                f"--cluster-signing-cert-file={d / 'pki' / 'ca.crt'}",
                f"--cluster-signing-key-file={d / 'pki' / 'ca.key'}",
                f"--service-cluster-ip-range={s.service_cidr}",
                "--profiling=false",
                "--v=0",
            ]
        if name == "kube-scheduler":
            return [
                binary,
                f"--kubeconfig={d / 'kube-scheduler.kubeconfig'}",
                "--leader-elect=false",
                "--secure-port=0",
                "--profiling=false",
                "--v=0",
            ]
        if name == "kwok":
            return [
                binary,
                f"--kubeconfig={d / 'kwok.kubeconfig'}",
                f"--config={d / 'kwok-stages.yaml'}",
                f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
                f"--cidr={s.pod_cidr}",
                f"--node-ip={LOOPBACK}",
                "--node-lease-duration-seconds=40",
            ]
        raise ServiceError(f"unknown control-plane component {name!r}")

    def _spawn(self, name: str, bin_dir: Path) -> ManagedProcess:
        process = ManagedProcess(
            name, self._argv(name, bin_dir), self.state_dir / f"{name}.log", detach=self.detach
        )
        process.start()
        self.processes[name] = process
        if self.detach:
            (self.state_dir / f"{name}.pid").write_text(f"{process.pid}\n")
        return process

    # -- API calls the start-up needs (admin token, our CA) --

    def _ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def api(self, method: str, path: str, body: Any = None, timeout: float = 5.0) -> Any:
        """One request to the API server as admin: the decoded JSON answer (text when it is
        not JSON, as for /readyz); ServiceError on failure."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.server + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.admin_token}",
                "Accept": "application/json",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(
                request, timeout=timeout, context=self._ssl_context()
            ) as resp:
                raw = resp.read()
                is_json = resp.headers.get_content_type() == "application/json"
        except urllib.error.HTTPError as e:
            with e:
                detail = e.read().decode(errors="replace")[:500]
            raise ServiceError(f"{method} {path} answered HTTP {e.code}: {detail}") from e
        except OSError as e:
            raise ServiceError(f"{method} {path} failed: {e}") from e
        return json.loads(raw) if is_json else raw.decode(errors="replace")

    def _answers(self, method: str, path: str, check: Callable[[Any], bool] = bool) -> bool:
        try:
            return check(self.api(method, path, timeout=2.0))
        except ServiceError:
            return False

    # -- lifecycle --

    def start(self) -> Self:
        """Start all five and wait until the fake node is Ready and namespaces get their
        default ServiceAccount; ServiceError (with the log tail) otherwise."""
        t0 = time.monotonic()
        deadline = t0 + self.settings.start_timeout

        def left() -> float:
            return max(1.0, deadline - time.monotonic())

        def mark(step: str) -> None:
            self.timings[step] = round(time.monotonic() - t0, 2)

        try:
            bin_dir = k8s_bin_dir(self.settings.bin_dir)
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self._prepare_files()
            self._write("kwok-stages.yaml", KWOK_STAGES.read_bytes(), 0o644)
            mark("certificates")
            # All at once: each waits for the one below it (the apiserver retries etcd, the
            # others poll the apiserver), so their start-up work overlaps.
            etcd, apiserver = (self._spawn(name, bin_dir) for name in COMPONENTS[:2])
            for name in COMPONENTS[2:]:
                self._spawn(name, bin_dir)
            etcd.wait_ready(self._etcd_healthy, left(), "GET /health")
            mark("etcd")
            apiserver.wait_ready(lambda: self._answers("GET", "/readyz"), left(), "GET /readyz")
            mark("kube-apiserver")
            self.api("POST", "/api/v1/nodes", fake_node_manifest(self.settings.node_name))
            self.processes["kwok"].wait_ready(
                lambda: self._answers(
                    "GET", f"/api/v1/nodes/{self.settings.node_name}", _node_ready
                ),
                left(),
                f"node {self.settings.node_name} Ready",
            )
            mark("kwok")
            self.processes["kube-controller-manager"].wait_ready(
                lambda: self._answers("GET", "/api/v1/namespaces/default/serviceaccounts/default"),
                left(),
                "ServiceAccount default/default created",
            )
            mark("kube-controller-manager")
            for process in self.processes.values():  # the scheduler has no readiness probe
                if not process.running():
                    raise process.failure("exited during start-up")
        except BaseException:
            self.stop(timeout=5)
            raise
        self.startup_seconds = time.monotonic() - t0
        self.timings["total"] = round(self.startup_seconds, 2)
        if self.detach:
            (self.state_dir / "startup.json").write_text(json.dumps(self.timings, indent=2) + "\n")
        return self

    def _etcd_healthy(self) -> bool:
        try:
            url = f"http://{LOOPBACK}:{self.etcd_port}/health"
            with urllib.request.urlopen(url, timeout=1.0) as resp:
                return json.loads(resp.read()).get("health") == "true"
        except urllib.error.HTTPError as e:
            e.close()
            return False
        except (OSError, ValueError):
            return False

    def running(self) -> bool:
        return bool(self.processes) and all(p.running() for p in self.processes.values())

    def pids(self) -> dict[str, int | None]:
        return {name: p.pid for name, p in self.processes.items()}

    def rss_bytes(self) -> int:
        """Resident memory of all running components together (from /proc)."""
        return sum(_rss(pid) for pid in self.pids().values() if pid is not None)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every component by PID, newest first. Idempotent."""
        for name in reversed(COMPONENTS):
            process = self.processes.get(name)
            if process is not None:
                process.stop(timeout)
            if self.detach:
                (self.state_dir / f"{name}.pid").unlink(missing_ok=True)

    def __repr__(self) -> str:
        return f"KubeControlPlane(server={self.server!r}, state_dir={str(self.state_dir)!r})"


def _first_host(cidr: str) -> str:
    return str(next(ipaddress.ip_network(cidr).hosts()))


def _node_ready(node: Any) -> bool:
    conditions = (node or {}).get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return 0
    return 0


# --- detached, for people: `python -m driftwarden.services k8s-up|k8s-down` ---------------


def status(state_dir: Path) -> dict[str, int | None]:
    """PID of each component that `up` started and that still runs, None for the others."""
    result: dict[str, int | None] = {}
    for name in COMPONENTS:
        try:
            pid: int | None = int((state_dir / f"{name}.pid").read_text().strip())
        except (OSError, ValueError):
            pid = None
        result[name] = pid if pid is not None and pid_alive(pid) else None
    return result


def down(state_dir: Path, log: Callable[[str], None] = print) -> list[str]:
    """Stop what `up` started, by PID (only processes whose command line names
    `state_dir`), newest first. Returns the names stopped."""
    state_dir = state_dir.resolve()
    stopped = []
    for name in reversed(COMPONENTS):
        pid_file = state_dir / f"{name}.pid"
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
        if stop_pid(pid, must_contain=str(state_dir), timeout=15):
            log(f"k8s: stopped {name} (pid {pid})")
            stopped.append(name)
        pid_file.unlink(missing_ok=True)
    return stopped


def up(
    state_dir: Path, settings: KubeSettings | None = None, log: Callable[[str], None] = print
) -> KubeControlPlane | None:
    """Start a detached control plane with state in `state_dir`; print where the
    kubeconfig is. Returns None when one is already running there (left as it is)."""
    state_dir = state_dir.resolve()
    running = status(state_dir)
    if all(running.values()):
        log(f"k8s: already running; export KUBECONFIG={state_dir / 'kubeconfig'}")
        return None
    down(state_dir, log)
    shutil.rmtree(state_dir, ignore_errors=True)
    plane = KubeControlPlane(state_dir, settings, detach=True).start()
    log(
        f"k8s: up in {plane.startup_seconds:.1f}s at {plane.server} "
        f"(steps {plane.timings}, RSS {plane.rss_bytes() / 2**20:.0f} MiB)"
    )
    log(f"k8s: export KUBECONFIG={plane.kubeconfig}")
    return plane


__all__ = [
    "BINARIES",
    "CertKey",
    "KubeControlPlane",
    "KubeSettings",
    "down",
    "fake_node_manifest",
    "issue_client_cert",
    "issue_serving_cert",
    "k8s_bin_dir",
    "new_ca",
    "new_signing_key_pair",
    "render_kubeconfig",
    "render_token_file",
    "status",
    "up",
]
