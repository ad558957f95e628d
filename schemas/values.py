"""Values every contract accepts only if every consumer can store them: text PostgreSQL can
hold (no NUL, valid UTF-8), finite floats, integers within 64 bits (JSONB through orjson)."""

from __future__ import annotations

import math
from typing import Annotated, Any, Union

from pydantic import AfterValidator, Field, PlainValidator, StrictInt

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def storable_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("text must not contain NUL characters (\\u0000): PostgreSQL cannot store them")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (no lone surrogates such as \\ud800)") from None
    return value


def scalar_problem(value: Any) -> str | None:
    """Why a free-form JSON scalar cannot be stored, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if INT64_MIN <= value <= INT64_MAX else "integers must fit in 64 bits"
    if isinstance(value, float):
        return None if math.isfinite(value) else "numbers must be finite (no NaN or Infinity)"
    if isinstance(value, str):
        try:
            storable_text(value)
        except ValueError as exc:
            return str(exc)
        return None
    return f"must be a number, string or boolean, not {type(value).__name__}"


Text = Annotated[str, AfterValidator(storable_text)]
Int64 = Annotated[StrictInt, Field(ge=INT64_MIN, le=INT64_MAX)]


def _scalar(value: Any) -> bool | int | float | str:
    if (problem := scalar_problem(value)) is not None:
        raise ValueError(problem)
    return value


# A hyperparameter value: what Ray passes, JSON holds and the read model stores.
Scalar = Annotated[Any, PlainValidator(_scalar, json_schema_input_type=Union[bool, int, float, str])]


def json_scalar(value: Any) -> Any:
    """A numpy number (what Ray and Optuna may hand over) as the Python one JSON holds."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    item = getattr(value, "item", None)
    return item() if callable(item) else value
