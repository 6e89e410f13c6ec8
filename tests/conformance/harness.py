"""Replays Microsoft's REST examples against the emulator and compares the answers.

An example file (``../shared/azure-specs/.../examples/X.json``) holds ``parameters`` (path
parameters, ``api-version`` and the request body) and ``responses`` keyed by status code. The
harness builds the request from the operation's path template, sends it with a bearer token over
HTTPS, and checks the status, LRO headers and that every field of the example's body exists in the
emulator's body with the same JSON type.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

# shared/ lies beside the repository's folder, here and in CI.
SPECS = Path(os.environ.get("DR_AZURE_SPECS", Path(__file__).resolve().parents[3] / "shared" / "azure-specs"))

BODY_PARAMETER_NAMES = (
    "parameters",
    "originUpdateProperties",
    "originGroupUpdateProperties",
    "failoverParameters",
    "failoverPolicies",
    "regionParameterForOffline",
    "regionParameterForOnline",
    "createUpdateParameters",
    "body",
)


def example(relative: str) -> dict[str, Any]:
    """Load an example by its path under ``azure-specs/``."""
    path = SPECS / relative
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def path_from_template(template: str, parameters: dict[str, Any], overrides: dict[str, str] | None = None) -> str:
    values = {k: str(v) for k, v in parameters.items() if isinstance(v, (str, int))}
    values.update(overrides or {})
    out = template
    for key, value in values.items():
        out = out.replace("{" + key + "}", value)
    if "{" in out:
        raise KeyError(f"unfilled path parameter in {out}")
    return out


def request_body(parameters: dict[str, Any]) -> Any:
    for name in BODY_PARAMETER_NAMES:
        if name in parameters and isinstance(parameters[name], (dict, list)):
            return parameters[name]
    return None


@dataclass
class Mismatch:
    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.path or '<body>'}: {self.problem}"


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if value is None:
        return "null"
    return type(value).__name__


def compare_shape(
    expected: Any, actual: Any, path: str = "", *, ignore: frozenset[str] = frozenset()
) -> list[Mismatch]:
    """Every key of ``expected`` must be in ``actual`` with the same JSON type (recursively;
    for lists, the first element's shape is compared with every element of ours)."""
    if path in ignore:
        return []
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [Mismatch(path, f"expected object, got {_json_type(actual)}")]
        out: list[Mismatch] = []
        for key, value in expected.items():
            sub = f"{path}.{key}" if path else key
            if sub in ignore:
                continue
            if key not in actual:
                out.append(Mismatch(sub, "missing"))
                continue
            out.extend(compare_shape(value, actual[key], sub, ignore=ignore))
        return out
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [Mismatch(path, f"expected array, got {_json_type(actual)}")]
        if expected and not actual:
            return [Mismatch(path, "expected a non-empty array")]
        out = []
        if expected:
            for i, item in enumerate(actual):
                out.extend(compare_shape(expected[0], item, f"{path}[{i}]", ignore=ignore))
        return out
    if expected is None or actual is None:
        return []
    if _json_type(expected) != _json_type(actual):
        return [Mismatch(path, f"expected {_json_type(expected)} like {expected!r}, got {actual!r}")]
    return []


@dataclass
class Replay:
    status: int
    headers: httpx.Headers
    body: Any
    polls: list[tuple[int, Any]] = field(default_factory=list)
    final: Any = None


def replay(
    http: httpx.Client,
    method: str,
    path: str,
    api_version: str,
    body: Any = None,
    *,
    follow_lro: bool = True,
    max_polls: int = 200,
    query: dict[str, str] | None = None,
) -> Replay:
    """Send one request; for 201/202 answers, poll Azure-AsyncOperation (or Location) to the end
    the way azure-mgmt-core does, then read the final resource from Location if given.
    ``query`` adds query parameters (httpx replaces a query string written into ``path``)."""
    headers = {"Authorization": "Bearer conformance"}
    params = {**(query or {}), "api-version": api_version}
    resp = http.request(method, path, params=params, json=body, headers=headers)
    content = resp.json() if resp.content else None
    result = Replay(resp.status_code, resp.headers, content)
    if not follow_lro or resp.status_code not in (200, 201, 202):
        return result
    async_url = resp.headers.get("Azure-AsyncOperation")
    location = resp.headers.get("Location")
    if async_url:
        for _ in range(max_polls):
            poll = http.get(async_url, headers=headers)
            data = poll.json()
            result.polls.append((poll.status_code, data))
            if data.get("status") in ("Succeeded", "Failed", "Canceled"):
                break
        if location:
            final = http.get(location, headers=headers)
            result.final = final.json() if final.content else None
    elif location and resp.status_code == 202:
        for _ in range(max_polls):
            poll = http.get(location, headers=headers)
            result.polls.append((poll.status_code, poll.json() if poll.content else None))
            if poll.status_code != 202:
                result.final = result.polls[-1][1]
                break
    return result
