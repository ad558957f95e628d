"""The dashboard at /ui in headless Chromium (Debian's chromium and chromedriver, driven by
Selenium), against the real stack with a real tuner: create from the page (a refused spec
shows the API's messages inline), watch trials appear and the plots render, sort, cancel.
A screenshot of the job page is saved under test-artifacts/."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO
from tests.specs import example_spec
from tests.waiting import wait_until

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ARTIFACTS = Path(os.environ.get("TUNIX_TEST_ARTIFACTS", REPO / "test-artifacts"))


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    # `make test` installs both (Debian packages chromium and chromium-driver).
    assert shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER), "run `make test`: it installs chromium"
    os.environ["SE_OFFLINE"] = "true"  # Selenium never downloads a browser or driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1300",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _count(driver, selector: str) -> int:
    return driver.execute_script("return document.querySelectorAll(arguments[0]).length", selector)


def _text(driver, selector: str) -> str:
    return driver.execute_script("const e = document.querySelector(arguments[0]); return e ? e.innerText : ''", selector)


def _type_spec(driver, spec: dict) -> None:
    driver.execute_script("document.getElementById('spec').value = arguments[0]", json.dumps(spec))


def test_job_page_shows_trials_and_plots_while_the_job_runs(browser, tuning_stack):
    base = tuning_stack["url"]
    browser.get(f"{base}/ui/")
    wait_until(lambda: '"search_space"' in browser.execute_script(
        "const s = document.getElementById('spec'); return s ? s.value : ''"), 30, "the example spec in the form")

    # The form offers the models this deployment can train (GET /api/base-models).
    assert "tiny-gemma3" in browser.execute_script(
        "return [...document.querySelectorAll('#base-model option')].map(o => o.value)")
    jobs_before = httpx.get(f"{base}/api/tuning/jobs", timeout=10).json()["total"]
    _type_spec(browser, example_spec(num_samples=0))
    browser.find_element("id", "create").click()
    wait_until(lambda: "num_samples" in _text(browser, "#create-errors"), 30, "the API's message inline")
    assert "greater than or equal to 1" in _text(browser, "#create-errors")
    assert httpx.get(f"{base}/api/tuning/jobs", timeout=10).json()["total"] == jobs_before

    _type_spec(browser, example_spec(
        name="dashboard", num_samples=6, max_concurrent_trials=2,
        fixed_params={"max_steps": 60, "eval_every": 10, "batch_size": 32},
        search_space={"learning_rate": {"type": "loguniform", "min": 1e-3, "max": 1e-2}}))
    browser.find_element("id", "create-start").click()
    wait_until(lambda: "#/jobs/" in browser.current_url, 30, "the new job's page")
    job_id = browser.current_url.rsplit("/", 1)[1]

    # Trials appear while the job runs, without reloading the page (live refresh).
    wait_until(lambda: _count(browser, "#trials-table tbody tr[data-trial-id]") >= 2, 300, "trials in the table")
    wait_until(lambda: "running" in _text(browser, "#trials-table"), 300, "a running trial")
    wait_until(lambda: "completed" in _text(browser, "#trials-table"), 600, "a completed trial")
    wait_until(lambda: _count(browser, "#plot-history .scatterlayer .point") >= 1, 60, "optimization history")
    wait_until(lambda: _count(browser, "#plot-parallel .parcoords") >= 1, 60, "parallel coordinates")
    wait_until(lambda: _count(browser, "#plot-curves .scatterlayer .trace") >= 2, 60, "learning curves")
    assert _count(browser, "#trials-table tbody tr.best") == 1
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "dashboard-job.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000

    # Sorting by a column orders the rows by it: every trial has a learning rate.
    click = "document.querySelector(\"#trials-table th[data-key='params.learning_rate']\").click()"
    browser.execute_script(click)
    browser.execute_script(click)  # second click: descending
    rates = [float(v) for v in browser.execute_script(
        "return [...document.querySelectorAll('#trials-table tbody tr')].map(r => r.children[2].innerText)")]
    assert len(rates) >= 3 and rates == sorted(rates, reverse=True)

    # Cancel from the page while trials are left (6 trials, 2 at a time): the job ends
    # cancelled, and the page shows it.
    assert httpx.get(f"{base}/api/tuning/jobs/{job_id}", timeout=10).json()["status"] == "running"
    # (by script: the page redraws every 2 s, so a found element can go stale before a click)
    browser.execute_script("document.getElementById('cancel').click()")
    wait_until(lambda: "cancelled" in _text(browser, "#job-title"), 120, "the job cancelled on the page")
    assert httpx.get(f"{base}/api/tuning/jobs/{job_id}", timeout=10).json()["status"] == "cancelled"


def test_stale_and_preempted_trials_look_unlike_failed_ones(browser, tuning_stack):
    """Trials another system reports as stale, preempted and failed (through the log, as the
    tuners would) get three distinct badges on the job page."""
    import asyncio

    from aiokafka import AIOKafkaProducer

    from schemas import events as ev
    from schemas.topics import Topics

    base = tuning_stack["url"]
    topics = Topics(tuning_stack["procs"][0].env["TUNIX_TOPIC_PREFIX"])
    job_id = httpx.post(f"{base}/api/tuning/jobs", json=example_spec(name="badges"), timeout=30).json()["job_id"]
    updates = [ev.TrialUpdated(job_id=job_id, source="another-tuner", payload=ev.TrialUpdatedPayload(
        trial_id=trial_id, status=status, reason=f"{status} on purpose")) for trial_id, status in
        (("t-stale", "running"), ("t-stale", "stale"), ("t-pre", "running"), ("t-pre", "preempted"),
         ("t-failed", "failed"))]

    async def publish():
        producer = AIOKafkaProducer(bootstrap_servers=tuning_stack["procs"][0].env["KAFKA_BOOTSTRAP_SERVERS"],
                                    acks="all")
        await producer.start()
        try:
            for event in updates:
                await producer.send_and_wait(topics.events.name, ev.serialize_event(event), key=event.key())
        finally:
            await producer.stop()
    asyncio.run(publish())
    wait_until(lambda: len(httpx.get(f"{base}/api/tuning/jobs/{job_id}", timeout=10).json()["trials"]) == 3,
               30, "the three trials projected")
    browser.get(f"{base}/ui/#/jobs/{job_id}")
    wait_until(lambda: _count(browser, "#trials-table tbody tr") == 3, 30, "three trial rows")
    colours = {status: browser.execute_script(
        "return getComputedStyle(document.querySelector(`#trials-table .status.${arguments[0]}`)).backgroundColor",
        status) for status in ("stale", "preempted", "failed")}
    assert len(set(colours.values())) == 3, colours
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "dashboard-trial-statuses.png"))
