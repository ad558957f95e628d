"""A trace: one prompt and its expected final answer (Tunix RT's dataset record)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Trace:
    trace_id: str
    prompt: str
    final_answer: str
    steps: tuple[str, ...] = field(default=())
    # A chat example's context, (role, content) turns before the answer; prompt is its last turn.
    messages: tuple[tuple[str, str], ...] = field(default=())


@dataclass(frozen=True)
class Dataset:
    key: str
    train: tuple[Trace, ...]
    eval: tuple[Trace, ...]
    content_hash: str  # sha256 of the canonical JSON of both splits: part of a run's lineage
