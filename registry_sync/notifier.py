"""Talking to serving: the two-phase handover (validate a staged snapshot, then reload)."""

from __future__ import annotations

import requests

from .errors import ServingUnavailable, SnapshotRejected


class ServingNotifier:
    """Asks serving's admin endpoints to validate and to reload snapshots."""

    def __init__(self, base_url: str, token: str, session: requests.Session | None = None,
                 validate_timeout: float = 300.0):
        self._base = base_url.rstrip("/")
        self._session = session or requests.Session()
        self._headers = {"Authorization": f"Bearer {token}"}
        self._validate_timeout = validate_timeout

    def _post(self, path: str, snapshot_id: str, timeout: float) -> requests.Response:
        return self._session.post(self._base + path, json={"snapshot": snapshot_id},
                                  headers=self._headers, timeout=(2.0, timeout))

    def validate(self, snapshot_id: str) -> bool:
        """True once serving accepted the snapshot; False if serving is not up to ask."""
        try:
            response = self._post("/-/validate", snapshot_id, self._validate_timeout)
        except requests.ConnectionError:
            return False
        except requests.Timeout as exc:
            raise ServingUnavailable(f"serving did not answer validation of {snapshot_id} in "
                                     f"{self._validate_timeout:g}s") from exc
        if response.status_code == 200:
            return True
        if response.status_code == 422:
            raise SnapshotRejected(snapshot_id, _reason(response))
        raise ServingUnavailable(f"serving answered HTTP {response.status_code} to validation "
                                 f"of {snapshot_id}: {_reason(response)}")

    def reload(self, snapshot_id: str) -> str:
        """Ask serving to swap to the published snapshot now; return its outcome."""
        try:
            response = self._post("/-/reload", snapshot_id, self._validate_timeout)
        except requests.RequestException as exc:
            raise ServingUnavailable(f"reload of {snapshot_id} not sent: "
                                     f"{type(exc).__name__}") from exc
        if response.status_code == 422:
            raise SnapshotRejected(snapshot_id, _reason(response))
        if response.status_code != 200:
            raise ServingUnavailable(f"serving answered HTTP {response.status_code} to reload")
        return str(_body(response).get("outcome", "ok"))


def _body(response: requests.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _reason(response: requests.Response) -> str:
    return str(_body(response).get("reason") or response.text[:200] or "no reason given")
