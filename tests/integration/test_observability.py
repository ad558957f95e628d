"""Health, readiness and Prometheus metrics on every process, read over HTTP from the real
api, projector and tuner."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.session import TOPICS
from tests.support.specs import example_spec
from tests.support.waiting import wait_until


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} from a /metrics answer."""
    answer = httpx.get(f"{url}/metrics", timeout=10)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text) for s in family.samples
    }


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_every_process_answers_health_and_readiness(processes, tuning_stack):
    projector = processes["projector"]
    tuner = next(p for p in tuning_stack["procs"] if p.probe_url and "tuner" in p.log_path.name)
    for url in (processes["url"], projector.probe_url, tuner.probe_url):
        wait_until(lambda u=url: _answers(f"{u}/healthz"), 60, f"{url} up")  # a process binds as it starts
        assert httpx.get(f"{url}/healthz", timeout=10).json() == {"status": "ok"}
        wait_until(lambda u=url: httpx.get(f"{u}/readyz", timeout=10).status_code == 200, 60, f"{url} ready")
    checks = httpx.get(f"{projector.probe_url}/readyz", timeout=10).json()["checks"]
    assert checks == {"kafka": "ok", "postgres": "ok"}
    assert httpx.get(f"{tuner.probe_url}/readyz", timeout=10).json()["checks"] == {"ray": "ok", "kafka": "ok"}


async def test_api_and_projector_count_events_by_type_and_dead_letters(processes, client, producer):
    api, projector = processes["url"], processes["projector"].probe_url
    api_before, projector_before = scrape(api), scrape(projector)

    created = await client.post("/api/tuning/jobs", json=example_spec(name="metrics"))
    assert created.status_code == 201
    assert value(scrape(api), "tunix_events_published_total", type="JobCreated") == \
        value(api_before, "tunix_events_published_total", type="JobCreated") + 1

    await producer.send_and_wait(TOPICS.events.name, b"not an event", key=b"poison")

    def counted():
        now = scrape(projector)
        return (value(now, "tunix_events_consumed_total", type="JobCreated")
                > value(projector_before, "tunix_events_consumed_total", type="JobCreated")
                and value(now, "tunix_events_dead_lettered_total")
                > value(projector_before, "tunix_events_dead_lettered_total")) and now
    wait_until(counted, 60, "the projector's counters to move")


async def test_projector_lag_rises_with_a_backlog_and_falls_to_zero(stack, service_env, tmp_path):
    """A projector of its own (topic prefix, database, group) starts behind 1,000 events and
    projects one per batch: its lag gauge shows the backlog, then 0."""
    import asyncio
    import uuid

    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from schemas import events as ev
    from adapters.database import create_database, drop_database
    from schemas.job_spec import JobSpec
    from tests.conftest import Process

    run = uuid.uuid4().hex[:8]
    prefix, name = f"lag-{run}", f"lag_{run}"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(f"{prefix}.events", num_partitions=6, replication_factor=1)])
    finally:
        await admin.close()
    spec = JobSpec.model_validate(example_spec(name="lagging"))
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka, acks="all", linger_ms=20)
    await producer.start()
    try:
        sent = [await producer.send(f"{prefix}.events", ev.serialize_event(e), key=e.key()) for e in (
            ev.JobCreated(job_id=uuid.uuid4(), source="test", payload=ev.JobCreatedPayload(spec=spec))
            for _ in range(1000))]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()

    url = await create_database(stack.database_url, name)
    env = {**service_env, "DATABASE_URL": url, "TUNIX_TOPIC_PREFIX": prefix,
           "TUNIX_PROJECTOR_GROUP": f"lag-{run}", "TUNIX_PROJECTOR_MAX_BATCH": "1"}
    projector = Process("consumers.projector", env, tmp_path)
    try:
        lag = lambda: value(scrape(projector.probe_url), "tunix_projector_lag_events")  # noqa: E731

        def backlog_seen():
            try:
                return lag() > 0
            except httpx.HTTPError:
                return False  # not listening yet
        wait_until(backlog_seen, 60, "a positive lag while the backlog is projected")
        wait_until(lambda: lag() == 0, 180, "the lag back to 0")
        wait_until(lambda: value(scrape(projector.probe_url), "tunix_events_consumed_total", type="JobCreated")
                   == 1000, 30, "all 1,000 events projected")
    finally:
        projector.stop()
        await drop_database(stack.database_url, name)


def test_tuner_reports_trials_and_job_durations(tuning_stack):
    base = tuning_stack["url"]
    tuner = next(p for p in tuning_stack["procs"] if p.probe_url and "tuner" in p.log_path.name)
    before = scrape(tuner.probe_url)
    spec = example_spec(name="metered", num_samples=2, max_concurrent_trials=2,
                        fixed_params={"max_steps": 20, "eval_every": 10, "batch_size": 32},
                        search_space={"learning_rate": {"type": "choice", "values": [1e-3, 3e-3]}})
    job_id = httpx.post(f"{base}/api/tuning/jobs", json=spec, timeout=30).json()["job_id"]
    httpx.post(f"{base}/api/tuning/jobs/{job_id}/start", timeout=30).raise_for_status()

    def running_seen():
        return value(scrape(tuner.probe_url), "tunix_trials_running") >= 1
    wait_until(running_seen, 300, "a trial counted as running")

    def finished():
        return httpx.get(f"{base}/api/tuning/jobs/{job_id}", timeout=10).json()["status"] == "completed"
    wait_until(finished, 600, "the job to complete")
    after = scrape(tuner.probe_url)
    grew = lambda name, **labels: value(after, name, **labels) - value(before, name, **labels)  # noqa: E731
    assert grew("tunix_trial_duration_seconds_count", status="completed") == 2
    assert grew("tunix_job_duration_seconds_count", outcome="JobCompleted") == 1
    assert grew("tunix_events_published_total", type="JobCompleted") == 1
    assert grew("tunix_events_published_total", type="TrialUpdated") >= 2 * 3
    assert grew("tunix_events_consumed_total", type="JobStarted") == 1
    assert value(after, "tunix_trials_running") == 0
