"""Records another system puts on the log, against the real tuner: a claim no tuner backs does
not orphan a running job, a cancel always ends a job, and what the projector dead-letters the
tuner never runs."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from adapters.settings import Settings
from schemas import events as ev
from schemas.job_spec import JobSpec
from schemas.topics import DLQ_REASON_HEADER, Topics
from tests.support.extreme_events import encode, extreme_stream
from tests.support.kafka_log import read_all
from tests.support.service_stack import start_job, wait_for_job
from tests.support.specs import example_spec
from tests.support.waiting import wait_until

# Trials that train far longer than the test: it acts while they run.
LONG = {"max_steps": 3000, "eval_every": 10, "batch_size": 32}


def _produce(stack: dict, *events: ev.Event, raw: list[tuple[bytes, bytes]] = ()) -> list:
    """Publish as another system would, in one burst (`raw`: (key, body) records first); each
    record's (partition, offset)."""
    records = [*raw, *((e.key(), ev.serialize_event(e)) for e in events)]

    async def send():
        producer = AIOKafkaProducer(bootstrap_servers=stack["env"]["KAFKA_BOOTSTRAP_SERVERS"], acks="all")
        await producer.start()
        try:
            sent = [await producer.send(_topics(stack).events.name, value, key=key) for key, value in records]
            return [(m.partition, m.offset) for m in [await s for s in sent]]
        finally:
            await producer.stop()
    return asyncio.run(send())


def _topics(stack: dict) -> Topics:
    return Topics(stack["env"]["TUNIX_TOPIC_PREFIX"])


def _job(stack: dict, job_id) -> dict:
    return httpx.get(f"{stack['url']}/api/tuning/jobs/{job_id}", timeout=10).json()


def _forged_claim(job_id, generation: int) -> ev.JobClaimed:
    return ev.JobClaimed(job_id=job_id, source="intruder", claim=generation,
                         payload=ev.JobClaimedPayload(tuner_id="intruder", generation=generation))


def test_a_claim_no_tuner_backs_is_outbid_and_a_cancel_still_ends_the_job(tuning_stack):
    job_id = start_job(tuning_stack["url"], name="forged claims", num_samples=2, max_concurrent_trials=1,
                       fixed_params=LONG, search_space={"learning_rate": {"type": "loguniform", "min": 1e-3, "max": 1e-2}})
    training = lambda: any(t["status"] == "running" and (t["iteration"] or 0) >= 1 for t in _job(tuning_stack, job_id)["trials"])  # noqa: E731
    wait_until(training, 300, "a trial reporting progress")
    owner, claim = _job(tuning_stack, job_id)["owner"], _job(tuning_stack, job_id)["claim"]

    _produce(tuning_stack, _forged_claim(job_id, claim + 1))
    outbid = wait_until(lambda: (job := _job(tuning_stack, job_id))["claim"] > claim + 1 and job, 120,
                        "the tuner claiming the job again over the forged claim")
    assert outbid["owner"] == owner and outbid["status"] == "running"
    wait_until(training, 300, "the job training again under its new claim")

    # A second forged claim with a cancel right behind it: whichever the tuner acts on first,
    # the job ends cancelled and no trial is left running.
    now = _job(tuning_stack, job_id)["claim"]
    _produce(tuning_stack, _forged_claim(job_id, now + 1),
             ev.JobCancelRequested(job_id=job_id, source="another-system", actor="ops"))
    job = wait_for_job(tuning_stack["url"], job_id, 300, tuning_stack["procs"])
    assert job["status"] == "cancelled", job
    assert job["trials"] and all(t["status"] in ("stopped", "completed", "failed") for t in job["trials"]), job["trials"]


def _committed(stack: dict, positions: list) -> bool:
    """Whether the tuner group has folded past every (partition, offset)."""
    async def check():
        admin = AIOKafkaAdminClient(bootstrap_servers=stack["env"]["KAFKA_BOOTSTRAP_SERVERS"])
        await admin.start()
        try:
            return await admin.list_consumer_group_offsets(Settings.from_env(stack["env"]).tuner_group_id)
        finally:
            await admin.close()
    offsets = asyncio.run(check())
    topic = _topics(stack).events.name
    return all((found := offsets.get(TopicPartition(topic, p))) and found.offset > o for p, o in positions)


def test_extensions_the_projector_dead_letters_are_never_run_and_the_tuner_folds_every_edge(tuning_stack):
    base = tuning_stack["url"]
    cancelled = httpx.post(f"{base}/api/tuning/jobs", json=example_spec(name="cancelled before start"),
                           timeout=30).json()["job_id"]
    assert httpx.post(f"{base}/api/tuning/jobs/{cancelled}/cancel", timeout=30).status_code == 202
    wait_until(lambda: _job(tuning_stack, cancelled)["status"] == "cancelled", 30, "the job cancelled")
    never_created = uuid.uuid4()
    spec = JobSpec.model_validate(example_spec(name="extended", fixed_params={"max_steps": 30}))
    extensions = [ev.JobExtended(job_id=job_id, source="another-system", payload=ev.JobExtendedPayload(
        num_samples_added=1, spec=spec)) for job_id in (never_created, uuid.UUID(cancelled))]
    # Ahead of them, events at the edges of every contract (none that would start a job: the
    # tuner runs one job at a time for every test of this stack).
    edges = [(str(job_id).encode(), encode(body)) for job_id, body in extreme_stream(18, jobs=6)
             if body["type"] not in ("JobStarted", "JobExtended")]
    positions = _produce(tuning_stack, *extensions, raw=edges)

    wait_until(lambda: _committed(tuning_stack, positions), 60, "the tuner folding past the extensions")
    tuner = next(p for p in tuning_stack["procs"] if p.log_path.name.startswith("consumers.tuner"))
    assert tuner.proc.poll() is None and httpx.get(f"{tuner.probe_url}/readyz", timeout=10).status_code == 200
    assert "event not folded" not in tuner.log_path.read_text(errors="replace")  # every record met a rule
    bootstrap, topics = tuning_stack["env"]["KAFKA_BOOTSTRAP_SERVERS"], _topics(tuning_stack)
    ids = {str(never_created).encode(), cancelled.encode()}
    acted = [r for r in asyncio.run(read_all(bootstrap, topics.events.name))
             if r.key in ids and (b'"JobClaimed"' in r.value or b'"TrialUpdated"' in r.value)]
    assert not acted, "the tuner claimed or ran a job the projector refused to extend"

    def dead_letters():
        sent = {ev.serialize_event(e) for e in extensions}
        found = {r.key.decode(): dict(r.headers)[DLQ_REASON_HEADER].decode()
                 for r in asyncio.run(read_all(bootstrap, topics.dead_letter.name)) if r.value in sent}
        return len(found) == 2 and found
    assert wait_until(dead_letters, 30, "both extensions dead-lettered") == {
        str(never_created): f"unknown job_id {never_created}",
        cancelled: f"job {cancelled} is cancelled; only a completed job can be extended"}
    assert _job(tuning_stack, cancelled)["status"] == "cancelled"
