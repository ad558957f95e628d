"""What a failure says in public: the cause in one line.

A job's `error` and a failed trial's `reason` are read by anyone who can read the job, and Ray's
errors carry a whole remote traceback: process ids, the node's IP, actor ids, the server's
paths. Users get the root cause's type and message, on one line, with the server's absolute
paths cut down (a path in the job's own folder is shown from the job id on, any other one by
its file name only); the full traceback goes to the tuner's log.
"""

from __future__ import annotations

import re

MAX_CHARS = 1000
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # Ray colours its task names
# "ray::ImplicitFunc.train() (pid=123, ip=10.0.0.1, actor_id=..., repr=...)" and the like.
_RAY_TASK = re.compile(r"ray::\S+(?:\s*\([^)]*\))?")
_PROCESS = re.compile(r"\((?:[^()]*\b(?:pid|ip|actor_id|node_id)=[^()]*)\)")
_IDS = re.compile(r"\b(?:pid|ip|actor_id|node_id)=\S+|\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b")
_ABSOLUTE = re.compile(r"(?<![\w.:/~-])/(?:[^\s/:'\"(),]+/)+[^\s/:'\"(),]*")
# A traceback's exception line, unindented: "pkg.module.Name: message", "Name(Cause): ...", "Name".
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:\([\w.]*\))?)(?::\s*(.*))?$")
_NOT_EXCEPTION_LINES = ("Traceback", "The above exception", "During handling", "Failure #", "ray::")


def cause_of(exc: BaseException) -> BaseException:
    """The exception the user's code raised, under Ray's wrappers (RayTaskError's cause, a
    TuneError's __cause__)."""
    from ray.exceptions import RayError, RayTaskError
    from ray.tune.error import TuneError

    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = exc.cause if isinstance(exc, RayTaskError) else exc.__cause__ if isinstance(exc, (TuneError, RayError)) else None
        if not isinstance(inner, BaseException):
            break
        exc = inner
    return exc


def one_line(error: BaseException | str, job_id=None) -> str:
    """`error` as its root cause's "Type: message", one line, no pid/ip, no server paths outside
    the job's folder; a text (a traceback, or "Type: message") is reduced to its last exception line."""
    if isinstance(error, BaseException):
        cause = cause_of(error)
        message = _first_line(str(cause))
        text = f"{type(cause).__name__}: {message}" if message else type(cause).__name__
    else:
        text = _exception_line(str(error))
    return scrub(text, job_id)


def scrub(text: str, job_id=None) -> str:
    text = _IDS.sub("…", _PROCESS.sub("", _RAY_TASK.sub("", _ANSI.sub("", text))))
    text = _ABSOLUTE.sub(lambda m: _shown_path(m.group(0), job_id), text)
    text = re.sub(r"\s+", " ", text).strip(" :")
    # Storable on the log whatever the exception said (no NUL, no lone surrogate).
    text = text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    return text[:MAX_CHARS] or "failed"


def _shown_path(path: str, job_id) -> str:
    marker = f"/{job_id}/" if job_id is not None else None
    if marker and marker in path:
        return path[path.index(marker) + 1:]
    return "…/" + path.rstrip("/").rsplit("/", 1)[-1]


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _exception_line(text: str) -> str:
    """The last exception line of a traceback (the exception raised last); a one-line text as it is."""
    lines = [line.rstrip() for line in _ANSI.sub("", text).splitlines() if line.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else ""
    found = []
    for line in lines:
        if line[0].isspace() or line.startswith(_NOT_EXCEPTION_LINES):
            continue  # a frame, its source line, or Ray's and Python's connecting lines
        if match := _EXCEPTION_LINE.match(line):
            name, message = match.group(1).split("(")[0].rsplit(".", 1)[-1], match.group(2)
            found.append(f"{name}: {message}" if message else name)
    return found[-1] if found else lines[-1]
