// Site dashboard: camera grid, recent people, counts over time, line/zone editor.
// Plain JS and hand-written SVG (no framework, no charting library, no CDN): the charts are
// a few dozen rectangles, which SVG draws crisply at any size and a test can count.
// Test hooks: body[data-cameras] = number of tiles drawn; #chart-hours[data-total-in|out];
// #e-status[data-save] = "ok" | "error" after a save.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  const TOKEN_KEY = "streamer.token";
  let token = sessionStorage.getItem(TOKEN_KEY) || "";
  let cameras = [];
  let large = null;

  // ---- fetching --------------------------------------------------------------------------
  const headers = () => (token ? { Authorization: "Bearer " + token } : {});
  const withToken = (url) => (token ? url + (url.includes("?") ? "&" : "?") + "access_token=" +
    encodeURIComponent(token) : url);

  async function api(url, opts) {
    const resp = await fetch(url, Object.assign({ headers: headers(), cache: "no-store" }, opts || {}));
    let body = null;
    try { body = await resp.json(); } catch (e) { body = null; }
    if (resp.status === 401) $("token-form").hidden = false;
    if (!resp.ok) {
      const err = new Error((body && body.error) || "HTTP " + resp.status);
      err.status = resp.status;
      err.body = body;
      throw err;
    }
    return body;
  }

  function banner(text) {
    $("site-status").textContent = text || "";
    $("site-status").hidden = !text;
  }

  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    token = $("token").value.trim();
    sessionStorage.setItem(TOKEN_KEY, token);
    $("token-form").hidden = true;
    start();
  });

  function el(tag, attrs, text) {
    const e = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // ---- camera grid -------------------------------------------------------------------------
  function countsText(c) {
    const names = Object.keys(c || {});
    if (!names.length) return "no lines or zones";
    return names.map((k) => typeof c[k] === "object"
      ? k + ": " + (c[k].in || 0) + " in / " + (c[k].out || 0) + " out" : k + ": " + c[k]).join(", ");
  }

  function drawGrid() {
    const grid = $("grid");
    const tiles = new Map([...grid.children].map((t) => [t.dataset.name, t]));
    for (const c of cameras) {
      let t = tiles.get(c.name);
      if (!t) {
        t = el("div", { class: "tile", tabindex: "0", "data-name": c.name, role: "button" });
        t.append(el("img", { alt: "camera " + c.name }), el("div", { class: "meta" }));
        t.addEventListener("click", () => openLarge(c.name));
        t.addEventListener("keydown", (ev) => { if (ev.key === "Enter") openLarge(c.name); });
        grid.append(t);
      }
      tiles.delete(c.name);
      const meta = t.querySelector(".meta");
      meta.replaceChildren(
        el("div", {}, ""), el("div", { class: "counts" }, "today: " + countsText(c.counts)));
      const head = meta.firstChild;
      head.append(el("span", { class: "name" }, c.name + " "), el("span", { class: "badge " + c.status }, c.status),
        el("span", { class: "fps" }, " " + Number(c.fps || 0).toFixed(1) + " fps"));
      if (c.reason) meta.append(el("div", { class: "reason" }, c.reason));
      t.dataset.status = c.status;
    }
    for (const t of tiles.values()) t.remove();
    document.body.dataset.cameras = String(grid.children.length);
  }

  function refreshSnapshots() {  // the grid shows refreshed snapshots: no server thread per tile
    for (const t of $("grid").children) {
      const img = t.querySelector("img");
      if (img.dataset.loading === "1") continue;
      img.dataset.loading = "1";
      const next = new Image();
      next.onload = () => { img.src = next.src; img.dataset.loading = "0"; img.dataset.loaded = "1"; };
      next.onerror = () => { img.dataset.loading = "0"; };
      next.src = withToken("/api/cameras/" + encodeURIComponent(t.dataset.name) + "/snapshot.jpg?t=" + Date.now());
    }
  }

  function openLarge(name) {
    large = name;
    $("large-name").textContent = name;
    $("large-img").src = withToken("/api/cameras/" + encodeURIComponent(name) + "/stream.mjpg");
    $("large").hidden = false;
    $("large").scrollIntoView({ block: "nearest" });
  }
  $("large-close").addEventListener("click", () => {
    large = null;
    $("large-img").removeAttribute("src");  // closes the MJPEG connection
    $("large").hidden = true;
  });

  async function pollCameras() {
    try {
      cameras = await api("/api/cameras");
      banner("");
      drawGrid();
      fillSelects();
    } catch (e) {
      banner(e.status === 404 ? e.message : "cameras: " + e.message);
    }
  }

  function fillSelects() {
    for (const id of ["c-camera", "e-camera"]) {
      const sel = $(id);
      const have = new Set([...sel.options].map((o) => o.value));
      for (const c of cameras) if (!have.has(c.name)) sel.append(el("option", { value: c.name }, c.name));
    }
    const lines = new Set();
    for (const c of cameras) for (const [k, v] of Object.entries(c.counts || {})) if (typeof v === "object") lines.add(k);
    const sel = $("c-line");
    const have = new Set([...sel.options].map((o) => o.value));
    for (const l of lines) if (!have.has(l)) sel.append(el("option", { value: l }, l));
    if (!$("e-camera").dataset.loaded && cameras.length) loadGeometry();
  }

  // ---- recent people -----------------------------------------------------------------------
  const pad = (n) => String(n).padStart(2, "0");
  const clock = (d) => pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());

  async function pollPeople() {
    let body;
    try { body = await api("/api/events?type=end&limit=20"); } catch (e) { return; }
    const tb = $("people").tBodies[0];
    tb.replaceChildren();
    for (const e of body.events) {
      const r = tb.insertRow();
      const thumb = r.insertCell();
      if (body.crops) thumb.append(el("img", { class: "thumb", alt: "", src: withToken("/api/crops/" + encodeURIComponent(e.id) + ".jpg") }));
      r.insertCell().textContent = clock(new Date(e.ts));
      r.insertCell().textContent = e.camera;
      r.insertCell().textContent = e.gender ? e.gender.label : "unknown";
      r.insertCell().textContent = e.age ? e.age.range : "–";
      r.insertCell().textContent = e.dwell_s === undefined ? "–" : Number(e.dwell_s).toFixed(1) + " s";
      if (e.attributes_reason) r.title = e.attributes_reason;
    }
    $("people-none").hidden = body.events.length > 0;
  }

  // ---- counts over time --------------------------------------------------------------------
  function dayRange() {
    const [y, m, d] = $("c-day").value.split("-").map(Number);
    const start = new Date(y, m - 1, d);
    const end = new Date(y, m - 1, d + 1);
    return [start.getTime() / 1000, end.getTime() / 1000];
  }

  function countsQuery() {
    const [since, until] = dayRange();
    const q = new URLSearchParams({ bucket: "hour", since: String(since), until: String(until) });
    if ($("c-camera").value) q.set("camera", $("c-camera").value);
    if ($("c-line").value) q.set("line", $("c-line").value);
    return q.toString();
  }

  function barChart(svg, rows, opts) {  // rows: [{label, values: [..]}], one bar per value
    svg.replaceChildren();
    const [W, H] = svg.getAttribute("viewBox").split(" ").slice(2).map(Number);
    const left = 28, bottom = 18, top = 8;
    const max = Math.max(1, ...rows.flatMap((r) => r.values));
    const slot = (W - left) / Math.max(1, rows.length);
    const bw = slot * 0.8 / rows[0].values.length;
    for (const frac of max >= 2 ? [0, 0.5, 1] : [0, 1]) {
      const y = top + (H - top - bottom) * (1 - frac);
      svg.append(el("svg:line", { class: "grid-line", x1: left, x2: W, y1: y, y2: y }),
        el("svg:text", { x: 2, y: y + 4 }, String(Math.round(max * frac))));
    }
    rows.forEach((r, i) => {
      r.values.forEach((v, j) => {
        const h = (H - top - bottom) * v / max;
        const bar = el("svg:rect", { class: opts.classes[j], x: left + i * slot + slot * 0.1 + j * bw,
          y: H - bottom - h, width: bw, height: h, "data-value": v });
        bar.append(el("svg:title", {}, r.label + ": " + v + " " + (opts.names[j] || "")));
        svg.append(bar);
      });
      if (!opts.every || i % opts.every === 0)
        svg.append(el("svg:text", { x: left + i * slot + slot / 2, y: H - 4, "text-anchor": "middle" }, r.label));
    });
  }

  function mixChart(svg, mix) {  // horizontal bars, one per key
    svg.replaceChildren();
    const keys = Object.keys(mix).filter((k) => mix[k] > 0).sort((a, b) => (parseInt(a) || 999) - (parseInt(b) || 999) || a.localeCompare(b));
    const W = Number(svg.getAttribute("viewBox").split(" ")[2]);
    const total = keys.reduce((s, k) => s + mix[k], 0);
    svg.setAttribute("viewBox", "0 0 " + W + " " + Math.max(24, keys.length * 22 + 4));
    if (!keys.length) { svg.append(el("svg:text", { x: 4, y: 16 }, "no crossings")); return; }
    keys.forEach((k, i) => {
      const w = (W - 120) * mix[k] / Math.max(1, ...Object.values(mix));
      svg.append(el("svg:text", { x: 4, y: i * 22 + 16 }, k),
        el("svg:rect", { class: "bar-mix", x: 70, y: i * 22 + 4, width: w, height: 16, "data-key": k, "data-value": mix[k] }),
        el("svg:text", { x: 74 + w, y: i * 22 + 16 }, mix[k] + " (" + Math.round(100 * mix[k] / total) + "%)"));
    });
  }

  async function drawCounts() {
    const q = countsQuery();
    $("c-csv").href = withToken("/api/counts.csv?" + q);
    let body;
    try { body = await api("/api/counts?" + q); } catch (e) { banner("counts: " + e.message); return; }
    const [since] = dayRange();
    const hours = Array.from({ length: 24 }, (_, h) => ({ label: String(h), values: [0, 0] }));
    const gender = {}, age = {};
    let tin = 0, tout = 0;
    for (const row of body.series) {
      const h = Math.floor((Date.parse(row.start) / 1000 - since) / 3600);
      if (h >= 0 && h < 24) { hours[h].values[0] += row.in; hours[h].values[1] += row.out; }
      tin += row.in; tout += row.out;
      for (const [k, v] of Object.entries(row.by_gender || {})) gender[k] = (gender[k] || 0) + v;
      for (const [k, v] of Object.entries(row.by_age || {})) age[k] = (age[k] || 0) + v;
    }
    const svg = $("chart-hours");
    barChart(svg, hours, { classes: ["bar-in", "bar-out"], names: ["in", "out"], every: 3 });
    svg.dataset.totalIn = String(tin);
    svg.dataset.totalOut = String(tout);
    mixChart($("chart-gender"), gender);
    mixChart($("chart-age"), age);
    svg.dataset.drawn = String(Date.now());
  }

  for (const id of ["c-day", "c-camera", "c-line"]) $(id).addEventListener("change", drawCounts);

  // ---- line and zone editor ----------------------------------------------------------------
  let shapes = [];  // {kind, name, points: [[x, y] in image pixels]}
  let pending = [];
  let size = [1, 1];

  function setEditorStatus(text, kind) {
    const s = $("e-status");
    s.textContent = text;
    s.className = kind || "";
    // the hook names the outcome of the latest save only: "Saving …" clears the last one
    if (kind) s.dataset.save = kind; else delete s.dataset.save;
  }

  function toPixels(points) {  // stored points are fractions when all <= 1 (the config's rule)
    const frac = points.every((p) => p[0] <= 1 && p[1] <= 1);
    return points.map((p) => frac ? [p[0] * size[0], p[1] * size[1]] : [p[0], p[1]]);
  }

  async function loadGeometry() {
    const name = $("e-camera").value;
    if (!name) return;
    $("e-camera").dataset.loaded = "1";
    $("e-img").src = withToken("/api/cameras/" + encodeURIComponent(name) + "/snapshot.jpg?t=" + Date.now());
    try {
      const g = await api("/api/cameras/" + encodeURIComponent(name) + "/geometry");
      size = g.size && g.size[0] ? g.size : size;
      shapes = g.lines.map((l) => ({ kind: "line", name: l.name, points: toPixels(l.points) }))
        .concat(g.zones.map((z) => ({ kind: "zone", name: z.name, points: toPixels(z.points) })));
      pending = [];
      drawEditor();
    } catch (e) {
      setEditorStatus(e.message, "error");
    }
  }

  $("e-img").addEventListener("load", () => {
    const img = $("e-img");
    if (img.naturalWidth) size = [img.naturalWidth, img.naturalHeight];
    drawEditor();
  });

  function drawEditor() {
    const svg = $("e-svg");
    svg.setAttribute("viewBox", "0 0 " + size[0] + " " + size[1]);
    svg.replaceChildren();
    const fs = Math.max(10, size[1] / 22);
    for (const s of shapes) {
      const pts = s.points.map((p) => p.join(",")).join(" ");
      svg.append(el(s.kind === "line" ? "svg:polyline" : "svg:polygon", { class: "shape-" + s.kind, points: pts }),
        el("svg:text", { x: s.points[0][0] + 4, y: s.points[0][1] - 4, "font-size": fs }, s.name));
    }
    if (pending.length) svg.append(el("svg:polyline", { class: "pending", points: pending.map((p) => p.join(",")).join(" ") }));
    for (const p of pending) svg.append(el("svg:circle", { cx: p[0], cy: p[1], r: Math.max(3, size[0] / 120) }));
    const list = $("e-shapes");
    list.replaceChildren();
    shapes.forEach((s, i) => {
      const li = el("li", { "data-kind": s.kind }, s.kind + " " + s.name + " (" + s.points.length + " points)");
      const del = el("button", { type: "button" }, "Remove");
      del.addEventListener("click", () => { shapes.splice(i, 1); drawEditor(); });
      li.append(del);
      list.append(li);
    });
  }

  $("e-svg").addEventListener("click", (ev) => {
    const r = $("e-svg").getBoundingClientRect();
    const x = (ev.clientX - r.left) / r.width * size[0];
    const y = (ev.clientY - r.top) / r.height * size[1];
    if ($("e-kind").value === "line" && pending.length === 2) pending = [];
    pending.push([Math.round(x * 10) / 10, Math.round(y * 10) / 10]);
    drawEditor();
  });
  $("e-camera").addEventListener("change", loadGeometry);
  $("e-kind").addEventListener("change", () => { pending = []; $("e-name").value = $("e-kind").value; drawEditor(); });
  $("e-undo").addEventListener("click", () => { pending = []; drawEditor(); });
  $("e-add").addEventListener("click", () => {
    const kind = $("e-kind").value;
    const name = $("e-name").value.trim();
    if (!name) { setEditorStatus("Give the shape a name first.", "error"); return; }
    // Kept as drawn: the server checks the geometry (a degenerate polygon is refused there).
    shapes = shapes.filter((s) => s.name !== name);
    shapes.push({ kind, name, points: pending });
    pending = [];
    setEditorStatus("");
    drawEditor();
  });

  $("editor-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const name = $("e-camera").value;
    const frac = (pts) => pts.map((p) => [+(p[0] / size[0]).toFixed(4), +(p[1] / size[1]).toFixed(4)]);
    const body = {
      lines: shapes.filter((s) => s.kind === "line").map((s) => ({ name: s.name, points: frac(s.points) })),
      zones: shapes.filter((s) => s.kind === "zone").map((s) => ({ name: s.name, points: frac(s.points) })),
    };
    setEditorStatus("Saving …");
    try {
      await api("/api/cameras/" + encodeURIComponent(name) + "/geometry", {
        method: "PUT", body: JSON.stringify(body),
        headers: Object.assign({ "Content-Type": "application/json" }, headers()) });
      setEditorStatus("Saved: " + body.lines.length + " line(s), " + body.zones.length +
        " zone(s); the camera restarts with them.", "ok");
    } catch (e) {
      setEditorStatus("Not saved: " + e.message, "error");
    }
  });

  // ---- start -------------------------------------------------------------------------------
  let timers = [];
  function start() {
    timers.forEach(clearInterval);
    const now = new Date();
    if (!$("c-day").value) $("c-day").value = now.getFullYear() + "-" + pad(now.getMonth() + 1) + "-" + pad(now.getDate());
    pollCameras().then(refreshSnapshots);
    pollPeople();
    drawCounts();
    timers = [setInterval(pollCameras, 2000), setInterval(refreshSnapshots, 1000),
      setInterval(pollPeople, 5000), setInterval(drawCounts, 30000)];
  }
  start();
})();
