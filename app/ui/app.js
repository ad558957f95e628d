// Tunix Tune dashboard: plain JavaScript over the HTTP API, plots by plotly.js (served locally).
// #/ lists jobs and creates them; #/jobs/<id> shows one job, refreshed while it runs;
// #/compare?jobs=A,B and #/models are in steer.js, with the job page's steering controls.
"use strict";

const TERMINAL = ["completed", "failed", "cancelled"];
const TRIAL_ENDED = ["completed", "failed", "stopped"];
const REFRESH_MS = 2000;
const view = document.getElementById("view");
let refreshTimer = null;
let routeSeq = 0;  // bumped on every navigation: a page whose data arrives late draws nothing
let trialSort = { key: "created_at", dir: 1 };

// ---- API -----------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

async function api(method, path, body) {
  const headers = { "content-type": "application/json" };
  const token = localStorage.getItem("tunixToken");
  if (token) headers.authorization = `Bearer ${token}`;
  const answer = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await answer.json().catch(() => null);
  if (answer.status === 401) {
    const given = prompt("This API needs a token (TUNIX_API_TOKEN):");
    if (given) { localStorage.setItem("tunixToken", given); return api(method, path, body); }
  }
  if (!answer.ok) throw new ApiError(answer.status, data);
  return data;
}

function showErrors(list, error) {
  list.replaceChildren();
  const details = (error.body && error.body.details) || [];
  const lines = details.length ? details.map(d => `${d.field}: ${d.rule}`) : [error.message];
  for (const line of lines) list.append(el("li", {}, line));
}

// ---- small DOM helpers ---------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v);
  }
  node.append(...children.flat().map(c => (c instanceof Node ? c : document.createTextNode(c ?? ""))));
  return node;
}

const fmt = v => (typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toPrecision(4)) : v ?? "—");
const badge = status => el("span", { class: `status ${status}` }, status);
const isBetter = (mode, a, b) => (mode === "max" ? a > b : a < b);

// ---- jobs list -----------------------------------------------------------------------------

// A created job (201), or on 202 (event on the log, read model behind) the job once it can be read.
async function settled(answer) {
  if (!answer.location) return answer;
  for (let tries = 0; ; tries++) {
    try { return await api("GET", answer.location); }
    catch (e) { if (e.status !== 404 || tries > 120) throw e; }
    await new Promise(resolve => setTimeout(resolve, 500));
  }
}

async function showJobs(seq) {
  const page = await api("GET", "/api/tuning/jobs?limit=200");
  const example = await fetch("/ui/example-spec.json").then(r => r.json());
  const models = await api("GET", "/api/base-models");
  if (seq !== routeSeq) return;
  const compare = el("button", { id: "compare-jobs", disabled: true, onclick: () => {
    const ids = [...document.querySelectorAll("#jobs-table input.pick:checked")].map(box => box.value);
    location.hash = `#/compare?jobs=${ids.join(",")}`;
  } }, "Compare");
  const picked = () => { compare.disabled = document.querySelectorAll("#jobs-table input.pick:checked").length < 2; };
  const rows = page.items.map(job => el("tr", { "data-job-id": job.job_id },
    el("td", {}, el("input", { type: "checkbox", class: "pick", value: job.job_id, title: "compare", onchange: picked })),
    el("td", {}, el("a", { href: `#/jobs/${job.job_id}` }, job.name)),
    el("td", {}, badge(job.status)),
    el("td", {}, `${job.metric_name} (${job.metric_mode})`),
    el("td", {}, fmt(job.best_metric)),
    el("td", {}, String(job.num_samples)),
    el("td", { class: "muted" }, job.created_at.slice(0, 19).replace("T", " ")),
  ));
  const errors = el("ul", { class: "errors", id: "create-errors" });
  const spec = el("textarea", { id: "spec", spellcheck: "false" });
  spec.value = JSON.stringify(example, null, 2);
  // The models this deployment can train (GET /api/base-models): picking one sets base_model_id.
  const size = n => (n == null ? "size unknown" : n >= 1e8 ? `${(n / 1e9).toFixed(2)}B` : `${(n / 1e6).toFixed(1)}M`);
  const modelPick = el("select", {
    id: "base-model",
    onchange: () => {
      try { spec.value = JSON.stringify({ ...JSON.parse(spec.value), base_model_id: modelPick.value }, null, 2); }
      catch (e) { showErrors(errors, new ApiError(0, { message: `body: not valid JSON (${e.message})` })); }
    },
  }, models.map(m => el("option", { value: m.model_id, disabled: Boolean(m.problem), selected: m.model_id === example.base_model_id },
    `${m.model_id} (${m.source}${m.quantization ? ` ${m.quantization}` : ""}; ${m.family ?? "?"}, ${size(m.parameters)}; LoRA ${m.fits_lora ? "fits" : "does not fit"}, `
    + `full ${m.fits_full ? "fits" : "does not fit"})` + (m.problem ? ` — cannot be trained: ${m.problem}` : ""))));
  const create = async start => {
    let body;
    try { body = JSON.parse(spec.value); } catch (e) { return showErrors(errors, new ApiError(0, { message: `body: not valid JSON (${e.message})` })); }
    try {
      const job = await settled(await api("POST", "/api/tuning/jobs", body));
      if (start) await api("POST", `/api/tuning/jobs/${job.job_id}/start`);
      location.hash = `#/jobs/${job.job_id}`;
    } catch (e) { showErrors(errors, e); }
  };
  view.replaceChildren(
    el("h1", {}, "Tuning jobs"),
    el("table", { id: "jobs-table" },
      el("thead", {}, el("tr", {}, ["", "name", "status", "metric", "best", "trials", "created"].map(h => el("th", {}, h)))),
      el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: 7, class: "muted" }, "No jobs yet.")))),
    el("p", {}, compare, el("span", { class: "muted" }, "  tick two or more jobs to compare them")),
    el("h2", {}, "New job"),
    el("p", {}, el("label", { for: "base-model" }, "Base model "), modelPick),
    el("p", { class: "muted" }, "The job spec as JSON (the API checks it; problems show below, nothing is created)."),
    spec, errors,
    el("p", {}, el("button", { id: "create", onclick: () => create(false) }, "Create"), " ",
      el("button", { id: "create-start", class: "primary", onclick: () => create(true) }, "Create and start")),
  );
}

// ---- one job -------------------------------------------------------------------------------

async function showJob(jobId, seq) {
  const [job, history, events] = await Promise.all([
    api("GET", `/api/tuning/jobs/${jobId}`), api("GET", `/api/tuning/jobs/${jobId}/history`),
    api("GET", `/api/tuning/jobs/${jobId}/events`).catch(() => null)]);
  if (seq !== routeSeq) return;
  const searched = Object.keys(job.spec.search_space || {});
  const act = async verb => {
    const reason = document.getElementById("action-reason");
    try {
      await api("POST", `/api/tuning/jobs/${jobId}/${verb}`, reason.value.trim() ? { reason: reason.value.trim() } : undefined);
      reason.value = "";
      followUntil = Date.now() + FOLLOW_MS;
      route();
    } catch (e) { showErrors(document.getElementById("action-errors"), e); }
  };
  const done = job.trials.filter(t => TRIAL_ENDED.includes(t.status)).length;
  if (!document.getElementById("job-page") || document.getElementById("job-page").dataset.jobId !== jobId) {
    view.replaceChildren(el("div", { id: "job-page", "data-job-id": jobId },
      el("p", {}, el("a", { href: "#/" }, "← all jobs")),
      el("h1", { id: "job-title" }), el("div", { id: "job-lineage" }), el("div", { class: "cards", id: "job-cards" }),
      el("p", { class: "muted", id: "job-cost" }),
      el("p", {}, el("span", { id: "job-actions" }), " ",
        el("input", { id: "action-reason", placeholder: "reason for start/cancel (optional)" }),
        el("span", { class: "muted", id: "job-where" })),
      el("ul", { class: "errors", id: "action-errors" }),
      el("h2", {}, "Steer"), steeringControls(jobId),
      el("h2", {}, "Trials"), el("table", { id: "trials-table" }),
      el("h2", {}, "Plots"), el("p", { class: "muted", id: "importance-note" }),
      el("div", { class: "plots" },
        el("div", { class: "plot", id: "plot-history" }), el("div", { class: "plot", id: "plot-parallel" }),
        el("div", { class: "plot", id: "plot-curves" }), el("div", { class: "plot", id: "plot-decisions" }),
        el("div", { class: "plot", id: "plot-importance", hidden: true })),
      el("h2", {}, "Decisions"), el("div", { id: "decision-list" }),
      el("h2", {}, "Audit trail"), el("div", { id: "audit-trail" }),
    ));
  }
  document.getElementById("job-title").replaceChildren(job.name, " ", badge(job.status));
  document.getElementById("job-cards").replaceChildren(
    el("div", { class: "card" }, "trials done", el("b", {}, `${done} / ${job.num_samples}`)),
    el("div", { class: "card" }, `best ${job.metric_name} (${job.metric_mode})`, el("b", { id: "best-metric" }, fmt(bestMetric(job)))),
    el("div", { class: "card" }, "best trial", el("b", {}, bestTrial(job)?.trial_id ?? "—")),
    ...baselineCards(job),
    el("div", { class: "card" }, "concurrency", el("b", {}, String(job.max_concurrent_trials))),
    ...(job.error ? [el("div", { class: "card errors" }, job.error)] : []),
  );
  document.getElementById("job-actions").replaceChildren(
    el("button", { id: "start", class: "primary", disabled: job.status !== "created", onclick: () => act("start") }, "Start"), " ",
    el("button", { id: "cancel", disabled: TERMINAL.includes(job.status) || job.status === "cancelling", onclick: () => act("cancel") }, "Cancel"));
  document.getElementById("job-where").textContent = `  job ${job.job_id} · dataset ${job.dataset_key} · model ${job.base_model_id}`
    + (job.owner ? ` · tuner ${job.owner} (claim ${job.claim})` : "");
  renderOrigin(job);
  updateControls(job);
  renderTrials(job, searched);
  renderPlots(job, history, searched);
  renderDecisions(job, events);
  renderAudit(events);
  renderImportance(job, done, seq);
  if (!TERMINAL.includes(job.status) || Date.now() < followUntil) refreshTimer = setTimeout(route, REFRESH_MS);
}

function bestTrial(job) {
  if (job.best_trial) return job.best_trial;
  let best = null;
  for (const t of job.trials) {
    const v = t.metrics[job.metric_name];
    if (t.status === "completed" && v !== undefined && (!best || isBetter(job.metric_mode, v, best.metrics[job.metric_name]))) best = t;
  }
  return best;
}

const bestMetric = job => job.best_metric ?? bestTrial(job)?.metrics[job.metric_name];
const signed = v => (v === null || v === undefined ? "—" : (v > 0 ? "+" : "") + fmt(v));

// The untuned base model's score (pretrained models only) and the best trial's gain over it.
function baselineCards(job) {
  const b = job.baseline;
  if (!b) return [];
  if (b.error) return [el("div", { class: "card errors", id: "baseline" }, `baseline not scored: ${b.error}`)];
  return [
    el("div", { class: "card", title: `the untuned base model on ${b.eval_size} held-out examples` },
      `baseline ${job.metric_name}`, el("b", { id: "baseline-metric" }, fmt(b.metric))),
    el("div", { class: "card" }, "best gain", el("b", { id: "best-gain" }, signed(bestTrial(job)?.gain))),
  ];
}

function renderTrials(job, searched) {
  const columns = [["trial_id", "trial"], ["status", "status"], ...searched.map(p => [`params.${p}`, p]),
    // A packed job's trials share its pack: each one's slot in it (trials with one slot ran one after another).
    ...(job.trials.some(t => t.metrics && t.metrics.pack_slot !== undefined) ? [["metrics.pack_slot", "pack slot"]] : []),
    ["iteration", "iteration"], [`metrics.${job.metric_name}`, job.metric_name],
    ...(job.baseline ? [["gain", "gain"]] : []), ["reason", "note"]];
  const value = (t, key) => key.split(".").reduce((o, k) => (o == null ? undefined : o[k]), t);
  const rows = [...job.trials].sort((a, b) => {
    const x = value(a, trialSort.key), y = value(b, trialSort.key);
    if (x === y) return 0;
    if (x === undefined || x === null) return 1;
    if (y === undefined || y === null) return -1;
    return (x > y ? 1 : -1) * trialSort.dir;
  });
  const best = bestTrial(job);
  const head = el("tr", {}, columns.map(([key, label]) => el("th", {
    class: "sortable", "data-key": key,
    onclick: () => { trialSort = { key, dir: trialSort.key === key ? -trialSort.dir : 1 }; renderTrials(job, searched); },
  }, label + (trialSort.key === key ? (trialSort.dir > 0 ? " ▲" : " ▼") : ""))));
  const body = rows.map(t => el("tr", { "data-trial-id": t.trial_id, class: best && best.trial_id === t.trial_id ? "best" : undefined },
    columns.map(([key]) => key === "status" ? el("td", {}, badge(t.status))
      : key === "gain" ? el("td", {}, signed(t.gain))
      : el("td", { class: key === "reason" ? "note" : undefined }, fmt(value(t, key))))));
  document.getElementById("trials-table").replaceChildren(el("thead", {}, head), el("tbody", {}, body));
}

// ---- plots ---------------------------------------------------------------------------------

const LAYOUT = { margin: { l: 55, r: 20, t: 40, b: 90 }, font: { size: 11 }, legend: { orientation: "h", y: -0.3 } };
// Plotly reads a subset of HTML (links, styles) in trace names, titles, hover text, category
// axis labels and parcoords labels: every user string (job and parameter names, values, trial
// ids, metrics, summaries, reasons) bound for a plot goes through plotText, so it shows as
// typed. Plotly decodes only &amp; &lt; &gt; and numeric entities, hence &#34; and &#39;.
// (Parcoords tick texts are drawn as plain text already: they stay unescaped.)
const PLOT_ENTITIES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&#34;", "'": "&#39;" };
const plotText = s => String(s ?? "").replace(/[&<>"']/g, c => PLOT_ENTITIES[c]);
const CONFIG = { displaylogo: false, responsive: true, displayModeBar: false };

function renderPlots(job, history, searched) {
  const metric = job.metric_name, mode = job.metric_mode;
  const best = bestTrial(job);
  // Optimization history: finished trials by completion order, and the best so far.
  const finished = job.trials.filter(t => t.finished_at && t.metrics[metric] !== undefined)
    .sort((a, b) => a.finished_at.localeCompare(b.finished_at));
  const ys = finished.map(t => t.metrics[metric]);
  const bestSoFar = ys.map((_, i) => ys.slice(0, i + 1).reduce((a, b) => (isBetter(mode, b, a) ? b : a)));
  const order = finished.map((_, i) => i + 1);
  Plotly.react("plot-history", [
    { x: order, y: ys, mode: "markers", name: plotText(metric), text: finished.map(t => plotText(t.trial_id)), type: "scatter" },
    { x: order, y: bestSoFar, mode: "lines", name: "best so far", line: { shape: "hv" }, type: "scatter" },
    ...(typeof job.baseline?.metric === "number" && order.length ? [{ x: [0.5, order.length + 0.5],
      y: [job.baseline.metric, job.baseline.metric], mode: "lines", name: "baseline (untuned)", line: { dash: "dash" },
      type: "scatter" }] : []),
  ], { ...LAYOUT, title: { text: "Optimization history" }, xaxis: { title: { text: "trial (completion order)" } },
    yaxis: { title: { text: plotText(metric) } } }, CONFIG);

  // Parallel coordinates: searched hyperparameters against the metric.
  const dims = searched.map(name => {
    const vals = finished.map(t => t.params[name]);
    if (vals.every(v => typeof v === "number")) {
      const log = (job.spec.search_space[name].type || "").includes("log") && vals.every(v => v > 0);
      return log ? { label: `log10 ${plotText(name)}`, values: vals.map(Math.log10) } : { label: plotText(name), values: vals };
    }
    const levels = [...new Set(vals.map(String))];
    return { label: plotText(name), values: vals.map(v => levels.indexOf(String(v))), tickvals: levels.map((_, i) => i),
      ticktext: levels };
  });
  dims.push({ label: plotText(metric), values: ys });
  Plotly.react("plot-parallel", [{ type: "parcoords", dimensions: dims, line: { color: ys, colorscale: "Viridis", showscale: true } }],
    { ...LAYOUT, title: { text: "Hyperparameters → " + plotText(metric) }, margin: { l: 60, r: 60, t: 70, b: 30 } }, CONFIG);

  // Learning curves: every reported value of the metric (eval_loss when the metric comes only at the end).
  const curveMetric = curveMetricOf(history, metric);
  const curves = history.map(h => {
    const pts = h.points.filter(p => p.metrics[curveMetric] !== undefined);
    const isBest = best && best.trial_id === h.trial_id;
    return { x: pts.map(p => p.iteration), y: pts.map(p => p.metrics[curveMetric]), mode: "lines+markers", type: "scatter",
      name: plotText(h.trial_id) + (isBest ? " (best)" : ""), line: { width: isBest ? 4 : 1.5 } };
  });
  Plotly.react("plot-curves", curves, { ...LAYOUT, title: { text: `Learning curves (${plotText(curveMetric)})` },
    xaxis: { title: { text: "report (iteration)" } }, yaxis: { title: { text: plotText(curveMetric) } } }, CONFIG);
}

// ---- routing -------------------------------------------------------------------------------

async function route() {
  clearTimeout(refreshTimer);
  const seq = ++routeSeq;
  const [path, query = ""] = location.hash.slice(1).split("?");
  const job = path.match(/^\/jobs\/([0-9a-f-]{36})$/);
  const compared = new URLSearchParams(query).getAll("jobs").flatMap(v => v.split(",")).filter(Boolean);
  try {
    if (job) await showJob(job[1], seq);
    else if (path === "/compare") await showCompare(compared, seq);
    else if (path === "/models") await showModels(seq);
    else await showJobs(seq);
  } catch (e) {
    if (seq !== routeSeq) return;
    view.replaceChildren(el("p", { class: "errors" }, `Could not load: ${e.message}`), el("a", { href: "#/" }, "all jobs"));
    if (job) refreshTimer = setTimeout(route, REFRESH_MS * 2);
  }
}

window.addEventListener("hashchange", route);
route();
