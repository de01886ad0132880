// The labelling page. Every string from the server is placed with textContent: prompts and
// answers are shown as text, never parsed as HTML.
"use strict";

const KEYS = { a: "A", b: "B", t: "tie", s: "skip" };
const state = { labeller: null, pair: null, busy: false };
const $ = (id) => document.getElementById(id);

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const response = await fetch(path, init);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.detail ? String(data.detail) : response.statusText);
  return data;
}

function show(section) {
  for (const id of ["login", "labelling", "stats"]) $(id).hidden = id !== section;
}

function render(data) {
  state.pair = data.pair;
  $("progress").textContent = `${data.labeller}: ${data.done} labelled of ${data.total}`;
  $("done").hidden = data.pair !== null;
  for (const id of ["prompt", "answers", "history"]) $(id).hidden = data.pair === null;
  for (const b of document.querySelectorAll("[data-choice]")) b.disabled = data.pair === null;
  if (data.pair === null) return;
  const messages = (data.pair.meta_a && data.pair.meta_a.messages) || [];
  $("history").textContent = messages.slice(0, -1)
    .map((m) => `${m.role}: ${m.content}`).join("\n\n");
  $("prompt").textContent = data.pair.prompt;
  $("response-a").textContent = data.pair.response_a;
  $("response-b").textContent = data.pair.response_b;
}

async function run(action) {
  if (state.busy) return;  // one request at a time: a label is saved before the next shows
  state.busy = true;
  $("status").textContent = "";
  try {
    render(await action());
  } catch (err) {
    $("status").textContent = `not saved: ${err.message}`;
  } finally {
    state.busy = false;
  }
}

function choose(choice) {
  if (!state.pair) return;
  const body = { pair_id: state.pair.id, choice, labeller: state.labeller };
  run(() => api("/api/label", body));
}

function undo() {
  run(() => api("/api/undo", { labeller: state.labeller }));
}

function start(name) {
  state.labeller = name;
  localStorage.setItem("chatforge-labeller", name);
  show("labelling");
  run(() => api(`/api/next?labeller=${encodeURIComponent(name)}`));
}

function cell(row, value) {
  const td = document.createElement("td");
  td.textContent = value;
  row.appendChild(td);
}

const fmt = (x) => (x === null || x === undefined ? "-" : Number(x).toFixed(3));

async function showStats() {
  show("stats");
  let s;
  try {
    s = await api("/api/stats");
  } catch (err) {
    $("stats-summary").textContent = `statistics unavailable: ${err.message}`;
    return;
  }
  $("stats-summary").textContent = `${s.pairs} pairs, ${s.labels} labels`;
  const labellers = $("stats-labellers").tBodies[0];
  labellers.replaceChildren();
  for (const [name, c] of Object.entries(s.labellers)) {
    const row = labellers.insertRow();
    for (const v of [name, c.labels, c.A, c.B, c.tie, c.skip, fmt(c.a_share)]) cell(row, v);
  }
  const agreement = $("stats-agreement").tBodies[0];
  agreement.replaceChildren();
  for (const a of s.agreement) {
    const row = agreement.insertRow();
    for (const v of [a.labellers.join(" / "), a.pairs, fmt(a.raw), fmt(a.kappa)]) cell(row, v);
  }
  const bias = s.position_bias;
  $("stats-bias").textContent =
    `A chosen ${bias.A} times, B ${bias.B} times: share of A ${fmt(bias.a_share)} (0.5 = no bias)`;
}

document.addEventListener("DOMContentLoaded", () => {
  $("name").value = localStorage.getItem("chatforge-labeller") || "";
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const name = $("name").value.trim();
    if (name) start(name);
  });
  for (const b of document.querySelectorAll("[data-choice]")) {
    b.addEventListener("click", () => choose(b.dataset.choice));
  }
  $("undo").addEventListener("click", undo);
  $("show-stats").addEventListener("click", showStats);
  $("show-label").addEventListener("click", () => show(state.labeller ? "labelling" : "login"));
  document.addEventListener("keydown", (e) => {
    if ($("labelling").hidden || e.ctrlKey || e.metaKey || e.altKey) return;
    const key = e.key.toLowerCase();
    if (KEYS[key]) choose(KEYS[key]);
    else if (key === "u") undo();
  });
  if (location.hash === "#stats") showStats();
});
