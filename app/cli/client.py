"""The CLI's side of the HTTP API: one client, and errors a person can read.

Base URL from --api-url or TUNIX_API_URL (default: the local stack's API); token from
--token or TUNIX_API_TOKEN, sent as `Authorization: Bearer`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import typer

from adapters.settings import process_settings


class ApiError(Exception):
    """The API could not be reached, or answered with an error; str() is the message to show."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status  # the HTTP status, None when the API did not answer


def _explain(answer: httpx.Response) -> str:
    try:
        body = answer.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    details = body.get("details") or []
    what = body.get("error") if details else body.get("message")
    lines = [f"{answer.request.method} {answer.request.url.path} -> {answer.status_code}: {what or answer.reason_phrase}"]
    lines += [f"  {d['field']}: {d['rule']}" for d in details]
    return "\n".join(lines)


class ApiClient:
    def __init__(self, base_url: str | None = None, token: str | None = None, timeout: float = 30):
        # --api-url / --token, or their environment variables (TUNIX_API_URL, TUNIX_API_TOKEN),
        # come in through Typer; the default is the local stack's API.
        self.base_url = (base_url or process_settings().api_url).rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def __enter__(self) -> "ApiClient":
        return self

    def __exit__(self, *_) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs) -> Any:
        try:
            answer = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ApiError(
                f"the API at {self.base_url} does not answer ({type(exc).__name__}); "
                "start the stack with `tunix-tune up` or point --api-url / TUNIX_API_URL at it"
            ) from None
        if answer.is_error:
            raise ApiError(_explain(answer), answer.status_code)
        return answer.json()

    def get(self, path: str, **params) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, json=body)

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, json=body)

    def create_job(self, spec: dict, wait_s: float = 60) -> dict:
        """POST the spec and return the job. When the API answers 202 (its event is on the
        log, the read model lags), wait until the job can be read, so it can be started."""
        answer = self.post("/api/tuning/jobs", spec)
        if "location" not in answer:
            return answer
        deadline = time.monotonic() + wait_s
        while True:
            try:
                return self.get(answer["location"])
            except ApiError as exc:
                if exc.status != 404 or time.monotonic() > deadline:
                    raise
            time.sleep(0.5)


JSON = typer.Option(False, "--json", help="Print JSON and nothing else")


def connection(
    ctx: typer.Context,
    api_url: str = typer.Option(None, "--api-url", envvar="TUNIX_API_URL",
                                help="API base URL (default: the local stack, http://127.0.0.1:8000)"),
    token: str = typer.Option(None, "--token", envvar="TUNIX_API_TOKEN", help="Bearer token, when the API needs one"),
) -> None:
    """The options of every command group that talks to the API (a Typer callback)."""
    ctx.obj = {"api_url": api_url, "token": token}


@contextmanager
def api_session(ctx: typer.Context) -> Iterator[ApiClient]:
    """A client from the group's options; an API error is one message and exit code 1."""
    try:
        with ApiClient(ctx.obj["api_url"], ctx.obj["token"]) as api:
            yield api
    except ApiError as exc:
        typer.secho(str(exc), err=True, fg="red")
        raise typer.Exit(1) from None


def print_json(value) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))
