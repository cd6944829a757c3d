/**
 * The demo page served at `GET /`: one self-contained HTML document (inline CSS and JS, no
 * external assets, works offline) that drives the generation API from a browser.
 *
 * What it does:
 *
 * - pick an image (file input, drag & drop or paste) and show a thumbnail;
 * - set the main parameters (frames, steps, fps, motion bucket, cond aug, seed, guidance, format,
 *   size policy; guider, decoding_t, preview and keep_running under "Advanced"); a blank field is
 *   not sent, so the server's model defaults apply;
 * - `POST /v1/generations` (multipart) with `Accept: text/event-stream` and read the streamed
 *   response body with a small SSE parser (EventSource cannot POST, nor send `Authorization`);
 *   a `202` JSON answer is followed through its `events_url`, and a stream that drops before a
 *   terminal event is resumed there with `Last-Event-ID`;
 * - show a status line (queue position, step k/n with σ and ETA, decoding chunk, encoding), a
 *   progress bar, and animate every preview frame of the latest step at the chosen fps, with a
 *   strip of all the frames below;
 * - Cancel: `DELETE /v1/generations/:id` when the id is known (from the `Location` or
 *   `X-Generation-Id` response header, or an `id` in an event), else abort the stream (the server
 *   cancels a streaming job whose client leaves unless `keep_running` is set);
 * - when done: a looping muted `<video>` (an `<img>` for GIF), a download link, the seed, the
 *   size and the timings; errors are shown with the offending field named and highlighted;
 * - an optional bearer token (kept in `localStorage`) is sent as `Authorization: Bearer …`; with
 *   a token, the video is fetched with that header and shown from a blob URL.
 *
 * The browser script is plain ES2020 without template literals, so that it sits inside this
 * TypeScript template string without escaping.
 *
 * @module
 */

/** Page title and heading. */
const TITLE = "svd-stream · image to video";

/** Inline stylesheet: CSS custom properties for light and dark, a responsive two-column grid. */
const STYLE = /* css */ `
:root {
  color-scheme: light dark;
  --bg: #f6f7f9;
  --panel: #ffffff;
  --text: #1b1f24;
  --muted: #5b6470;
  --border: #d9dde3;
  --accent: #3b6cf6;
  --accent-text: #ffffff;
  --danger: #c62f2f;
  --danger-bg: #fdecec;
  --ok: #1f8a4c;
  --radius: 12px;
  --shadow: 0 1px 2px rgb(0 0 0 / 6%), 0 4px 16px rgb(0 0 0 / 5%);
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  font-size: 15px;
  line-height: 1.45;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #111418;
    --panel: #1a1e24;
    --text: #e6e9ee;
    --muted: #9aa4b1;
    --border: #2d333c;
    --accent: #6d93ff;
    --accent-text: #0b0d10;
    --danger: #ff7b7b;
    --danger-bg: #3a1c1f;
    --ok: #5bd28f;
    --shadow: none;
  }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text); }
header {
  display: flex; flex-wrap: wrap; gap: 12px; align-items: center; justify-content: space-between;
  padding: 14px 20px; border-bottom: 1px solid var(--border); background: var(--panel);
}
header h1 { margin: 0; font-size: 1.15rem; font-weight: 650; letter-spacing: 0.01em; }
header h1 span { color: var(--muted); font-weight: 450; }
main {
  display: grid; gap: 20px; padding: 20px; max-width: 1280px; margin: 0 auto;
  grid-template-columns: minmax(300px, 380px) minmax(0, 1fr);
}
@media (max-width: 820px) { main { grid-template-columns: minmax(0, 1fr); padding: 12px; } }
section, form.panel {
  background: var(--panel); border: 1px solid var(--border); border-radius: var(--radius);
  box-shadow: var(--shadow); padding: 16px;
}
h2 { font-size: 0.95rem; margin: 0 0 12px; font-weight: 650; }
label, .label { display: block; font-size: 0.82rem; color: var(--muted); margin-bottom: 4px; }
input, select, button { font: inherit; color: inherit; }
input[type="number"], input[type="text"], input[type="password"], select {
  width: 100%; padding: 7px 9px; border: 1px solid var(--border); border-radius: 8px;
  background: var(--bg);
}
input:focus-visible, select:focus-visible, button:focus-visible, .drop:focus-within {
  outline: 2px solid var(--accent); outline-offset: 1px;
}
[aria-invalid="true"] { border-color: var(--danger) !important; background: var(--danger-bg) !important; }
.grid { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 10px 12px; }
.field { min-width: 0; }
.hint { font-size: 0.75rem; color: var(--muted); margin-top: 2px; }
details { margin-top: 12px; }
summary { cursor: pointer; color: var(--muted); font-size: 0.85rem; margin-bottom: 10px; }
.check { display: flex; gap: 8px; align-items: center; font-size: 0.85rem; color: var(--text); }
.drop {
  position: relative; display: flex; gap: 12px; align-items: center; min-height: 96px;
  border: 1.5px dashed var(--border); border-radius: 10px; padding: 10px; margin-bottom: 14px;
  cursor: pointer; transition: border-color 0.15s, background 0.15s;
}
.drop.over { border-color: var(--accent); background: color-mix(in srgb, var(--accent) 10%, transparent); }
.drop input[type="file"] { position: absolute; inset: 0; opacity: 0; cursor: pointer; }
.drop img { width: 96px; height: 72px; object-fit: cover; border-radius: 6px; background: var(--bg); }
.drop img[hidden] { display: none; }
.drop .drop-text { font-size: 0.88rem; color: var(--muted); overflow-wrap: anywhere; }
.drop .drop-text strong { color: var(--text); }
.actions { display: flex; gap: 10px; margin-top: 16px; }
button {
  border: 1px solid var(--border); border-radius: 8px; padding: 8px 16px; cursor: pointer;
  background: var(--bg);
}
button.primary { background: var(--accent); border-color: var(--accent); color: var(--accent-text); font-weight: 600; flex: 1; }
button:disabled { opacity: 0.5; cursor: not-allowed; }
.token { display: flex; gap: 8px; align-items: center; }
.token label { margin: 0; white-space: nowrap; }
.token input { width: 220px; }
.output { display: grid; gap: 20px; align-content: start; min-width: 0; }
.status-row { display: flex; gap: 12px; align-items: center; flex-wrap: wrap; }
#status { flex: 1; min-width: 200px; margin: 0; font-variant-numeric: tabular-nums; }
#status[data-state="done"] { color: var(--ok); }
#status[data-state="error"], #status[data-state="cancelled"] { color: var(--danger); }
progress { width: 100%; height: 8px; margin-top: 10px; accent-color: var(--accent); }
.error {
  margin-top: 12px; padding: 10px 12px; border-radius: 8px; background: var(--danger-bg);
  color: var(--danger); border: 1px solid color-mix(in srgb, var(--danger) 40%, transparent);
}
.error[hidden] { display: none; }
.stage {
  position: relative; display: grid; place-items: center; background: #0b0d10; border-radius: 10px;
  overflow: hidden; aspect-ratio: 16 / 9; min-height: 140px; max-height: 62vh;
}
.stage img, .stage video { width: 100%; height: 100%; object-fit: contain; image-rendering: auto; }
.stage .placeholder { color: #8a94a3; font-size: 0.9rem; padding: 20px; text-align: center; }
.badge {
  position: absolute; left: 8px; top: 8px; padding: 2px 8px; border-radius: 999px;
  background: rgb(0 0 0 / 55%); color: #fff; font-size: 0.75rem; font-variant-numeric: tabular-nums;
}
#strip {
  list-style: none; margin: 10px 0 0; padding: 0 0 4px; display: grid; gap: 6px;
  grid-template-columns: repeat(auto-fill, minmax(64px, 1fr));
}
#strip li { position: relative; }
#strip img {
  display: block; width: 100%; aspect-ratio: var(--aspect, 16 / 9); object-fit: cover; border-radius: 5px;
  background: var(--bg); border: 2px solid transparent;
}
#strip li.current img { border-color: var(--accent); }
#strip li span {
  position: absolute; right: 4px; bottom: 3px; font-size: 0.65rem; color: #fff;
  text-shadow: 0 0 3px #000;
}
.result-meta { display: flex; flex-wrap: wrap; gap: 10px 24px; margin-top: 12px; align-items: baseline; }
.result-meta a {
  display: inline-block; padding: 7px 14px; border-radius: 8px; background: var(--accent);
  color: var(--accent-text); text-decoration: none; font-weight: 600;
}
dl { display: grid; grid-template-columns: auto 1fr; gap: 2px 12px; margin: 12px 0 0; font-size: 0.85rem; }
dt { color: var(--muted); }
dd { margin: 0; font-variant-numeric: tabular-nums; }
[hidden] { display: none !important; }
`;

/** Inline body markup. Input names are the API's field names, so errors can point at them. */
const BODY = /* html */ `
<header>
  <h1>svd-stream <span>· Stable Video Diffusion, image to video</span></h1>
  <div class="token">
    <label for="token">API token</label>
    <input id="token" type="password" autocomplete="off" placeholder="optional bearer token"
      aria-describedby="token-hint">
    <span id="token-hint" hidden>Stored in this browser and sent as Authorization: Bearer.</span>
  </div>
</header>
<main>
  <form id="form" class="panel" novalidate aria-labelledby="form-title">
    <h2 id="form-title">Input</h2>
    <div class="drop" id="drop">
      <img id="thumb" alt="Selected image" hidden>
      <div class="drop-text" id="drop-text"><strong>Choose an image</strong><br>
        or drop / paste one here (PNG, JPEG, WebP)</div>
      <input id="image" name="image" type="file" accept="image/png,image/jpeg,image/webp"
        aria-label="Input image" aria-describedby="drop-text">
    </div>
    <div class="grid">
      <div class="field"><label for="num_frames">Frames</label>
        <input id="num_frames" name="num_frames" type="number" min="1" max="200" step="1" placeholder="model default"></div>
      <div class="field"><label for="steps">Steps</label>
        <input id="steps" name="steps" type="number" min="1" max="200" step="1" placeholder="model default"></div>
      <div class="field"><label for="fps">FPS</label>
        <input id="fps" name="fps" type="number" min="1" max="60" step="1" placeholder="7"></div>
      <div class="field"><label for="motion_bucket_id">Motion bucket</label>
        <input id="motion_bucket_id" name="motion_bucket_id" type="number" min="0" max="1023" step="1" placeholder="127"></div>
      <div class="field"><label for="cond_aug">Cond. augmentation</label>
        <input id="cond_aug" name="cond_aug" type="number" min="0" max="1" step="0.01" placeholder="0.02"></div>
      <div class="field"><label for="seed">Seed</label>
        <input id="seed" name="seed" type="number" min="0" step="1" placeholder="random" aria-describedby="seed-hint">
        <div class="hint" id="seed-hint">Blank = random</div></div>
      <div class="field"><label for="min_guidance">Guidance min</label>
        <input id="min_guidance" name="min_guidance" type="number" min="0" max="30" step="0.1" placeholder="model default"></div>
      <div class="field"><label for="max_guidance">Guidance max</label>
        <input id="max_guidance" name="max_guidance" type="number" min="0" max="30" step="0.1" placeholder="model default"></div>
      <div class="field"><label for="format">Format</label>
        <select id="format" name="format">
          <option value="mp4" selected>MP4 (H.264)</option>
          <option value="webm">WebM (VP9)</option>
          <option value="gif">GIF</option>
        </select></div>
      <div class="field"><label for="size">Size policy</label>
        <select id="size" name="size">
          <option value="cover" selected>cover (crop)</option>
          <option value="contain">contain (fit)</option>
          <option value="stretch">stretch</option>
          <option value="native">native</option>
        </select></div>
    </div>
    <details>
      <summary>Advanced</summary>
      <div class="grid">
        <div class="field"><label for="guider">Guider</label>
          <select id="guider" name="guider">
            <option value="" selected>model default</option>
            <option value="linear">linear</option>
            <option value="triangle">triangle</option>
          </select></div>
        <div class="field"><label for="decoding_t">Decode chunk (frames)</label>
          <input id="decoding_t" name="decoding_t" type="number" min="1" step="1" placeholder="model default"></div>
        <div class="field"><label for="preview">Previews</label>
          <select id="preview" name="preview">
            <option value="latent" selected>latent (every step)</option>
            <option value="none">none</option>
          </select></div>
        <div class="field"><span class="label">When I leave</span>
          <label class="check"><input id="keep_running" name="keep_running" type="checkbox"> keep running</label></div>
      </div>
    </details>
    <div class="actions">
      <button id="generate" class="primary" type="submit">Generate</button>
      <button id="cancel" type="button" disabled>Cancel</button>
    </div>
    <div id="error" class="error" role="alert" hidden></div>
  </form>

  <div class="output">
    <section aria-labelledby="progress-title">
      <h2 id="progress-title">Progress</h2>
      <div class="status-row">
        <p id="status" role="status" aria-live="polite" data-state="idle">Pick an image and press Generate.</p>
      </div>
      <progress id="progress" max="1" value="0" aria-label="Generation progress"></progress>
    </section>

    <section aria-labelledby="preview-title">
      <h2 id="preview-title">Preview</h2>
      <div class="stage" id="preview-stage">
        <p class="placeholder" id="preview-placeholder">Each denoising step's estimate of every frame appears here.</p>
        <img id="player" alt="Animated preview of the latest step" hidden>
        <span class="badge" id="player-badge" hidden></span>
      </div>
      <ol id="strip" aria-label="Preview frames of the latest step"></ol>
    </section>

    <section id="result" aria-labelledby="result-title" hidden>
      <h2 id="result-title">Result</h2>
      <div class="stage" id="result-stage"></div>
      <div class="result-meta">
        <a id="download" href="#" download>Download</a>
        <span>Seed <strong id="result-seed"></strong></span>
        <span id="result-size"></span>
      </div>
      <dl id="timings" aria-label="Timings"></dl>
    </section>
  </div>
</main>
`;

/**
 * The browser script (plain ES2020; no template literals, see the module doc).
 *
 * State: one generation at a time (`current`), holding its AbortController, its id, the events
 * URL and the last SSE id for resuming, and the preview animation timer.
 */
const SCRIPT = /* js */ `
"use strict";
(function () {
  var $ = function (id) { return document.getElementById(id); };
  var form = $("form"), fileInput = $("image"), drop = $("drop"), thumb = $("thumb");
  var dropText = $("drop-text"), tokenInput = $("token"), generateBtn = $("generate");
  var cancelBtn = $("cancel"), statusEl = $("status"), progressEl = $("progress");
  var errorEl = $("error"), player = $("player"), badge = $("player-badge");
  var placeholder = $("preview-placeholder"), strip = $("strip"), stage = $("preview-stage");
  var resultEl = $("result"), resultStage = $("result-stage"), downloadEl = $("download");
  var TOKEN_KEY = "svd-stream.token";
  var TERMINAL = { done: true, error: true, cancelled: true };
  var current = null; // the running generation, see start()
  var objectUrls = []; // blob URLs to revoke on the next run

  // ---- token --------------------------------------------------------------------------------
  try { tokenInput.value = localStorage.getItem(TOKEN_KEY) || ""; } catch (_) { /* private mode */ }
  tokenInput.addEventListener("input", function () { tokenInput.removeAttribute("aria-invalid"); });
  tokenInput.addEventListener("change", function () {
    try { localStorage.setItem(TOKEN_KEY, tokenInput.value.trim()); } catch (_) { /* ignore */ }
  });
  function authHeaders(extra) {
    var headers = extra || {};
    var token = tokenInput.value.trim();
    if (token) headers["Authorization"] = "Bearer " + token;
    return headers;
  }

  // ---- image picking: file input, drag & drop, paste ------------------------------------------
  function showThumb() {
    var file = fileInput.files && fileInput.files[0];
    if (thumb.src) URL.revokeObjectURL(thumb.src);
    if (!file) { thumb.hidden = true; thumb.removeAttribute("src"); return; }
    thumb.src = URL.createObjectURL(file);
    thumb.hidden = false;
    dropText.textContent = file.name + " · " + formatBytes(file.size);
    fileInput.removeAttribute("aria-invalid");
  }
  function setFiles(files) {
    if (!files || !files.length) return;
    var dt = new DataTransfer();
    dt.items.add(files[0]);
    fileInput.files = dt.files;
    showThumb();
  }
  fileInput.addEventListener("change", showThumb);
  ["dragenter", "dragover"].forEach(function (type) {
    drop.addEventListener(type, function (e) { e.preventDefault(); drop.classList.add("over"); });
  });
  ["dragleave", "dragend"].forEach(function (type) {
    drop.addEventListener(type, function () { drop.classList.remove("over"); });
  });
  drop.addEventListener("drop", function (e) {
    e.preventDefault();
    drop.classList.remove("over");
    setFiles(e.dataTransfer && e.dataTransfer.files);
  });
  document.addEventListener("paste", function (e) {
    var items = (e.clipboardData && e.clipboardData.files) || [];
    if (items.length && /^image\\//.test(items[0].type)) setFiles(items);
  });

  // ---- formatting helpers ---------------------------------------------------------------------
  function formatBytes(n) {
    if (!(n >= 0)) return "";
    if (n < 1024) return n + " B";
    if (n < 1048576) return (n / 1024).toFixed(1) + " KB";
    return (n / 1048576).toFixed(2) + " MB";
  }
  function formatMs(ms) {
    if (!(ms >= 0)) return "–";
    if (ms < 1000) return Math.round(ms) + " ms";
    var s = ms / 1000;
    if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + " s";
    var m = Math.floor(s / 60);
    return m + " min " + Math.round(s - m * 60) + " s";
  }
  function setStatus(state, text, progress) {
    statusEl.dataset.state = state;
    statusEl.textContent = text;
    if (progress !== undefined) progressEl.value = Math.max(0, Math.min(1, progress));
  }

  // ---- errors -----------------------------------------------------------------------------------
  function clearError() {
    errorEl.hidden = true;
    errorEl.textContent = "";
    var invalid = document.querySelectorAll("[aria-invalid]");
    for (var i = 0; i < invalid.length; i++) {
      invalid[i].removeAttribute("aria-invalid");
      invalid[i].removeAttribute("aria-errormessage");
    }
  }
  /** Shows {code, message, field}; the field's input is marked invalid and focused. */
  function showError(err) {
    err = err || {};
    var text = err.message || "Something went wrong.";
    if (err.field) text = "Field \\u201c" + err.field + "\\u201d: " + text;
    if (err.code) text += " (" + err.code + ")";
    errorEl.textContent = text;
    errorEl.dataset.field = err.field || "";
    errorEl.hidden = false;
    var input = err.field ? form.elements.namedItem(err.field) : null;
    if (!input && err.code === "unauthorized") input = tokenInput; // 401: the token is at fault
    if (input && input.setAttribute) {
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-errormessage", "error");
      var details = input.closest("details");
      if (details) details.open = true;
      input.focus();
    }
    setStatus("error", "Failed: " + (err.message || err.code || "error"));
  }

  // ---- preview animation: cycle the latest step's frames at the chosen fps ----------------------
  var frames = []; // data URLs of the latest step
  var frameIndex = 0;
  var stepLabel = "";
  function previewFps() {
    var fps = Number(form.elements.namedItem("fps").value);
    return fps >= 1 && fps <= 60 ? fps : 7;
  }
  function ensureStrip(count) {
    while (strip.children.length > count) strip.removeChild(strip.lastChild);
    while (strip.children.length < count) {
      var li = document.createElement("li");
      var img = document.createElement("img");
      var n = strip.children.length;
      img.alt = "Frame " + (n + 1);
      img.decoding = "async";
      var num = document.createElement("span");
      num.textContent = String(n + 1);
      li.appendChild(img);
      li.appendChild(num);
      strip.appendChild(li);
    }
  }
  function showFrames(urls, label) {
    frames = urls;
    stepLabel = label;
    ensureStrip(urls.length);
    for (var i = 0; i < urls.length; i++) strip.children[i].firstChild.src = urls[i];
    if (!urls.length) return;
    placeholder.hidden = true;
    player.hidden = false;
    badge.hidden = false;
    if (!player.getAttribute("src")) tick(); // the first frames show at once
  }
  function tick() {
    if (!frames.length) return;
    frameIndex = frameIndex % frames.length;
    player.src = frames[frameIndex];
    var prev = strip.querySelector("li.current");
    if (prev) prev.classList.remove("current");
    if (strip.children[frameIndex]) strip.children[frameIndex].classList.add("current");
    badge.textContent = stepLabel + " \\u00b7 frame " + (frameIndex + 1) + "/" + frames.length;
    frameIndex++;
  }
  function startAnimation(gen) {
    stopAnimation(gen);
    gen.timer = setInterval(tick, 1000 / previewFps());
  }
  function stopAnimation(gen) {
    if (gen && gen.timer) { clearInterval(gen.timer); gen.timer = 0; }
  }
  function resetPreview(aspect) {
    frames = [];
    frameIndex = 0;
    strip.textContent = "";
    player.hidden = true;
    player.removeAttribute("src");
    badge.hidden = true;
    placeholder.hidden = false;
    setAspect(aspect || "16 / 9");
  }
  function setAspect(aspect) {
    stage.style.aspectRatio = aspect;
    resultStage.style.aspectRatio = aspect;
    strip.style.setProperty("--aspect", aspect);
  }

  // ---- SSE parsing over a fetch body -----------------------------------------------------------
  /**
   * Reads an SSE stream from a fetch Response, calling onEvent({id, event, data}) for every event
   * (blank line ends one; "retry:" and ":" comments are ignored). Resolves when the body ends.
   */
  async function readSse(response, onEvent) {
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    var buffer = "";
    var ev = { id: undefined, event: "", data: [] };
    function line(l) {
      if (l === "") {
        if (ev.data.length || ev.event) {
          onEvent({ id: ev.id, event: ev.event || "message", data: ev.data.join("\\n") });
        }
        ev = { id: undefined, event: "", data: [] };
        return;
      }
      if (l.charAt(0) === ":") return;
      var colon = l.indexOf(":");
      var name = colon < 0 ? l : l.slice(0, colon);
      var value = colon < 0 ? "" : l.slice(colon + 1);
      if (value.charAt(0) === " ") value = value.slice(1);
      if (name === "data") ev.data.push(value);
      else if (name === "event") ev.event = value;
      else if (name === "id") ev.id = value;
      // "retry" and unknown fields are ignored
    }
    for (;;) {
      var chunk = await reader.read();
      if (chunk.done) break;
      buffer += decoder.decode(chunk.value, { stream: true });
      var start = 0;
      for (;;) {
        var nl = buffer.slice(start).search(/\\r\\n|\\r|\\n/);
        if (nl < 0) break;
        var end = start + nl;
        // a lone "\\r" at the end of the buffer may be the first half of "\\r\\n": wait for more
        if (buffer.charAt(end) === "\\r" && end + 1 === buffer.length) break;
        line(buffer.slice(start, end));
        start = end + (buffer.substr(end, 2) === "\\r\\n" ? 2 : 1);
      }
      buffer = buffer.slice(start);
    }
    buffer += decoder.decode();
    if (buffer) line(buffer);
    line(""); // dispatch a final event without its blank line
  }

  // ---- generation lifecycle ------------------------------------------------------------------
  /** The multipart body: the image and every non-blank parameter under its API name. */
  function buildBody() {
    var body = new FormData();
    body.append("image", fileInput.files[0]);
    var fields = ["num_frames", "steps", "fps", "motion_bucket_id", "cond_aug", "seed",
      "min_guidance", "max_guidance", "guider", "decoding_t", "format", "size", "preview"];
    fields.forEach(function (name) {
      var value = String(form.elements.namedItem(name).value).trim();
      if (value !== "") body.append(name, value);
    });
    if (form.elements.namedItem("keep_running").checked) body.append("keep_running", "true");
    return body;
  }

  /** An API error answer as {code, message, field}, whatever the body. */
  async function errorOf(response) {
    var text = "";
    try { text = await response.text(); } catch (_) { /* ignore */ }
    try {
      var json = JSON.parse(text);
      if (json && json.error) {
        return typeof json.error === "string" ? { message: json.error } : json.error;
      }
    } catch (_) { /* not JSON */ }
    return { code: "http_" + response.status, message: text.trim() || response.statusText || "HTTP " + response.status };
  }

  /** The generation id from the response headers, if the server gives it. */
  function idFromHeaders(headers) {
    var direct = headers.get("X-Generation-Id");
    if (direct) return direct;
    var loc = headers.get("Location") || headers.get("Content-Location") || "";
    var m = /\\/v1\\/generations\\/([^\\/?#]+)/.exec(loc);
    return m ? decodeURIComponent(m[1]) : null;
  }

  function setRunning(running) {
    generateBtn.disabled = running;
    cancelBtn.disabled = !running;
    form.setAttribute("aria-busy", running ? "true" : "false");
  }

  async function start() {
    clearError();
    if (!fileInput.files || !fileInput.files.length) {
      showError({ code: "missing_image", message: "Choose an input image first.", field: "image" });
      return;
    }
    if (current) stopAnimation(current);
    clearResult();
    resetPreview();
    var gen = {
      controller: new AbortController(), id: null, statusUrl: null, eventsUrl: null, lastEventId: null,
      finished: false, timer: 0, totalSteps: 0, frames: 0, seed: null, cancelRequested: false,
    };
    current = gen;
    setRunning(true);
    setStatus("submitting", "Uploading\\u2026", 0);
    statusEl.scrollIntoView({ behavior: "smooth", block: "nearest" }); // below the form on phones
    try {
      var response = await fetch("/v1/generations", {
        method: "POST",
        body: buildBody(),
        headers: authHeaders({ Accept: "text/event-stream" }),
        signal: gen.controller.signal,
      });
      if (!response.ok) { finish(gen); showError(await errorOf(response)); return; }
      gen.id = idFromHeaders(response.headers);
      gen.statusUrl = response.headers.get("Location");
      var type = response.headers.get("Content-Type") || "";
      if (type.indexOf("text/event-stream") >= 0) {
        try {
          await readSse(response, function (e) { handle(gen, e); });
        } catch (err) {
          if (gen.controller.signal.aborted) throw err; // else the connection dropped: resume
        }
      } else {
        // 202 JSON: follow events_url (fetch, so the token goes along)
        var job = await response.json();
        gen.id = job.id || gen.id;
        gen.eventsUrl = job.events_url || null;
        setStatus("queued", "Submitted, waiting for events\\u2026", 0);
      }
      // follow events_url while the stream ends before a terminal event (resuming after the
      // last SSE id): a dropped connection is retried with a growing pause
      if (!gen.finished && !gen.eventsUrl && gen.statusUrl) {
        // a streamed POST that dropped: its status JSON tells where the events are
        try {
          var status = await fetch(gen.statusUrl, { headers: authHeaders({}), signal: gen.controller.signal });
          if (status.ok) gen.eventsUrl = (await status.json()).events_url || null;
        } catch (_) { /* reported below as a stream that ended early */ }
      }
      var attempts = 0;
      while (!gen.finished && gen.eventsUrl && attempts < 5 && current === gen) {
        if (attempts > 0) await sleep(500 * attempts);
        attempts++;
        var headers = authHeaders({ Accept: "text/event-stream" });
        if (gen.lastEventId) headers["Last-Event-ID"] = gen.lastEventId;
        var r;
        try {
          r = await fetch(gen.eventsUrl, { headers: headers, signal: gen.controller.signal });
        } catch (err) {
          if (gen.controller.signal.aborted) throw err;
          continue;
        }
        if (!r.ok) { finish(gen); showError(await errorOf(r)); return; }
        try {
          await readSse(r, function (e) { attempts = 0; handle(gen, e); });
        } catch (err) {
          if (gen.controller.signal.aborted) throw err;
        }
      }
      if (!gen.finished) {
        finish(gen);
        if (gen.cancelRequested) setStatus("cancelled", "Cancelled.");
        else showError({ code: "stream_ended", message: "The event stream ended before the generation finished." });
      }
    } catch (err) {
      if (gen.finished) return;
      finish(gen);
      if (gen.cancelRequested || (err && err.name === "AbortError")) setStatus("cancelled", "Cancelled.");
      else showError({ code: "network", message: String((err && err.message) || err) });
    }
  }

  function sleep(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

  /**
   * Ends a generation in the UI. The preview keeps cycling the last step's frames; the stream,
   * if still open, is aborted by the caller.
   */
  function finish(gen) {
    if (gen.finished) return;
    gen.finished = true;
    if (current === gen) setRunning(false);
  }

  /** One SSE event of the generation. */
  function handle(gen, e) {
    if (current !== gen) return;
    if (e.id) gen.lastEventId = e.id;
    var d = {};
    try { d = e.data ? JSON.parse(e.data) : {}; } catch (_) { return; }
    if (d && typeof d.id === "string" && !gen.id && e.event !== "step") gen.id = d.id;
    if (d && d.events_url && !gen.eventsUrl) gen.eventsUrl = d.events_url;
    switch (e.event) {
      case "queued":
        setStatus("queued", d.position > 0 ? "Queued \\u2014 position " + d.position : "Queued", 0);
        break;
      case "started":
        gen.totalSteps = d.steps || 0;
        gen.frames = d.frames || 0;
        gen.seed = d.seed;
        if (d.width > 0 && d.height > 0) setAspect(d.width + " / " + d.height);
        setStatus("started", "Started " + (d.model ? d.model + " " : "") + "\\u00b7 " + d.frames +
          " frames, " + d.steps + " steps, " + d.width + "\\u00d7" + d.height + ", seed " + d.seed, 0.01);
        startAnimation(gen);
        break;
      case "step": {
        var total = d.total || gen.totalSteps || 1;
        var text = "Step " + d.step + "/" + total;
        if (typeof d.sigma === "number") text += " \\u00b7 \\u03c3 " + d.sigma.toPrecision(4);
        if (typeof d.eta_ms === "number") text += " \\u00b7 ETA " + formatMs(d.eta_ms);
        if (typeof d.elapsed_ms === "number") text += " \\u00b7 elapsed " + formatMs(d.elapsed_ms);
        setStatus("step", text, 0.85 * d.step / total);
        if (Array.isArray(d.frames) && d.frames.length) {
          showFrames(d.frames, "step " + d.step + "/" + total);
          if (!gen.timer) startAnimation(gen);
        }
        break;
      }
      case "decoding":
        setStatus("decoding", "Decoding chunk " + d.chunk + "/" + d.total,
          0.85 + 0.1 * (d.total ? (d.chunk - 1) / d.total : 0));
        break;
      case "encoding":
        setStatus("encoding", "Encoding " + (form.elements.namedItem("format").value || "video") + "\\u2026", 0.96);
        break;
      case "done":
        finish(gen);
        showResult(d);
        setStatus("done", "Done" + (d.timings && typeof d.timings.total_ms === "number"
          ? " in " + formatMs(d.timings.total_ms) : "") + " \\u00b7 seed " + d.seed, 1);
        break;
      case "error":
        finish(gen);
        showError(d);
        break;
      case "cancelled":
        finish(gen);
        setStatus("cancelled", "Cancelled.");
        break;
    }
    if (TERMINAL[e.event]) gen.controller.abort();
  }

  /** Cancel: DELETE when the id is known, else (or if DELETE fails) drop the stream. */
  async function cancel() {
    var gen = current;
    if (!gen || gen.finished) return;
    gen.cancelRequested = true;
    cancelBtn.disabled = true;
    setStatus("cancelling", "Cancelling\\u2026");
    if (gen.id) {
      try {
        var r = await fetch("/v1/generations/" + encodeURIComponent(gen.id), {
          method: "DELETE", headers: authHeaders({}),
        });
        if (r.ok || r.status === 409) {
          // the stream ends with "cancelled"; give it a moment, then stop listening anyway
          setTimeout(function () { if (!gen.finished) { gen.controller.abort(); } }, 5000);
          return;
        }
      } catch (_) { /* fall through to aborting */ }
    }
    gen.controller.abort();
  }

  // ---- result -------------------------------------------------------------------------------
  function clearResult() {
    resultEl.hidden = true;
    resultStage.textContent = "";
    $("timings").textContent = "";
    objectUrls.forEach(function (u) { URL.revokeObjectURL(u); });
    objectUrls = [];
  }

  async function showResult(d) {
    var format = d.format || "mp4";
    var src = d.video_url;
    if (tokenInput.value.trim()) {
      // <video src> cannot send Authorization: fetch it with the token and play a blob URL
      try {
        var r = await fetch(src, { headers: authHeaders({}) });
        if (r.ok) { src = URL.createObjectURL(await r.blob()); objectUrls.push(src); }
      } catch (_) { /* try the plain URL */ }
    }
    var media;
    if (format === "gif") {
      media = document.createElement("img");
      media.alt = "Generated animation";
    } else {
      media = document.createElement("video");
      media.controls = true;
      media.autoplay = true;
      media.loop = true;
      media.muted = true;
      media.playsInline = true;
      media.setAttribute("aria-label", "Generated video");
    }
    media.id = "result-media";
    media.src = src;
    resultStage.textContent = "";
    resultStage.appendChild(media);
    downloadEl.href = src;
    downloadEl.download = "svd-" + (d.seed !== undefined ? d.seed : "video") + "." + format;
    downloadEl.textContent = "Download " + format.toUpperCase();
    $("result-seed").textContent = String(d.seed);
    $("result-size").textContent = formatBytes(d.bytes);
    var dl = $("timings");
    dl.textContent = "";
    var timings = d.timings || {};
    Object.keys(timings).forEach(function (key) {
      var dt = document.createElement("dt");
      dt.textContent = key.replace(/_ms$/, "").replace(/_/g, " ");
      var dd = document.createElement("dd");
      var v = timings[key];
      dd.textContent = typeof v === "number" && /_ms$/.test(key) ? formatMs(v) : String(v);
      dl.appendChild(dt);
      dl.appendChild(dd);
    });
    resultEl.hidden = false;
    // bring the result into view (Chromium also pauses muted autoplay video while off screen)
    resultEl.scrollIntoView({ behavior: "smooth", block: "nearest" });
  }

  // ---- wiring ---------------------------------------------------------------------------------
  form.addEventListener("submit", function (e) { e.preventDefault(); start(); });
  cancelBtn.addEventListener("click", cancel);
  form.addEventListener("input", function (e) {
    if (e.target && e.target.removeAttribute) e.target.removeAttribute("aria-invalid");
    if (e.target && e.target.name === "fps" && current && current.timer) startAnimation(current);
  });
  window.addEventListener("beforeunload", function () {
    if (current && !current.finished) current.controller.abort();
  });
})();
`;

/** The whole page, built once. */
const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>${TITLE}</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body>
${BODY}
<script>${SCRIPT}</script>
</body>
</html>
`;

/**
 * The demo page: one self-contained HTML document (inline CSS and JS, no external requests)
 * that uploads an image to `POST /v1/generations`, streams its events, animates the previews and
 * plays the result. Serve it as `text/html; charset=utf-8`.
 *
 * @example
 * ```ts
 * import { demoPage } from "./demo_page.ts";
 * const html = demoPage();
 * html.startsWith("<!doctype html>"); // true
 * ```
 */
export function demoPage(): string {
  return PAGE;
}
