// Tunix Tune dashboard, part two: steering a job from its page (adjust, extend, fork, promote),
// where the job came from and what it cost, which hyperparameters mattered, its audit trail;
// and the compare (#/compare?jobs=A,B) and model registry (#/models) pages.
// Loaded before app.js; it uses app.js's helpers (api, el, fmt, showErrors, route, ...) when called.
"use strict";

const ADJUSTABLE = ["created", "running"];
const FOLLOW_MS = 20000;
const COLOURS = ["#1d4ed8", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];
let followUntil = 0;  // a command's effect lands later: keep refreshing even a finished job until then
let importanceKey = null;  // job and ended trials the importance chart was fetched for

const num = value => (value === "" ? undefined : Number(value));
const when = iso => (iso ? iso.slice(0, 19).replace("T", " ") : "—");
const seconds = s => (s == null ? "—" : s < 120 ? `${fmt(s)} s` : s < 7200 ? `${(s / 60).toFixed(1)} min` : `${(s / 3600).toFixed(1)} h`);
const jobLink = (id, text) => el("a", { href: `#/jobs/${id}` }, text ?? id.slice(0, 8));
const joined = (nodes, sep = ", ") => nodes.flatMap((n, i) => (i ? [sep, n] : [n]));
const table = (id, headers, rows, empty = "none") => el("table", { id, class: "compact" },
  el("thead", {}, el("tr", {}, headers.map(h => el("th", {}, h)))),
  el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: headers.length, class: "muted" }, empty))));
const cells = values => el("tr", {}, values.map(v => el("td", {}, v instanceof Node ? v : fmt(v))));

function parseJson(text, field) {
  try { return JSON.parse(text || "{}"); }
  catch (e) { throw new ApiError(0, { message: `${field}: not valid JSON (${e.message})` }); }
}

// ---- steering controls ---------------------------------------------------------------------

// A form of labelled inputs: on submit `send(values)` runs; what it returns shows as done, a
// refusal (422 field: rule, 409 message) shows inline under the button, like the create form.
function commandForm(id, title, inputs, send) {
  const errors = el("ul", { class: "errors", id: `${id}-errors` });
  const done = el("span", { class: "done", id: `${id}-done` });
  const form = el("form", { class: "control", id: `${id}-form`, novalidate: true }, el("h3", {}, title),
    inputs.map(({ name, label, tag = "input", ...attrs }) =>
      el("label", {}, label, el(tag, { name, id: `${id}-${name}`, ...attrs }))),
    el("p", {}, el("button", { type: "submit", class: "primary", id: `${id}-submit` }, title), " ", done), errors);
  form.addEventListener("submit", async event => {
    event.preventDefault();
    errors.replaceChildren();
    done.replaceChildren();
    const values = Object.fromEntries([...form.elements].filter(e => e.name)
      .map(e => [e.name, e.type === "checkbox" ? e.checked : e.value.trim()]));
    try {
      done.replaceChildren(await send(values));
      form.reset();
      followUntil = Date.now() + FOLLOW_MS;
      route();
    } catch (e) { showErrors(errors, e); }
  });
  return form;
}

const REASON = { name: "reason", label: "reason", placeholder: "why (kept on the audit trail)" };

function steeringControls(jobId) {
  const path = `/api/tuning/jobs/${jobId}`;
  return el("div", { class: "controls", id: "job-controls" },
    commandForm("adjust", "Adjust", [
      { name: "max_concurrent_trials", label: "max concurrent trials", type: "number" },
      { name: "num_samples", label: "num samples", type: "number" },
      { name: "time_budget_s", label: "time budget (s)", type: "number", step: "any" },
      { name: "no_budget", label: "remove the time budget", type: "checkbox" },
      { name: "max_failed_trials", label: "max failed trials", type: "number" }, REASON,
    ], async v => {
      // Only the filled fields: JSON.stringify leaves out the undefined ones.
      await api("PATCH", path, {
        max_concurrent_trials: num(v.max_concurrent_trials), num_samples: num(v.num_samples),
        time_budget_s: v.no_budget ? null : num(v.time_budget_s), max_failed_trials: num(v.max_failed_trials),
        reason: v.reason || undefined,
      });
      return "Adjusted: the tuner applies it within seconds.";
    }),
    commandForm("extend", "Extend", [{ name: "num_samples", label: "trials to add", type: "number" }, REASON], async v => {
      await api("POST", `${path}/extend`, { num_samples: num(v.num_samples), reason: v.reason || undefined });
      return "Extended: the job runs again.";
    }),
    commandForm("promote", "Promote", [
      { name: "name", label: "model name", placeholder: "lower-case: a-z 0-9 . _ -" },
      { name: "stage", label: "stage", placeholder: "candidate" },
      { name: "trial_id", label: "trial" }, REASON,
    ], async v => {
      await api("POST", `${path}/promote`, { name: v.name, stage: v.stage || undefined,
        trial_id: v.trial_id || undefined, reason: v.reason || undefined });
      return el("span", {}, `Promoted as ${v.name}: see `, el("a", { href: "#/models" }, "models"));
    }),
    commandForm("fork", "Fork", [
      { name: "at_trials", label: "seed with its first N ended trials (empty: all)", type: "number" },
      { name: "changes", label: "changes to the spec (JSON)", tag: "textarea", class: "small", spellcheck: "false",
        placeholder: '{"num_samples": 4, "scheduler": "asha"}' }, REASON,
    ], async v => {
      const body = { at_trials: num(v.at_trials), changes: parseJson(v.changes, "changes"), reason: v.reason || undefined };
      const child = await settled(await api("POST", `${path}/fork`, body));
      location.hash = `#/jobs/${child.job_id}`;
      return "Forked.";
    }),
  );
}

// Which controls the job's status allows, and its current values as the inputs' placeholders.
function updateControls(job) {
  const show = (id, yes) => { document.getElementById(`${id}-form`).hidden = !yes; };
  show("adjust", ADJUSTABLE.includes(job.status));
  show("extend", job.status === "completed");
  show("promote", job.status === "completed");
  const hint = (id, value) => { document.getElementById(id).placeholder = value == null ? "" : `now ${value}`; };
  hint("adjust-max_concurrent_trials", job.max_concurrent_trials);
  hint("adjust-num_samples", job.num_samples);
  hint("adjust-time_budget_s", job.spec.time_budget_s ?? "none");
  hint("adjust-max_failed_trials", job.spec.max_failed_trials ?? 0);
  document.getElementById("promote-trial_id").placeholder = `best: ${job.best_trial_id ?? "none yet"}`;
}

// ---- where the job came from, what it cost, what mattered -----------------------------------

function renderOrigin(job) {
  const lineage = job.lineage;
  const cost = job.cost;
  document.getElementById("job-cost").replaceChildren(cost
    ? `cost: CPU ${seconds(cost.cpu_s)} · GPU ${seconds(cost.gpu_s)} · trial time ${seconds(cost.trial_s)}`
    : "cost: nothing spent yet");
  const box = document.getElementById("job-lineage");
  if (!lineage) return box.replaceChildren();
  const parents = lineage.parents.map(id => jobLink(id));
  const how = lineage.relation === "fork"
    ? ["forked from ", parents[0], lineage.at_trials == null ? " (all its ended trials)" : ` at trial ${lineage.at_trials}`]
    : ["warm-started from ", ...joined(parents)];
  const mapping = (lineage.mapping || []).map(m => cells([jobLink(m.job_id), m.parameter,
    el("span", { class: `outcome ${m.outcome}` }, m.outcome), el("span", { class: "note" }, m.reason)]));
  box.replaceChildren(el("p", { id: "lineage-line" }, ...how, ` · ${lineage.seed_count ?? 0} seed trial(s)`),
    mapping.length ? table("lineage-mapping", ["parent", "parameter", "outcome", "why"], mapping) : "");
}

async function renderImportance(job, ended, seq) {
  const key = `${job.job_id}:${job.status}:${ended}`;
  if (key === importanceKey) return;
  importanceKey = key;
  let found = null, problem = null;
  try { found = await api("GET", `/api/tuning/jobs/${job.job_id}/importance`); }
  catch (e) { problem = `Hyperparameter importance unavailable: ${e.message}`; }
  const plot = document.getElementById("plot-importance"), note = document.getElementById("importance-note");
  if (seq !== routeSeq || !plot) return;
  const names = found ? Object.keys(found.importances).sort((a, b) => found.importances[a] - found.importances[b]) : [];
  plot.hidden = !names.length;
  if (!names.length) {
    Plotly.purge(plot);
    note.textContent = problem ?? `Hyperparameter importance: ${found.note || "nothing to show yet"}`;
    return;
  }
  note.textContent = `Hyperparameter importance by ${found.method} over ${found.trials_used} trial(s)`
    + (found.trials_skipped ? `, ${found.trials_skipped} skipped` : "") + (found.note ? ` — ${found.note}` : "");
  Plotly.react(plot, [{ type: "bar", orientation: "h", y: names.map(plotText), x: names.map(n => found.importances[n]) }],
    { ...LAYOUT, title: { text: `Hyperparameter importance (${plotText(found.method)})` }, margin: { l: 130, r: 20, t: 40, b: 40 },
      xaxis: { title: { text: "importance" } } }, CONFIG);
}

// ---- audit trail ---------------------------------------------------------------------------

function eventDetails(e) {
  const p = e.payload || {};
  switch (e.type) {
    case "JobAdjusted": return Object.entries(p.changes).map(([k, v]) => `${k}: ${fmt(p.previous?.[k])} → ${v ?? "none"}`).join(", ");
    case "JobExtended": return `+${p.num_samples_added} trial(s)`;
    case "ModelPromoted": return `${p.name} v${p.version} (${p.stage}) from ${p.trial_id}`;
    case "JobCompleted": return p.best_trial_id ? `best ${p.best_trial_id}: ${fmt(p.best_metric)}` : "no best trial";
    case "JobFailed": return p.error;
    case "JobClaimed": return `tuner ${p.tuner_id} (claim ${p.generation})`;
    case "JobCreated": return p.lineage ? `${p.lineage.relation} from ${p.lineage.parents.length} job(s)` : "";
    default: return "";
  }
}

function renderAudit(events) {
  const box = document.getElementById("audit-trail");
  if (!events) return box.replaceChildren(el("p", { class: "muted" }, "The audit trail could not be read."));
  const shown = events.filter(e => e.type !== "TrialUpdated" && e.type !== "DecisionMade");
  const rows = shown.map(e => el("tr", { "data-event-type": e.type }, el("td", { class: "muted" }, when(e.occurred_at)),
    el("td", {}, e.type), el("td", {}, e.actor ?? "—"), el("td", { class: "note" }, e.reason ?? ""),
    el("td", { class: "note" }, eventDetails(e))));
  box.replaceChildren(table("audit-table", ["time", "event", "actor", "reason", "details"], rows),
    el("p", { class: "muted" }, `${events.length - shown.length} trial update(s) and decision(s) not listed: `
      + "see the trials and the decisions above."));
}

// ---- compare -------------------------------------------------------------------------------

// The metric a job's learning curves show: its own when trials report it more than once, else eval_loss.
function curveMetricOf(history, metric) {
  return history.some(h => h.points.filter(p => p.metrics[metric] !== undefined).length > 1) ? metric : "eval_loss";
}

async function showCompare(ids, seq) {
  const query = ids.map(id => `jobs=${encodeURIComponent(id)}`).join("&");
  const [rows, histories] = await Promise.all([api("GET", `/api/tuning/compare?${query}`),
    Promise.all(ids.map(id => api("GET", `/api/tuning/jobs/${id}/history`)))]);
  if (seq !== routeSeq) return;
  const key = ids.join(",");
  if (document.getElementById("compare-page")?.dataset.jobs !== key) {
    view.replaceChildren(el("div", { id: "compare-page", "data-jobs": key },
      el("h1", {}, `Compare ${ids.length} jobs`), el("div", { id: "compare-table" }),
      el("h2", {}, "Learning curves"), el("div", { class: "plot wide", id: "plot-compare" })));
  }
  const config = r => Object.entries(r.best_params).map(([k, v]) => `${k}=${fmt(v)}`).join(", ") || "—";
  document.getElementById("compare-table").replaceChildren(table("compare-jobs-table",
    ["job", "status", "metric", "best", "best trial", "trials", "CPU", "trial time", "best configuration"],
    rows.map((r, i) => el("tr", { "data-job-id": r.job_id },
      el("td", {}, el("span", { class: "swatch", style: `background:${COLOURS[i % COLOURS.length]}` }), jobLink(r.job_id, r.name)),
      el("td", {}, badge(r.status)), el("td", {}, `${r.metric_name} (${r.metric_mode})`), el("td", {}, fmt(r.best_metric)),
      el("td", {}, r.best_trial_id ?? "—"), el("td", {}, String(r.trials)), el("td", {}, seconds(r.cost.cpu_s)),
      el("td", {}, seconds(r.cost.trial_s)), el("td", { class: "note" }, config(r))))));
  // Every trial's curve, one colour per job, one legend entry per job.
  const metrics = new Set();
  const traces = rows.flatMap((r, i) => {
    const metric = curveMetricOf(histories[i], r.metric_name);
    metrics.add(metric);
    return histories[i].map((h, j) => {
      const pts = h.points.filter(p => p.metrics[metric] !== undefined);
      return { type: "scatter", mode: "lines+markers", x: pts.map(p => p.iteration), y: pts.map(p => p.metrics[metric]),
        name: plotText(`${r.name} (${metric})`), legendgroup: r.job_id, showlegend: j === 0, text: plotText(h.trial_id),
        line: { color: COLOURS[i % COLOURS.length], width: 1.5 }, marker: { size: 4 } };
    });
  });
  Plotly.react("plot-compare", traces, { ...LAYOUT, title: { text: "Learning curves: every trial, a colour per job" },
    xaxis: { title: { text: "report (iteration)" } }, yaxis: { title: { text: plotText([...metrics].join(" / ")) } } }, CONFIG);
  if (rows.some(r => !TERMINAL.includes(r.status))) refreshTimer = setTimeout(route, REFRESH_MS);
}

// ---- model registry ------------------------------------------------------------------------

async function showModels(seq) {
  const models = await api("GET", "/api/models");
  const versions = await Promise.all(models.map(m => api("GET", `/api/models/${encodeURIComponent(m.name)}/versions`)));
  if (seq !== routeSeq) return;
  const latest = models.map(m => el("tr", { "data-model": m.name }, el("td", {}, m.name),
    el("td", {}, String(m.versions)), el("td", {}, `v${m.latest.version}`), el("td", {}, m.latest.stage),
    el("td", {}, `${m.latest.metric_name} ${fmt(m.latest.metric)}`), el("td", {}, jobLink(m.latest.job_id)),
    el("td", { class: "path" }, m.latest.path)));
  view.replaceChildren(el("h1", {}, "Model registry"),
    table("models-table", ["name", "versions", "latest", "stage", "metric", "job", "path"], latest,
      "Nothing promoted yet: promote a completed job's best trial from its page."),
    ...models.map((m, i) => el("section", { class: "model-versions", "data-model": m.name },
      el("h2", {}, `${m.name}: ${m.versions} version(s)`),
      table(`versions-${m.name}`, ["version", "stage", "metric", "trial", "job", "promoted", "by", "reason", "path"],
        versions[i].map(v => el("tr", { "data-version": v.version }, el("td", {}, `v${v.version}`), el("td", {}, v.stage),
          el("td", {}, fmt(v.metric)), el("td", {}, v.trial_id), el("td", {}, jobLink(v.job_id)),
          el("td", { class: "muted" }, when(v.promoted_at)), el("td", {}, v.actor ?? "—"),
          el("td", { class: "note" }, v.reason ?? ""), el("td", { class: "path" }, v.path)))))));
}
