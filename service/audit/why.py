"""Why a trial ended as it did, from the job's log: its terminal TrialUpdated and the decisions
(DecisionMade) and commands that led there. Pure: the caller hands over the job's events."""

from __future__ import annotations

from collections.abc import Sequence

from schemas.api import DecisionOut, EventOut, TrialWhy


def decisions(events: Sequence[EventOut], trial_id: str | None = None) -> list[DecisionOut]:
    """The job's decisions in log order: those about `trial_id` and the job-wide ones, or all."""
    return [DecisionOut(occurred_at=e.occurred_at, kafka_offset=e.kafka_offset, **e.payload)
            for e in events if e.type == "DecisionMade"
            and (trial_id is None or e.payload.get("trial_id") in (trial_id, None))]


def explain(job_id, trial_id: str, events: Sequence[EventOut]) -> TrialWhy | None:
    """None when the log has no such trial."""
    updates = [e.payload for e in events if e.type == "TrialUpdated" and e.payload["trial_id"] == trial_id]
    if not updates:
        return None
    last, trail = updates[-1], decisions(events, trial_id)
    own = [d for d in trail if d.trial_id == trial_id]
    exploits = [d for d in own if d.kind == "exploit"]
    verdict = _verdict(last, own, trail, events)
    if exploits:
        verdict += (f"; PBT exploited it {len(exploits)} time(s), last from trial "
                    f"{exploits[-1].inputs.get('source_trial')}")
    return TrialWhy(job_id=job_id, trial_id=trial_id, status=last["status"], reason=last.get("reason"),
                    iteration=last.get("iteration"), metrics=last.get("metrics") or {}, verdict=verdict,
                    decisions=trail)


def _verdict(last: dict, own: list[DecisionOut], trail: list[DecisionOut], events: Sequence[EventOut]) -> str:
    status, reason = last["status"], last.get("reason")
    if status == "completed":
        best = next((e.payload.get("best_trial_id") for e in reversed(events) if e.type == "JobCompleted"), None)
        scores = ", ".join(f"{k}={v:.4g}" for k, v in sorted((last.get("metrics") or {}).items())[:4])
        return (f"completed: it ran to its end (iteration {last.get('iteration')}); {scores}"
                + (" — the job's best trial" if best == last["trial_id"] else ""))
    if status == "failed":
        failure = next((d for d in reversed(own) if d.kind == "failure"), None)
        return f"failed: {failure.summary}" if failure else f"failed: {reason}"
    if status == "stopped":
        stop = next((d for d in reversed(own) if d.kind == "rung" and d.outcome == "stop"), None)
        if stop is not None:
            return f"stopped early: {stop.summary}"
        if reason == "job cancelled":
            cancel = next((e for e in events if e.type == "JobCancelRequested"), None)
            who = f" by {cancel.actor}" if cancel and cancel.actor else ""
            why = f" ({cancel.reason})" if cancel and cancel.reason else ""
            return f"stopped: the job was cancelled{who}{why}"
        budget = next((d for d in trail if d.kind == "budget"), None)
        if budget is not None and reason and "budget" in reason:
            return f"stopped: {budget.summary}"
        return f"stopped: {reason or 'the experiment ended before it ran'}"
    return f"it has not ended: {status}" + (f" ({reason})" if reason else "")
