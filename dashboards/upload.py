"""Upload the generated dashboards to a Grafana with grafana-client: create the folder when
missing, then POST each dashboard with `overwrite: true`, so its uid stays stable and a
re-upload replaces it. Every failure is one `DashboardUploadError` line."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import niquests
from grafana_client import GrafanaApi
from grafana_client.client import (
    GrafanaClientError,
    GrafanaException,
    GrafanaServerError,
    GrafanaTimeoutError,
    GrafanaUnauthorizedError,
)

from driftwarden.errors import DriftwardenError

DEFAULT_FOLDER_UID = "driftwarden"
DEFAULT_FOLDER_TITLE = "driftwarden"


class DashboardUploadError(DriftwardenError):
    """Grafana refused the upload or could not be reached."""


@dataclass(frozen=True)
class Uploaded:
    uid: str
    title: str
    url: str
    version: int | None


def _root_cause(e: BaseException) -> str:
    """The innermost OS error of a connection failure ('Connection refused'), else str(e)."""
    seen: BaseException | None = e
    reason = str(e)
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            reason = seen.strerror
        for arg in getattr(seen, "args", ()):
            if isinstance(arg, BaseException):
                inner = _root_cause(arg)
                if inner != str(arg) or isinstance(arg, OSError):
                    return inner
        seen = seen.__cause__ or seen.__context__
    return reason


def _explain(e: Exception, url: str, doing: str) -> DashboardUploadError:
    if isinstance(e, GrafanaUnauthorizedError):
        msg = (
            f"Grafana at {url} rejected the token (HTTP 401) while {doing}: check --token "
            "(a service account token with the Editor role)"
        )
    elif isinstance(e, GrafanaClientError) and e.status_code == 403:
        msg = (
            f"Grafana at {url} denied {doing} (HTTP 403): the token's service account "
            "needs the Editor role on the folder"
        )
    elif isinstance(e, GrafanaClientError):
        msg = f"Grafana at {url} refused {doing} (HTTP {e.status_code}): {e.message}"
    elif isinstance(e, GrafanaServerError):
        msg = f"Grafana at {url} failed while {doing} (HTTP {e.status_code}): {e.message}"
    elif isinstance(e, GrafanaTimeoutError):
        msg = f"Grafana at {url} did not answer in time while {doing}"
    elif isinstance(e, GrafanaException | niquests.exceptions.RequestException):
        msg = f"cannot reach Grafana at {url} while {doing}: {_root_cause(e)}"
    else:  # pragma: no cover - _call only passes the types above
        msg = f"{doing}: {e}"
    return DashboardUploadError(msg)


class GrafanaUploader:
    """One Grafana, one folder. `upload(dashboards)` returns what Grafana stored."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        folder_uid: str = DEFAULT_FOLDER_UID,
        folder_title: str = DEFAULT_FOLDER_TITLE,
        timeout: float = 10.0,
    ) -> None:
        if not token:
            raise DashboardUploadError("no Grafana token given (--token or DRIFTWARDEN_TOKEN)")
        self.url = url.rstrip("/")
        self.folder_uid = folder_uid
        self.folder_title = folder_title
        try:
            self._api = GrafanaApi.from_url(self.url, credential=token, timeout=timeout)
        except (ValueError, TypeError) as e:
            raise DashboardUploadError(f"invalid Grafana URL {url!r}: {e}") from e

    def close(self) -> None:
        self._api.client.s.close()

    def __enter__(self) -> GrafanaUploader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, doing: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except (GrafanaException, niquests.exceptions.RequestException) as e:
            raise _explain(e, self.url, doing) from e

    def ensure_folder(self) -> str:
        """The folder's uid; created when it does not exist yet."""
        try:
            self._api.folder.get_folder(self.folder_uid)
            return self.folder_uid
        except GrafanaClientError as e:
            if e.status_code != 404:
                raise _explain(e, self.url, f"reading folder {self.folder_uid!r}") from e
        except (GrafanaException, niquests.exceptions.RequestException) as e:
            raise _explain(e, self.url, f"reading folder {self.folder_uid!r}") from e
        created = self._call(
            f"creating folder {self.folder_title!r}",
            lambda: self._api.folder.create_folder(self.folder_title, uid=self.folder_uid),
        )
        return str(created.get("uid", self.folder_uid))

    def upload(self, dashboards: Mapping[str, dict[str, Any]]) -> list[Uploaded]:
        folder_uid = self.ensure_folder()
        done = []
        for uid, doc in dashboards.items():
            body = copy.deepcopy(doc)
            body["uid"] = uid
            body["id"] = None  # match by uid, never by a numeric id of another instance
            answer = self._call(
                f"saving dashboard {uid!r}",
                self._api.dashboard.update_dashboard,
                {
                    "dashboard": body,
                    "folderUid": folder_uid,
                    "overwrite": True,
                    "message": "driftwarden dashboards upload",
                },
            )
            done.append(
                Uploaded(
                    uid=str(answer.get("uid", uid)),
                    title=str(body.get("title", uid)),
                    url=f"{self.url}{answer.get('url', '')}",
                    version=answer.get("version"),
                )
            )
        return done


def upload_dashboards(
    url: str,
    token: str,
    dashboards: Mapping[str, dict[str, Any]],
    *,
    folder_uid: str = DEFAULT_FOLDER_UID,
    folder_title: str = DEFAULT_FOLDER_TITLE,
    timeout: float = 10.0,
) -> list[Uploaded]:
    with GrafanaUploader(
        url, token, folder_uid=folder_uid, folder_title=folder_title, timeout=timeout
    ) as up:
        return up.upload(dashboards)
