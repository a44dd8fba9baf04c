// medai web app: sign-in, worklist with upload and live analysis status, risk calculators; the viewer is viewer.js.
// Plain ES modules, no build step and nothing from the internet: every request goes to this origin.
import { openViewer, closeViewer } from "./viewer.js";

export const state = { me: null, csrf: "" };

// ---------------------------------------------------------------------------------------------------------------
// API
function csrfCookie() {
  const m = document.cookie.match(/(?:^|;\s*)medai_csrf=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : state.csrf;
}

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

export async function api(path, { method = "GET", json, body, headers = {}, raw = false } = {}) {
  const h = { Accept: "application/json", ...headers };
  if (method !== "GET" && method !== "HEAD") h["X-CSRF-Token"] = csrfCookie();
  if (json !== undefined) { h["Content-Type"] = "application/json"; body = JSON.stringify(json); }
  const r = await fetch(path, { method, headers: h, body, credentials: "same-origin" });
  if (r.status === 401 && !path.startsWith("/v1/session")) { showSignIn("Your session ended; sign in again."); }
  if (!r.ok) {
    let problem = null;
    try { problem = await r.json(); } catch (_) { /* not JSON */ }
    throw new ApiError(r.status, problem);
  }
  if (raw) return r;
  if (r.status === 204) return null;
  const ct = r.headers.get("content-type") || "";
  return ct.includes("json") ? r.json() : r;
}

export function esc(v) {
  return String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

export function toast(msg, kind = "info") {
  const t = document.getElementById("toast");
  t.textContent = msg;
  t.className = `toast show ${kind}`;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.className = "toast"; }, 4000);
}

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------------------------------------------------------
// Sign-in
function showSignIn(message = "") {
  state.me = null;
  closeViewer();
  $("signin").hidden = false;
  $("view").hidden = true;
  $("nav").hidden = true;
  $("signout").hidden = true;
  $("whoami").textContent = "";
  $("signin-error").textContent = message;
  $("username").focus();
}

function signedIn(me) {
  state.me = me;
  state.csrf = me.csrf || csrfCookie();
  $("signin").hidden = true;
  $("view").hidden = false;
  $("nav").hidden = false;
  $("signout").hidden = false;
  $("whoami").textContent = `${me.name} (${me.role.replace("_", " ")})`;
  route();
}

$("signin-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const username = $("username").value.trim();
  const password = $("password").value;
  if (!username || !password) { $("signin-error").textContent = "Enter your user name and password."; return; }
  try {
    const me = await api("/v1/session", { method: "POST", json: { username, password } });
    $("password").value = "";
    signedIn(me);
  } catch (e) {
    $("signin-error").textContent = e.message;
    $("password").select();
  }
});

$("signout").addEventListener("click", async () => {
  try { await api("/v1/session", { method: "DELETE" }); } catch (_) { /* already gone */ }
  location.hash = "";
  showSignIn("Signed out.");
});

// ---------------------------------------------------------------------------------------------------------------
// Router
let poller = null;
function route() {
  if (!state.me) return;
  clearInterval(poller);
  poller = null;
  const hash = location.hash || "#/worklist";
  const [, page, arg, arg2] = hash.split("/");
  document.querySelectorAll("#nav a").forEach((a) => a.setAttribute("aria-current", a.getAttribute("href") === `#/${page}` ? "page" : "false"));
  if (page !== "viewer") closeViewer();
  if (page === "viewer" && arg) openViewer($("view"), arg, arg2 ? Number(arg2) : null);
  else if (page === "risk") riskPage(arg);
  else worklistPage();
  $("main").focus({ preventScroll: true });
}
window.addEventListener("hashchange", route);

// ---------------------------------------------------------------------------------------------------------------
// Worklist
const COLS = [
  ["patient", "Patient"], ["patient_id", "Patient ID"], ["patient_sex", "Sex"], ["study_date", "Study date"],
  ["description", "Description"], ["modalities", "Modality"], ["n_series", "Series"], ["n_instances", "Images"],
  ["received", "Received"], ["status", "Analysis"], ["flags", "Flags"],
];
const wl = { rows: [], sort: "received", dir: -1, filter: "", status: "" };

function fmtDate(d) { return d && d.length === 8 ? `${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6)}` : d || ""; }
function fmtTime(ts) { return ts ? new Date(ts * 1000).toISOString().slice(0, 16).replace("T", " ") : ""; }
function statusOf(r) {
  const a = r.analysis;
  if (!a) return "not analysed";
  if (a.status === "succeeded") return a.signed_by ? "signed" : (a.review_required ? "review" : "done");
  return a.status;
}
function sortKey(r, k) {
  if (k === "status") return statusOf(r);
  if (k === "flags") return r.analysis && r.analysis.review_required ? 1 : 0;
  if (k === "modalities") return r.modalities.join(",");
  return r[k] ?? "";
}

function worklistPage() {
  const identified = state.me.sees_identities;
  $("view").innerHTML = `
  <section aria-labelledby="wl-title">
    <div class="bar">
      <h1 id="wl-title">Worklist</h1>
      <label class="inline" for="wl-filter">Filter</label>
      <input id="wl-filter" type="search" placeholder="patient, description, status" value="${esc(wl.filter)}">
      <label class="inline" for="wl-status">Status</label>
      <select id="wl-status">
        ${["", "not analysed", "queued", "running", "review", "done", "signed", "failed", "cancelled"].map((s) => `<option value="${s}" ${wl.status === s ? "selected" : ""}>${s || "any"}</option>`).join("")}
      </select>
      <span id="wl-count" class="muted" aria-live="polite"></span>
    </div>
    ${identified ? "" : `<p class="note">You see pseudonyms only (role: data scientist).</p>`}
    ${state.me.role === "data_scientist" ? "" : `
    <div id="drop" class="drop" tabindex="0" role="button" aria-describedby="drop-help">
      <strong>Drop a study folder or zip here</strong>, or press Enter to choose files.
      <span id="drop-help" class="muted">DICOM files or zip archives; the analyses start when the upload ends.</span>
      <input id="file-input" type="file" multiple hidden aria-label="DICOM files or zip archives">
      <input id="folder-input" type="file" webkitdirectory multiple hidden aria-label="A DICOM study folder">
      <button id="pick-folder" type="button">Choose a folder</button>
      <div id="upload-progress" class="progress" hidden><progress id="upload-bar" max="100" value="0" aria-label="Upload progress"></progress> <span id="upload-text"></span></div>
    </div>`}
    <div class="table-wrap">
      <table id="worklist" class="grid worklist">
        <caption class="sr-only">Studies, newest first; activate a column header to sort</caption>
        <thead><tr>${COLS.map(([k, t]) => `<th scope="col" aria-sort="${wl.sort === k ? (wl.dir > 0 ? "ascending" : "descending") : "none"}"><button type="button" data-sort="${k}">${t}</button></th>`).join("")}<th scope="col">Actions</th></tr></thead>
        <tbody></tbody>
      </table>
    </div>
  </section>`;
  $("wl-filter").addEventListener("input", (e) => { wl.filter = e.target.value; renderRows(); });
  $("wl-status").addEventListener("change", (e) => { wl.status = e.target.value; renderRows(); });
  document.querySelectorAll("#worklist th button").forEach((b) => b.addEventListener("click", () => {
    const k = b.dataset.sort;
    wl.dir = wl.sort === k ? -wl.dir : 1;
    wl.sort = k;
    document.querySelectorAll("#worklist th").forEach((th) => th.setAttribute("aria-sort", "none"));
    b.parentElement.setAttribute("aria-sort", wl.dir > 0 ? "ascending" : "descending");
    renderRows();
  }));
  $("worklist").addEventListener("click", onRowAction);
  let ticking = false;
  document.querySelector(".table-wrap").addEventListener("scroll", () => {
    if (ticking) return;
    ticking = true;
    requestAnimationFrame(() => { ticking = false; paintWindow(); });
  });
  if ($("drop")) setupUpload();
  loadWorklist();
  poller = setInterval(() => { if (wl.rows.some((r) => r.analysis && ["queued", "running"].includes(r.analysis.status))) loadWorklist(); }, 2000);
}

async function loadWorklist() {
  try {
    const t0 = performance.now();
    wl.rows = await api("/v1/worklist");
    renderRows();
    window.medaiStats = { ...(window.medaiStats || {}), worklistMs: performance.now() - t0, worklistRows: wl.rows.length };
  } catch (e) { if (e.status !== 401) toast(`Worklist: ${e.message}`, "error"); }
}

// Rows are windowed: the table holds every study (sorting and filtering run over all of them) but only the rows
// in view (plus a margin) are in the DOM, between two spacer rows; a worklist of thousands paints as fast as 50.
const ROW_H = 34, MARGIN = 15;

function renderRows() {
  const body = document.querySelector("#worklist tbody");
  if (!body) return;
  const t0 = performance.now();
  const f = wl.filter.toLowerCase();
  const rows = wl.rows.filter((r) => (!wl.status || statusOf(r) === wl.status) &&
    (!f || `${r.patient} ${r.patient_id} ${r.description} ${statusOf(r)} ${r.modalities.join(" ")}`.toLowerCase().includes(f)));
  rows.sort((a, b) => { const x = sortKey(a, wl.sort), y = sortKey(b, wl.sort); return (x < y ? -1 : x > y ? 1 : 0) * wl.dir; });
  wl.view = rows;
  $("worklist").setAttribute("aria-rowcount", String(rows.length + 1));
  paintWindow(true);
  $("wl-count").textContent = `${rows.length} of ${wl.rows.length} studies`;
  window.medaiStats = { ...(window.medaiStats || {}), renderMs: performance.now() - t0 };
}

function rowHtml(r, i) {
  const canAnalyse = state.me.role !== "data_scientist";
  const a = r.analysis;
  const st = statusOf(r);
  const stage = a && ["queued", "running"].includes(a.status) ? ` <span class="muted">${esc(a.stage)}</span>` : "";
  const flags = a && a.review_required ? `<span class="badge warn" title="${esc(a.reasons.join("\n"))}">review</span>` : (a && a.error ? `<span class="badge err" title="${esc(a.error)}">error</span>` : "");
  const open = a && a.status === "succeeded" ? `<a class="btn" href="#/viewer/${esc(a.job_id)}">Open</a>` : "";
  const run = canAnalyse && (!a || a.status === "failed" || a.status === "cancelled") ? `<button type="button" data-analyse="${esc(r.study_instance_uid)}">Analyse</button>` : "";
  return `<tr aria-rowindex="${i + 2}" data-uid="${esc(r.study_instance_uid)}"><td title="${esc(r.patient)}">${esc(r.patient)}</td><td>${esc(r.patient_id)}</td><td>${esc(r.patient_sex)}</td>` +
    `<td>${esc(fmtDate(r.study_date))}</td><td title="${esc(r.description)}">${esc(r.description)}</td><td>${esc(r.modalities.join(", "))}</td>` +
    `<td class="num">${r.n_series}</td><td class="num">${r.n_instances}</td><td>${esc(fmtTime(r.received))}</td>` +
    `<td><span class="status s-${esc(st.replace(" ", "-"))}">${esc(st)}</span>${stage}</td><td>${flags}</td><td>${open}${run}</td></tr>`;
}

function paintWindow(force = false) {
  const body = document.querySelector("#worklist tbody"), wrap = document.querySelector(".table-wrap");
  if (!body || !wl.view) return;
  const n = wl.view.length;
  const h = wl.rowH || ROW_H;
  const first = Math.max(0, Math.floor(wrap.scrollTop / h) - MARGIN);
  const last = Math.min(n, first + Math.ceil((wrap.clientHeight || 600) / h) + 2 * MARGIN);
  if (!force && wl.window && wl.window[0] === first && wl.window[1] === last) return;
  wl.window = [first, last];
  const focused = document.activeElement && body.contains(document.activeElement) ? document.activeElement.closest("tr")?.dataset.uid : null;
  body.innerHTML = (first ? `<tr class="spacer" aria-hidden="true" data-h="${first * h}"><td colspan="12"></td></tr>` : "") +
    wl.view.slice(first, last).map((r, k) => rowHtml(r, first + k)).join("") +
    (last < n ? `<tr class="spacer" aria-hidden="true" data-h="${(n - last) * h}"><td colspan="12"></td></tr>` : "");
  body.querySelectorAll("tr.spacer").forEach((t) => { t.style.height = `${t.dataset.h}px`; });
  if (!wl.rowH) {  // the real row height (borders included), measured once
    const row = body.querySelector("tr:not(.spacer)");
    if (row && row.getBoundingClientRect().height > 0) { wl.rowH = row.getBoundingClientRect().height; if (Math.abs(wl.rowH - ROW_H) > 0.5) paintWindow(true); }
  }
  if (focused) body.querySelector(`tr[data-uid="${CSS.escape(focused)}"] a, tr[data-uid="${CSS.escape(focused)}"] button`)?.focus();
}

async function onRowAction(ev) {
  const b = ev.target.closest("button[data-analyse]");
  if (!b) return;
  b.disabled = true;
  try {
    await api("/v1/analyses", { method: "POST", json: { study_instance_uid: b.dataset.analyse } });
    toast("Analysis queued");
    loadWorklist();
  } catch (e) { toast(e.message, "error"); b.disabled = false; }
}

// -- upload -----------------------------------------------------------------------------------------------------
function setupUpload() {
  const drop = $("drop"), input = $("file-input"), folder = $("folder-input");
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });
  drop.addEventListener("click", (e) => { if (e.target === drop) input.click(); });
  $("pick-folder").addEventListener("click", (e) => { e.stopPropagation(); folder.click(); });
  input.addEventListener("change", () => upload([...input.files]));
  folder.addEventListener("change", () => upload([...folder.files]));
  ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, () => drop.classList.remove("over")));
  drop.addEventListener("drop", async (e) => {
    e.preventDefault();
    const items = [...(e.dataTransfer.items || [])].map((i) => i.webkitGetAsEntry && i.webkitGetAsEntry()).filter(Boolean);
    const files = items.length ? (await Promise.all(items.map(walkEntry))).flat() : [...e.dataTransfer.files];
    upload(files);
  });
}

function walkEntry(entry) {
  return new Promise((resolve) => {
    if (entry.isFile) { entry.file((f) => resolve([f]), () => resolve([])); return; }
    const reader = entry.createReader();
    const out = [];
    const more = () => reader.readEntries(async (batch) => {
      if (!batch.length) { resolve((await Promise.all(out.map(walkEntry))).flat()); return; }
      out.push(...batch);
      more();
    }, () => resolve([]));
    more();
  });
}

function upload(files) {
  if (!files.length) return;
  const form = new FormData();
  files.forEach((f) => form.append("files", f, f.webkitRelativePath || f.name));
  const bar = $("upload-bar"), text = $("upload-text");
  $("upload-progress").hidden = false;
  const total = files.reduce((s, f) => s + f.size, 0);
  text.textContent = `uploading ${files.length} file(s), ${(total / 1e6).toFixed(1)} MB`;
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/v1/studies");
  xhr.setRequestHeader("X-CSRF-Token", csrfCookie());
  xhr.setRequestHeader("Accept", "application/json");
  xhr.upload.onprogress = (e) => { if (e.lengthComputable) { bar.value = (100 * e.loaded) / e.total; text.textContent = `${Math.round(bar.value)} % of ${(e.total / 1e6).toFixed(1)} MB`; } };
  xhr.onerror = () => { text.textContent = "upload failed: the server could not be reached"; };
  xhr.onload = async () => {
    let doc = {};
    try { doc = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
    if (xhr.status !== 201) { text.textContent = `upload refused: ${doc.detail || xhr.status}`; toast(text.textContent, "error"); return; }
    bar.value = 100;
    const refused = (doc.refused || []).length;
    text.textContent = `stored ${doc.stored} instance(s)${refused ? `, refused ${refused} (not DICOM)` : ""}; starting the analyses`;
    for (const s of doc.studies || []) {
      try { await api("/v1/analyses", { method: "POST", json: { study_instance_uid: s.study_instance_uid } }); }
      catch (e) { toast(`Analysis not started: ${e.message}`, "error"); }
    }
    loadWorklist();
  };
  xhr.send(form);
}

// ---------------------------------------------------------------------------------------------------------------
// Risk calculators: one form per factors model, generated from its input JSON Schema
async function riskPage(name) {
  const view = $("view");
  if (!name) {
    view.innerHTML = `<section aria-labelledby="rk-title"><h1 id="rk-title">Risk calculators</h1><ul id="rk-list" class="cards"><li class="muted">loading…</li></ul></section>`;
    try {
      const models = (await api("/v1/models")).filter((m) => m.input_kind === "factors");
      $("rk-list").innerHTML = models.map((m) => `<li class="card"><h2><a href="#/risk/${esc(m.name)}">${esc(m.name)}</a></h2><p>${esc(m.description)}</p><p class="muted">${esc(m.task)} · v${esc(m.version)}</p></li>`).join("") || "<li>No risk model is served.</li>";
    } catch (e) { $("rk-list").innerHTML = `<li class="error">${esc(e.message)}</li>`; }
    return;
  }
  view.innerHTML = `<section aria-labelledby="rk-title"><p><a href="#/risk">← all calculators</a></p><h1 id="rk-title">${esc(name)}</h1><p id="rk-desc" class="muted">loading…</p>
    <div class="split"><form id="rk-form" class="card form" novalidate></form><div id="rk-result" class="card" aria-live="polite"><p class="muted">Fill in the factors and press Calculate.</p></div></div></section>`;
  let model;
  try { model = await api(`/v1/models/${encodeURIComponent(name)}`); }
  catch (e) { $("rk-desc").textContent = e.message; return; }
  $("rk-desc").textContent = `${model.description} ${model.intended_use || ""}`;
  const schema = model.input_schema || { properties: {} };
  const req = new Set(schema.required || []);
  const fields = Object.entries(schema.properties || {});
  const form = $("rk-form");
  form.innerHTML = fields.map(([k, p]) => {
    const id = `f-${k}`, desc = p.description || k;
    const label = `${esc(desc)}${p["x-unit"] && !desc.includes(`[${p["x-unit"]}]`) ? ` [${esc(p["x-unit"])}]` : ""}`;
    const types = [].concat(p.type || []);
    const star = req.has(k) ? ` <span aria-hidden="true" class="req">*</span>` : "";
    let ctl;
    if (p.enum) ctl = `<select id="${id}" name="${esc(k)}" ${req.has(k) ? "required" : ""} aria-describedby="${id}-err"><option value="">—</option>${p.enum.filter((v) => v !== null).map((v) => `<option>${esc(v)}</option>`).join("")}</select>`;
    else if (types.includes("number") || types.includes("integer")) ctl = `<input id="${id}" name="${esc(k)}" type="number" inputmode="decimal" step="${types.includes("integer") ? 1 : "any"}" ${p.minimum !== undefined ? `min="${p.minimum}"` : ""} ${p.maximum !== undefined ? `max="${p.maximum}"` : ""} ${req.has(k) ? "required" : ""} aria-describedby="${id}-err">`;
    else if (types.includes("boolean")) ctl = `<select id="${id}" name="${esc(k)}" aria-describedby="${id}-err"><option value="">—</option><option value="true">yes</option><option value="false">no</option></select>`;
    else ctl = `<input id="${id}" name="${esc(k)}" ${req.has(k) ? "required" : ""} aria-describedby="${id}-err">`;
    return `<div class="field"><label for="${id}">${esc(k)}: ${label}${star}</label>${ctl}<p id="${id}-err" class="error field-error"></p></div>`;
  }).join("") + `<p class="muted"><span class="req">*</span> required</p><button type="submit" class="primary">Calculate</button>`;
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    form.querySelectorAll(".field-error").forEach((e) => { e.textContent = ""; });
    form.querySelectorAll("[aria-invalid]").forEach((e) => e.removeAttribute("aria-invalid"));
    const body = {}, errors = {};
    for (const [k, p] of fields) {
      const el = form.elements[k];
      const v = el.value.trim();
      const types = [].concat(p.type || []);
      if (v === "") { if (req.has(k)) errors[k] = "required"; continue; }
      if (types.includes("number") || types.includes("integer")) {
        const n = Number(v);
        if (!Number.isFinite(n)) errors[k] = "enter a number";
        else if (types.includes("integer") && !Number.isInteger(n)) errors[k] = "enter a whole number";
        else if (p.minimum !== undefined && n < p.minimum) errors[k] = `must be at least ${p.minimum}${p["x-unit"] ? " " + p["x-unit"] : ""}`;
        else if (p.maximum !== undefined && n > p.maximum) errors[k] = `must be at most ${p.maximum}${p["x-unit"] ? " " + p["x-unit"] : ""}`;
        body[k] = n;
      } else if (types.includes("boolean")) body[k] = v === "true";
      else body[k] = v;
    }
    if (Object.keys(errors).length) { showFieldErrors(form, errors); return; }
    try {
      const out = await api(`/v1/risk/${encodeURIComponent(name)}`, { method: "POST", json: body });
      renderRisk(out);
    } catch (e) {
      const details = (e.problem && (e.problem.errors || e.problem.details)) || [];
      const errs = {};
      for (const d of Array.isArray(details) ? details : []) if (d.field) errs[d.field] = d.message || d.problem;
      if (Object.keys(errs).length) showFieldErrors(form, errs);
      $("rk-result").innerHTML = `<p class="error" role="alert">${esc(e.message)}</p>`;
    }
  });
}

function showFieldErrors(form, errors) {
  let first = null;
  for (const [k, msg] of Object.entries(errors)) {
    const el = form.elements[k];
    const out = document.getElementById(`f-${k}-err`);
    if (el) { el.setAttribute("aria-invalid", "true"); first = first || el; }
    if (out) out.textContent = `${k}: ${msg}`;
  }
  if (first) first.focus();
}

function renderRisk(out) {
  const r = out.risks[0];
  if (!r) { $("rk-result").innerHTML = "<p>No risk estimate.</p>"; return; }
  const horizons = Object.entries(r.horizons || {}).map(([h, p]) => `<tr><th scope="row">${esc(h)}</th><td class="num">${(100 * p).toFixed(1)} %</td></tr>`).join("");
  const maxAbs = Math.max(1e-9, ...r.contributions.map((c) => Math.abs(c.contribution)));
  const bars = r.contributions.map((c) => {
    const w = (50 * Math.abs(c.contribution)) / maxAbs;
    const pos = c.contribution >= 0;
    return `<div class="bar-row"><span class="bar-label">${esc(c.factor)} = ${c.value === null || c.value === undefined ? "— (imputed)" : esc(c.value)}</span><span class="bar-track" role="img" aria-label="${esc(c.factor)} ${pos ? "raises" : "lowers"} the risk (${c.contribution.toFixed(2)})"><span class="bar-fill ${pos ? "up" : "down"}" data-left="${pos ? 50 : 50 - w}" data-width="${w}"></span></span><span class="num">${c.contribution >= 0 ? "+" : ""}${c.contribution.toFixed(2)}</span></div>`;
  }).join("");
  $("rk-result").innerHTML = `<h2>Result</h2><p>Risk group: <strong class="group g-${esc(r.risk_group)}">${esc(r.risk_group || "—")}</strong> · outcome ${esc(r.outcome)}</p>
    <table class="grid small"><caption>Risk at each horizon</caption><tbody>${horizons}</tbody></table>
    ${r.survival_times && r.survival_times.length ? survivalSvg(r.survival_times, r.survival, r.time_unit) : ""}
    <h3>Contributing factors</h3><div class="bars">${bars || "<p class='muted'>none</p>"}</div>
    ${(out.flags || []).map((f) => `<p class="flag f-${esc(f.severity)}">${esc(f.message)}</p>`).join("")}`;
  // widths through the CSSOM: the page's Content-Security-Policy forbids inline style attributes
  document.querySelectorAll("#rk-result .bar-fill").forEach((e) => { e.style.left = `${e.dataset.left}%`; e.style.width = `${e.dataset.width}%`; });
}

export function survivalSvg(times, surv, unit) {
  const W = 360, H = 160, P = 30;
  const tmax = Math.max(...times, 1);
  const x = (t) => P + ((W - 2 * P) * t) / tmax, y = (s) => H - P - (H - 2 * P) * s;
  let d = `M${x(0)},${y(1)}`;
  times.forEach((t, i) => { d += ` H${x(t).toFixed(1)} V${y(surv[i]).toFixed(1)}`; });
  return `<figure><svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="Survival curve"><path d="M${P},${P} V${H - P} H${W - P}" class="axis"/><path d="${d}" class="curve"/>
    <text x="${P}" y="${P - 8}" class="tick">1.0</text><text x="${W - P}" y="${H - 8}" class="tick" text-anchor="end">${tmax.toFixed(0)} ${esc(unit)}</text></svg><figcaption>Survival probability</figcaption></figure>`;
}

// ---------------------------------------------------------------------------------------------------------------
// Start: an open session skips the sign-in form
(async () => {
  try {
    const me = await api("/v1/session");
    if (me.signed_in) signedIn(me); else showSignIn();
  } catch (_) { showSignIn(); }
})();
