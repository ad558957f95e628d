"""Bounded values for what the gateway takes from a request (command bodies, path and query
parameters): text every consumer can store, as schemas/values.Text, with a length bound, and
free-form JSON made of such values. Each refusal is a 422 naming the field and the rule."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from schemas.values import INT64_MAX, INT64_MIN, storable_text

# JSON Schema's (ECMA-262's) spelling of storable_text's NUL rule, so the OpenAPI document says
# what the API refuses (the lone-surrogate rule needs none: UTF-8 JSON cannot carry one).
NO_NUL = r"^[^\u0000]*$"


@dataclass(frozen=True)
class _NoNulInSchema:
    def __get_pydantic_json_schema__(self, core_schema, handler):
        schema = handler(core_schema)
        schema["pattern"] = NO_NUL
        return schema


def bounded_text(max_length: int, min_length: int = 0) -> Any:
    """Text of at most `max_length` characters that PostgreSQL and every consumer can hold. The
    length is checked first, so an oversized value is refused without being scanned."""
    return Annotated[str, Field(min_length=min_length, max_length=max_length), AfterValidator(storable_text),
                     _NoNulInSchema()]


MAX_JSON_TEXT = 10_000
MAX_JSON_DEPTH = 8
MAX_JSON_ITEMS = 1000


def _json_value(value: Any, depth: int = 0) -> Any:
    """A JSON value whose every string, key and number the log and the read model can hold."""
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"values nest at most {MAX_JSON_DEPTH} levels deep")
    if isinstance(value, str):
        if len(value) > MAX_JSON_TEXT:
            raise ValueError(f"strings must be at most {MAX_JSON_TEXT} characters")
        return storable_text(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise ValueError("integers must fit in 64 bits")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("numbers must be finite (no NaN or Infinity)")
        return value
    if isinstance(value, (list, dict)) and len(value) > MAX_JSON_ITEMS:
        raise ValueError(f"lists and objects hold at most {MAX_JSON_ITEMS} items")
    if isinstance(value, list):
        return [_json_value(item, depth + 1) for item in value]
    if isinstance(value, dict):
        return {_json_value(key, depth + 1): _json_value(item, depth + 1) for key, item in value.items()}
    raise ValueError(f"must be a JSON value, not {type(value).__name__}")


JsonValue = Annotated[Any, AfterValidator(_json_value)]
