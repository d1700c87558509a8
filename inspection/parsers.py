"""The API's JSON parser: DRF's (strict: NaN and Infinity are refused), with a body nested deeper
than Python's parser recurses a 400 naming the problem rather than a server error."""

from __future__ import annotations

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deep") from None
