"""The providers stage: ``parse(frame) -> Parsed``, pure parsers of every supported LLM API's wire format."""

from toolwatch.providers.parse import Parsed, parse

__all__ = ["Parsed", "parse"]
