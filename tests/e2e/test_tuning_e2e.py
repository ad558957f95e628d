"""The whole flow on real Kafka, PostgreSQL and Ray: create -> start -> trials train in
parallel -> the job completes with the best trial, everything projected from the log."""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import httpx

from tests.conftest import Process
from tests.support.service_stack import start_job, wait_for_job
from tests.support.specs import example_spec
from tests.support.waiting import wait_until

# Short trials: a few seconds of real training each on these CPUs.
FIXED = {"max_steps": 30, "eval_every": 10, "batch_size": 32}
CLI = [sys.executable, "-m", "app.cli.main"]


def _wait_for_job(stack: dict, job_id: str, timeout: float) -> dict:
    return wait_for_job(stack["url"], job_id, timeout, stack["procs"])


def test_job_runs_trials_in_parallel_and_picks_the_true_best(tuning_stack):
    base = tuning_stack["url"]
    spec = example_spec(
        name="e2e", num_samples=3, max_concurrent_trials=2, fixed_params=FIXED,
        search_space={"learning_rate": {"type": "loguniform", "min": 1e-3, "max": 1e-2}},
    )
    job_id = httpx.post(f"{base}/api/tuning/jobs", json=spec, timeout=30).json()["job_id"]
    assert httpx.post(f"{base}/api/tuning/jobs/{job_id}/start", timeout=30).status_code == 202
    live = _watch_live(tuning_stack, job_id, 600)  # every distinct answer of a live GET while it ran
    job = _wait_for_job(tuning_stack, job_id, 60)
    assert job["status"] == "completed", job.get("error") or [p.output() for p in tuning_stack["procs"]]

    trials = job["trials"]
    assert len(trials) == 3 and all(t["status"] == "completed" for t in trials)
    assert len({t["params"]["learning_rate"] for t in trials}) == 3
    assert all(t["params"]["max_steps"] == 30 for t in trials)
    best = max(trials, key=lambda t: t["metrics"]["score"])
    assert job["best_trial_id"] == best["trial_id"] == job["best_trial"]["trial_id"]
    assert job["best_metric"] == best["metrics"]["score"]
    assert all(t["run_id"] and str(tuning_stack["artifacts"]) in t["artifact_path"] for t in trials), trials
    for trial in trials:  # the trial's row leads to its run folder, and the folder back to the trial
        manifest = json.loads((Path(trial["artifact_path"]) / "manifest.json").read_text())
        assert manifest["run_id"] == trial["run_id"] and manifest["metrics"]["score"] == trial["metrics"]["score"]

    # Never more than max_concurrent_trials running at once, from the recorded times.
    spans = [(datetime.fromisoformat(t["started_at"]), datetime.fromisoformat(t["finished_at"])) for t in trials]
    for start, _ in spans:
        assert sum(s <= start < e for s, e in spans) <= 2

    trail = [e["type"] for e in httpx.get(f"{base}/api/tuning/jobs/{job_id}/events", timeout=30).json()]
    assert trail[:2] == ["JobCreated", "JobStarted"] and trail[-1] == "JobCompleted"
    assert trail.count("TrialUpdated") >= 3 * 3  # pending/running/results/completed per trial
    assert trail.count("DecisionMade") >= 3  # a suggestion per trial

    _as_of_equals_what_a_live_get_returned(base, job_id, live, job)
    _what_if_asha_matches_asha_by_hand(base, job_id, job)


def _watch_live(stack: dict, job_id: str, timeout: float) -> list[dict]:
    base, seen = stack["url"], []

    def ended():
        for proc in stack["procs"]:
            assert proc.proc.poll() is None, f"{proc.log_path.name} exited:\n{proc.output()}"
        job = httpx.get(f"{base}/api/tuning/jobs/{job_id}", timeout=10).json()
        if not seen or job["log_position"] != seen[-1]["log_position"]:
            seen.append(job)
        return job["status"] in ("completed", "failed", "cancelled")
    wait_until(ended, timeout, f"job {job_id} to end", interval=0.2)
    return seen


def _as_of_equals_what_a_live_get_returned(base: str, job_id: str, live: list[dict], final: dict) -> None:
    """A job read as of a log position is what a live GET answered when the read model was there."""
    assert len(live) >= 4, [j["log_position"] for j in live]
    picks = [live[0], live[len(live) // 3], live[2 * len(live) // 3], live[-1]]
    assert len({j["status"] for j in picks}) >= 2  # moments of the running job and the ended one
    for then in picks:
        rebuilt = httpx.get(f"{base}/api/tuning/jobs/{job_id}", params={"as_of": then["log_position"]}, timeout=30)
        assert rebuilt.status_code == 200 and rebuilt.json() == then, (then["log_position"], rebuilt.text[:500])
    # A time: the last event that occurred then; now is the whole log.
    assert httpx.get(f"{base}/api/tuning/jobs/{job_id}", params={"as_of": datetime.now().astimezone().isoformat()},
                     timeout=30).json() == final
    created = datetime.fromisoformat(final["created_at"])
    before = httpx.get(f"{base}/api/tuning/jobs/{job_id}", params={"as_of": "2000-01-01T00:00:00Z"}, timeout=30)
    assert before.status_code == 404 and created.year > 2000
    refused = httpx.get(f"{base}/api/tuning/jobs/{job_id}", params={"as_of": "last tuesday"}, timeout=30)
    assert refused.status_code == 422 and refused.json()["details"] == [{"field": "query.as_of", "rule": (
        "must be a log position (an offset, 0 or more) or an ISO 8601 time such as 2026-11-28T19:30:00Z")}], refused.text
    shown = subprocess.run([*CLI, "jobs", "--api-url", base, "show", job_id, "--as-of", str(picks[1]["log_position"])],
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and f"as of log position {picks[1]['log_position']}" in shown.stdout, shown.stderr


def _what_if_asha_matches_asha_by_hand(base: str, job_id: str, job: dict) -> None:
    """What-if ASHA over this FIFO job's curves: the trials stopped and the seconds saved, as an
    independent successive-halving pass over the same reports finds them."""
    history = httpx.get(f"{base}/api/tuning/jobs/{job_id}/history", timeout=30).json()
    found = httpx.get(f"{base}/api/tuning/jobs/{job_id}/what-if", params={"scheduler": "asha"}, timeout=30).json()
    assert found["metric"] == "eval_loss" and found["trials"] == 3
    reports = sorted((p["occurred_at"], h["trial_id"], p["iteration"], p["metrics"]["eval_loss"])
                     for h in history for p in h["points"] if "eval_loss" in p["metrics"])
    max_t = max(r[2] for r in reports)
    rungs: dict[int, dict[str, float]] = {m: {} for m in (1, 2, 4, 8, 16) if m < max_t}
    stopped: dict[str, tuple[int, str]] = {}
    for at, trial_id, iteration, loss in reports:
        if trial_id in stopped or iteration >= max_t:
            continue
        rung = max(m for m in [*rungs, 0] if m <= iteration) if iteration >= 1 else 0
        if rung and trial_id not in rungs[rung]:
            earlier = sorted(rungs[rung].values())
            if earlier and loss > statistics.median(earlier):  # worse than the better half: stopped
                stopped[trial_id] = (iteration, at)
            rungs[rung][trial_id] = loss
    assert {s["trial_id"]: s["iteration"] for s in found["stopped"]} == {k: v[0] for k, v in stopped.items()}
    ends = {t["trial_id"]: datetime.fromisoformat(t["finished_at"]) for t in job["trials"]}
    saved = sum((ends[k] - datetime.fromisoformat(at)).total_seconds() for k, (_, at) in stopped.items())
    assert abs(found["seconds_saved"] - saved) < 0.01 and found["seconds_saved"] < found["trial_s"]
    told = subprocess.run([*CLI, "audit", "--api-url", base, "what-if", job_id, "--scheduler", "asha"],
                          capture_output=True, text=True, timeout=60)
    assert told.returncode == 0 and f"would stop {len(stopped)} of 3 trials" in told.stdout, told.stdout + told.stderr
    print(told.stdout)


def _start(stack: dict, **overrides) -> str:
    return start_job(stack["url"], **overrides)


def _why(stack: dict, job_id: str, trial_id: str) -> str:
    told = subprocess.run([*CLI, "jobs", "--api-url", stack["url"], "why", job_id, trial_id],
                          capture_output=True, text=True, timeout=60)
    assert told.returncode == 0, told.stderr
    return told.stdout


def test_a_failing_trial_is_recorded_and_the_job_goes_on(tuning_stack):
    # max_seq_length 8 cuts every answer off the training examples: that trial raises.
    job_id = _start(
        tuning_stack, name="one fails", num_samples=1, max_concurrent_trials=2, max_failed_trials=1,
        search_algorithm="grid", fixed_params=FIXED,
        search_space={"max_seq_length": {"type": "choice", "values": [8, 32]}},
    )
    job = _wait_for_job(tuning_stack, job_id, 600)
    assert job["status"] == "completed", job["error"]
    by_length = {t["params"]["max_seq_length"]: t for t in job["trials"]}
    assert by_length[8]["status"] == "failed" and "ValueError" in by_length[8]["reason"]
    assert by_length[32]["status"] == "completed"
    assert job["best_trial_id"] == by_length[32]["trial_id"]
    told = _why(tuning_stack, job_id, by_length[8]["trial_id"])
    assert f"trial {by_length[8]['trial_id']}: failed: it raised on " in told and "ValueError" in told, told
    assert "failed for good" in told and re.search(r"failure\s+fail", told), told


def test_too_many_failing_trials_fail_the_job(tuning_stack):
    job_id = _start(
        tuning_stack, name="all fail", num_samples=2, max_concurrent_trials=2, max_failed_trials=1,
        fixed_params={**FIXED, "max_seq_length": 8},
        search_space={"learning_rate": {"type": "loguniform", "min": 1e-3, "max": 1e-2}},
    )
    job = _wait_for_job(tuning_stack, job_id, 600)
    assert job["status"] == "failed"
    assert "2 of 2 trials failed (max_failed_trials=1)" in job["error"]
    assert [t["status"] for t in job["trials"]] == ["failed", "failed"]
    # The cause in one line, for the job and each trial: no Ray traceback, pid, node address or server path.
    for public in (job["error"], *(t["reason"] for t in job["trials"])):
        assert "ValueError: " in public and not re.search(r"\n|pid=|ip=|ray::|File \"|/site-packages/", public), public


def test_cancel_stops_the_running_trials(tuning_stack):
    base = tuning_stack["url"]
    job_id = _start(
        tuning_stack, name="cancelled", num_samples=4, max_concurrent_trials=2,
        fixed_params={"max_steps": 3000, "eval_every": 10, "batch_size": 32},
        search_space={"learning_rate": {"type": "loguniform", "min": 1e-3, "max": 1e-2}},
    )

    def training():
        trials = httpx.get(f"{base}/api/tuning/jobs/{job_id}", timeout=10).json()["trials"]
        return any(t["status"] == "running" and (t["iteration"] or 0) >= 1 for t in trials)
    wait_until(training, 300, "a trial reporting progress")
    assert httpx.post(f"{base}/api/tuning/jobs/{job_id}/cancel", timeout=30).status_code == 202

    job = _wait_for_job(tuning_stack, job_id, 120)
    assert job["status"] == "cancelled"
    assert job["trials"] and all(t["status"] == "stopped" for t in job["trials"]), job["trials"]
    assert all(t["reason"] == "job cancelled" for t in job["trials"])
    trail = httpx.get(f"{base}/api/tuning/jobs/{job_id}/events", timeout=30).json()
    cancel_at = next(datetime.fromisoformat(e["occurred_at"]) for e in trail if e["type"] == "JobCancelRequested")
    last_stop = max(datetime.fromisoformat(t["finished_at"]) for t in job["trials"])
    print(f"trials stopped {(last_stop - cancel_at).total_seconds():.1f}s after the cancel request")


def test_asha_stops_weak_trials_early_and_says_why(tuning_stack):
    job_id = _start(
        tuning_stack, name="asha", num_samples=6, max_concurrent_trials=2, scheduler="asha",
        metric_name="eval_loss", metric_mode="min", seed=3,
        fixed_params={"max_steps": 80, "eval_every": 10, "batch_size": 32},
        search_space={"learning_rate": {"type": "loguniform", "min": 1e-6, "max": 1e-2}},
    )
    job = _wait_for_job(tuning_stack, job_id, 900)
    assert job["status"] == "completed", job["error"]
    stopped = [t for t in job["trials"] if t["status"] == "stopped"]
    assert stopped, "ASHA stopped no trial early"
    for trial in stopped:
        assert trial["reason"].startswith("ASHA stopped it at iteration"), trial["reason"]
        assert "worse than the cutoff" in trial["reason"] and trial["iteration"] < 9
    # The decision is on the log with its inputs, and `jobs why` tells it.
    rungs = [e["payload"] for e in httpx.get(f"{tuning_stack['url']}/api/tuning/jobs/{job_id}/events", timeout=30).json()
             if e["type"] == "DecisionMade" and e["payload"]["kind"] == "rung"]
    stop = next(d for d in rungs if d["trial_id"] == stopped[0]["trial_id"] and d["outcome"] == "stop")
    inputs = stop["inputs"]
    assert inputs["value"] > inputs["cutoff"] and inputs["compared_count"] >= 1 and inputs["compared"]
    median = statistics.median(inputs["compared"].values())  # reduction_factor 2: the median
    assert abs(median - inputs["cutoff"]) <= 1e-9 * max(1.0, abs(median)), inputs
    assert any(d["outcome"] == "continue" for d in rungs)
    told = _why(tuning_stack, job_id, stopped[0]["trial_id"])
    assert f"trial {stopped[0]['trial_id']}: stopped early: ASHA stopped it at iteration" in told, told
    assert re.search(r"rung\s+stop", told) and re.search(r"suggestion\s+suggest", told), told
    finished = [t for t in job["trials"] if t["status"] == "completed"]
    best = min(finished, key=lambda t: t["metrics"]["eval_loss"])
    assert job["best_trial_id"] == best["trial_id"]


def test_pbt_continues_weak_trials_from_strong_ones_checkpoints(tuning_stack):
    base = tuning_stack["url"]
    job_id = _start(
        tuning_stack, name="pbt", num_samples=4, max_concurrent_trials=2, scheduler="pbt",
        metric_name="eval_loss", metric_mode="min", seed=5,
        fixed_params={"max_steps": 80, "eval_every": 10, "batch_size": 32},
        search_space={"learning_rate": {"type": "loguniform", "min": 1e-5, "max": 1e-2}},
    )
    job = _wait_for_job(tuning_stack, job_id, 900)
    assert job["status"] == "completed", job["error"]
    assert len(job["trials"]) == 4 and all(t["status"] == "completed" for t in job["trials"])
    trail = httpx.get(f"{base}/api/tuning/jobs/{job_id}/events", timeout=30).json()
    exploits = [e["payload"] for e in trail if e["type"] == "TrialUpdated"
                and (e["payload"]["reason"] or "").startswith("PBT: continues from trial")]
    assert exploits, "PBT exploited no trial"
    for exploit in exploits:
        first = next(e["payload"] for e in trail if e["type"] == "TrialUpdated"
                     and e["payload"]["trial_id"] == exploit["trial_id"])
        donor = exploit["reason"].split("trial ", 1)[1].split("'", 1)[0]
        assert donor != exploit["trial_id"] and donor in {t["trial_id"] for t in job["trials"]}
        # The exploited trial runs under new hyperparameters, from the donor's training state.
        assert exploit["params"]["learning_rate"] != first["params"]["learning_rate"]
    resumed = [t for t in job["trials"] if t["trial_id"] in {x["trial_id"] for x in exploits}]
    manifests = [json.loads((Path(t["artifact_path"]) / "manifest.json").read_text()) for t in resumed]
    assert any(m["resumed_at_step"] > 0 for m in manifests), manifests
    decided = [e["payload"] for e in trail if e["type"] == "DecisionMade" and e["payload"]["kind"] == "exploit"]
    assert {d["trial_id"] for d in decided} == {x["trial_id"] for x in exploits}
    for d in decided:
        assert d["inputs"]["source_trial"] != d["trial_id"] and d["inputs"]["checkpoint"]
        assert d["inputs"]["source_score"] is not None and set(d["inputs"]["source_params"]) == {"learning_rate"}
    for trial_id in {d["trial_id"] for d in decided}:  # the values it explored are the ones the trial ran with
        assert [d["inputs"]["new"]["learning_rate"] for d in decided if d["trial_id"] == trial_id] == [
            x["params"]["learning_rate"] for x in exploits if x["trial_id"] == trial_id]
    told = _why(tuning_stack, job_id, decided[0]["trial_id"])
    assert f"PBT replaced it with trial {decided[0]['inputs']['source_trial']}'s checkpoint" in told, told
    assert "PBT exploited it" in told, told
    best = min(job["trials"], key=lambda t: t["metrics"]["eval_loss"])
    assert job["best_trial_id"] == best["trial_id"]


def test_a_parallel_tpe_job_verifies_against_its_log_and_an_altered_copy_does_not(tuning_stack, tmp_path):
    base = tuning_stack["url"]
    job_id = _start(
        tuning_stack, name="tpe", num_samples=6, max_concurrent_trials=2, search_algorithm="tpe", seed=1,
        startup_trials=2, metric_name="eval_loss", metric_mode="min", fixed_params={"max_steps": 30, "eval_every": 10},
        search_space={"learning_rate": {"type": "loguniform", "min": 1e-4, "max": 1e-2},
                      "batch_size": {"type": "choice", "values": [16, 32]}},
    )
    job = _wait_for_job(tuning_stack, job_id, 900)
    assert job["status"] == "completed", job["error"]
    assert len(job["trials"]) == 6 and all(t["status"] == "completed" for t in job["trials"])
    spans = [(t["started_at"], t["finished_at"]) for t in job["trials"]]
    assert all(sum(s <= start < e for s, e in spans) <= 2 for start, _ in spans), "TPE ran more than 2 at once"

    trail = httpx.get(f"{base}/api/tuning/jobs/{job_id}/events", timeout=30).json()
    suggestions = [e["payload"] for e in trail if e["type"] == "DecisionMade" and e["payload"]["kind"] == "suggestion"]
    assert len(suggestions) == 6 and all(s["inputs"]["algorithm"] == "tpe" and s["inputs"]["seed"] == 1
                                         for s in suggestions)
    verified = subprocess.run([*CLI, "audit", "--api-url", base, "verify", job_id], capture_output=True, text=True,
                              timeout=120)
    assert verified.returncode == 0 and "replayed all 6 suggestions" in verified.stdout, verified.stdout + verified.stderr

    # One result altered in a copy of the log: the first result fed swaps places with the second
    # (TPE's good and bad groups change), and the replay parts from the log at the first
    # suggestion TPE made from those two (startup_trials=2: the ones before were at random).
    fed = [trial_id for s in suggestions for trial_id, iteration in s["inputs"]["fed"] if iteration is None]
    modelled = fed[1]
    losses = {t["trial_id"]: t["metrics"]["eval_loss"] for t in job["trials"]}
    assert losses[fed[0]] != losses[fed[1]], losses
    altered = max(losses.values()) + 10 if losses[fed[0]] < losses[fed[1]] else min(losses.values()) - 10
    for event in trail:
        p = event["payload"]
        if event["type"] == "TrialUpdated" and p["trial_id"] == fed[0] and p["status"] == "completed":
            p["metrics"]["eval_loss"] = altered
    copy = tmp_path / "altered-log.json"
    copy.write_text(json.dumps(trail))
    refused = subprocess.run([*CLI, "audit", "--api-url", base, "verify", job_id, "--log", str(copy)],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    first_after = next(n for n, s in enumerate(suggestions, start=1) if [modelled, None] in s["inputs"]["fed"])
    assert f"first difference: suggestion {first_after} (trial {suggestions[first_after - 1]['trial_id']})" in (
        refused.stdout), refused.stdout


def test_tuner_killed_mid_job_resumes_without_rerunning_finished_trials(tuning_stack):
    """kill -9 of the tuner while trials run; a new tuner restores the experiment from
    artifacts/tuning/{job_id}/, interrupted trials continue from their last checkpoint, and
    the job ends with exactly num_samples trials."""
    import signal

    base = tuning_stack["url"]
    tuner = next(p for p in tuning_stack["procs"] if p.log_path.name.startswith("consumers.tuner"))
    job_id = _start(
        tuning_stack, name="crash", num_samples=4, max_concurrent_trials=2,
        fixed_params={"max_steps": 100, "eval_every": 10, "batch_size": 32},
        search_space={"learning_rate": {"type": "loguniform", "min": 1e-3, "max": 1e-2}},
    )

    def some_done_some_halfway():
        trials = httpx.get(f"{base}/api/tuning/jobs/{job_id}", timeout=10).json()["trials"]
        done = [t for t in trials if t["status"] == "completed"]
        halfway = [t for t in trials if t["status"] == "running" and 2 <= (t["iteration"] or 0) <= 6]
        return done and halfway and (done, halfway)
    done_before, halfway = wait_until(some_done_some_halfway, 600, "a trial done while another is halfway")
    os.kill(tuner.proc.pid, signal.SIGKILL)
    tuner.proc.wait(timeout=30)
    tuner.log.close()
    restarted = Process("consumers.tuner", tuner.env, tuner.log_path.parent)
    tuning_stack["procs"][tuning_stack["procs"].index(tuner)] = restarted

    job = _wait_for_job(tuning_stack, job_id, 900)
    assert job["status"] == "completed", job["error"]
    assert len(job["trials"]) == 4 and all(t["status"] == "completed" for t in job["trials"])
    trail = httpx.get(f"{base}/api/tuning/jobs/{job_id}/events", timeout=30).json()
    for trial in done_before:
        # A trial finished before the crash is not run again: no TrialUpdated after its end.
        updates = [e for e in trail if e["type"] == "TrialUpdated" and e["payload"]["trial_id"] == trial["trial_id"]]
        statuses = [(u["payload"]["status"], u["payload"]["iteration"]) for u in updates]
        assert [s for s, _ in statuses].count("completed") == 1, " ".join(f"{s}:{i}" for s, i in statuses)
        assert updates[-1]["payload"]["status"] == "completed"
    # A trial interrupted halfway continued from a checkpoint rather than from step 0.
    interrupted = [json.loads((Path(t["artifact_path"]) / "manifest.json").read_text()) for t in halfway]
    # (from the last checkpoint Ray's saved experiment state knows: one report back at most)
    assert all(m["resumed_at_step"] > 0 for m in interrupted), interrupted
    assert [e["type"] for e in trail].count("JobCompleted") == 1
    # The killed tuner's Ray processes did not survive the new tuner's start: every Ray
    # process of this stack still alive has a living parent.
    from consumers.tuner.ray_processes import ray_processes_left, ray_temp_dir

    for pid in ray_processes_left(str(ray_temp_dir(tuning_stack["state"]))):
        try:
            parent = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue  # ended meanwhile
        assert parent != 1, f"orphaned Ray process {pid}"


def test_cli_submit_watch_follows_the_job_to_its_best_trial(tuning_stack, tmp_path):
    import subprocess
    import sys

    from tests.conftest import REPO

    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(example_spec(
        name="watched", num_samples=2, max_concurrent_trials=2, fixed_params=FIXED,
        search_space={"learning_rate": {"type": "choice", "values": [1e-3, 5e-3]}})))
    watched = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "jobs", "--api-url", tuning_stack["url"],
         "submit", str(spec), "--watch", "--json"],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )
    assert watched.returncode == 0, watched.stderr
    job = json.loads(watched.stdout)  # stdout: the final job only; the view went to stderr
    assert job["status"] == "completed" and len(job["trials"]) == 2
    assert "trials done 2/2" in watched.stderr
    best = job["best_trial"]
    assert f"best trial {best['trial_id']}: score=" in watched.stderr
    assert f"run folder {best['artifact_path']}" in watched.stderr


def test_a_job_asking_for_resources_the_cluster_lacks_fails_with_the_reason(tuning_stack):
    """A GPU (or custom resource) no Ray node has would leave trials pending forever: the job
    fails at once, naming what was asked and what the cluster has."""
    job_id = _start(tuning_stack, name="needs a gpu", num_samples=1, fixed_params=FIXED,
                    search_space={"learning_rate": {"type": "loguniform", "min": 1e-3, "max": 1e-2}},
                    resources_per_trial={"cpu": 1, "gpu": 0.5, "custom": {"a100": 1}})
    job = _wait_for_job(tuning_stack, job_id, 120)
    assert job["status"] == "failed" and job["trials"] == []
    assert "a trial asks for GPU=0.5, a100=1 but the whole Ray cluster has GPU=0, a100=0" in job["error"], job["error"]


def test_a_silent_trial_loses_its_lease_and_is_retried_then_failed(tuning_stack):
    """A lease shorter than the time to a trial's first report (model load and compile): the
    trial is presumed hung, stopped and retried from scratch (stale), then failed."""
    job_id = _start(tuning_stack, name="lease", num_samples=1, fixed_params=FIXED, trial_lease_s=0.5,
                    max_trial_retries=1, search_space={"learning_rate": {"type": "loguniform", "min": 1e-3, "max": 1e-2}})
    job = _wait_for_job(tuning_stack, job_id, 300)
    assert job["status"] == "failed" and "1 of 1 trials failed" in job["error"], job["error"]
    trail = httpx.get(f"{tuning_stack['url']}/api/tuning/jobs/{job_id}/events", timeout=30).json()
    statuses = [(e["payload"]["status"], e["payload"]["reason"]) for e in trail if e["type"] == "TrialUpdated"]
    stale = [r for s, r in statuses if s == "stale"]
    assert len(stale) == 1 and "lease lapsed" in stale[0] and "retry 1 of 1" in stale[0], statuses
    assert statuses[-1][0] == "failed" and "lease lapsed" in statuses[-1][1], statuses


def test_the_time_budget_stops_the_job(tuning_stack):
    job_id = _start(tuning_stack, name="budget", num_samples=3, max_concurrent_trials=1, time_budget_s=8,
                    fixed_params={"max_steps": 5000, "eval_every": 10, "batch_size": 32},
                    search_space={"learning_rate": {"type": "loguniform", "min": 1e-3, "max": 1e-2}})
    job = _wait_for_job(tuning_stack, job_id, 300)
    assert job["trials"] and all(t["status"] == "stopped" and t["reason"] == "time budget spent"
                                 for t in job["trials"]), job["trials"]
    assert job["status"] == "failed" and "no trial reported a finite score" in job["error"]
