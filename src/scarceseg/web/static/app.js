// scarceseg browser app: plain JS, no build step. Images come as 8-bit PNGs, windowed here;
// masks as packed bits, candidates as a uint16 label map; overlays are drawn in the canvas.
"use strict";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const S = {
  cases: [], current: null, info: null, z: null, grey: null, W: 0, H: 0,
  state: null, cand: null, repick: false, busy: false, scale: 2, hover: 0,
  tool: "box", drag: null, dragged: false, embed: null,
};
window.__clickLatencies = [];   // ms from the click event to the overlay drawn (read by the benchmark)
window.__latencies = [];        // {kind, ms}: box / segment / click / pick -> overlay drawn
window.__scarceseg = S;

// ---- HTTP -----------------------------------------------------------------------------------------
function headers(json) {
  const h = {};
  if (json) h["Content-Type"] = "application/json";
  if (params.get("user")) h["X-Scarceseg-User"] = params.get("user");
  if (params.get("token")) h["X-Scarceseg-Token"] = params.get("token");
  return h;
}
async function api(method, path, body) {
  const r = await fetch(path, { method, headers: headers(body !== undefined),
    body: body === undefined ? undefined : JSON.stringify(body) });
  const ct = r.headers.get("content-type") || "";
  const data = ct.includes("json") ? await r.json() : await r.text();
  if (!r.ok) throw new Error((data && data.detail) ? (typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail)) : r.statusText);
  return data;
}
function casePath(extra) { return `/api/cases/${encodeURIComponent(S.current)}${extra}`; }
function zq() { return S.z === null ? "" : `?z=${S.z}`; }
function setStatus(text, error) { const s = $("status"); s.textContent = text; s.className = error ? "error" : ""; }

// ---- decoding ---------------------------------------------------------------------------------------
function b64bytes(b64) { const s = atob(b64); const out = new Uint8Array(s.length); for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i); return out; }
function unpackMask(m) {
  if (!m) return null;
  const bytes = b64bytes(m.bits), n = m.shape[0] * m.shape[1], out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (bytes[i >> 3] >> (7 - (i & 7))) & 1;
  return out;
}
async function loadGrey(url) {
  const r = await fetch(url, { headers: headers(false) });
  if (!r.ok) throw new Error(`image: ${r.status}`);
  const bmp = await createImageBitmap(await r.blob());
  const c = new OffscreenCanvas(bmp.width, bmp.height), g = c.getContext("2d");
  g.drawImage(bmp, 0, 0);
  const d = g.getImageData(0, 0, bmp.width, bmp.height).data, grey = new Uint8Array(bmp.width * bmp.height);
  for (let i = 0; i < grey.length; i++) grey[i] = d[4 * i];
  return { grey, W: bmp.width, H: bmp.height };
}

// ---- drawing ----------------------------------------------------------------------------------------
const base = document.createElement("canvas"), over = document.createElement("canvas");
function renderBase() {
  base.width = S.W; base.height = S.H;
  const g = base.getContext("2d"), img = g.createImageData(S.W, S.H);
  const level = +$("level").value, width = +$("width").value, lo = level - width / 2;
  const lut = new Uint8ClampedArray(256);
  for (let v = 0; v < 256; v++) lut[v] = ((v - lo) * 255) / width;
  for (let i = 0; i < S.grey.length; i++) { const v = lut[S.grey[i]]; img.data[4 * i] = v; img.data[4 * i + 1] = v; img.data[4 * i + 2] = v; img.data[4 * i + 3] = 255; }
  g.putImageData(img, 0, 0);
}
function renderOverlay() {
  over.width = S.W; over.height = S.H;
  const g = over.getContext("2d"), img = g.createImageData(S.W, S.H), d = img.data;
  const alpha = Math.round(2.55 * +$("opacity").value), st = S.state;
  const mask = st && st.maskBits, showCand = S.cand && S.cand.labels && (!mask || $("showcand").checked || S.repick);
  if (showCand) {  // outlines of what a click selects; the candidate under the mouse filled
    const lab = S.cand.labels, col = S.cand.colours, W = S.W, H = S.H;
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
      const i = y * W + x, l = lab[i]; if (!l) continue;
      const edge = x === 0 || y === 0 || x === W - 1 || y === H - 1 || lab[i - 1] !== l || lab[i + 1] !== l || lab[i - W] !== l || lab[i + W] !== l;
      const big = S.cand.areas[l - 1] > 0.25 * W * H;  // background-like candidates: outline only on hover
      const a = l === S.hover ? (edge ? 255 : alpha) : (edge && !big ? alpha >> 1 : 0); if (!a) continue;
      const c = col[l - 1]; d[4 * i] = c[0]; d[4 * i + 1] = c[1]; d[4 * i + 2] = c[2]; d[4 * i + 3] = a;
    }
  }
  const draw = (m, rgb, a) => {
    if (!m) return;
    for (let y = 0; y < S.H; y++) for (let x = 0; x < S.W; x++) {
      const i = y * S.W + x; if (!m[i]) continue;
      const edge = x === 0 || y === 0 || x === S.W - 1 || y === S.H - 1 || !m[i - 1] || !m[i + 1] || !m[i - S.W] || !m[i + S.W];
      d[4 * i] = rgb[0]; d[4 * i + 1] = rgb[1]; d[4 * i + 2] = rgb[2]; d[4 * i + 3] = edge ? 255 : a;
    }
  };
  if (!mask && st && st.autoBits) draw(st.autoBits, [80, 170, 255], alpha >> 1);
  draw(mask, [255, 90, 40], alpha);
  g.putImageData(img, 0, 0);
}
function paint() {
  const c = $("canvas"), g = c.getContext("2d");
  c.width = S.W * S.scale; c.height = S.H * S.scale;
  g.imageSmoothingEnabled = true; g.drawImage(base, 0, 0, c.width, c.height);
  g.imageSmoothingEnabled = false; g.drawImage(over, 0, 0, c.width, c.height);
  for (const k of (S.state && S.state.clicks) || []) {
    g.beginPath(); g.arc((k.x + 0.5) * S.scale, (k.y + 0.5) * S.scale, 5, 0, 2 * Math.PI);
    g.fillStyle = k.positive ? "#3ddc55" : "#ff3b3b"; g.fill(); g.strokeStyle = "#000"; g.stroke();
  }
  const b = S.drag && S.drag.moved ? S.drag : null;
  if (b) {
    g.strokeStyle = "#ffd400"; g.lineWidth = 2; g.setLineDash([6, 4]);
    g.strokeRect(Math.min(b.x0, b.x1) * S.scale, Math.min(b.y0, b.y1) * S.scale,
      (Math.abs(b.x1 - b.x0) + 1) * S.scale, (Math.abs(b.y1 - b.y0) + 1) * S.scale);
    g.setLineDash([]); g.lineWidth = 1;
  } else if (S.state && S.state.box && $("showbox").checked) {
    const [y0, x0, y1, x1] = S.state.box;
    g.strokeStyle = "rgba(255, 212, 0, 0.7)"; g.strokeRect(x0 * S.scale, y0 * S.scale, (x1 - x0 + 1) * S.scale, (y1 - y0 + 1) * S.scale);
  }
  const p = S.state && S.state.picked && S.state.picked.point;
  if (p) { g.strokeStyle = "#fff"; g.lineWidth = 2; g.strokeRect((p[1] - 3) * S.scale, (p[0] - 3) * S.scale, 7 * S.scale, 7 * S.scale); g.lineWidth = 1; }
}
function redraw() { renderOverlay(); paint(); }

function applyState(st) {
  st.maskBits = unpackMask(st.mask);
  st.autoBits = st.auto ? unpackMask(st.auto.mask) : null;
  S.state = st;
  $("undo").disabled = !st.can_undo; $("redo").disabled = !st.can_redo;
  $("save").disabled = !st.picked;
}

// ---- loading a case / slice ---------------------------------------------------------------------------
async function openCase(id) {
  S.current = id; S.repick = false;
  for (const el of document.querySelectorAll("nav .case")) el.classList.toggle("current", el.dataset.id === id);
  S.info = await api("GET", casePath(""));
  $("segrow").hidden = !S.info.dicom;  // DICOM SEG only for cases read from DICOM
  if (!S.info.dicom) $("asseg").checked = false;
  const vol = S.info.ndim === 3;
  $("sliceRow").hidden = !vol;
  if (vol) { $("slice").max = S.info.shape[0] - 1; S.z = Math.floor(S.info.shape[0] / 2); $("slice").value = S.z; }
  else S.z = null;
  await loadSlice();
}
async function loadSlice() {
  if (S.z !== null) $("sliceText").textContent = `${S.z} / ${S.info.shape[0] - 1}`;
  const [img, st] = await Promise.all([loadGrey(casePath("/image.png") + zq()), api("GET", casePath("/state") + zq())]);
  Object.assign(S, img);
  const maxSide = Math.max(S.W, S.H);
  S.scale = Math.max(1, Math.min(4, Math.floor(640 / maxSide))) || 1;
  applyState(st);
  await loadCandidates();
  renderBase(); redraw();
  setStatus(st.picked ? `${st.key}: step ${st.step}; click adds, shift-click removes` : st.auto ? suggestionHint(st) : startHint(st.key));
  startEmbedding().catch((e) => { $("embed").textContent = `prior: ${e.message}`; });
}
function suggestionHint(st) {
  const u = st.auto.uncertainty != null ? `, uncertainty ${st.auto.uncertainty}` : "";
  return `${st.key}: suggestion of ${st.auto.method || "the learner"}${st.auto.run ? ` (model ${st.auto.run}${u})` : u}: a accepts it, a click corrects it, a drag starts over`;
}
function startHint(key) {
  if (S.tool === "box") return `${key}: drag a box around the lesion (or click it once)`;
  if (S.tool === "click") return `${key}: click the lesion once`;
  return S.cand && S.cand.labels ? `${key}: click on the lesion to pick its candidate` : `${key}: press Propose (g) to compute candidates`;
}
// the prior's embedding of the shown image is computed in the background as soon as it is shown
async function startEmbedding() {
  const id = S.current, z = S.z, here = () => id === S.current && z === S.z;
  let st = await api("POST", `/api/cases/${encodeURIComponent(id)}/embed`, { z });
  while (here() && (st.status === "queued" || st.status === "running")) {
    S.embed = st; $("embed").textContent = `prior: encoding the image (${st.status})`; $("embed").className = "busy";
    await new Promise((r) => setTimeout(r, 300));
    st = await api("GET", `/api/cases/${encodeURIComponent(id)}/embedding${z === null ? "" : `?z=${z}`}`);
  }
  if (!here()) return;
  S.embed = st;
  $("embed").className = st.status === "ready" ? "ready" : "error";
  $("embed").textContent = st.status === "ready" ? `prior: ready (encoded in ${st.seconds} s)` : `prior: ${st.status} ${st.error || ""}`;
}
async function loadCandidates() {
  const c = await api("GET", casePath("/candidates") + zq());
  if (c.proposed) {
    const bytes = b64bytes(c.labels); c.labels = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2);
    $("sheet").src = casePath("/contact_sheet.png") + (S.z === null ? "?" : zq() + "&") + "t=" + Date.now();
  } else { c.labels = null; $("sheet").removeAttribute("src"); }
  S.cand = c;
}
async function refreshCases() {
  const r = await api("GET", `/api/cases?order=${$("order").value}`);
  S.cases = r.cases.map((c) => c.case_id);
  $("overall").textContent = `${r.n_saved} / ${r.n_cases} saved`;
  const nav = $("cases"); nav.innerHTML = "";
  for (const c of r.cases) {
    const el = document.createElement("div"); el.className = "case" + (c.case_id === S.current ? " current" : ""); el.dataset.id = c.case_id;
    const name = document.createElement("span"); name.textContent = c.case_id;
    const b = document.createElement("span"); b.className = "badges";
    b.innerHTML = (c.saved ? '<span class="saved" title="saved">&#10003;</span> ' : "") + (c.started ? '<span class="started" title="in progress">&#9679;</span> ' : "")
      + (c.auto ? `<span class="auto" title="a suggestion of the learner${c.uncertainty != null ? ` (uncertainty ${c.uncertainty}: mean entropy of its probability over the pixels it gives >= 5 %)` : ""}">A${c.uncertainty != null && !c.saved ? ` ${c.uncertainty.toFixed(2)}` : ""}</span> ` : "") + (c.proposed ? '<span title="candidates computed">&#9675;</span>' : "");
    el.append(name, b); el.onclick = () => openCase(c.case_id).catch((e) => setStatus(e.message, true));
    nav.append(el);
  }
}

// ---- jobs -------------------------------------------------------------------------------------------
async function runJob(start, label) {
  let job = await start();
  $("progress").value = 0;
  while (job.status === "queued" || job.status === "running") {
    if (job.total) { $("progress").max = job.total; $("progress").value = job.done || 0; }
    else $("progress").removeAttribute("value");  // no total known: an indeterminate bar, not a made-up one
    const eta = job.eta_seconds != null ? `, about ${clock(job.eta_seconds)} left` : "";
    $("jobtext").textContent = `${label}: ${job.message || job.status} ${job.total ? `${job.done}/${job.total}` : ""}${eta} (${clock(job.seconds)} so far)`;
    await new Promise((r) => setTimeout(r, 250));
    job = await api("GET", `/api/jobs/${job.id}`);
  }
  $("progress").max = 1; $("progress").value = job.status === "done" ? 1 : 0;
  $("jobtext").textContent = job.status === "done" ? `${label}: done in ${job.seconds} s` : `${label} failed: ${job.error}`;
  if (job.status !== "done") throw new Error(job.error);
  return job;
}
function clock(sec) { sec = Math.max(0, Math.round(sec || 0)); return `${Math.floor(sec / 60)}:${String(sec % 60).padStart(2, "0")}`; }
async function propose() {
  if (!S.current) return;
  const id = S.current, z = S.z;
  await runJob(() => api("POST", `/api/cases/${encodeURIComponent(id)}/propose`, { z }), "propose");
  if (S.current === id && S.z === z) { await loadSlice(); }
  refreshCases();
}

// ---- editing ----------------------------------------------------------------------------------------
let pending = 0, chain = Promise.resolve();
function edit(kind, body, t0) {  // edits run one after another, in click order (none is dropped)
  pending++; S.busy = true;
  const target = { id: S.current, z: S.z };  // the image shown when the user acted
  chain = chain.then(() => doEdit(kind, body, t0, target)).finally(() => { pending--; S.busy = pending > 0; });
  return chain;
}
async function doEdit(kind, body, t0, target) {
  if (!target.id) return;
  const here = () => target.id === S.current && target.z === S.z;  // still showing the image acted on?
  if (kind === "canvas") {  // the first click starts a mask (prior or candidate), later ones correct it
    if (!here()) return;  // a click is only meaningful on the image still shown
    if (!S.state.picked && !S.repick && S.state.auto && S.tool !== "cand") {  // the suggestion becomes the mask
      try { applyState(await api("POST", `/api/cases/${encodeURIComponent(target.id)}/adopt`, { z: target.z })); }
      catch (e) { setStatus(e.message, true); return; }
    }
    if (!S.state.picked || S.repick) {
      if (S.tool === "cand") {
        if (!S.cand || !S.cand.labels) { setStatus("no candidates yet: press Propose (g)", true); return; }
        kind = "pick";
      } else kind = "segment";  // one click -> a box from the prior
      body = { y: body.y, x: body.x };
    } else { kind = "click"; body = { ...body, refiner: $("refiner").value || undefined }; }
  }
  if (kind === "box" && !here()) return;
  if (kind === "box" || kind === "segment") setStatus(S.embed && S.embed.status !== "ready" ? "waiting for the prior's embedding..." : "asking the prior...");
  try {
    const st = await api("POST", `/api/cases/${encodeURIComponent(target.id)}/${kind}`, { z: target.z, ...body });
    if (!here()) { if (kind === "save" || kind === "accept") refreshCases(); return; }  // saved etc., but the user moved on
    applyState(st);
    if (kind === "pick" || kind === "box" || kind === "segment") S.repick = false;
    redraw();
    if (t0 !== undefined) requestAnimationFrame(() => {
      const ms = performance.now() - t0;
      window.__latencies.push({ kind, ms });
      if (kind === "click" || kind === "pick") window.__clickLatencies.push(ms);
    });
    if (st.job) followPropagation(st.job, target);
    setStatus(`${st.key}: step ${st.step}` + (st.refine_ms !== null ? ` (refined in ${st.refine_ms} ms)` : "") + (st.saved ? ` - saved ${st.saved.file}` : ""));
    if (st.accepted) setStatus(`${st.key}: suggestion accepted - saved ${st.saved.file}`);
    if (kind === "pick" || kind === "save" || kind === "accept" || kind === "box" || kind === "segment") refreshCases();
  } catch (e) { setStatus(e.message, true); }
}
async function followPropagation(job, target) {  // a box on a volume slice: the neighbours follow
  await runJob(async () => job, "propagate");
  if (target.id === S.current) refreshCases();
}
function pixelOf(ev) {
  const r = $("canvas").getBoundingClientRect();
  return { x: Math.floor(((ev.clientX - r.left) / r.width) * S.W), y: Math.floor(((ev.clientY - r.top) / r.height) * S.H) };
}
function onCanvas(ev, negative) {
  ev.preventDefault();
  const t0 = performance.now();
  if (S.dragged) { S.dragged = false; return; }  // the end of a box drag, not a click
  if (!S.current || !S.W) return;
  const { x, y } = pixelOf(ev);
  if (x < 0 || y < 0 || x >= S.W || y >= S.H) return;
  edit("canvas", { y, x, positive: !(negative || ev.shiftKey) }, t0);  // start or correct: decided in turn
}
// the box tool: drag on the image (a drag always starts a new mask)
$("canvas").addEventListener("mousedown", (ev) => {
  if (ev.button !== 0 || S.tool !== "box" || ev.shiftKey || !S.W) return;
  const { x, y } = pixelOf(ev);
  S.drag = { x0: x, y0: y, x1: x, y1: y, moved: false };
});
window.addEventListener("mousemove", (ev) => {
  if (!S.drag) return;
  const { x, y } = pixelOf(ev);
  S.drag.x1 = Math.max(0, Math.min(S.W - 1, x)); S.drag.y1 = Math.max(0, Math.min(S.H - 1, y));
  if (Math.abs(S.drag.x1 - S.drag.x0) > 2 || Math.abs(S.drag.y1 - S.drag.y0) > 2) S.drag.moved = true;
  if (S.drag.moved) paint();
});
window.addEventListener("mouseup", (ev) => {
  const d = S.drag; S.drag = null;
  if (!d || !d.moved) return;
  const t0 = performance.now();
  S.dragged = ev.target === $("canvas");  // the click event that follows is part of the drag
  const box = { y0: Math.min(d.y0, d.y1), x0: Math.max(0, Math.min(d.x0, d.x1)), y1: Math.max(d.y0, d.y1), x1: Math.max(d.x0, d.x1) };
  box.y0 = Math.max(0, box.y0);
  paint();
  edit("box", box, t0);
});
$("canvas").addEventListener("click", (ev) => onCanvas(ev, false));
$("canvas").addEventListener("contextmenu", (ev) => onCanvas(ev, true));
$("canvas").addEventListener("mousemove", (ev) => {  // highlight the candidate a click would pick
  if (!S.cand || !S.cand.labels || (S.state && S.state.picked && !S.repick && !$("showcand").checked)) return;
  const r = $("canvas").getBoundingClientRect();
  const x = Math.floor(((ev.clientX - r.left) / r.width) * S.W), y = Math.floor(((ev.clientY - r.top) / r.height) * S.H);
  const l = x >= 0 && y >= 0 && x < S.W && y < S.H ? S.cand.labels[y * S.W + x] : 0;
  if (l !== S.hover) { S.hover = l; redraw(); }
});
$("canvas").addEventListener("wheel", (ev) => { if (S.z !== null) { ev.preventDefault(); step(ev.deltaY > 0 ? 1 : -1); } }, { passive: false });
function step(d) {
  if (S.z === null) return;
  const z = Math.max(0, Math.min(S.info.shape[0] - 1, S.z + d));
  if (z !== S.z) { S.z = z; $("slice").value = z; loadSlice().catch((e) => setStatus(e.message, true)); }
}
function move(d) {
  const i = S.cases.indexOf(S.current), j = Math.max(0, Math.min(S.cases.length - 1, (i < 0 ? 0 : i + d)));
  if (S.cases[j] && S.cases[j] !== S.current) openCase(S.cases[j]).catch((e) => setStatus(e.message, true));
}
function resetWindow() { $("level").value = 128; $("width").value = 255; renderBase(); paint(); }

$("propose").onclick = () => propose().catch((e) => setStatus(e.message, true));
$("repick").onclick = () => { S.repick = true; redraw(); setStatus(startHint(S.state ? S.state.key : "")); };
function setTool(tool) {
  S.tool = tool;
  for (const el of document.querySelectorAll("input[name=tool]")) el.checked = el.value === tool;
  if (S.state) setStatus(S.state.picked && !S.repick ? `${S.state.key}: click adds, shift-click removes; ${tool === "box" ? "a drag starts a new mask" : "r starts a new mask"}` : startHint(S.state.key));
}
for (const el of document.querySelectorAll("input[name=tool]")) el.onchange = () => setTool(el.value);
$("showbox").onchange = () => paint();
$("undo").onclick = () => edit("undo", {});
$("redo").onclick = () => edit("redo", {});
const saveBody = () => ($("asseg").checked ? { format: "dicom-seg" } : {});
$("save").onclick = () => edit("save", saveBody());
$("opacity").oninput = redraw;
$("showcand").onchange = redraw;
$("level").oninput = $("width").oninput = () => { if (S.grey) { renderBase(); paint(); } };
$("slice").oninput = () => { S.z = +$("slice").value; loadSlice().catch((e) => setStatus(e.message, true)); };
$("train").onclick = () => runJob(() => api("POST", "/api/train", { episodes: +$("episodes").value, method: $("learner").value }), `train ${$("learner").value}`)
  .then((j) => { setStatus(`${j.result.method} trained on ${j.result.n_images} images (model ${j.result.run})` + (j.result.train_accuracy != null ? ` (accuracy ${j.result.train_accuracy})` : "")); return loadRuns(); })
  .catch((e) => setStatus(e.message, true));
$("segrest").onclick = () => runJob(() => api("POST", "/api/segment-rest", { method: $("learner").value }), "segment the rest")
  .then((j) => { setStatus(`${j.result.method} proposed masks for ${j.result.segmented} images`); refreshCases(); if (S.current) loadSlice(); })
  .catch((e) => setStatus(e.message, true));
async function learn() {
  const method = $("learner").value, body = { method };
  if ($("steps").value) body.steps = +$("steps").value;
  const j = await runJob(() => api("POST", "/api/learn", body), `learn ${method}`);
  const r = j.result;
  await loadRuns(); await refreshCases(); if (S.current) await loadSlice();
  setStatus(`model ${r.run.run} of ${method} learnt from ${r.run.n_images} masks in ${j.seconds} s; ${r.suggested.segmented} suggestions`
    + ($("order").value === "uncertainty" ? " (most uncertain first)" : ""));
}
async function loadRuns() {
  const m = await api("GET", `/api/models/${encodeURIComponent($("learner").value)}`), sel = $("runs");
  sel.replaceChildren(...m.runs.map((r) => {
    const o = document.createElement("option"); o.value = r.run; o.selected = r.active;
    o.textContent = `${r.run}: ${r.n_images} masks, ${(r.created || "").replace("T", " ").slice(5, 16)}`;
    o.title = `trained on ${(r.case_ids || []).join(", ")}`; return o;
  }));
  if (!m.runs.length) { const o = document.createElement("option"); o.textContent = "none yet"; o.value = ""; sel.append(o); }
  sel.disabled = !m.runs.length;
  $("learn").textContent = m.runs.length ? "Learn again" : "Learn from my masks";
}
async function useRun(run) {
  const method = $("learner").value;
  const r = await api("POST", `/api/models/${encodeURIComponent(method)}/activate`, { run, suggest: true });
  const j = await runJob(async () => r.job, `suggest with model ${run}`);
  await refreshCases(); if (S.current) await loadSlice();
  setStatus(`model ${run} of ${method} in use; ${j.result.segmented} suggestions made again`);
}
$("learn").onclick = () => learn().catch((e) => setStatus(e.message, true));
$("runs").onchange = () => { if ($("runs").value) useRun($("runs").value).catch((e) => setStatus(e.message, true)); };
$("learner").onchange = () => loadRuns().catch((e) => setStatus(e.message, true));
$("order").onchange = () => refreshCases().catch((e) => setStatus(e.message, true));
function fillSelect(sel, rows, chosen) {
  sel.replaceChildren(...rows.map((r) => { const o = document.createElement("option"); o.value = r.name; o.textContent = r.name; o.title = r.summary; o.selected = r.name === chosen; return o; }));
}
async function loadMethods() {
  const m = await api("GET", "/api/methods");
  fillSelect($("learner"), m.learners, "fewshot");
  await loadRuns();
}
document.addEventListener("keydown", (ev) => {
  if (ev.target.tagName === "INPUT" && ev.target.type !== "range" && ev.target.type !== "checkbox") return;
  const k = ev.key.toLowerCase();
  const acts = { z: () => edit("undo", {}), y: () => edit("redo", {}), s: () => edit("save", saveBody()), n: () => move(1),
    a: () => edit("accept", saveBody()),
    p: () => move(-1), g: () => $("propose").click(), r: () => $("repick").click(), w: resetWindow,
    b: () => setTool("box"), k: () => setTool("click"), m: () => setTool("cand"),
    c: () => { $("showcand").checked = !$("showcand").checked; redraw(); },
    arrowup: () => step(1), arrowdown: () => step(-1) };
  if (acts[k] && !ev.metaKey && !ev.altKey) { ev.preventDefault(); acts[k](); }
});

(async () => {
  try {
    const info = await api("GET", "/api/info");
    $("folder").textContent = `${info.folder} (${info.layout}, ${info.n_cases} images, refiner ${info.refiner})`;
    $("user").textContent = `user: ${info.user}`;
    $("episodes").value = info.episodes;
    const sel = $("refiner"); sel.innerHTML = "";
    for (const name of info.refiners || [info.refiner]) { const o = document.createElement("option"); o.value = o.textContent = name; sel.append(o); }
    sel.value = info.refiner;
    await loadMethods();
    await refreshCases();
    if (S.cases.length) await openCase(params.get("case") && S.cases.includes(params.get("case")) ? params.get("case") : S.cases[0]);
    window.__ready = true;
  } catch (e) { setStatus(e.message, true); }
})();
