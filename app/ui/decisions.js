// The job page's decision timeline: every DecisionMade of the job's log (searcher suggestions,
// ASHA/HyperBand rungs, PBT exploits, failures, budget stops) and the commands people sent,
// drawn by time on one row per trial next to the learning curves, and listed below with the
// summary each decision carries. Uses el/table/when from app.js and steer.js.
"use strict";

// kind/outcome -> how its marker looks; commands (events with an actor) share one style.
const DECISION_STYLE = {
  "suggestion/suggest": { name: "suggested", symbol: "circle-open", color: "#6b7280" },
  "rung/continue": { name: "continued at a rung", symbol: "triangle-up", color: "#16a34a" },
  "rung/stop": { name: "stopped at a rung", symbol: "x", color: "#dc2626" },
  "exploit/exploit": { name: "PBT exploit", symbol: "star", color: "#7c3aed" },
  "failure/retry": { name: "failed, retried", symbol: "diamond", color: "#f59e0b" },
  "failure/fail": { name: "failed", symbol: "diamond", color: "#111827" },
  "budget/stop_job": { name: "budget stop", symbol: "square", color: "#dc2626" },
};
const COMMAND_STYLE = { name: "command", symbol: "hexagon", color: "#2563eb" };
const JOB_ROW = "job";
let decisionsOf = { jobId: null, row: null };  // the list shows only `row`'s decisions once one is clicked

const decisionRow = e => e.payload.trial_id ?? JOB_ROW;
const isCommand = e => e.actor && e.type !== "DecisionMade";

function renderDecisions(job, events) {
  if (!events) return;
  const decisions = events.filter(e => e.type === "DecisionMade");
  const commands = events.filter(isCommand);
  const rows = [JOB_ROW, ...job.trials.map(t => t.trial_id)];
  // Each trial's life as a thin bar, so a decision reads against when the trial ran.
  // Rows are trial ids on a category axis, which Plotly reads as HTML: escaped (plotText), with
  // each marker's own row in customdata for a click.
  const lives = job.trials.filter(t => t.started_at).map(t => ({
    x: [t.started_at, t.finished_at ?? new Date().toISOString()], y: [plotText(t.trial_id), plotText(t.trial_id)], mode: "lines",
    line: { color: "#d1d5db", width: 6 }, hoverinfo: "skip", showlegend: false, type: "scatter" }));
  const groups = new Map();
  for (const e of decisions) {
    const key = `${e.payload.kind}/${e.payload.outcome}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(e);
  }
  const markers = [...groups].map(([key, list]) => {
    const style = DECISION_STYLE[key] ?? { name: plotText(key), symbol: "circle", color: "#0ea5e9" };
    return { x: list.map(e => e.occurred_at), y: list.map(e => plotText(decisionRow(e))), customdata: list.map(decisionRow),
      text: list.map(e => plotText(e.payload.summary)),
      name: style.name, mode: "markers", type: "scatter", hovertemplate: "%{text}<extra></extra>",
      marker: { symbol: style.symbol, color: style.color, size: 11, line: { width: 1.5, color: style.color } } };
  });
  if (commands.length) {
    markers.push({ x: commands.map(e => e.occurred_at), y: commands.map(() => JOB_ROW), customdata: commands.map(() => JOB_ROW),
      mode: "markers", type: "scatter", name: COMMAND_STYLE.name,
      text: commands.map(e => plotText(`${e.type} by ${e.actor}${e.reason ? ": " + e.reason : ""}`)),
      hovertemplate: "%{text}<extra></extra>", marker: { symbol: COMMAND_STYLE.symbol, color: COMMAND_STYLE.color, size: 11 } });
  }
  Plotly.react("plot-decisions", [...lives, ...markers], { ...LAYOUT, title: { text: "Decisions" },
    xaxis: { type: "date" }, yaxis: { type: "category", categoryorder: "array", categoryarray: rows.map(plotText).reverse(),
      automargin: true } }, CONFIG);
  const plot = document.getElementById("plot-decisions");
  if (!plot.dataset.clickable) {  // once per page: Plotly.react keeps the listener
    plot.on("plotly_click", click => showDecisionsOf(click.points[0].customdata));
    plot.dataset.clickable = "yes";
  }
  if (decisionsOf.jobId !== job.job_id) decisionsOf = { jobId: job.job_id, row: null };
  const list = decisions.map(e => el("tr", { "data-kind": e.payload.kind, "data-outcome": e.payload.outcome,
    "data-trial": decisionRow(e) },
    el("td", { class: "muted" }, when(e.occurred_at)),
    el("td", { class: "pick", title: "only this row's decisions", onclick: () => showDecisionsOf(decisionRow(e)) }, decisionRow(e)),
    el("td", {}, e.payload.kind), el("td", {}, el("span", { class: `outcome ${e.payload.outcome}` }, e.payload.outcome)),
    el("td", { class: "note" }, e.payload.summary)));
  document.getElementById("decision-list").replaceChildren(el("p", { class: "muted", id: "decision-filter" }),
    table("decision-table", ["time", "trial", "decision", "outcome", "why"], list, "no decision on the log yet"));
  showDecisionsOf(decisionsOf.row);
}

// Narrow the list to one row of the timeline (a trial, or "job"); null shows every decision again.
function showDecisionsOf(row) {
  decisionsOf.row = row;
  for (const tr of document.querySelectorAll("#decision-table tr[data-trial]")) tr.hidden = row !== null && tr.dataset.trial !== row;
  document.getElementById("decision-filter").replaceChildren(row === null
    ? "Click a trial (here or a marker above) to list only its decisions."
    : el("span", {}, `Only ${row}'s decisions. `, el("button", { id: "decision-all", onclick: () => showDecisionsOf(null) }, "Show all")));
}
