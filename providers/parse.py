"""``parse(frame) -> Parsed``: everything the providers can tell about one finished exchange.

The one entry point of this stage. It routes by path to an endpoint, undoes the response's content
encoding, runs the endpoint's request and response parsers, reads what the path says (the Azure
deployment, Gemini's model) and looks for tool calls written into the reply text. Pure and total: bad
input gives a ``Parsed`` with ``parse_status`` and ``parse_error`` set, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from toolwatch.providers import intext, paths, registry
from toolwatch.providers._wire import clean_text
from toolwatch.providers.base import ParsedRequest, ParsedResponse
from toolwatch.providers.decoders import DecodeError, decode_body
from toolwatch.schemas.vocab import Endpoint, ParseStatus
from toolwatch.spool.frame import Frame

__all__ = ["Parsed", "parse"]

SSE = "text/event-stream"


@dataclass(frozen=True)
class Parsed:
    """What an exchange said. ``endpoint`` is ``other`` when no parser is registered for its path."""

    endpoint: Endpoint
    request: ParsedRequest = field(default_factory=ParsedRequest)
    response: ParsedResponse = field(default_factory=ParsedResponse)
    parse_status: ParseStatus = "not_parsed"
    parse_error: str | None = None
    model_requested: str | None = None  # the body's model, else the one the path names (Gemini)
    deployment: str = ""  # the Azure OpenAI deployment ("" for other APIs)
    in_text: tuple[intext.InTextCall, ...] = ()  # calls written into the reply text (only when none are structured)

    @property
    def declared(self) -> dict[str, str | None]:
        """Declared tool name -> its JSON Schema text (None when it has none)."""
        return {t.name: t.schema_json for t in self.request.tools}


def parse(frame: Frame) -> Parsed:
    ex = frame.exchange
    endpoint = registry.endpoint_for(ex.api, ex.path)
    if endpoint is None:
        return Parsed(
            endpoint="other",
            model_requested=paths.model_from_path(ex.api, ex.path),
            deployment=paths.deployment_for(ex.api, ex.path, None),
        )
    if ex.request_truncated or ex.response_truncated:
        req, resp = ParsedRequest(), ParsedResponse()
        status: ParseStatus = "too_large"
        error: str | None = "body larger than the parse limit"
    else:
        req, resp, status, error = _parse_bodies(frame, endpoint)
    declared = {t.name: t.schema_json for t in req.tools}
    # a reply without structured tool calls may still hold calls the model wrote into its text
    found = () if resp.tool_calls else tuple(intext.detect(resp.text, declared))
    return Parsed(
        endpoint=endpoint,
        request=req,
        response=resp,
        parse_status=status,
        parse_error=error,
        model_requested=req.model or paths.model_from_path(ex.api, ex.path),
        deployment=paths.deployment_for(ex.api, ex.path, req.model),
        in_text=found,
    )


def _parse_bodies(frame: Frame, endpoint: Endpoint) -> tuple[ParsedRequest, ParsedResponse, ParseStatus, str | None]:
    ex = frame.exchange
    req = registry.parse_request(endpoint, frame.request)
    notes: list[str] = []
    if req.error:
        notes.append(f"request: {req.error}")
    resp = ParsedResponse()
    if frame.response:
        try:
            body = decode_body(frame.response, ex.response_content_encoding)
        except DecodeError as e:
            notes.append(f"response: cannot decode {clean_text(ex.response_content_encoding or '')}: {e}")
            body = b""
        parser = registry.response_parser(endpoint, (ex.response_content_type or "").startswith(SSE))
        parser.feed(body)
        resp = parser.finish()
        if resp.errors and ex.outcome == "ok":
            notes.append("response: " + "; ".join(resp.errors[:5]))
    return req, resp, "parse_error" if notes else "ok", "; ".join(notes) or None
