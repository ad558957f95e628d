"""The dashboard at /ui in headless Chromium (Debian's chromium and chromedriver, driven by
Selenium), against the real stack with a real tuner: create from the page (a refused spec
shows the API's messages inline), watch trials appear and the plots render, sort, cancel;
steer a job from its page (adjust, fork, start, promote), compare jobs, read the model registry.
Screenshots of the pages are saved under test-artifacts/."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO
from tests.support.service_stack import start_job, wait_for_job
from tests.support.specs import example_spec
from tests.support.waiting import wait_until

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ARTIFACTS = Path(os.environ.get("TUNIX_TEST_ARTIFACTS", REPO / "test-artifacts"))
# Every page records what its Content-Security-Policy blocked (kept in sessionStorage across
# the test's page loads): the dashboard must work under the policy the API serves it with.
CSP_RECORDER = """
document.addEventListener("securitypolicyviolation", e => {
  const seen = JSON.parse(sessionStorage.getItem("csp") || "[]");
  seen.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
  sessionStorage.setItem("csp", JSON.stringify(seen));
});"""
# A job name that is HTML: every page and plot must show it as typed, never as a link.
HOSTILE = '<a href="https://attacker.example" style="font-size:40px;color:red">click me</a> & \'q\''


def _plot_text(text: str) -> str:
    """What app.js's plotText makes of a string bound for a Plotly plot."""
    for char, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&#34;"), ("'", "&#39;")):
        text = text.replace(char, entity)
    return text


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
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CSP_RECORDER})
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(autouse=True)
def nothing_blocked(browser):
    """After each test: the security policy blocked nothing on any page the test opened."""
    yield
    blocked = browser.execute_script("const s = sessionStorage.getItem('csp') || '[]'; "
                                     "sessionStorage.removeItem('csp'); return JSON.parse(s)")
    assert blocked == [], blocked


def _count(driver, selector: str) -> int:
    return driver.execute_script("return document.querySelectorAll(arguments[0]).length", selector)


def _text(driver, selector: str) -> str:
    return driver.execute_script("const e = document.querySelector(arguments[0]); return e ? e.innerText : ''", selector)


def _visible(driver, selector: str) -> bool:
    return driver.execute_script(
        "const e = document.querySelector(arguments[0]); return Boolean(e && e.getClientRects().length)", selector)


def _fill(driver, form: str, **values: str) -> None:
    """Type into a steering form's inputs (built once per page: the 2 s refresh keeps them) and submit it."""
    for name, value in values.items():
        field = driver.find_element("id", f"{form}-{name}")
        field.clear()
        field.send_keys(value)
    driver.find_element("id", f"{form}-submit").click()


def _events(base: str, job_id: str) -> list[dict]:
    return httpx.get(f"{base}/api/tuning/jobs/{job_id}/events", timeout=30).json()


def _full_page_shot(driver, name: str) -> Path:
    """The whole page, not only the window: the window grows to the page for the shot."""
    size = driver.get_window_size()
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(size["width"], max(size["height"], min(height + 150, 6000)))
    try:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / name
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        return shot
    finally:
        driver.set_window_size(size["width"], size["height"])


def _type_spec(driver, spec: dict) -> None:
    driver.execute_script("document.getElementById('spec').value = arguments[0]", json.dumps(spec))


def test_the_dashboard_policy_blocks_inline_script_and_the_recorder_sees_it(browser, tuning_stack):
    """The check `nothing_blocked` relies on: the served policy is enforced and reported."""
    browser.get(f"{tuning_stack['url']}/ui/")
    wait_until(lambda: _count(browser, "#jobs-table") == 1, 30, "the jobs list")
    browser.execute_script("const s = document.createElement('script'); s.textContent = 'window.injected = 1';"
                           "document.body.append(s)")
    blocked = wait_until(lambda: browser.execute_script("return JSON.parse(sessionStorage.getItem('csp') || '[]')"),
                         10, "the inline script reported")
    assert browser.execute_script("return window.injected") is None and blocked[0].startswith("script-src")
    browser.execute_script("sessionStorage.removeItem('csp')")


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


def test_steer_a_job_from_its_page_then_promote_fork_and_compare(browser, tuning_stack):
    """A running job adjusted from its page (the change and reason on its events, an invalid
    one refused inline); once completed, promoted (on the models page) and forked (lineage on
    the fork's page, started from there); the two compared, picked on the jobs list."""
    base, procs = tuning_stack["url"], tuning_stack["procs"]
    job_id = start_job(base, name="steered from the page", num_samples=2, max_concurrent_trials=1,
                       fixed_params={"max_steps": 60, "eval_every": 10, "batch_size": 32},
                       search_space={"learning_rate": {"type": "loguniform", "min": 1e-3, "max": 1e-2}})
    browser.get(f"{base}/ui/#/jobs/{job_id}")
    wait_until(lambda: "running" in _text(browser, "#job-title"), 120, "the job running on its page")
    assert _visible(browser, "#adjust-form") and _visible(browser, "#fork-form")
    assert not _visible(browser, "#extend-form") and not _visible(browser, "#promote-form")

    _fill(browser, "adjust", max_concurrent_trials="2", reason="two at a time, from the page")
    wait_until(lambda: "Adjusted" in _text(browser, "#adjust-done"), 30, "the adjustment accepted")
    adjusted = wait_until(lambda: [e for e in _events(base, job_id) if e["type"] == "JobAdjusted"], 30, "JobAdjusted")
    assert adjusted[0]["payload"]["changes"] == {"max_concurrent_trials": 2}, adjusted
    assert adjusted[0]["reason"] == "two at a time, from the page" and adjusted[0]["actor"] == "anonymous"
    wait_until(lambda: "two at a time, from the page" in _text(browser, "#audit-table"), 30, "the reason on the audit trail")
    assert "max_concurrent_trials: 1 → 2" in _text(browser, "#audit-table")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "dashboard-adjust.png"))  # the running job's controls

    # Refused: the API's field and rule inline under the form, nothing published.
    _fill(browser, "adjust", num_samples="0")
    wait_until(lambda: "num_samples" in _text(browser, "#adjust-errors"), 30, "the refusal inline")
    assert len([e for e in _events(base, job_id) if e["type"] == "JobAdjusted"]) == 1

    job = wait_for_job(base, job_id, 300, procs)
    assert job["status"] == "completed", job["error"]
    wait_until(lambda: "completed" in _text(browser, "#job-title") and _visible(browser, "#promote-form"), 30,
               "the completed job's controls")
    assert not _visible(browser, "#adjust-form") and _visible(browser, "#extend-form")
    wait_until(lambda: "cost: CPU" in _text(browser, "#job-cost"), 10, "the cost line")
    wait_until(lambda: _text(browser, "#importance-note"), 30, "importance (a chart and its method, or why not)")
    _fill(browser, "promote", name="dash-model", reason="best of the page test")
    wait_until(lambda: "Promoted as dash-model" in _text(browser, "#promote-done"), 60, "the promotion accepted")
    wait_until(lambda: "dash-model v1" in _text(browser, "#audit-table"), 30, "ModelPromoted on the audit trail")

    # Fork: a new job seeded with the first ended trial; its page shows where it came from.
    _fill(browser, "fork", at_trials="1", changes=json.dumps({"num_samples": 1, "name": HOSTILE}),
          reason="one more from the page")
    wait_until(lambda: "#/jobs/" in browser.current_url and not browser.current_url.endswith(job_id), 30, "the fork's page")
    fork_id = browser.current_url.rsplit("/", 1)[1]
    wait_until(lambda: "forked from" in _text(browser, "#lineage-line"), 30, "the fork's lineage")
    assert _text(browser, "#job-title").startswith(HOSTILE) and _count(browser, "#job-title a") == 0
    assert "at trial 1" in _text(browser, "#lineage-line") and "1 seed trial" in _text(browser, "#lineage-line")
    assert browser.execute_script("return document.querySelector('#lineage-line a').getAttribute('href')") == f"#/jobs/{job_id}"
    browser.find_element("id", "action-reason").send_keys("run the fork")
    browser.execute_script("document.getElementById('start').click()")
    forked = wait_for_job(base, fork_id, 300, procs)
    assert forked["status"] == "completed", forked["error"]
    assert next(e for e in _events(base, fork_id) if e["type"] == "JobStarted")["reason"] == "run the fork"
    wait_until(lambda: "completed" in _text(browser, "#job-title") and _text(browser, "#importance-note"), 60,
               "the fork completed on its page")
    wait_until(lambda: _count(browser, "#plot-curves .scatterlayer .trace") >= 1, 30, "the fork's learning curve")
    print("screenshot:", _full_page_shot(browser, "dashboard-steering.png"))

    # The registry: the promoted model and its version, from the header's link.
    browser.find_element("id", "nav-models").click()
    wait_until(lambda: "dash-model" in _text(browser, "#models-table"), 30, "the model on the models page")
    assert "v1" in _text(browser, "#versions-dash-model") and "best of the page test" in _text(browser, "#versions-dash-model")
    browser.save_screenshot(str(ARTIFACTS / "dashboard-models.png"))

    # Compare: tick both jobs on the list, press Compare.
    browser.find_element("id", "nav-jobs").click()
    wait_until(lambda: _count(browser, f"#jobs-table tr[data-job-id='{fork_id}'] input.pick") == 1, 30, "the jobs list")
    assert browser.find_element("id", "compare-jobs").get_attribute("disabled")
    for picked in (job_id, fork_id):
        browser.find_element("css selector", f"#jobs-table tr[data-job-id='{picked}'] input.pick").click()
    browser.find_element("id", "compare-jobs").click()
    wait_until(lambda: _count(browser, "#compare-jobs-table tbody tr[data-job-id]") == 2, 30, "both jobs compared")
    assert {job_id, fork_id} == set(browser.execute_script(
        "return [...document.querySelectorAll('#compare-jobs-table tbody tr')].map(r => r.dataset.jobId)"))
    wait_until(lambda: _count(browser, "#plot-compare .scatterlayer .trace") >= 3, 30, "every trial's curve")
    assert browser.execute_script("return document.querySelectorAll('#plot-compare .legend .traces').length") == 2
    # The fork's name is HTML: the legend shows it as typed, and no link or styling of it is drawn.
    legend = browser.execute_script(
        "return [...document.querySelectorAll('#plot-compare .legend .legendtext')].map(t => t.textContent)")
    assert any(text.startswith(HOSTILE + " (") for text in legend), legend
    assert _count(browser, "#plot-compare svg a") == 0 and _count(browser, "#compare-page a[href^='https://attacker']") == 0
    browser.save_screenshot(str(ARTIFACTS / "dashboard-compare.png"))


def test_the_job_page_draws_its_decisions_on_a_timeline(browser, tuning_stack):
    base = tuning_stack["url"]
    spec = example_spec(name="decisions", num_samples=4, max_concurrent_trials=2, scheduler="asha", seed=3,
                        metric_name="eval_loss", metric_mode="min",
                        fixed_params={"max_steps": 40, "eval_every": 10, "batch_size": 32},
                        search_space={"learning_rate": {"type": "loguniform", "min": 1e-6, "max": 1e-2}})
    job_id = httpx.post(f"{base}/api/tuning/jobs", json=spec, timeout=30).json()["job_id"]
    assert httpx.post(f"{base}/api/tuning/jobs/{job_id}/start", json={"reason": "timeline"}, timeout=30).status_code == 202
    job = wait_for_job(base, job_id, 600, tuning_stack["procs"])
    assert job["status"] == "completed", job["error"]
    decisions = [e["payload"] for e in _events(base, job_id) if e["type"] == "DecisionMade"]
    kinds = {(d["kind"], d["outcome"]) for d in decisions}
    assert ("suggestion", "suggest") in kinds and ("rung", "continue") in kinds, kinds

    browser.get(f"{base}/ui/#/jobs/{job_id}")
    wait_until(lambda: _count(browser, "#decision-table tbody tr[data-kind]") == len(decisions), 60,
               "every decision listed")
    # One marker per decision, plus the start command on the job's row.
    wait_until(lambda: _count(browser, "#plot-decisions .scatterlayer .point") >= len(decisions) + 1, 60,
               "the decision timeline")
    listed = _text(browser, "#decision-table")
    for trial in job["trials"]:
        assert trial["trial_id"] in listed
    assert _count(browser, "#decision-table tr[data-kind='suggestion']") == len(job["trials"])
    plot = browser.execute_script("const p = document.getElementById('plot-decisions');"
                                  "return {rows: p.layout.yaxis.categoryarray, hover: p.data.flatMap(t => t.text || [])}")
    assert set(plot["rows"]) == {"job", *(t["trial_id"] for t in job["trials"])}
    assert {_plot_text(d["summary"]) for d in decisions} <= set(plot["hover"])  # each marker's hover: its summary
    assert "DecisionMade" not in _text(browser, "#audit-table") and "JobStarted" in _text(browser, "#audit-table")

    # A trial's id in the list narrows the list to that trial's decisions; "Show all" lists them all again.
    shown = "return [...document.querySelectorAll('#decision-table tr[data-kind]')].filter(r => !r.hidden)" \
            ".map(r => r.dataset.trial)"
    trial = job["trials"][0]["trial_id"]
    browser.find_element("css selector", f"#decision-table tr[data-trial='{trial}'] td.pick").click()
    wait_until(lambda: set(browser.execute_script(shown)) == {trial}, 10, f"only {trial}'s decisions")
    assert len(browser.execute_script(shown)) == sum(d["trial_id"] == trial for d in decisions)
    browser.find_element("id", "decision-all").click()
    wait_until(lambda: len(browser.execute_script(shown)) == len(decisions), 10, "every decision listed again")
    browser.execute_script("document.getElementById('plot-decisions').scrollIntoView()")
    print("screenshot:", _full_page_shot(browser, "dashboard-decisions.png"))
