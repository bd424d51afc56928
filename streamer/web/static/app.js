// streamer page: upload a photo to POST /analyze, and watch the live stream when one runs.
// No framework, no CDN. The body's data-analyze attribute (idle | busy | done | error) lets a
// test wait for the result without polling the table.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const TOKEN_KEY = "streamer.token";
  let token = sessionStorage.getItem(TOKEN_KEY) || "";

  function authHeaders() {
    return token ? { Authorization: "Bearer " + token } : {};
  }

  function askToken(message) {
    $("token-form").hidden = false;
    setStatus(message || "This server needs an API token (web.token).", true);
  }

  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    token = $("token").value.trim();
    sessionStorage.setItem(TOKEN_KEY, token);
    $("token-form").hidden = true;
    setStatus("");
    liveStarted = false;
    pollStatus();
  });

  // ---- analyze -------------------------------------------------------------------------
  function setStatus(text, isError) {
    const el = $("analyze-status");
    el.textContent = text;
    el.classList.toggle("error", !!isError);
  }

  function cell(row, text, cls) {
    const td = row.insertCell();
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }

  function fmt(v, digits) {
    return v === null || v === undefined ? "–" : Number(v).toFixed(digits);
  }

  function showFaces(faces) {
    const body = $("faces").tBodies[0];
    body.replaceChildren();
    faces.forEach((f, i) => {
      const row = body.insertRow();
      row.className = "face";
      cell(row, String(i));
      cell(row, f.gender || "unknown", f.gender ? "g-" + f.gender : "unknown");
      cell(row, f.gender_confidence === null ? "–" : Math.round(f.gender_confidence * 100) + "%");
      cell(row, fmt(f.age, 0));
      cell(row, f.age_range || "–");
      cell(row, f.box.join(", "), "mono");
      cell(row, fmt(f.score, 2));
      // why gender/age are missing (e.g. "face too small"), in words, not only as a tooltip
      cell(row, f.gender ? "" : "unknown: " + (f.attributes_reason || "no reason given"), "reason");
      if (f.attributes_reason) row.title = f.attributes_reason;
    });
    $("faces").hidden = faces.length === 0;
  }

  async function analyze(file) {
    if (!file) return;
    document.body.dataset.analyze = "busy";
    setStatus("Analyzing " + file.name + " …");
    const form = new FormData();
    form.append("image", file, file.name);
    let resp, body;
    try {
      // labels are drawn to be readable at the size the figure shows the image (device px)
      const shown = Math.round(($("analyze-panel").clientWidth - 32) * (window.devicePixelRatio || 1));
      const q = shown >= 64 ? "?view_width=" + Math.min(8192, shown) : "";
      resp = await fetch("/analyze" + q, { method: "POST", body: form, headers: authHeaders() });
      body = await resp.json();
    } catch (err) {
      setStatus("The server did not answer: " + err.message, true);
      document.body.dataset.analyze = "error";
      return;
    }
    if (!resp.ok) {
      if (resp.status === 401) askToken(body.error);
      else setStatus(body.error || "error " + resp.status, true);
      showFaces([]);
      $("result").hidden = true;
      document.body.dataset.analyze = "error";
      return;
    }
    $("result-img").src = "data:image/jpeg;base64," + body.image;
    const dl = $("result-download");
    dl.href = $("result-img").src;
    dl.download = "annotated-" + file.name.replace(/\.[^.]*$/, "") + ".jpg";
    dl.hidden = false;
    $("result").hidden = false;
    const n = body.faces.length;
    $("result-caption").textContent = file.name + ": " + body.width + "×" + body.height + ", " +
      (n === 1 ? "1 face" : n + " faces") + " in " + Math.round(body.timing_ms.total) + " ms";
    setStatus(n ? "" : "No face found in " + file.name + ".");
    showFaces(body.faces);
    document.body.dataset.analyze = "done";
  }

  const drop = $("drop");
  $("file").addEventListener("change", (ev) => analyze(ev.target.files[0]));
  ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (ev) => {
    ev.preventDefault();
    drop.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, () => drop.classList.remove("over")));
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    analyze(ev.dataTransfer.files[0]);
  });

  // ---- live stream ---------------------------------------------------------------------
  let liveStarted = false;

  function counts(c) {
    const names = Object.keys(c || {});
    if (!names.length) return "no lines or zones configured";
    return names.map((k) => k + ": " + (c[k].in || 0) + " / " + (c[k].out || 0)).join(", ");
  }

  async function pollStatus() {
    let s;
    try {
      const resp = await fetch("/api/status", { headers: authHeaders(), cache: "no-store" });
      if (resp.status === 401) {
        askToken();
        return;  // polling resumes when a token is entered
      }
      s = await resp.json();
    } catch (err) {
      s = null;
    }
    if (s && s.pipeline) {
      $("live-none").hidden = true;
      $("live").hidden = false;
      if (!liveStarted && s.stream) {
        liveStarted = true;
        $("live-img").src = "/stream.mjpg" + (token ? "?access_token=" + encodeURIComponent(token) : "");
      }
      $("s-camera").textContent = s.camera;
      $("s-source").textContent = !s.running ? "stopped" : s.source_up ? "connected" : "reconnecting";
      $("s-source").className = s.running && s.source_up ? "ok" : "bad";
      $("s-fps").textContent = fmt(s.fps, 1);
      $("s-faces").textContent = String(s.faces);
      $("s-tracks").textContent = String(s.tracks);
      $("s-latency").textContent = Math.round(s.latency_ms) + " ms";
      $("s-counts").textContent = counts(s.counts);
    } else if (s) {
      $("live-none").hidden = false;
      $("live").hidden = true;
    }
    setTimeout(pollStatus, 1000);
  }

  pollStatus();
})();
