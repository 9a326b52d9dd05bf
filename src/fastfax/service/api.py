"""The routes of the daemon's HTTP front, and the OpenAPI description made from them.

:func:`routes` lists every endpoint: the fixed ones (session, events, metrics, this
description) and one ``POST /api/<call>`` per client call declared with ``@api`` in
:mod:`fastfax.service.server`, its request body's JSON Schema taken from the call's
signature and type hints. :mod:`fastfax.service.http` routes by this list and
:func:`openapi` describes the same list, so the two cannot drift apart.

Calls whose answer the signature types only as ``dict[str, Any]`` get the schema of the
record they return (:data:`RECORDS`, the :mod:`.model` dataclasses), generated from the
dataclass fields.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import re
import types
import typing
from dataclasses import dataclass
from typing import Any

from .config import Configuration
from .model import Event, JobInfo, PortInfo, PortStatus, RoutingMethodInfo
from .rights import right_names
from .server import API_CALLS
from .wire import SESSION_HEADER

__all__ = [
    "Route",
    "routes",
    "openapi",
    "ERROR_STATUS",
    "IDEMPOTENCY_HEADER",
    "NDJSON",
    "SSE",
    "takes_request_id",
]

#: The request header whose value becomes a submission's ``request_id``.
IDEMPOTENCY_HEADER = "Idempotency-Key"
NDJSON = "application/x-ndjson"
SSE = "text/event-stream"
PROMETHEUS = "text/plain"  # the Prometheus text format, version 0.0.4

#: Every status an error answer may carry, and what it means.
ERROR_STATUS = {
    400: "a malformed request (bad JSON, unknown call, wrong arguments, expired session)",
    401: "no token, or a token no user holds",
    403: "the user lacks the right the call needs",
    404: "no such endpoint, job, port or routing method",
    405: "the endpoint does not take this method",
    408: "the request body did not arrive in time",
    409: "the job or port is in a state that does not allow it",
    413: "the request body is larger than [http] max_upload",
    422: "the fax service refused it (e.g. a document it cannot convert)",
    500: "an internal error",
    503: "the server is busy (see Retry-After) or closing",
}

#: The record a call answers with, where its signature says only ``dict[str, Any]``.
RECORDS: dict[str, Any] = {
    "get_configuration": Configuration,
    "set_configuration": Configuration,
    "ports": list[PortInfo],
    "open_port": PortInfo,
    "port_info": PortInfo,
    "update_port": PortInfo,
    "port_status": PortStatus,
    "routing_methods": list[RoutingMethodInfo],
    "set_routing_priority": list[RoutingMethodInfo],
    "jobs": list[JobInfo],
    "job": JobInfo,
    "wait_job": JobInfo,
    "job_control": JobInfo,
}

_BYTES = {
    "type": "object",
    "description": "bytes, base64-encoded",
    "properties": {"$bytes": {"type": "string", "contentEncoding": "base64"}},
    "required": ["$bytes"],
    "additionalProperties": False,
}


@dataclass(frozen=True)
class Route:
    """One endpoint. ``kind`` names the handler in :mod:`.http` (``call``,
    ``session_open``, ``session_close``, ``events``, ``metrics``, ``openapi``);
    ``auth``: ``none``, ``token`` (a bearer token) or ``session`` (a token and the
    session header); ``body``: the request body's schema (None: no body);
    ``result``: the schema of a 200 answer's ``result`` (JSON routes), None for the
    others, whose 200 answer is ``media``."""

    method: str
    path: str
    kind: str
    summary: str
    auth: str
    body: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    media: str = "application/json"
    call: str | None = None
    right: str = ""


def schema_of(hint: Any, defs: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of values of Python type ``hint`` as they travel on the wire
    (records as ``$ref`` into ``defs``, which collects their schemas)."""
    if hint is Any or hint is inspect.Parameter.empty:
        return {}
    if hint is type(None) or hint is None:
        return {"type": "null"}
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [schema_of(a, defs) for a in args]}
    if origin in (list, tuple) or hint in (list, tuple):
        return {"type": "array", "items": schema_of(args[0], defs) if args else {}}
    if origin is dict or hint is dict:
        return {"type": "object", "additionalProperties": schema_of(args[1], defs) if args else {}}
    if hint is bool:
        return {"type": "boolean"}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return {"enum": [m.value for m in hint]}
    if hint is int:
        return {"type": "integer"}
    if hint is float:
        return {"type": "number"}
    if hint is str:
        return {"type": "string"}
    if hint in (bytes, bytearray):
        defs["Bytes"] = _BYTES
        return {"$ref": "#/components/schemas/Bytes"}
    if dataclasses.is_dataclass(hint):
        name = hint.__name__
        if name not in defs:
            defs[name] = {}  # placeholder against recursion
            hints = typing.get_type_hints(hint)
            fields = dataclasses.fields(hint)
            defs[name] = {
                "type": "object",
                "description": inspect.cleandoc(hint.__doc__ or name),
                "properties": {f.name: schema_of(hints[f.name], defs) for f in fields},
                "required": [f.name for f in fields],
            }
        return {"$ref": f"#/components/schemas/{name}"}
    return {}


def takes_request_id(call: str) -> bool:
    """Whether client call ``call`` has a ``request_id`` argument (an idempotent submission)."""
    return call in API_CALLS and "request_id" in inspect.signature(API_CALLS[call][1]).parameters


def _call_route(name: str, right: Any, fn: Any, defs: dict[str, Any]) -> Route:
    hints = typing.get_type_hints(fn)
    props, required = {}, []
    for param in list(inspect.signature(fn).parameters.values())[2:]:  # self, session
        props[param.name] = schema_of(hints.get(param.name, Any), defs)
        if param.default is inspect.Parameter.empty:
            required.append(param.name)
    body = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        body["required"] = required
    result = schema_of(RECORDS.get(name, hints.get("return", Any)), defs)
    doc = inspect.getdoc(fn) or f"The {name} call."
    return Route(
        "POST", f"/api/{name}", "call", doc, "session", body, result, call=name,
        right=" | ".join(right_names(right)) or "none",
    )  # fmt: skip


def routes() -> list[Route]:
    """Every endpoint, the calls in the order the service declares them."""
    return _routes()[0]


def _routes() -> tuple[list[Route], dict[str, Any]]:
    defs: dict[str, Any] = {}
    opened = {
        "type": "object",
        "properties": {
            "session": {"type": "string"},
            "user": {"type": "string"},
            "lease": {"type": "number", "description": "seconds the session lives unused"},
        },
        "required": ["session", "user", "lease"],
    }
    fixed = [
        Route("POST", "/api/session", "session_open",
              f"Open a session; later calls name it in the {SESSION_HEADER} header.",
              "token", {"type": "object"}, opened),
        Route("DELETE", "/api/session", "session_close",
              "Close the session, releasing the ports it opened for modify.",
              "session", None, {"type": "null"}),
        Route("GET", "/api/events", "events",
              "The event stream: one JSON event a line (an empty line each second "
              "without events), or Server-Sent Events with ?format=sse or Accept: "
              "text/event-stream (then the session header is optional and "
              "Last-Event-ID resumes). ?since=N first replays the kept events after N.",
              "session", media=NDJSON),
        Route("GET", "/metrics", "metrics", "Prometheus metrics (needs the job query right).",
              "token", media=PROMETHEUS),
        Route("GET", "/openapi.json", "openapi", "This description.", "none"),
    ]  # fmt: skip
    calls = [_call_route(name, right, fn, defs) for name, (right, fn) in API_CALLS.items()]
    schema_of(Event, defs)
    return fixed + calls, defs


def _parameters(route: Route) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    if route.kind == "events":
        params += [
            {"name": "since", "in": "query", "schema": {"type": "string", "pattern": "^[0-9]+$"},
             "description": "replay the kept events after this sequence number first"},
            {"name": "format", "in": "query", "schema": {"enum": ["ndjson", "sse"]}},
            {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"},
             "description": "Server-Sent Events: resume after this event"},
        ]  # fmt: skip
    if route.call and takes_request_id(route.call):
        params.append(
            {
                "name": IDEMPOTENCY_HEADER,
                "in": "header",
                "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                "description": "the submission's request_id: the same key returns the same job(s)",
            }
        )
    return params


def openapi(version: str = "0") -> dict[str, Any]:
    """The OpenAPI 3.1 description of :func:`routes`."""
    table, defs = _routes()
    defs["Error"] = {
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "type": {"type": "string", "description": "the error's class name"},
                    "message": {"type": "string"},
                },
                "required": ["type", "message"],
            }
        },
        "required": ["error"],
    }
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    paths: dict[str, Any] = {}
    for route in table:
        if route.media == "application/json":
            body = {"type": "object", "properties": {"result": route.result or {}},
                    "required": ["result"]}  # fmt: skip
            if route.kind == "openapi":
                body = {"type": "object", "required": ["openapi", "paths"]}
            ok = {"application/json": {"schema": body}}
        elif route.media == NDJSON:
            stream = {
                "schema": {"type": "string", "description": "a stream of Event records"},
                "x-item-schema": {"$ref": "#/components/schemas/Event"},
            }
            ok = {NDJSON: stream, SSE: stream}
        else:
            ok = {route.media: {"schema": {"type": "string"}}}
        op: dict[str, Any] = {
            "operationId": route.call or route.kind,
            "summary": re.split(r"(?<=\.)\s", " ".join(route.summary.split()), maxsplit=1)[0],
            "description": route.summary
            + (f"\n\nRight needed: {route.right}." if route.call else ""),
            "responses": {"200": {"description": "done", "content": ok}},
        }
        if route.auth != "none":
            op["security"] = (
                [{"bearer": [], "session": []}] if route.auth == "session" else [{"bearer": []}]
            )
            for status in sorted(ERROR_STATUS):
                op["responses"][str(status)] = {"description": ERROR_STATUS[status],
                                                "content": error}  # fmt: skip
        else:
            op["security"] = []
        params = _parameters(route)
        if params:
            op["parameters"] = params
        if route.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": route.body}},
            }
        paths.setdefault(route.path, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "fastfax fax service",
            "version": version,
            "description": "The calls of fastfax.client.FaxServer over HTTP. Bytes travel "
            'as {"$bytes": "<base64>"}; errors as {"error": {"type", "message"}}.',
        },
        "paths": paths,
        "components": {
            "schemas": defs,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "header", "name": SESSION_HEADER},
            },
        },
    }
