"""``POST /erasures``: erasure requests from the company's own systems, signed like the webhooks.

A CRM or a privacy desk that receives a deletion request can pass it on without a
terminal: the body names the subjects (``{"emails": [...], "contact_ids": [...]}``) and
the collector does what ``leadstream erase`` does: it resolves every id of each subject
from the raw topics and publishes one request per subject to the ``erasures`` topic
(keyed hashes only). Resolving reads the raw identities and contact changes, which takes
a while on a large deployment, so it runs off the event loop and one at a time per
collector process (a second request meanwhile gets 503 with ``Retry-After``): the
tracking endpoints keep answering.

A refused erasure request is never dead-lettered, unlike every other input: the dead
letter would keep the very ids the request asks to erase.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from confluent_kafka import KafkaException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ground.errors import LeadstreamError
from ground.settings import Settings
from producers.collector.endpoints import Endpoints
from producers.erasure_requests import publish_requests, read_id_graph, resolve

__all__ = ["MAX_SUBJECTS", "MAX_SUBJECT_CHARS", "erasure_handler"]

#: Subjects one request may name; longer lists go in several requests (or a CSV to the CLI).
MAX_SUBJECTS = 100
MAX_SUBJECT_CHARS = 320


class _Invalid(ValueError):
    """A body that names no valid subject list."""


def _subjects(body: Any) -> tuple[list[str], list[str]]:
    """(emails, contact ids) of the request body; _Invalid says what is wrong."""
    if not isinstance(body, dict) or not set(body) <= {"emails", "contact_ids"}:
        raise _Invalid('expected {"emails": [...], "contact_ids": [...]} and no other key')
    lists = []
    for key in ("emails", "contact_ids"):
        values = body.get(key, [])
        if not isinstance(values, list) or not all(isinstance(v, str) and v.strip() for v in values):
            raise _Invalid(f"{key} must be a list of non-empty strings")
        if any(len(v) > MAX_SUBJECT_CHARS for v in values):
            raise _Invalid(f"an entry of {key} is longer than {MAX_SUBJECT_CHARS} characters")
        lists.append([v.strip() for v in values])
    emails, contact_ids = lists
    if not 1 <= len(emails) + len(contact_ids) <= MAX_SUBJECTS:
        raise _Invalid(f"name 1 to {MAX_SUBJECTS} subjects per request")
    return emails, contact_ids


def _request(settings: Settings, emails: list[str], contact_ids: list[str]) -> list[dict[str, Any]]:
    """Resolve and publish (blocking: read the raw topics, then produce); one answer row per subject."""
    subjects = resolve(settings, read_id_graph(settings), emails=emails, contact_ids=contact_ids)
    named = [f"emails[{i}]" for i in range(len(emails))] + [f"contact_ids[{i}]" for i in range(len(contact_ids))]
    ids = publish_requests(settings, subjects)
    return [{"erasure_id": erasure_id, "subject": name, "contact_ids": len(s.contact_ids),
             "anonymous_ids": len(s.anonymous_ids)} for erasure_id, name, s in zip(ids, named, subjects, strict=True)]


def erasure_handler(settings: Settings, endpoints: Endpoints) -> Callable[[Request], Awaitable[Response]]:
    """The handler of ``POST /erasures``."""
    busy = asyncio.Lock()
    label = "erasures"

    def answer(status: int, content: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
        endpoints.count(label, status)
        return JSONResponse(content, status_code=status, headers=headers)

    async def handler(request: Request) -> Response:
        raw = await endpoints.signed_body(request, label)
        if isinstance(raw, Response):
            return raw
        if settings.id_secret is None:
            return answer(503, {"error": "id_secret_missing", "detail": "LEADSTREAM_ID_SECRET is not set: "
                                "erasure requests carry keyed hashes of the subjects' ids"})
        try:
            emails, contact_ids = _subjects(json.loads(raw))
        except (ValueError, RecursionError) as exc:
            detail = str(exc) if isinstance(exc, _Invalid) else "the body is not JSON"
            return answer(400, {"error": "invalid_erasure", "detail": detail})
        if busy.locked():
            return answer(503, {"error": "busy", "detail": "another erasure request is being resolved; retry"},
                          {"Retry-After": "5"})
        async with busy:
            try:
                rows = await asyncio.to_thread(_request, settings, emails, contact_ids)
            except ValueError as exc:  # a malformed email address
                return answer(400, {"error": "invalid_erasure", "detail": str(exc)})
            except (LeadstreamError, KafkaException) as exc:  # the raw topics could not be read to the end
                return answer(503, {"error": "unavailable", "detail": str(exc)[:500]}, {"Retry-After": "5"})
        return answer(202, {"erasures": rows, "next": "stop the stream workers and the sink, run "
                            "`leadstream erase --apply`, start them again; `leadstream erase --status` shows it"})

    return handler
