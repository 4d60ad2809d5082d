"""The JSON parser of every API: DRF's, made safe for hostile bodies.

DRF's parser lets 100,000 opening brackets reach ``RecursionError``, accepts ``"\\ud800"`` (a lone
surrogate that cannot be encoded again, so the error that quotes it is itself a 500) and
quotes the decoder's message. This one answers 400 ``parse_error`` for all of them with
a message that never repeats the body.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from itertools import chain
from typing import IO, Any

from rest_framework import exceptions, parsers
from rest_framework.utils.json import strict_constant

# Deeper than any body we accept; keeps later recursive code (serializers, rendering,
# logging) far from the interpreter's recursion limit.
MAX_DEPTH = 64

_TOO_DEEP = f"The request body is nested more than {MAX_DEPTH} levels deep."
_SURROGATE = re.compile("[\ud800-\udfff]")


class ParseError(exceptions.ParseError):
    default_code = "parse_error"


class JSONParser(parsers.JSONParser):
    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        try:
            # DRF's choice of charset, which refuses bytes-to-bytes codecs (bz2_codec).
            encoding = parsers.get_encoding(parser_context or {})  # type: ignore[attr-defined]
        except exceptions.ParseError:
            raise ParseError("The charset in the Content-Type header is not supported.") from None
        try:
            text = stream.read().decode(encoding)
        except UnicodeDecodeError:
            raise ParseError("The request body is not valid text in its charset.") from None
        parse_constant = strict_constant if self.strict else None
        try:
            data = json.loads(text, parse_constant=parse_constant)
        except RecursionError:
            raise ParseError(_TOO_DEEP) from None
        except json.JSONDecodeError as exc:
            raise ParseError(
                f"The request body is not valid JSON (line {exc.lineno}, column {exc.colno})."
            ) from None
        except ValueError:  # strict_constant (NaN, Infinity), or an integer past 4300 digits
            raise ParseError(
                "The request body is not valid JSON (NaN, Infinity or a number too long)."
            ) from None
        _check(data)
        return data


def _check(data: Any) -> None:
    """Refuse nesting past ``MAX_DEPTH`` and lone surrogates, without recursing.

    Depth first with one iterator per open container, so the walk holds at most
    ``MAX_DEPTH`` entries: a 2.5 MB body of a million small values must not cost a stack
    entry per value (tens of megabytes and a second of CPU per request, for anyone who can
    send a body).
    """
    if isinstance(data, str):
        _check_text(data)
    if not isinstance(data, dict | list):
        return
    open_containers = [_children(data)]
    while open_containers:
        for child in open_containers[-1]:
            if isinstance(child, str):
                _check_text(child)
            elif isinstance(child, dict | list):
                if len(open_containers) >= MAX_DEPTH:
                    raise ParseError(_TOO_DEEP)
                open_containers.append(_children(child))
                break
        else:
            open_containers.pop()


def _children(container: dict[Any, Any] | list[Any]) -> Iterator[Any]:
    if isinstance(container, dict):
        return chain(container.keys(), container.values())
    return iter(container)


def _check_text(value: str) -> None:
    if _SURROGATE.search(value):
        raise ParseError("The request body holds an invalid \\u escape (a lone surrogate).")
