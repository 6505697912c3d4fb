// labelhost's dashboard: reads the server's JSON routes every few seconds and draws
// them. No framework and no build step: this file is served as it is.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  token: localStorage.getItem("labelhost.token") || "",
  // Whether the app buttons show: with auth off always (the server still keeps app
  // management to loopback), with auth on for an admin's token.
  admin: true,
  job: null,
  images: [],
};

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

// Every call carries the token (when one is set); a typed error's detail is shown.
async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (state.token) headers.Authorization = "Bearer " + state.token;
  const r = await fetch(path, Object.assign({}, options, { headers }));
  const text = await r.text();
  const body = text ? JSON.parse(text) : null;
  if (!r.ok) {
    if (r.status === 401) $("token-form").hidden = false;
    throw new Error(`${r.status} ${path}: ${(body && body.detail) || text}`);
  }
  return body;
}

function showError(e) {
  $("error").textContent = e ? String(e.message || e) : "";
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

async function refreshApps() {
  const { apps } = await api("/apps");
  fill($("apps").tBodies[0], apps.map((a) => {
    const tasks = (a.tasks || []).map((t) => `${t.kind}:${t.name}`).join(" ");
    const act = (verb, method, path) => el("button", {
      onclick: async () => {
        if (!confirm(`${verb} ${a.name}?`)) return;
        try { await api(path, { method }); showError(null); await refreshApps(); } catch (e) { showError(e); }
      },
    }, verb);
    const buttons = state.admin
      ? [act("Reload", "POST", `/apps/${a.name}/reload`), act("Retire", "DELETE", `/apps/${a.name}`)]
      : [];
    return el("tr", { "data-app": a.name },
      el("td", {}, a.name), el("td", {}, a.version), el("td", {}, a.generation),
      el("td", {}, a.plugin_api), el("td", { class: "tasks" }, tasks),
      el("td", {}, ...buttons));
  }));
}

async function refreshStatus() {
  const s = await api("/status");
  $("version").textContent = "v" + s.version;
  fill($("queues").tBodies[0], s.devices.map((d) => el("tr", { "data-device": d.device },
    el("td", {}, d.device), el("td", {}, d.running), el("td", {}, d.waiting), el("td", {}, d.slots))));
  const mib = (b) => (b / 1048576).toFixed(0) + " MiB";
  $("memory").textContent = s.memory
    ? `Memory: ${mib(s.memory.resident)} resident, ${mib(s.memory.peak_resident)} peak; ${s.libraries_mapped} plugin libraries mapped`
    : "";
}

async function refreshDatastore() {
  const all = await api("/datastore/?output=all");
  const objects = all.objects || {};
  const ids = Object.keys(objects).sort();
  const tags = {};
  const byUser = {};
  let labelled = 0;
  for (const id of ids) {
    const labels = objects[id].labels || {};
    for (const tag of Object.keys(labels)) tags[tag] = (tags[tag] || 0) + 1;
    if (labels.final) {
      labelled += 1;
      const info = labels.final.info || {};
      const who = info.user || info.client_id || "unknown";
      byUser[who] = (byUser[who] || 0) + 1;
    }
  }
  const pct = ids.length ? (100 * labelled) / ids.length : 0;
  $("labelled-bar").style.width = pct.toFixed(1) + "%";
  const tagText = Object.entries(tags).map(([t, n]) => `${t} ${n}`).join(", ") || "none";
  $("datastore-counts").textContent =
    `${labelled} of ${ids.length} images labelled (${pct.toFixed(0)}%); labels by tag: ${tagText}`;
  $("datastore-counts").dataset.total = ids.length;
  $("datastore-counts").dataset.labelled = labelled;
  fill($("by-user").tBodies[0], Object.entries(byUser).sort((a, b) => b[1] - a[1])
    .map(([who, n]) => el("tr", {}, el("td", {}, who), el("td", {}, n))));
  if (ids.join() !== state.images.join()) {
    state.images = ids;
    const select = $("viewer-image");
    const current = select.value;
    select.replaceChildren(...ids.map((id) => el("option", { value: id }, id)));
    if (ids.includes(current)) select.value = current;
    if (!current && ids.length) await loadSlice(true);
  }
}

async function refreshJobs() {
  let jobs = [];
  try {
    jobs = await api("/train/?all=true");
  } catch (e) {
    if (!String(e.message).startsWith("404")) throw e;
  }
  jobs = jobs.slice().reverse();
  if (!state.job || !jobs.some((j) => j.id === state.job)) {
    const withCurve = jobs.find((j) => (j.history || []).length);
    state.job = (withCurve || jobs[0] || {}).id || null;
  }
  fill($("jobs").tBodies[0], jobs.map((j) => {
    const best = j.train_stats && j.train_stats.best_metric;
    return el("tr", {
      class: "job" + (j.id === state.job ? " selected" : ""), "data-job": j.id,
      onclick: () => { state.job = j.id; refreshJobs().catch(showError); },
    }, el("td", {}, j.id.slice(0, 8)), el("td", {}, (j.request && j.request.model) || ""),
    el("td", {}, j.status), el("td", {}, j.start_ts), el("td", {}, (j.history || []).length),
    el("td", {}, typeof best === "number" ? best.toFixed(4) : ""));
  }));
  drawCurve(jobs.find((j) => j.id === state.job));
}

// Train loss (left scale, its minimum to its maximum) and the validation key metric
// (right scale, 0 to 1) per epoch.
function drawCurve(job) {
  const c = $("curve");
  const g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  const points = (job && job.history) || [];
  c.dataset.points = points.length;
  c.dataset.job = job ? job.id : "";
  const pad = { l: 48, r: 48, t: 12, b: 28 };
  const w = c.width - pad.l - pad.r, h = c.height - pad.t - pad.b;
  g.strokeStyle = "#ccd2d8";
  g.strokeRect(pad.l, pad.t, w, h);
  g.fillStyle = "#4a5561";
  g.font = "12px system-ui";
  if (!points.length) {
    g.fillText(job ? "no finished epoch yet" : "no training job", pad.l + 8, pad.t + 20);
    return;
  }
  const pick = (p, side) => {
    const m = p[side] || {};
    const key = side === "train" ? "train_loss" : Object.keys(m).find((k) => k.startsWith("val_")) || Object.keys(m)[0];
    return typeof m[key] === "number" ? m[key] : null;
  };
  const epochs = points.map((p) => p.epoch);
  const [e0, e1] = [Math.min(...epochs), Math.max(...epochs)];
  const x = (e) => pad.l + (e1 === e0 ? w / 2 : ((e - e0) / (e1 - e0)) * w);
  const losses = points.map((p) => pick(p, "train")).filter((v) => v !== null);
  const [lossMin, lossMax] = [Math.min(...losses), Math.max(...losses)];
  const lossSpan = Math.max(1e-9, lossMax - lossMin);
  const series = [
    { side: "train", color: "#d0573a", y: (v) => pad.t + h - ((v - lossMin) / lossSpan) * h },
    { side: "eval", color: "#2e6fd0", y: (v) => pad.t + h - Math.min(1, Math.max(0, v)) * h },
  ];
  for (const s of series) {
    g.strokeStyle = s.color;
    g.fillStyle = s.color;
    g.beginPath();
    let drawn = 0;
    for (const p of points) {
      const v = pick(p, s.side);
      if (v === null) continue;
      const [px, py] = [x(p.epoch), s.y(v)];
      if (drawn++) g.lineTo(px, py); else g.moveTo(px, py);
      g.fillRect(px - 2, py - 2, 4, 4);
    }
    g.stroke();
  }
  g.fillStyle = "#4a5561";
  if (losses.length) {
    g.fillText(lossMax.toPrecision(3), 4, pad.t + 10);
    g.fillText(lossMin.toPrecision(3), 4, pad.t + h);
  }
  g.fillText("1.0", pad.l + w + 6, pad.t + 10);
  g.fillText("0", pad.l + w + 6, pad.t + h);
  g.fillText(`epoch ${e0}`, pad.l, c.height - 8);
  g.fillText(`epoch ${e1}`, pad.l + w - 50, c.height - 8);
}

// Grey image; the final (annotator's) label filled, a colour per label value, the original
// (model's) label's outlines in amber over it, so where the annotator changed the model's
// answer shows.
const PALETTE = [[40, 200, 90], [60, 130, 240], [220, 70, 200], [240, 220, 60], [80, 220, 230], [240, 110, 60]];
async function loadSlice(resetIndex) {
  const image = $("viewer-image").value;
  if (!image) return;
  const axis = $("viewer-axis").value;
  const q = new URLSearchParams({ image, axis });
  if (!resetIndex) q.set("index", $("viewer-index").value);
  const s = await api("/ui/slice?" + q);
  const slider = $("viewer-index");
  slider.max = s.shape[s.axis] - 1;
  slider.value = s.index;
  const c = $("slice");
  c.width = s.width;
  c.height = s.height;
  const g = c.getContext("2d");
  const img = g.createImageData(s.width, s.height);
  const fill = $("show-final").checked && Array.isArray(s.labels.final) ? s.labels.final : null;
  const outline = $("show-original").checked && Array.isArray(s.labels.original) ? s.labels.original : null;
  const [w, h] = [s.width, s.height];
  // A voxel of a label whose 4-neighbour holds another value (or is off the plane).
  const edge = (label, i) => {
    const [x, y] = [i % w, Math.floor(i / w)];
    return [[x - 1, y], [x + 1, y], [x, y - 1], [x, y + 1]].some(([u, v]) =>
      u < 0 || v < 0 || u >= w || v >= h || label[v * w + u] !== label[i]);
  };
  for (let i = 0; i < s.pixels.length; i++) {
    let rgb = [s.pixels[i], s.pixels[i], s.pixels[i]];
    if (fill && fill[i] > 0) {
      const color = PALETTE[(fill[i] - 1) % PALETTE.length];
      rgb = rgb.map((v, k) => Math.round(0.5 * v + 0.5 * color[k]));
    }
    if (outline && outline[i] > 0 && edge(outline, i)) rgb = [255, 176, 0];
    img.data.set([rgb[0], rgb[1], rgb[2], 255], 4 * i);
  }
  g.putImageData(img, 0, 0);
  c.dataset.image = s.image;
  c.dataset.labels = Object.keys(s.labels).join(",");
  $("viewer-where").textContent = `${s.image}: axis ${s.axis}, plane ${s.index} of ${s.shape[s.axis]}`;
}

async function refresh() {
  const parts = [refreshApps(), refreshStatus(), refreshDatastore(), refreshJobs()];
  const results = await Promise.allSettled(parts);
  const failed = results.find((r) => r.status === "rejected");
  showError(failed ? failed.reason : null);
  document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
}

// With auth on: who the token belongs to decides whether the app buttons show.
async function checkRoles() {
  let auth = null;
  try { auth = await api("/auth/"); } catch (e) { return; /* 404: auth is off */ }
  if (!auth || !auth.enabled) return;
  $("token-form").hidden = false;
  state.admin = false;
  if (!state.token) return;
  try {
    const me = await api("/auth/token/valid");
    state.admin = (me.roles || []).includes("admin");
    $("version").dataset.user = me.username;
  } catch (e) { showError(e); }
}

async function start() {
  // A link may carry the token in its fragment (`/ui/#token=...`), which never reaches a
  // server; it is kept like a typed one and taken out of the address bar.
  const fromLink = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromLink) {
    state.token = fromLink;
    localStorage.setItem("labelhost.token", state.token);
    history.replaceState(null, "", location.pathname);
  }
  $("token").value = state.token;
  $("token-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    state.token = $("token").value.trim();
    localStorage.setItem("labelhost.token", state.token);
    await checkRoles();
    refresh();
  });
  await checkRoles();
  const reslice = (reset) => () => loadSlice(reset).catch(showError);
  $("viewer-image").addEventListener("change", reslice(true));
  $("viewer-axis").addEventListener("change", reslice(true));
  $("viewer-index").addEventListener("input", reslice(false));
  $("show-original").addEventListener("change", reslice(false));
  $("show-final").addEventListener("change", reslice(false));
  await refresh();
  setInterval(refresh, 3000);
}

start();
