"""The pack actor's slot protocol (consumers/tuner/pack_actor.py) with fake runs, no Ray, no JAX:
join waits for a free slot, advance gets its own trial's reports, leave frees the slot and wakes
the trial's waiting advance, a trial that joins again never gets its earlier self's reports, one
trial's failure is its own."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest

from consumers.tuner.pack_actor import PackActor
from tests.support.waiting import wait_until


@dataclass
class _Run:
    slot: int
    total: int
    diverges: bool = False
    step: int = 0
    wants: bool = False


class FakeRuns:
    """Two slots; a report every 2 steps, the last with its final result. `gate` holds each step."""

    def __init__(self, slots: int = 2):
        self.slots, self.runs, self.left = slots, {}, []
        self.gate = threading.Semaphore(1000)

    def has_room(self, trial):
        return trial in self.runs or len(self.runs) < self.slots

    def start(self, trial, values, **_):
        if values.get("bad"):
            raise ValueError("lora_rank does not fit this pack")
        slot = self.runs.pop(trial).slot if trial in self.runs else min(
            set(range(self.slots)) - {r.slot for r in self.runs.values()})
        self.runs[trial] = _Run(slot, values.get("total", 4), values.get("diverges", False))
        return self.runs[trial]

    def leave(self, trial):
        self.left.append(trial)
        self.runs.pop(trial, None)

    def want(self, trial):
        self.runs[trial].wants = True

    def step(self):
        wanting = {t: r for t, r in self.runs.items() if r.wants and r.step < r.total}
        if not wanting:
            return {}
        self.gate.acquire()
        out = {}
        for trial, run in wanting.items():
            run.step += 1
            if run.diverges:
                run.wants = False
                out[trial] = FloatingPointError("training diverged")
            elif run.step % 2 == 0:
                run.wants = False
                out[trial] = [{"step": run.step}] + ([{"final": True}] if run.step == run.total else [])
        return out


def _actor(runs=None) -> tuple[PackActor, FakeRuns]:
    runs = runs or FakeRuns()
    return PackActor(lambda: runs), runs


def _join(actor, trial, **values):
    return actor.join(trial, values, "run", trial, "state", False)


def _in_thread(call):
    box = {}
    thread = threading.Thread(target=lambda: box.update(value=call()), daemon=True)
    thread.start()
    return box, thread


def test_trials_get_their_own_reports_and_the_last_ends_final():
    actor, _ = _actor()
    (a, slot_a), (b, slot_b) = _join(actor, "a"), _join(actor, "b", total=2)
    assert {slot_a, slot_b} == {0, 1}
    assert actor.advance("b", b) == [{"step": 2}, {"final": True}]
    assert actor.advance("a", a) == [{"step": 2}]
    assert actor.advance("a", a) == [{"step": 4}, {"final": True}]


def test_a_join_waits_for_a_free_slot_and_takes_the_one_left():
    actor, runs = _actor()
    (a, _), (b, slot_b) = _join(actor, "a"), _join(actor, "b")
    box, thread = _in_thread(lambda: _join(actor, "c"))
    thread.join(0.2)
    assert thread.is_alive()  # both slots are taken
    actor.leave("b", b)
    wait_until(lambda: "value" in box, 10, "c joined")
    assert box["value"][1] == slot_b and runs.left == ["b"]


def test_leave_wakes_the_trials_waiting_advance_with_none():
    runs = FakeRuns()
    runs.gate = threading.Semaphore(0)  # no step completes: advance waits
    actor, _ = _actor(runs)
    a, _ = _join(actor, "a")
    box, thread = _in_thread(lambda: actor.advance("a", a))
    actor.leave("a")  # a scheduler stopped it (PackSlots): no generation
    runs.gate.release()
    wait_until(lambda: "value" in box, 10, "advance returned")
    assert box["value"] is None
    assert actor.leave("a", a) is None  # the trainable's own leave afterwards changes nothing


def test_a_trial_that_joins_again_never_gets_the_reports_of_its_earlier_self():
    runs = FakeRuns()
    runs.gate = threading.Semaphore(0)
    actor, _ = _actor(runs)
    first, slot = _join(actor, "a")
    old, thread = _in_thread(lambda: actor.advance("a", first))
    wait_until(lambda: runs.runs["a"].wants, 10, "a wants a report")
    again, _ = _in_thread(lambda: _join(actor, "a"))  # PBT's exploit: the trial starts again
    runs.gate.release()  # the step under way ends with a report of the earlier trial
    runs.gate.release()
    wait_until(lambda: "value" in old and "value" in again, 10, "the old advance ended and the join came back")
    assert old["value"] is None
    second, slot_again = again["value"]
    assert second == first + 1 and slot_again == slot
    for _ in range(4):
        runs.gate.release()
    assert actor.advance("a", second) == [{"step": 2}]  # from its new start, not the old run's report


def test_one_trials_failure_is_its_own():
    actor, _ = _actor()
    with pytest.raises(ValueError, match="does not fit"):
        _join(actor, "bad", bad=True)
    (a, _), (wild, _) = _join(actor, "a"), _join(actor, "wild", diverges=True)
    with pytest.raises(FloatingPointError):
        actor.advance("wild", wild)
    assert actor.advance("a", a) == [{"step": 2}]


def test_a_pack_that_cannot_be_built_fails_every_trial():
    def broken():
        raise MemoryError("the base model does not fit")
    actor = PackActor(broken)
    with pytest.raises(MemoryError):
        _join(actor, "a")
