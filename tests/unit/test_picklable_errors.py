"""Every exception class of the project survives pickling with its message and attributes: Ray
sends a trial's exception to the driver pickled, and an exception that cannot be rebuilt there
turns into a TypeError that loses what went wrong (which file, which line).

The classes are found by walking the source, so a new exception is covered the day it is added;
its constructor's arguments are made from their type annotations."""

from __future__ import annotations

import ast
import importlib
import inspect
import pickle
import types
import typing
import uuid
from pathlib import Path

import pytest

from producers.error_text import one_line
from training.dataset_files import MalformedDataset

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("training", "service", "adapters", "consumers", "producers", "schemas", "app", "provisioning")
SAMPLES = {str: "what went wrong", int: 3, float: 0.5, bool: True, Path: Path("data-v1/train.jsonl"),
           uuid.UUID: uuid.UUID(int=7), object: "value", typing.Any: "value"}


def _modules_defining_classes() -> list[str]:
    """Modules with a class that has a base (every exception has one); __main__ modules run a process."""
    found = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if path.name != "__main__.py" and any(isinstance(node, ast.ClassDef) and node.bases
                                                  for node in ast.walk(ast.parse(path.read_text()))):
                found.append(".".join(path.relative_to(REPO).with_suffix("").parts))
    return found


def _project_exceptions() -> list[type[BaseException]]:
    found = []
    for name in _modules_defining_classes():
        module = importlib.import_module(name)
        found += [value for value in vars(module).values() if isinstance(value, type)
                  and issubclass(value, BaseException) and value.__module__ == name]
    return found


def _sample(hint):
    """A value of the annotated type (a NamedTuple from its fields, containers with one element)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in SAMPLES:
        return SAMPLES[hint]
    if origin in (typing.Union, types.UnionType):
        return _sample(next(a for a in args if a is not type(None)))
    if origin is list:
        return [_sample(args[0] if args else str)]
    if origin is tuple:
        return tuple(_sample(a) for a in args if a is not Ellipsis)
    if origin is dict:
        return {_sample(args[0]): _sample(args[1])}
    if isinstance(hint, type) and issubclass(hint, tuple) and hasattr(hint, "_fields"):
        return hint(*(_sample(h) for h in typing.get_type_hints(hint).values()))
    raise AssertionError(f"add a sample value for {hint!r} to SAMPLES")


def _instance(cls: type[BaseException]) -> BaseException:
    if "__init__" not in {name for klass in cls.__mro__ if klass.__module__.split(".")[0] in PACKAGES
                          for name in vars(klass)}:
        return cls("what went wrong")
    hints = typing.get_type_hints(cls.__init__)
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    return cls(*(_sample(hints.get(p.name, str)) for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD))


EXCEPTIONS = _project_exceptions()


def test_the_walk_finds_the_exceptions_trials_raise():
    names = {cls.__name__ for cls in EXCEPTIONS}
    assert {"MalformedDataset", "BrokenCheckpoint", "UnknownDataset", "ModelNotAvailable", "InvalidJob"} <= names


@pytest.mark.parametrize("cls", EXCEPTIONS, ids=lambda cls: f"{cls.__module__}.{cls.__name__}")
def test_every_project_exception_survives_pickling(cls):
    original = _instance(cls)
    copy = pickle.loads(pickle.dumps(original))
    assert type(copy) is cls
    assert str(copy) == str(original) and copy.args == original.args
    assert vars(copy) == vars(original)


def test_a_malformed_dataset_keeps_its_file_and_line_through_pickling():
    copy = pickle.loads(pickle.dumps(MalformedDataset(Path("bad-v1/train.jsonl"), 3, "not valid JSON")))
    assert (copy.path, copy.line, copy.problem) == (Path("bad-v1/train.jsonl"), 3, "not valid JSON")
    assert str(copy) == "bad-v1/train.jsonl:3: not valid JSON"
    assert one_line(copy) == "MalformedDataset: bad-v1/train.jsonl:3: not valid JSON"
