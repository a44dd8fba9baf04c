// medai viewer: Cornerstone3D (a StackViewport, its window/level, pan and zoom tools) over medai's own DICOMweb
// (WADO-RS series metadata + uncompressed frames, through a registered image loader and metadata provider), the
// report's label maps as an overlay in the label table's colours, slice and phase navigation, cine playback with
// ED/ES markers, brush/eraser correction (a new report version measured again on the server), the measurement
// panel with reference ranges and flags, the volume curve, the AHA bullseye, sign-off and send.
// Cornerstone3D is bundled by serving/web/build/build.sh into vendor/cornerstone.js and loaded on the viewer's
// first use, so the worklist never waits for it.
import { api, esc, state, toast } from "./app.js";

const TAG = { sop: "00080018", rows: "00280010", cols: "00280011", bits: "00280100", signed: "00280103",
  slope: "00281053", intercept: "00281052", wc: "00281050", ww: "00281051", spp: "00280002", spacing: "00280030",
  modality: "00080060" };
const WALL = "lv_wall_thickness_aha";
const VIEWPORT = "medai-stack";

let V = null; // the open viewer's state
let CS = null; // the Cornerstone3D module once initialised
let csReady = null;
let engineSeq = 0;
const IMAGES = new Map(); // Cornerstone imageId ("medai:" + WADO-RS frame URL) -> { url, m: the frame's metadata }

function imageIdOf(url) { return `medai:${url}`; }

// Cornerstone3D reads geometry, pixel format and the default window through metadata providers. The viewer shows
// each frame as a 2-D image (a stack of every phase x slice), so the plane is the image's own: origin 0, axes
// along rows and columns, the DICOM pixel spacing. Pixels arrive rescaled (modality LUT applied by the loader).
function metadataProvider(type, imageId) {
  const e = IMAGES.get(imageId);
  if (!e) return undefined;
  const m = e.m;
  if (type === "imagePlaneModule") {
    return { frameOfReferenceUID: "medai", rows: m.rows, columns: m.cols, imageOrientationPatient: [1, 0, 0, 0, 1, 0],
      rowCosines: [1, 0, 0], columnCosines: [0, 1, 0], imagePositionPatient: [0, 0, 0],
      pixelSpacing: [m.rowSpacing, m.colSpacing], rowPixelSpacing: m.rowSpacing, columnPixelSpacing: m.colSpacing };
  }
  if (type === "imagePixelModule") {
    return { samplesPerPixel: 1, photometricInterpretation: "MONOCHROME2", rows: m.rows, columns: m.cols,
      bitsAllocated: 32, bitsStored: 32, highBit: 31, pixelRepresentation: 1 };
  }
  if (type === "voiLutModule") return m.wc !== undefined && m.ww ? { windowCenter: [Number(m.wc)], windowWidth: [Number(m.ww)] } : undefined;
  if (type === "modalityLutModule") return { rescaleSlope: 1, rescaleIntercept: 0 };
  if (type === "generalSeriesModule") return { modality: m.modality || "MR" };
  return undefined;
}

// The image loader for "medai:" ids: one WADO-RS frame, rescaled to float32, as a Cornerstone image.
function loadMedaiImage(imageId) {
  const promise = (async () => {
    const e = IMAGES.get(imageId);
    if (!e) throw new Error(`no metadata for ${imageId}`);
    const m = e.m;
    const px = toPixels(await fetchFrame(e.url), m);
    let lo = Infinity, hi = -Infinity;
    for (let i = 0; i < px.length; i++) { const p = px[i]; if (p < lo) lo = p; if (p > hi) hi = p; }
    const vm = CS.utilities.VoxelManager.createImageVoxelManager({ width: m.cols, height: m.rows, numberOfComponents: 1, scalarData: px, id: imageId });
    const hasWindow = m.wc !== undefined && m.ww;
    return { imageId, minPixelValue: lo, maxPixelValue: hi, slope: 1, intercept: 0,
      windowCenter: hasWindow ? Number(m.wc) : (lo + hi) / 2, windowWidth: hasWindow ? Number(m.ww) : Math.max(1, hi - lo),
      voiLUTFunction: "LINEAR", getPixelData: () => vm.getScalarData(), voxelManager: vm, rows: m.rows, columns: m.cols,
      height: m.rows, width: m.cols, color: false, rgba: false, numberOfComponents: 1, columnPixelSpacing: m.colSpacing,
      rowPixelSpacing: m.rowSpacing, invert: false, sizeInBytes: px.byteLength, dataType: "Float32Array",
      photometricInterpretation: "MONOCHROME2", getCanvas: undefined };
  })();
  return { promise };
}

function cornerstone() {
  if (!csReady) {
    csReady = (async () => {
      const cs = await import("./vendor/cornerstone.js");
      await cs.init();
      cs.toolsInit();
      [cs.WindowLevelTool, cs.PanTool, cs.ZoomTool].forEach((t) => cs.addTool(t));
      cs.metaData.addProvider(metadataProvider, 10000);
      cs.imageLoader.registerImageLoader("medai", loadMedaiImage);
      CS = cs;
      return cs;
    })();
    csReady.catch(() => { csReady = null; });
  }
  return csReady;
}

function teardown(v) {
  if (v.toolGroupId && CS) CS.ToolGroupManager.destroyToolGroup(v.toolGroupId);
  if (v.engine) v.engine.destroy();
  v.engine = v.vp = v.toolGroupId = null;
}

export function closeViewer() {
  if (!V) return;
  V.closed = true;
  cancelAnimationFrame(V.raf);
  teardown(V);
  document.removeEventListener("keydown", V.onKey);
  V = null;
  window.medaiViewer = undefined;
}

function val(item, tag) {
  const el = item[tag];
  return el && el.Value ? el.Value[0] : undefined;
}

async function fetchFrame(url) {
  const r = await fetch(url, { headers: { Accept: 'multipart/related; type="application/octet-stream"' }, credentials: "same-origin" });
  if (!r.ok) throw new Error(`frame ${r.status}`);
  const ct = r.headers.get("content-type") || "";
  const m = ct.match(/boundary="?([^";]+)"?/);
  const buf = new Uint8Array(await r.arrayBuffer());
  if (!m) return buf;
  const head = new TextDecoder("latin1").decode(buf.subarray(0, Math.min(buf.length, 512)));
  const start = head.indexOf("\r\n\r\n") + 4;
  const end = buf.length - (m[1].length + 8); // data \r\n --boundary-- \r\n
  return buf.slice(start, end);
}

function toPixels(bytes, meta) {
  const b = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  let raw;
  if (meta.bits === 16) raw = meta.signed ? new Int16Array(b) : new Uint16Array(b);
  else if (meta.bits === 32) raw = meta.signed ? new Int32Array(b) : new Uint32Array(b);
  else raw = new Uint8Array(b);
  const out = new Float32Array(meta.rows * meta.cols);
  const spp = meta.spp || 1;
  for (let i = 0; i < out.length; i++) out[i] = raw[i * spp] * meta.slope + meta.intercept;
  return out;
}

export async function openViewer(root, jobId, version) {
  closeViewer();
  const v = (V = { jobId, root, t: 0, z: 0, tool: "wl", radius: 3, playing: false, fps: 25, loaded: new Set(),
    meta: new Map(), edited: new Set(), hidden: new Set(), drawn: [], closed: false });
  root.innerHTML = `<p class="muted" role="status">Loading the viewer…</p>`;
  try {
    await Promise.all([loadVersion(v, version), cornerstone()]);
  } catch (e) {
    if (!v.closed) root.innerHTML = `<p class="error" role="alert">${esc(e.message)}</p><p><a href="#/worklist">Back to the worklist</a></p>`;
    return;
  }
  if (v.closed) return;
  render(v);
}

async function loadVersion(v, version) {
  const q = version ? `?version=${version}` : "";
  v.doc = await api(`/v1/analyses/${encodeURIComponent(v.jobId)}/viewer${q}`);
  v.version = v.doc.version;
  v.layers = v.doc.layers;
  v.layerIndex = Math.min(v.layerIndex || 0, Math.max(0, v.layers.length - 1));
  await loadLayer(v);
}

async function loadLayer(v) {
  const layer = v.layers[v.layerIndex];
  if (!layer) throw new Error("this report has no segmentation to show");
  v.layer = layer;
  const shape = layer.shape.length === 4 ? layer.shape : [1, ...layer.shape];
  [v.T, v.Z, v.Y, v.X] = shape;
  v.t = Math.min(v.t, v.T - 1);
  v.z = Math.min(v.z || Math.floor(v.Z / 2), v.Z - 1);
  if (v.t === 0 && layer.ed_frame != null) v.t = layer.ed_frame;
  const r = await api(layer.url, { raw: true, headers: { Accept: "application/octet-stream" } });
  v.labels = new Uint8Array(await r.arrayBuffer());
  if (v.labels.length !== v.T * v.Z * v.Y * v.X) throw new Error(`label map has ${v.labels.length} values, expected ${shape.join("x")}`);
  v.original = v.labels.slice();
  v.edited.clear();
  v.loaded.clear();
  v.colors = new Map(layer.labels.map((l) => [l.value, l.color]));
  v.editValue = v.editValue && v.colors.has(v.editValue) ? v.editValue : layer.labels[0].value;
  // series metadata (rows, columns, spacing, rescale, window) for every series the frames come from
  const series = new Set();
  layer.frames.flat().filter(Boolean).forEach((u) => series.add(u.slice(0, u.indexOf("/instances/"))));
  await Promise.all([...series].map(async (s) => {
    if (v.meta.has(s)) return;
    const items = await api(`${s}/metadata`, { headers: { Accept: "application/dicom+json" } });
    const bySop = new Map();
    items.forEach((it) => {
      const sp = it[TAG.spacing] && it[TAG.spacing].Value ? it[TAG.spacing].Value.map(Number) : [1, 1];
      bySop.set(val(it, TAG.sop), {
        rows: val(it, TAG.rows), cols: val(it, TAG.cols), bits: val(it, TAG.bits) || 16, signed: val(it, TAG.signed) === 1,
        slope: Number(val(it, TAG.slope) ?? 1), intercept: Number(val(it, TAG.intercept) ?? 0),
        wc: val(it, TAG.wc), ww: val(it, TAG.ww), spp: val(it, TAG.spp) || 1, modality: val(it, TAG.modality),
        rowSpacing: sp[0] || 1, colSpacing: sp[1] || sp[0] || 1,
      });
    });
    v.meta.set(s, bySop);
  }));
}

function frameUrl(v, t, z) { return (v.layer.frames[t] || v.layer.frames[0])[z]; }
function metaOf(v, url) {
  const s = url.slice(0, url.indexOf("/instances/"));
  const sop = url.split("/instances/")[1].split("/")[0];
  return v.meta.get(s).get(sop);
}

// Every (phase, slice) position of the layer as one Cornerstone stack, phase-major: index = t * Z + z. A position
// without its own frame shows the slice's first stored frame (or any), as the label map still has a plane there.
function registerImages(v) {
  const any = v.layer.frames.flat().find(Boolean);
  if (!any) throw new Error("this segmentation references no stored image frames");
  v.ids = [];
  for (let t = 0; t < v.T; t++) {
    for (let z = 0; z < v.Z; z++) {
      const url = frameUrl(v, t, z) || v.layer.frames.map((f) => f[z]).find(Boolean) || any;
      const id = imageIdOf(url);
      if (!IMAGES.has(id)) IMAGES.set(id, { url, m: metaOf(v, url) });
      v.ids.push(id);
    }
  }
}

function indexOf(v, t = v.t, z = v.z) { return t * v.Z + z; }

async function preload(v) {
  const load = async (t, z) => {
    if (v.closed) return;
    await CS.imageLoader.loadAndCacheImage(v.ids[indexOf(v, t, z)]);
    v.loaded.add(indexOf(v, t, z));
    publish(v);
  };
  await Promise.all(Array.from({ length: v.T }, (_, t) => load(t, v.z))); // this slice's phases first: cine playback
  for (let z = 0; z < v.Z; z++) for (let t = 0; t < v.T; t++) if (!v.closed) await load(t, z);
}

// The Cornerstone3D viewport in #vw-canvas, its tool group, and the view kept across re-renders (a saved
// correction or a signature re-renders the page; the clinician's zoom, pan and window stay).
async function mount(v) {
  const cs = CS;
  const view = v.vp && v.viewKey === `${v.X}x${v.Y}` ? { camera: v.vp.getCamera(), voi: v.vp.getProperties().voiRange } : null;
  teardown(v);
  registerImages(v);
  const id = `medai-${++engineSeq}`;
  v.engine = new cs.RenderingEngine(id);
  v.engine.enableElement({ viewportId: VIEWPORT, element: v.canvas, type: cs.Enums.ViewportType.STACK,
    defaultOptions: { background: [0, 0, 0] } });
  v.vp = v.engine.getViewport(VIEWPORT);
  v.viewKey = `${v.X}x${v.Y}`;
  const tg = cs.ToolGroupManager.createToolGroup(id);
  v.toolGroupId = id;
  [cs.WindowLevelTool, cs.PanTool, cs.ZoomTool].forEach((t) => tg.addTool(t.toolName));
  tg.addViewport(VIEWPORT, id);
  bindTools(v);
  v.canvas.addEventListener(cs.Enums.Events.IMAGE_RENDERED, () => drawOverlay(v));
  await v.vp.setStack(v.ids, indexOf(v));
  if (view) {
    v.vp.setCamera(view.camera);
    if (view.voi) v.vp.setProperties({ voiRange: view.voi });
  }
  v.vp.render();
}

// Mouse bindings: the selected tool on the left button; window/level on the right, pan on the middle button and
// zoom on the wheel whatever is selected. Brush and eraser are medai's own (they edit the label map).
function bindTools(v) {
  if (!v.toolGroupId) return;
  const cs = CS, B = cs.ToolEnums.MouseBindings;
  const tg = cs.ToolGroupManager.getToolGroup(v.toolGroupId);
  const names = { wl: cs.WindowLevelTool.toolName, pan: cs.PanTool.toolName, zoom: cs.ZoomTool.toolName };
  const bindings = { wl: [{ mouseButton: B.Secondary }], pan: [{ mouseButton: B.Auxiliary }], zoom: [{ mouseButton: B.Wheel }] };
  if (bindings[v.tool]) bindings[v.tool].push({ mouseButton: B.Primary });
  for (const [k, b] of Object.entries(bindings)) {
    tg.setToolDisabled(names[k]);
    tg.setToolActive(names[k], { bindings: b });
  }
}

// ---------------------------------------------------------------------------------------------------------------
function render(v) {
  const me = state.me;
  const signed = v.version.signed;
  const latest = v.doc.versions[v.doc.versions.length - 1].version === v.version.version;
  const canEdit = !signed && latest && !v.doc.versions.some((x) => x.signed) && me.role !== "data_scientist";
  v.canEdit = canEdit;
  const layerOpts = v.layers.map((l, i) => `<option value="${i}" ${i === v.layerIndex ? "selected" : ""}>${esc(l.kind)} · ${esc(l.role)}</option>`).join("");
  const res = v.version.results;
  const dl = ["pdf", "sr", "seg", "json", "fhir"].filter((k) => res[k]).map((k) => `<a class="btn" href="${esc(res[k])}" download data-download="${k}">${k.toUpperCase()}</a>`).join(" ");
  v.root.innerHTML = `
  <section class="viewer" aria-labelledby="vw-title">
    <div class="bar">
      <h1 id="vw-title">Study viewer</h1>
      <a href="#/worklist">← worklist</a>
      <span class="patient" aria-label="Patient">${esc(v.doc.patient.name || "—")} · ${esc(v.doc.patient.id)} · ${esc(v.doc.patient.sex)} · ${esc((v.doc.patient.study_date || "").replace(/^(\d{4})(\d{2})(\d{2})$/, "$1-$2-$3"))}</span>
      <label class="inline" for="vw-version">Version</label>
      <select id="vw-version">${v.doc.versions.map((x) => `<option value="${x.version}" ${x.version === v.version.version ? "selected" : ""}>v${x.version}${x.signed ? " (signed)" : x.parent ? " (corrected)" : " (model)"}</option>`).join("")}</select>
      <label class="inline" for="vw-layer">Segmentation</label>
      <select id="vw-layer">${layerOpts}</select>
      <span id="vw-signed" class="badge ${signed ? "ok" : "muted"}">${signed ? `Signed by ${esc(v.version.signed_by)} · ${new Date(v.version.signed_at * 1000).toISOString().slice(0, 16).replace("T", " ")} UTC · locked` : "not signed"}</span>
    </div>
    <div class="viewer-grid">
      <div class="stage">
        <div class="toolbar" role="toolbar" aria-label="Viewer tools">
          ${[["wl", "Window/level", "W"], ["pan", "Pan", "P"], ["zoom", "Zoom", "Z"], ["brush", "Brush", "B"], ["eraser", "Eraser", "E"]].map(([k, t, key]) => `<button type="button" data-tool="${k}" aria-pressed="${v.tool === k}" ${["brush", "eraser"].includes(k) && !canEdit ? "disabled" : ""} aria-keyshortcuts="${key}">${t}</button>`).join("")}
          <label class="inline" for="vw-edit-label">Label</label>
          <select id="vw-edit-label" ${canEdit ? "" : "disabled"}>${v.layer.labels.map((l) => `<option value="${l.value}" ${l.value === v.editValue ? "selected" : ""}>${esc(l.name)}</option>`).join("")}</select>
          <label class="inline" for="vw-radius">Size</label>
          <input id="vw-radius" type="number" min="1" max="20" value="${v.radius}" ${canEdit ? "" : "disabled"}>
          <button type="button" id="vw-reset">Reset view</button>
        </div>
        <div id="vw-canvas" tabindex="0" role="img" aria-label="Image with segmentation overlay. Arrow keys: slice and phase; space: play; B brush, E eraser, W window/level, P pan, Z zoom; right button window/level, middle button pan, wheel zoom."><canvas class="vw-overlay" aria-hidden="true"></canvas></div>
        <div class="nav-row">
          <button type="button" id="vw-play" aria-pressed="false" aria-keyshortcuts="Space">Play</button>
          <label class="inline" for="vw-fps">fps</label>
          <select id="vw-fps">${[10, 15, 20, 25, 30, 40].map((f) => `<option ${f === v.fps ? "selected" : ""}>${f}</option>`).join("")}</select>
          <label class="inline" for="vw-phase">Phase</label>
          <input id="vw-phase" type="range" min="0" max="${v.T - 1}" value="${v.t}" list="vw-phase-marks" ${v.T < 2 ? "disabled" : ""}>
          <datalist id="vw-phase-marks">${[v.layer.ed_frame, v.layer.es_frame].filter((x) => x != null).map((x) => `<option value="${x}"></option>`).join("")}</datalist>
          <button type="button" id="vw-ed" ${v.layer.ed_frame == null ? "disabled" : ""}>ED</button>
          <button type="button" id="vw-es" ${v.layer.es_frame == null ? "disabled" : ""}>ES</button>
          <label class="inline" for="vw-slice">Slice</label>
          <input id="vw-slice" type="range" min="0" max="${v.Z - 1}" value="${v.z}">
          <span id="vw-pos" class="muted" aria-live="polite"></span>
        </div>
        <fieldset class="overlays"><legend>Overlays</legend>
          ${v.layer.labels.map((l) => `<label class="inline"><input type="checkbox" data-label="${l.value}" ${v.hidden.has(l.value) ? "" : "checked"}> <span class="swatch" data-color="${l.color.join(",")}"></span>${esc(l.name)}</label>`).join("")}
        </fieldset>
        <div class="nav-row">
          <button type="button" id="vw-save" class="primary" disabled>Save correction</button>
          <button type="button" id="vw-undo" disabled>Undo all</button>
          <span id="vw-edits" class="muted" aria-live="polite"></span>
        </div>
        <div class="nav-row">
          ${me.role === "clinician" ? `<button type="button" id="vw-sign" class="primary" ${signed || !latest || v.doc.versions.some((x) => x.signed) ? "disabled" : ""}>Sign report</button>` : ""}
          <button type="button" id="vw-send" ${signed ? "" : "disabled"}>Send to PACS</button>
          <span class="muted">Download:</span> ${dl}
        </div>
      </div>
      <aside class="panel" aria-label="Measurements">${panel(v)}<section class="sec" id="vw-followup" aria-live="polite"><h2>Follow-up</h2><p class="muted">Loading this patient's earlier analyses…</p></section></aside>
    </div>
    <dialog id="vw-dialog" aria-labelledby="vw-dialog-title">
      <form method="dialog">
        <h2 id="vw-dialog-title">Sign version ${v.version.version}?</h2>
        <p>Signing locks the report: the SR becomes VERIFIED with your name as verifying observer, the PDF shows your signature. Corrections are no longer possible.</p>
        <label for="vw-org">Organisation</label><input id="vw-org" value="medai">
        <div class="nav-row"><button value="cancel" type="submit">Cancel</button><button value="sign" type="submit" class="primary" id="vw-confirm">Sign</button></div>
      </form>
    </dialog>
  </section>`;
  v.canvas = document.getElementById("vw-canvas"); // the Cornerstone3D viewport element
  v.overlay = v.canvas.querySelector(".vw-overlay");
  v.ov = document.createElement("canvas"); // one label plane at image resolution, drawn over the viewport
  v.ov.width = v.X;
  v.ov.height = v.Y;
  document.querySelectorAll(".swatch").forEach((s) => { s.style.background = `rgb(${s.dataset.color})`; });
  paintCurves(v);
  followup(v);
  wire(v);
  mount(v)
    .then(() => { if (!v.closed) return preload(v); })
    .catch((e) => { if (!v.closed) toast(`Images: ${e.message}`, "error"); });
  loop(v);
}

// -- the measurement panel --------------------------------------------------------------------------------------
function fmtNum(x) { return Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(2); }

function panel(v) {
  const rep = v.doc.report;
  const review = rep.review && rep.review.required ? `<div class="review" role="note"><strong>Review required</strong><ul>${rep.review.reasons.map((r) => `<li>${esc(r)}</li>`).join("")}</ul></div>` : "";
  const sections = (rep.sections || []).map((s) => {
    const q = s.quality ? `<p>Image quality: <span class="badge q-${esc(s.quality.status)}">${esc(s.quality.status)}</span>${s.quality.reader_corrected ? " (on the reader's corrected contours)" : ""}</p>${(s.quality.findings || []).map((f) => `<p class="flag f-${esc(f.status)}">${esc(f.message)}</p>`).join("")}` : "";
    // the same quantity by several methods (LGE scar: model, n-SD, FWHM) names its method and parameters
    const key = (m) => `${m.code.meaning}|${m.aha_segment ?? ""}|${m.frame ?? ""}`;
    const seen = new Map();
    s.measurements.forEach((m) => seen.set(key(m), (seen.get(key(m)) || 0) + 1));
    const ambiguous = new Set([...seen].filter(([, n]) => n > 1).map(([k]) => k));
    const rows = s.measurements.filter((m) => !m.name.startsWith(WALL)).map((m) => {
      const rr = m.reference_range;
      let flag = "", cls = "";
      if (rr && rr.low != null && m.value < rr.low) { flag = "↓ low"; cls = "out"; }
      if (rr && rr.high != null && m.value > rr.high) { flag = "↑ high"; cls = "out"; }
      const range = rr ? `${rr.low ?? ""}–${rr.high ?? ""}` : "";
      return `<tr data-name="${esc(m.name)}" class="${cls}"><th scope="row" title="${esc(m.code.value)} ${esc(m.code.scheme)}">${esc(m.code.meaning)}${m.aha_segment ? ` ${m.aha_segment}` : ""}${m.frame ? ` <span class="muted">(${esc(m.frame)})</span>` : ""}${ambiguous.has(key(m)) && m.method ? ` <span class="muted">· ${esc(m.method)}${Object.keys(m.parameters || {}).length ? ` (${Object.entries(m.parameters).map(([k, x]) => `${esc(k)} = ${esc(x)}`).join(", ")})` : ""}</span>` : ""}</th><td class="num" data-value="${m.value}">${fmtNum(m.value)}</td><td>${esc(m.unit.display || m.unit.code)}</td><td class="muted" title="${rr ? esc(`${rr.population || ""} ${rr.source || ""}`) : ""}">${esc(range)}</td><td>${flag}</td></tr>`;
    }).join("");
    const flags = (s.flags || []).map((f) => `<p class="flag f-${esc(f.severity)}">${esc(f.message)}</p>`).join("");
    const classes = (s.classes || []).length ? `<h3>Diagnosis (suggestion)</h3><div class="bars">${s.classes.map((c) => `<div class="bar-row"><span class="bar-label">${esc(c.label || c.name || c.code?.meaning || "")}</span><span class="bar-track"><span class="bar-fill up prob" data-width="${(100 * c.probability).toFixed(1)}"></span></span><span class="num">${(100 * c.probability).toFixed(0)} %</span></div>`).join("")}</div>` : "";
    const wall = s.measurements.filter((m) => m.name.startsWith(WALL));
    return `<section class="sec"><h2>${esc(s.title)}</h2>${q}
      ${rows ? `<table class="grid small measurements"><thead><tr><th scope="col">Measurement</th><th scope="col">Value</th><th scope="col">Unit</th><th scope="col">Reference</th><th scope="col">Flag</th></tr></thead><tbody>${rows}</tbody></table>` : ""}
      ${classes}${flags}
      ${s.summary && s.summary.volume_curve ? `<h3>Volume curve</h3><svg class="curve-svg" data-kind="${esc(s.kind)}" viewBox="0 0 360 170" role="img" aria-label="LV and RV volume over the cardiac cycle with ED and ES marked"></svg>` : ""}
      ${wall.length ? `<h3>Wall thickness (AHA 16 segments, ED)</h3>${bullseye(wall)}` : ""}</section>`;
  }).join("");
  return review + sections;
}

// -- follow-up: the patient's serial comparison (GET /v1/patients/{pseudonym}/timeline) ----------------------------
const VERDICT = { within_variability: ["within variability", ""], significant_increase: ["↑ significant", "out"],
  significant_decrease: ["↓ significant", "out"], no_reference: ["no published variability", ""] };

async function followup(v) {
  const box = document.getElementById("vw-followup");
  const pid = v.doc.report.patient_id;
  if (!box || !pid) { if (box) box.remove(); return; }
  let tl;
  try {
    tl = await api(`/v1/patients/${encodeURIComponent(pid)}/timeline`);
  } catch (e) {
    box.innerHTML = `<h2>Follow-up</h2><p class="muted">${esc(e.message)}</p>`;
    return;
  }
  if (v.closed) return;
  const day = (p) => String(p.study_datetime).slice(0, 10);
  if (tl.points.length < 2) {
    box.innerHTML = `<h2>Follow-up</h2><p class="muted">First analysis of this patient (${esc(day(tl.points[0]))}): nothing to compare with yet.</p>`;
    return;
  }
  const head = tl.points.map((p) => `<th scope="col">${esc(day(p))}</th>`).join("");
  const rows = tl.tracks.map((t) => `<tr><th scope="row" title="${esc(t.published)}">${esc(t.label)} <span class="muted">${esc(t.unit.display || t.unit.code)}</span></th>${t.values.map((x) => `<td class="num">${x == null ? "–" : fmtNum(x)}</td>`).join("")}</tr>`).join("");
  const last = tl.points.length - 1;
  const changes = tl.changes.filter((c) => c.kind === "baseline_latest" && c.from_index === 0 && c.to_index === last).map((c) => {
    const [word, cls] = VERDICT[c.verdict] || [c.verdict, ""];
    return `<tr class="${cls}"><th scope="row">${esc(c.label)}</th><td class="num">${c.delta > 0 ? "+" : ""}${fmtNum(c.delta)} ${esc(c.unit)}</td><td class="muted">${c.mdc == null ? "" : `MDC ${fmtNum(c.mdc)}`}</td><td>${esc(word)}${c.under_review ? " (under review)" : ""}</td></tr>`;
  }).join("");
  const ctrcd = tl.ctrcd.map((f) => `<p class="flag f-${esc(f.severity)}">${esc(f.message)}</p>`).join("");
  box.innerHTML = `<h2>Follow-up (${tl.points.length} analyses)</h2>
    <p class="muted">Study dates as the analyses hold them (shifted consistently when studies are de-identified); changes are judged against published scan-rescan variability (minimal detectable change, MDC).</p>
    <table class="grid small"><thead><tr><th scope="col">Measurement</th>${head}</tr></thead><tbody>${rows}</tbody></table>
    ${changes ? `<h3>Baseline to latest</h3><table class="grid small"><tbody>${changes}</tbody></table>` : ""}
    ${ctrcd ? `<h3>Cancer-therapy cardiac dysfunction (ESC 2022)</h3>${ctrcd}` : ""}`;
}

function paintCurves(v) {
  document.querySelectorAll(".bar-fill.prob").forEach((e) => { e.style.left = "0"; e.style.width = `${e.dataset.width}%`; });
  const s = (v.doc.report.sections || []).find((x) => x.summary && x.summary.volume_curve);
  const svg = document.querySelector(".curve-svg");
  if (!s || !svg) return;
  const c = s.summary.volume_curve;
  const n = c.lv_ml.length, W = 360, H = 170, P = 34;
  const vmax = Math.max(...c.lv_ml, ...(c.rv_ml || []), 1) * 1.1;
  const x = (i) => P + ((W - 2 * P) * i) / Math.max(1, n - 1), y = (ml) => H - P - ((H - 2 * P) * ml) / vmax;
  const line = (arr) => arr.map((ml, i) => `${i ? "L" : "M"}${x(i).toFixed(1)},${y(ml).toFixed(1)}`).join(" ");
  const mark = (i, label) => (i == null ? "" : `<line x1="${x(i)}" x2="${x(i)}" y1="${P - 6}" y2="${H - P}" class="mark"/><text x="${x(i)}" y="${P - 10}" text-anchor="middle" class="tick">${label}</text>`);
  svg.innerHTML = `<path d="M${P},${P - 6} V${H - P} H${W - P}" class="axis"/><path d="${line(c.lv_ml)}" class="lv"/>${c.rv_ml ? `<path d="${line(c.rv_ml)}" class="rv"/>` : ""}
    ${mark(s.summary.ed_frame, "ED")}${mark(s.summary.es_frame, "ES")}<line id="vw-now" x1="${x(v.t)}" x2="${x(v.t)}" y1="${P}" y2="${H - P}" class="now"/>
    <text x="${P - 4}" y="${y(vmax / 1.1)}" text-anchor="end" class="tick">${(vmax / 1.1).toFixed(0)}</text><text x="${P - 4}" y="${H - P}" text-anchor="end" class="tick">0 mL</text>
    <text x="${W - P}" y="${H - 8}" text-anchor="end" class="tick">phase ${n}</text><text x="${P + 6}" y="${H - 8}" class="tick lvt">LV</text><text x="${P + 30}" y="${H - 8}" class="tick rvt">RV</text>`;
  v.curveX = x;
}

function bullseye(wall) {
  const by = new Map(wall.map((m) => [Number(m.name.slice(WALL.length)), m]));
  const R = [90, 64, 40, 16], cx = 100, cy = 100;
  const arc = (r0, r1, a0, a1) => {
    const p = (r, a) => `${(cx + r * Math.cos((a * Math.PI) / 180)).toFixed(2)},${(cy - r * Math.sin((a * Math.PI) / 180)).toFixed(2)}`;
    const big = a1 - a0 > 180 ? 1 : 0;
    return `M${p(r1, a0)} A${r1},${r1} 0 ${big} 0 ${p(r1, a1)} L${p(r0, a1)} A${r0},${r0} 0 ${big} 1 ${p(r0, a0)} Z`;
  };
  const color = (mm) => { const f = Math.max(0, Math.min(1, (mm - 3) / 12)); return `hsl(${(220 - 200 * f).toFixed(0)} 70% ${(62 - 18 * f).toFixed(0)}%)`; };
  let out = "";
  const ring = (segs, r0, r1, start, span) => segs.forEach((seg, i) => {
    const a0 = start + i * span, a1 = a0 + span, m = by.get(seg);
    const mid = ((a0 + a1) / 2) * (Math.PI / 180), rm = (r0 + r1) / 2;
    out += `<path d="${arc(r0, r1, a0, a1)}" class="seg" data-fill="${m ? color(m.value) : "#ddd"}"><title>segment ${seg}: ${m ? m.value.toFixed(1) + " mm" : "n/a"}</title></path>`;
    out += `<text x="${(cx + rm * Math.cos(mid)).toFixed(1)}" y="${(cy - rm * Math.sin(mid) + 3).toFixed(1)}" text-anchor="middle" class="segt">${m ? m.value.toFixed(0) : "–"}</text>`;
  });
  ring([1, 2, 3, 4, 5, 6], R[1], R[0], 60, 60); // basal: 1 anterior at the top, septum left, lateral right
  ring([7, 8, 9, 10, 11, 12], R[2], R[1], 60, 60);
  ring([13, 14, 15, 16], R[3], R[2], 45, 90);
  setTimeout(() => document.querySelectorAll(".bullseye .seg").forEach((p) => { p.style.fill = p.dataset.fill; }), 0);
  return `<svg class="bullseye" viewBox="0 0 200 200" width="200" height="200" role="img" aria-label="Bullseye of end-diastolic wall thickness in mm per AHA segment">${out}</svg>`;
}

// -- drawing ----------------------------------------------------------------------------------------------------
// Cornerstone3D renders the image; the label plane of the displayed position is drawn on the overlay canvas after
// every render (IMAGE_RENDERED), placed through the viewport's own image -> world -> canvas transform, so it
// follows pan, zoom and any resize exactly.
function imageToCanvas(v, id, x, y) { return v.vp.worldToCanvas(CS.utilities.imageToWorldCoords(id, [x, y])); }

function toImage(v, ev) {
  const r = v.canvas.getBoundingClientRect();
  const world = v.vp.canvasToWorld([ev.clientX - r.left, ev.clientY - r.top]);
  return CS.utilities.worldToImageCoords(v.ids[v.vp.getCurrentImageIdIndex()], world);
}

function planeOffset(v, t = v.t, z = v.z) { return ((t * v.Z + z) * v.Y) * v.X; }

function voi(v) {
  const r = v.vp && v.vp.getProperties().voiRange;
  return r ? { c: (r.lower + r.upper) / 2, w: r.upper - r.lower } : null;
}

async function draw(v) {
  if (v.closed || !v.vp) return;
  const idx = indexOf(v);
  if (v.vp.getCurrentImageIdIndex() !== idx) {
    try {
      await v.vp.setImageIdIndex(idx); // loads the frame if needed; the render calls drawOverlay
    } catch (e) {
      if (!v.closed) toast(`Image: ${e.message}`, "error");
    }
  } else {
    drawOverlay(v);
  }
}

function drawOverlay(v) {
  if (v.closed || !v.vp) return;
  const idx = v.vp.getCurrentImageIdIndex(), t = Math.floor(idx / v.Z), z = idx % v.Z;
  const octx = v.ov.getContext("2d");
  const ov = octx.createImageData(v.X, v.Y);
  const off = planeOffset(v, t, z), L = v.labels, X = v.X, Y = v.Y;
  for (let y = 0; y < Y; y++) {
    for (let x = 0; x < X; x++) {
      const lab = L[off + y * X + x];
      if (!lab || v.hidden.has(lab)) continue;
      const c = v.colors.get(lab) || [255, 255, 0];
      const edge = x === 0 || y === 0 || x === X - 1 || y === Y - 1 || L[off + y * X + x - 1] !== lab ||
        L[off + y * X + x + 1] !== lab || L[off + (y - 1) * X + x] !== lab || L[off + (y + 1) * X + x] !== lab;
      const i = 4 * (y * X + x);
      ov.data[i] = c[0]; ov.data[i + 1] = c[1]; ov.data[i + 2] = c[2]; ov.data[i + 3] = edge ? 255 : 90;
    }
  }
  octx.putImageData(ov, 0, 0);
  const cv = v.overlay, dpr = window.devicePixelRatio || 1;
  const w = v.canvas.clientWidth, h = v.canvas.clientHeight;
  if (cv.width !== Math.round(w * dpr) || cv.height !== Math.round(h * dpr)) {
    cv.width = Math.round(w * dpr);
    cv.height = Math.round(h * dpr);
  }
  const ctx = cv.getContext("2d"), id = v.ids[idx];
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, cv.width, cv.height);
  const o = imageToCanvas(v, id, 0, 0), ex = imageToCanvas(v, id, X, 0), ey = imageToCanvas(v, id, 0, Y);
  ctx.setTransform((dpr * (ex[0] - o[0])) / X, (dpr * (ex[1] - o[1])) / X, (dpr * (ey[0] - o[0])) / Y,
    (dpr * (ey[1] - o[1])) / Y, dpr * o[0], dpr * o[1]);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(v.ov, 0, 0);
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.fillStyle = "#fff";
  ctx.font = "13px system-ui, sans-serif";
  const phase = t === v.layer.ed_frame ? " ED" : t === v.layer.es_frame ? " ES" : "";
  const wl = voi(v);
  ctx.fillText(`phase ${t + 1}/${v.T}${phase}  slice ${z + 1}/${v.Z}  W ${wl ? wl.w.toFixed(0) : "-"} L ${wl ? wl.c.toFixed(0) : "-"}  ${v.vp.getZoom().toFixed(1)}x`, 8, h - 10);
  const pos = document.getElementById("vw-pos");
  if (pos) pos.textContent = `phase ${t + 1}${phase}, slice ${z + 1}`;
  const ph = document.getElementById("vw-phase"), sl = document.getElementById("vw-slice");
  if (ph) ph.value = v.t;
  if (sl) sl.value = v.z;
  const now = document.getElementById("vw-now");
  if (now && v.curveX) { now.setAttribute("x1", v.curveX(t)); now.setAttribute("x2", v.curveX(t)); }
  const ms = performance.now();
  v.drawn.push(ms);
  while (v.drawn.length && v.drawn[0] < ms - 1000) v.drawn.shift();
  publish(v);
}

// The viewer's state for scripts and browser tests (window.medaiViewer): the displayed position, playback, the
// frames rate drawn over the last second, the view, and how many positions have their image loaded.
function publish(v) {
  if (v.closed || !v.vp) return;
  const idx = v.vp.getCurrentImageIdIndex();
  window.medaiViewer = { t: Math.floor(idx / v.Z), z: idx % v.Z, T: v.T, Z: v.Z, playing: v.playing, fps: v.drawn.length,
    version: v.version.version, edited: v.edited.size, job: v.jobId, X: v.X, Y: v.Y, layer: `${v.layer.kind}/${v.layer.role}`,
    zoom: v.vp.getZoom(), pan: v.vp.getPan(), window: voi(v), loaded: v.loaded.size,
    renderer: `Cornerstone3D ${CS.version || ""}`.trim() };
}

function loop(v) {
  let last = 0;
  const tick = async (now) => {
    if (v.closed) return;
    const step = 1000 / v.fps;
    if (v.playing && now - last >= step - 1) {
      // keep the set rate on average: a 60 Hz display shows 40 fps as alternating one- and two-refresh frames
      last = now - last > 2 * step ? now : last + step;
      v.t = (v.t + 1) % v.T;
      await draw(v);
    }
    v.raf = requestAnimationFrame(tick);
  };
  v.raf = requestAnimationFrame(tick);
}

// -- interaction ------------------------------------------------------------------------------------------------
function setTool(v, tool) {
  if ((tool === "brush" || tool === "eraser") && !v.canEdit) return;
  v.tool = tool;
  document.querySelectorAll("[data-tool]").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.tool === tool)));
  bindTools(v); // Cornerstone3D sets its tools' cursors; the brush and eraser get a crosshair
  v.canvas.classList.toggle("painting", tool === "brush" || tool === "eraser");
}

function setPlaying(v, on) {
  v.playing = on && v.T > 1;
  const b = document.getElementById("vw-play");
  b.textContent = v.playing ? "Pause" : "Play";
  b.setAttribute("aria-pressed", String(v.playing));
}

function paint(v, ix, iy) {
  if (v.vp.getCurrentImageIdIndex() !== indexOf(v)) return false; // the position's image is still loading
  const r = v.radius, off = planeOffset(v);
  let changed = false;
  for (let y = Math.max(0, Math.floor(iy - r)); y <= Math.min(v.Y - 1, Math.ceil(iy + r)); y++) {
    for (let x = Math.max(0, Math.floor(ix - r)); x <= Math.min(v.X - 1, Math.ceil(ix + r)); x++) {
      if ((x + 0.5 - ix) ** 2 + (y + 0.5 - iy) ** 2 > r * r) continue;
      const i = off + y * v.X + x;
      if (v.tool === "brush" && v.labels[i] !== v.editValue) { v.labels[i] = v.editValue; changed = true; }
      if (v.tool === "eraser" && v.labels[i] === v.editValue) { v.labels[i] = 0; changed = true; }
    }
  }
  if (changed) { v.edited.add(`${v.t},${v.z}`); editsChanged(v); }
  return changed;
}

function editsChanged(v) {
  document.getElementById("vw-save").disabled = !v.edited.size;
  document.getElementById("vw-undo").disabled = !v.edited.size;
  document.getElementById("vw-edits").textContent = v.edited.size ? `${v.edited.size} plane(s) edited, not saved` : "";
}

function b64(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

async function save(v) {
  const planes = [...v.edited].map((k) => {
    const [t, z] = k.split(",").map(Number);
    const off = planeOffset(v, t, z);
    return { index: v.layer.shape.length === 4 ? [t, z] : [z], data: b64(v.labels.subarray(off, off + v.X * v.Y)) };
  });
  const btn = document.getElementById("vw-save");
  btn.disabled = true;
  document.getElementById("vw-edits").textContent = "measuring the corrected segmentation…";
  try {
    const out = await api(`/v1/analyses/${encodeURIComponent(v.jobId)}/versions`, { method: "POST",
      json: { base_version: v.version.version, kind: v.layer.kind, role: v.layer.role, planes } });
    toast(`Saved as version ${out.version}; measurements recomputed`);
    await loadVersion(v, out.version);
    render(v);
  } catch (e) {
    document.getElementById("vw-edits").textContent = `not saved: ${e.message}`;
    btn.disabled = false;
  }
}

function wire(v) {
  const c = v.canvas;
  document.querySelectorAll("[data-tool]").forEach((b) => b.addEventListener("click", () => setTool(v, b.dataset.tool)));
  setTool(v, v.tool);
  document.getElementById("vw-reset").addEventListener("click", () => { if (!v.vp) return; v.vp.resetCamera(); v.vp.resetProperties(); v.vp.render(); });
  document.getElementById("vw-edit-label").addEventListener("change", (e) => { v.editValue = Number(e.target.value); });
  document.getElementById("vw-radius").addEventListener("change", (e) => { v.radius = Math.max(1, Math.min(20, Number(e.target.value) || 3)); });
  document.getElementById("vw-play").addEventListener("click", () => setPlaying(v, !v.playing));
  document.getElementById("vw-fps").addEventListener("change", (e) => { v.fps = Number(e.target.value); });
  document.getElementById("vw-phase").addEventListener("input", (e) => { v.t = Number(e.target.value); draw(v); });
  document.getElementById("vw-slice").addEventListener("input", (e) => { v.z = Number(e.target.value); draw(v); });
  document.getElementById("vw-ed").addEventListener("click", () => { v.t = v.layer.ed_frame; setPlaying(v, false); draw(v); });
  document.getElementById("vw-es").addEventListener("click", () => { v.t = v.layer.es_frame; setPlaying(v, false); draw(v); });
  document.querySelectorAll("[data-label]").forEach((cb) => cb.addEventListener("change", () => {
    const l = Number(cb.dataset.label);
    if (cb.checked) v.hidden.delete(l); else v.hidden.add(l);
    draw(v);
  }));
  document.getElementById("vw-version").addEventListener("change", (e) => { location.hash = `#/viewer/${v.jobId}/${e.target.value}`; });
  document.getElementById("vw-layer").addEventListener("change", async (e) => { v.layerIndex = Number(e.target.value); await loadLayer(v); render(v); });
  document.getElementById("vw-save").addEventListener("click", () => save(v));
  document.getElementById("vw-undo").addEventListener("click", () => { v.labels = v.original.slice(); v.edited.clear(); editsChanged(v); draw(v); });
  const sign = document.getElementById("vw-sign");
  if (sign) sign.addEventListener("click", () => document.getElementById("vw-dialog").showModal());
  document.getElementById("vw-dialog").addEventListener("close", async (e) => {
    if (e.target.returnValue !== "sign") return;
    try {
      await api(`/v1/analyses/${encodeURIComponent(v.jobId)}/versions/${v.version.version}/sign`, { method: "POST", json: { organization: document.getElementById("vw-org").value } });
      toast("Report signed and locked");
      await loadVersion(v, v.version.version);
      render(v);
    } catch (err) { toast(`Not signed: ${err.message}`, "error"); }
  });
  document.getElementById("vw-send").addEventListener("click", async () => {
    try {
      const out = await api(`/v1/analyses/${encodeURIComponent(v.jobId)}/versions/${v.version.version}/send`, { method: "POST" });
      toast(`Sent ${out.pushed.join(" + ").toUpperCase()} to the PACS`);
    } catch (err) { toast(`Not sent: ${err.message}`, "error"); }
  });
  // Brush and eraser: the left button edits the label plane of the displayed position. Window/level, pan and zoom
  // are Cornerstone3D's tools (bindTools).
  let painting = false;
  c.addEventListener("contextmenu", (e) => e.preventDefault());
  c.addEventListener("pointerdown", (e) => {
    if (e.button !== 0 || (v.tool !== "brush" && v.tool !== "eraser") || !v.vp) return;
    painting = true;
    c.setPointerCapture(e.pointerId);
    const [ix, iy] = toImage(v, e);
    if (paint(v, ix, iy)) drawOverlay(v);
  });
  c.addEventListener("pointermove", (e) => {
    if (!painting) return;
    const [ix, iy] = toImage(v, e);
    if (paint(v, ix, iy)) drawOverlay(v);
  });
  c.addEventListener("pointerup", () => { painting = false; });
  const zoomBy = (f) => { if (v.vp) { v.vp.setZoom(Math.max(0.25, Math.min(16, v.vp.getZoom() * f))); v.vp.render(); } };
  v.onKey = (e) => {
    if (e.target !== c) return;
    const k = e.key;
    const handled = { ArrowUp: () => { v.z = Math.min(v.Z - 1, v.z + 1); }, ArrowDown: () => { v.z = Math.max(0, v.z - 1); },
      ArrowRight: () => { v.t = (v.t + 1) % v.T; }, ArrowLeft: () => { v.t = (v.t - 1 + v.T) % v.T; },
      " ": () => setPlaying(v, !v.playing), "+": () => zoomBy(1.2), "-": () => zoomBy(1 / 1.2),
      "0": () => { if (v.vp) { v.vp.resetCamera(); v.vp.render(); } }, b: () => setTool(v, "brush"), e: () => setTool(v, "eraser"), w: () => setTool(v, "wl"),
      p: () => setTool(v, "pan"), z: () => setTool(v, "zoom"), "[": () => { v.radius = Math.max(1, v.radius - 1); }, "]": () => { v.radius = Math.min(20, v.radius + 1); } }[k];
    if (handled) { e.preventDefault(); handled(); draw(v); }
  };
  document.addEventListener("keydown", v.onKey);
}
