"""The console reads and changes everything through the control plane's own API, called in the same process:
it can show nothing the API would not, and accept nothing the API refuses."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from werkzeug.test import Client

__all__ = ["ApiClient", "ApiRefused", "path"]


class ApiRefused(Exception):
    """The API said no: its status and its message, which name the fix and hold no secret."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def path(*segments: str) -> str:
    """An API path from names, each quoted so that no name can reach another route."""
    return "/api/v1/" + "/".join(quote(segment, safe="") for segment in segments)


class ApiClient:
    """Calls the control plane's WSGI app with its token, as a remote client would over HTTP."""

    def __init__(self, app: Any, token: str) -> None:
        self._client = Client(app, use_cookies=False)
        self._headers = {"Authorization": f"Bearer {token}"}

    def get(self, api_path: str, **query: str) -> Any:
        return self._answer(self._client.get(api_path, headers=self._headers, query_string=query))

    def text(self, api_path: str, **query: str) -> str:
        answer = self._client.get(api_path, headers=self._headers, query_string=query)
        if answer.status_code >= 400:
            raise ApiRefused(answer.status_code, _message(answer.get_data()))
        return answer.get_data(as_text=True)

    def send(self, method: str, api_path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body)
        answer = self._client.open(
            api_path, method=method, headers=self._headers, data=data, content_type="application/json"
        )
        return self._answer(answer)

    @staticmethod
    def _answer(answer: Any) -> Any:
        payload = answer.get_data()
        if answer.status_code >= 400:
            raise ApiRefused(answer.status_code, _message(payload))
        return json.loads(payload) if payload else None


def _message(payload: bytes) -> str:
    try:
        return str(json.loads(payload)["error"])
    except (ValueError, KeyError, TypeError):
        return "the control plane refused the change"
