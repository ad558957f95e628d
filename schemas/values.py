"""Values every contract accepts only if every consumer can store them: text PostgreSQL can
hold (no NUL, valid UTF-8), finite floats, integers within 64 bits (JSONB through orjson), and
times PostgreSQL and Python can both hold once converted to UTC."""

from __future__ import annotations

import math
from datetime import datetime, timezone
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
# Every time on the log lies in this window: an event cannot have happened before Unix time began,
# and 9999 is the last year Python's datetime holds (an offset can push a valid time past it).
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(9999, 12, 31, tzinfo=timezone.utc)


def storable_time(value: datetime) -> datetime:
    """The same instant, with a zone (UTC when it names none), inside [EARLIEST, LATEST]."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    try:
        in_utc = value.astimezone(timezone.utc)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+14:00 is in year 0 once in UTC
        in_utc = None
    if in_utc is None or not EARLIEST <= in_utc <= LATEST:
        raise ValueError(f"time must lie between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d} (UTC)")
    return value


Timestamp = Annotated[datetime, AfterValidator(storable_time)]
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
