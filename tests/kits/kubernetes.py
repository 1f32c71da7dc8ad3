"""pytest fixtures for a real Kubernetes control plane (registered in tests/conftest.py).

    k8s                   session: one shared cluster (KubeCluster); tests use unique
                          namespaces (`k8s.namespace("prefix")`)
    admission_webhook     function: an HTTPS AdmissionReview server on 127.0.0.1 that
                          records every call (AdmissionWebhook)

The cluster is etcd + kube-apiserver + controller-manager + scheduler + kwok (one fake
node) from `driftwarden.services.kubernetes`, started once per session and stopped by PID.
With DRIFTWARDEN_TEST_KUBECONFIG=/path/to/kubeconfig the tests use that cluster instead
(its current context must be allowed to create namespaces, RBAC objects and webhook
configurations); `token_for()` then fails, as static test users exist only locally.

A missing binary or a failed start fails the test with the reason and the log tail;
nothing is skipped.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import os
import secrets
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
import yaml

from driftwarden.errors import ServiceError
from driftwarden.services.kubernetes import (
    CertKey,
    KubeControlPlane,
    issue_serving_cert,
    new_ca,
)
from driftwarden.services.ports import LOOPBACK

if TYPE_CHECKING:
    from kubernetes import client as k8s_client

# `kubernetes` is imported inside the functions that use it: the package takes seconds to
# import and this plugin is loaded by every pytest run, unit tests included.

T = TypeVar("T")
EXTERNAL_KUBECONFIG_ENV = "DRIFTWARDEN_TEST_KUBECONFIG"

# Figures shown in the terminal summary.
_FIGURES: dict[str, Any] = {}


@functools.cache
def closing_api_client_class() -> type[k8s_client.ApiClient]:
    """`kubernetes.client.ApiClient` whose `close()` (and `with` exit) also closes its
    pooled HTTPS connections; the stock one leaves them to the garbage collector, which
    pytest (warnings as errors) reports as an unclosed-socket ResourceWarning."""
    from kubernetes import client as k8s_client

    class ClosingApiClient(k8s_client.ApiClient):
        def close(self) -> None:
            super().close()
            self.rest_client.pool_manager.clear()

    return ClosingApiClient


class KubeCluster:
    """What tests see of a cluster: where it is, how to be admin or someone else, and
    helpers for unique namespaces and polling.

    Every `ApiClient` returned here is fresh; use it as a context manager (`with
    k8s.api_client() as api: ...`) so its connection pool is closed.
    """

    def __init__(
        self,
        *,
        kubeconfig: Path,
        server: str,
        ca_file: Path,
        admin_token: str,
        user_tokens: Mapping[str, tuple[str, tuple[str, ...]]] | None = None,
        plane: KubeControlPlane | None = None,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.server = server
        self.ca_file = ca_file
        self.admin_token = admin_token
        self.plane = plane
        # user -> (token, groups)
        self._user_tokens = dict(user_tokens or {})
        self.created_namespaces: list[str] = []

    @classmethod
    def from_plane(cls, plane: KubeControlPlane) -> KubeCluster:
        users = {
            user: (token, tuple(plane.settings.users[user]))
            for user, token in plane.user_tokens.items()
        }
        return cls(
            kubeconfig=plane.kubeconfig,
            server=plane.server,
            ca_file=plane.ca_file,
            admin_token=plane.admin_token,
            user_tokens=users,
            plane=plane,
        )

    @classmethod
    def from_kubeconfig(cls, kubeconfig: Path, scratch: Path) -> KubeCluster:
        """A cluster described by an existing kubeconfig (its current context)."""
        config = yaml.safe_load(kubeconfig.read_text()) or {}
        context_name = config.get("current-context")
        contexts = {c["name"]: c["context"] for c in config.get("contexts") or []}
        clusters = {c["name"]: c["cluster"] for c in config.get("clusters") or []}
        users = {u["name"]: u.get("user") or {} for u in config.get("users") or []}
        if context_name not in contexts:
            raise ServiceError(f"{kubeconfig}: current-context {context_name!r} is not defined")
        context = contexts[context_name]
        cluster = clusters[context["cluster"]]
        user = users.get(context.get("user"), {})
        ca_file = scratch / "ca.crt"
        if "certificate-authority-data" in cluster:
            ca_file.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
        elif "certificate-authority" in cluster:
            ca_file = (kubeconfig.parent / cluster["certificate-authority"]).resolve()
        return cls(
            kubeconfig=kubeconfig,
            server=cluster["server"],
            ca_file=ca_file,
            admin_token=user.get("token", ""),
        )

    # -- clients --

    def api_client(self) -> k8s_client.ApiClient:
        """A fresh admin client (from the admin kubeconfig)."""
        from kubernetes import client as k8s_client
        from kubernetes import config as k8s_config

        configuration = k8s_client.Configuration()
        k8s_config.load_kube_config(
            config_file=str(self.kubeconfig), client_configuration=configuration
        )
        return closing_api_client_class()(configuration)

    def api_client_for_token(self, token: str) -> k8s_client.ApiClient:
        """A fresh client that authenticates with a bearer token (a test user's or a
        ServiceAccount's) and verifies the server against the cluster CA."""
        from kubernetes import client as k8s_client

        configuration = k8s_client.Configuration()
        configuration.host = self.server
        configuration.ssl_ca_cert = str(self.ca_file)
        configuration.api_key = {"authorization": token}
        configuration.api_key_prefix = {"authorization": "Bearer"}
        return closing_api_client_class()(configuration)

    def token_for(self, user: str, groups: Sequence[str] = ()) -> str:
        """The static bearer token of a test user prepared at start ("alice", "bob",
        "trigger", "injector"; no groups besides system:authenticated). kube-apiserver
        reads its token file once, so other users or groups need `KubeSettings.users`
        or, dynamically, `service_account_token()`."""
        if self.plane is None:
            raise ServiceError(
                f"token_for({user!r}): static test users exist only in the local control "
                f"plane, not with {EXTERNAL_KUBECONFIG_ENV}; use service_account_token()"
            )
        known = self._user_tokens.get(user)
        if known is None or tuple(groups) != known[1]:
            have = {u: list(g) for u, (_, g) in self._user_tokens.items()}
            raise ServiceError(
                f"token_for({user!r}, groups={list(groups)}): not in the token file "
                f"(users: {have}); use service_account_token() or KubeSettings.users"
            )
        return known[0]

    def service_account_token(
        self, namespace: str, name: str, *, expiration_seconds: int = 3600
    ) -> str:
        """A token for ServiceAccount `namespace/name` from the TokenRequest API; the
        ServiceAccount is created when it does not exist."""
        from kubernetes import client as k8s_client

        with self.api_client() as api:
            core = k8s_client.CoreV1Api(api)
            try:
                core.create_namespaced_service_account(
                    namespace, k8s_client.V1ServiceAccount(metadata={"name": name})
                )
            except k8s_client.ApiException as e:
                if e.status != 409:
                    raise
            request = k8s_client.AuthenticationV1TokenRequest(
                spec=k8s_client.V1TokenRequestSpec(
                    audiences=[], expiration_seconds=expiration_seconds
                )
            )
            answer = core.create_namespaced_service_account_token(name, namespace, request)
            return answer.status.token

    # -- namespaces and polling --

    def namespace(self, name_prefix: str = "test", labels: Mapping[str, str] | None = None) -> str:
        """Create a namespace with a unique name (`<prefix>-<6 hex>`) and wait until its
        default ServiceAccount exists (pods are refused before that). Returns the name."""
        from kubernetes import client as k8s_client

        name = f"{name_prefix}-{secrets.token_hex(3)}"
        with self.api_client() as api:
            core = k8s_client.CoreV1Api(api)
            core.create_namespace(
                k8s_client.V1Namespace(metadata={"name": name, "labels": dict(labels or {})})
            )
            self.created_namespaces.append(name)
            self.wait(
                lambda: _exists(lambda: core.read_namespaced_service_account("default", name)),
                timeout=30,
                what=f"ServiceAccount {name}/default",
            )
        return name

    def wait(
        self,
        predicate: Callable[[], T],
        timeout: float = 30.0,
        what: str = "condition",
        interval: float = 0.1,
    ) -> T:
        """Poll `predicate()` until it returns something truthy and return that; fail the
        test naming `what` (and the last value) after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                pytest.fail(
                    f"timed out after {timeout:.0f}s waiting for {what}; last: {value!r}",
                    pytrace=False,
                )
            time.sleep(interval)

    def rss_bytes(self) -> int:
        """Resident memory of the local control plane (0 for an external cluster)."""
        return self.plane.rss_bytes() if self.plane is not None else 0

    def __repr__(self) -> str:
        return f"KubeCluster(server={self.server!r}, kubeconfig={str(self.kubeconfig)!r})"


def _exists(read: Callable[[], Any]) -> bool:
    from kubernetes import client as k8s_client

    try:
        read()
    except k8s_client.ApiException as e:
        if e.status == 404:
            return False
        raise
    return True


@pytest.fixture(scope="session")
def k8s(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    """One Kubernetes control plane for the whole session (see the module docstring)."""
    external = os.environ.get(EXTERNAL_KUBECONFIG_ENV)
    if external:
        from kubernetes import client as k8s_client

        cluster = KubeCluster.from_kubeconfig(Path(external), tmp_path_factory.mktemp("k8s"))
        try:
            yield cluster
        finally:
            with cluster.api_client() as api:
                core = k8s_client.CoreV1Api(api)
                for name in cluster.created_namespaces:
                    with contextlib.suppress(k8s_client.ApiException):
                        core.delete_namespace(name)
        return
    plane = KubeControlPlane(tmp_path_factory.mktemp("k8s"))
    error: ServiceError | None = None
    try:
        plane.start()
    except ServiceError as e:
        error = e
    if error is not None:  # outside `except`: one clear message, no chained traceback
        pytest.fail(f"Kubernetes control plane did not start: {error}", pytrace=False)
    _FIGURES["startup"] = plane.timings
    _FIGURES["rss_start"] = plane.rss_bytes()
    try:
        yield KubeCluster.from_plane(plane)
    finally:
        _FIGURES["rss_end"] = plane.rss_bytes()
        plane.stop()


def record_figure(name: str, value: Any) -> None:
    """Add a measurement to the end-of-run summary line (pods-Running latency, ...)."""
    _FIGURES[name] = value


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _FIGURES:
        return
    parts = [f"start-up {json.dumps(_FIGURES.get('startup'))}"]
    for key in ("rss_start", "rss_end"):
        if _FIGURES.get(key):
            parts.append(f"{key} {_FIGURES[key] / 2**20:.0f} MiB")
    for key, value in _FIGURES.items():
        if key not in ("startup", "rss_start", "rss_end"):
            parts.append(f"{key} {value}")
    terminalreporter.write_line("driftwarden kubernetes: " + "; ".join(parts))


# --- an admission webhook to call ---------------------------------------------------------


Responder = Callable[[dict[str, Any]], dict[str, Any]]


def allow(request: dict[str, Any], patch: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """An AdmissionReview `response` allowing `request`, with an optional JSON patch."""
    response: dict[str, Any] = {"uid": request["uid"], "allowed": True}
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(list(patch)).encode()).decode()
    return response


def annotate(key: str, value: str) -> Responder:
    """A responder that allows every object and adds annotation `key: value` to it."""
    escaped = key.replace("~", "~0").replace("/", "~1")

    def respond(request: dict[str, Any]) -> dict[str, Any]:
        metadata = (request.get("object") or {}).get("metadata") or {}
        if metadata.get("annotations"):
            ops = [{"op": "add", "path": f"/metadata/annotations/{escaped}", "value": value}]
        else:
            ops = [{"op": "add", "path": "/metadata/annotations", "value": {key: value}}]
        return allow(request, ops)

    return respond


class AdmissionWebhook:
    """An HTTPS server on 127.0.0.1 (its own CA; `ca_bundle` goes in the webhook
    configuration) that answers AdmissionReview v1 POSTs with `responder(request)` and
    records each request in `requests` (the AdmissionReview `request` dicts)."""

    def __init__(self, responder: Responder = allow, ca: CertKey | None = None) -> None:
        self.responder = responder
        self.requests: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        ca = ca or new_ca("driftwarden-test-webhook-ca")
        self.ca_bundle = base64.b64encode(ca.cert_pem).decode()
        serving = issue_serving_cert(ca, "admission-webhook")
        with tempfile.TemporaryDirectory() as folder:
            cert, key = Path(folder) / "tls.crt", Path(folder) / "tls.key"
            cert.write_bytes(serving.cert_pem)
            key.write_bytes(serving.key_pem)
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert, key)
        self._server = ThreadingHTTPServer((LOOPBACK, 0), self._handler())
        self._server.daemon_threads = True
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self.url = f"https://{LOOPBACK}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    review = json.loads(self.rfile.read(length))
                    request = review["request"]
                except (ValueError, KeyError, TypeError):
                    self._send(400, {"error": "expected an AdmissionReview with a request"})
                    return
                with webhook._cond:
                    webhook.requests.append(request)
                    webhook._cond.notify_all()
                self._send(
                    200,
                    {
                        "apiVersion": review.get("apiVersion", "admission.k8s.io/v1"),
                        "kind": "AdmissionReview",
                        "response": webhook.responder(request),
                    },
                )

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30.0
    ) -> dict[str, Any]:
        """The first recorded request matching `predicate`, waiting up to `timeout` s."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for request in self.requests:
                    if predicate(request):
                        return request
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(
                        f"webhook {self.url} got no matching request in {timeout:.0f}s "
                        f"({len(self.requests)} others)",
                        pytrace=False,
                    )
                self._cond.wait(left)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> AdmissionWebhook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.fixture
def admission_webhook() -> Iterator[Callable[..., AdmissionWebhook]]:
    """`admission_webhook(responder=allow)` starts an AdmissionWebhook (`.url`,
    `.ca_bundle`, `.requests`, `.wait_for(pred)`, `.close()`); all closed at teardown."""
    started: list[AdmissionWebhook] = []

    def factory(responder: Responder = allow) -> AdmissionWebhook:
        webhook = AdmissionWebhook(responder)
        started.append(webhook)
        return webhook

    try:
        yield factory
    finally:
        for webhook in started:
            webhook.close()
