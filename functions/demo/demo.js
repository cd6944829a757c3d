// The demo page's script (a module, so strict and deferred). It drives the generation API:
//
// - the request fields come from /openapi.json (`GenerationUpload`): one labelled input per field
//   with the document's limits (min, max, step), choices and defaults, the main ones in the grid and
//   any other under "Advanced"; a blank input is not sent, so the service's defaults apply;
// - a blank seed is drawn here, fresh for every generation, and the seed used is shown;
// - pick an image (file input, drag & drop or paste) with a thumbnail;
// - POST /v1/generations (multipart) with `Accept: text/event-stream`, reading the streamed body
//   with a small SSE parser (EventSource cannot POST, nor send `Authorization`); a 202 JSON answer
//   is followed through its `events_url`, and a stream that drops before a terminal event is
//   resumed there with `Last-Event-ID`;
// - a status line (queue position, step k/n with σ and ETA, decoding chunk, encoding), a progress
//   bar, every preview frame of the latest step animated at the chosen fps, and a strip of them;
// - Cancel: DELETE /v1/generations/:id when the id is known (Location or X-Generation-Id header),
//   else the stream is dropped (the service cancels a streaming job whose client leaves);
// - the result: a looping muted <video> (an <img> for GIF), a download link, the seed, the size
//   and the timings; errors name their field, whose input is marked and focused;
// - an optional bearer token (kept in localStorage) goes along as `Authorization: Bearer …`, also
//   for /openapi.json; with a token the video is fetched with it and shown from a blob URL.

const $ = (id) => document.getElementById(id);
const form = $("form");
const fileInput = $("image");
const drop = $("drop");
const thumb = $("thumb");
const dropText = $("drop-text");
const tokenInput = $("token");
const generateBtn = $("generate");
const cancelBtn = $("cancel");
const statusEl = $("status");
const progressEl = $("progress");
const errorEl = $("error");
const player = $("player");
const badge = $("player-badge");
const placeholder = $("preview-placeholder");
const strip = $("strip");
const stage = $("preview-stage");
const resultEl = $("result");
const resultStage = $("result-stage");
const downloadEl = $("download");

const TOKEN_KEY = "svd-stream.token";
const TERMINAL = new Set(["done", "error", "cancelled"]);
/** Fields shown in the main grid, in this order; every other field goes under "Advanced". */
const MAIN_FIELDS = [
  "num_frames",
  "steps",
  "fps",
  "motion_bucket_id",
  "cond_aug",
  "seed",
  "min_guidance",
  "max_guidance",
  "format",
  "size",
];
/** Fields the page does not offer: the image has its own input; one model per service. */
const HIDDEN_FIELDS = new Set(["image", "model"]);

let current = null; // the running generation, see start()
let objectUrls = []; // blob URLs to revoke on the next run
/** The request fields as /openapi.json describes them: [{name, schema, input}]. */
let fields = [];
let fieldsReady = loadFields();

// ---- token ---------------------------------------------------------------------------------------
try {
  tokenInput.value = localStorage.getItem(TOKEN_KEY) || "";
} catch { /* private mode */ }
tokenInput.addEventListener("input", () => tokenInput.removeAttribute("aria-invalid"));
tokenInput.addEventListener("change", () => {
  try {
    localStorage.setItem(TOKEN_KEY, tokenInput.value.trim());
  } catch { /* ignore */ }
  if (!fields.length) fieldsReady = loadFields(); // the document needed the token
});
function authHeaders(extra = {}) {
  const token = tokenInput.value.trim();
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

// ---- the fields, from /openapi.json ----------------------------------------------------------------
/** Loads the document and builds the inputs; resolves false when it cannot (shown as an error). */
async function loadFields() {
  let response;
  try {
    response = await fetch("/openapi.json", { headers: authHeaders() });
  } catch (err) {
    showError({ code: "network", message: `Cannot load /openapi.json: ${err.message || err}` });
    return false;
  }
  if (response.status === 401) {
    const loading = $("fields-loading");
    if (loading) loading.textContent = "The fields load once the API token is entered above.";
    showError({
      code: "unauthorized",
      message: "This service needs its API token: enter it above.",
    });
    setStatus("idle", "Enter the API token to start.");
    return false;
  }
  if (!response.ok) {
    showError(await errorOf(response));
    return false;
  }
  const doc = await response.json();
  const upload = doc.components.schemas.GenerationUpload;
  buildFields(upload.properties);
  clearError();
  if (statusEl.dataset.state === "error") setStatus("idle", "Pick an image and press Generate.");
  return true;
}

/** One labelled input per field, in the document's order; main fields first, in MAIN_FIELDS order. */
function buildFields(properties) {
  const main = $("fields-main");
  const advanced = $("fields-advanced");
  main.textContent = "";
  advanced.textContent = "";
  const names = Object.keys(properties).filter((name) => !HIDDEN_FIELDS.has(name));
  const ordered = [
    ...MAIN_FIELDS.filter((name) => names.includes(name)),
    ...names.filter((name) => !MAIN_FIELDS.includes(name)),
  ];
  fields = ordered.map((name) => {
    const schema = properties[name];
    const { element, input } = fieldElement(name, schema);
    (MAIN_FIELDS.includes(name) ? main : advanced).appendChild(element);
    return { name, schema, input };
  });
  main.removeAttribute("aria-busy");
}

/** A field's label, input and hint, from its JSON Schema. */
function fieldElement(name, schema) {
  const element = document.createElement("div");
  element.className = "field";
  const label = document.createElement("label");
  label.htmlFor = name;
  label.textContent = schema.title || name;
  let input;
  if (Array.isArray(schema.enum)) {
    input = document.createElement("select");
    if (schema.default === undefined) input.appendChild(option("", "default"));
    for (const value of schema.enum) input.appendChild(option(String(value), String(value)));
    if (schema.default !== undefined) input.value = String(schema.default);
  } else if (schema.type === "boolean") {
    input = document.createElement("input");
    input.type = "checkbox";
    input.checked = schema.default === true;
  } else {
    input = document.createElement("input");
    const numeric = schema.type === "integer" || schema.type === "number";
    input.type = numeric ? "number" : schema.format === "uri" ? "url" : "text";
    if (numeric) {
      const min = schema.minimum ?? schema.exclusiveMinimum;
      if (min !== undefined) input.min = String(min);
      if (schema.maximum !== undefined) input.max = String(schema.maximum);
      input.step = schema.multipleOf
        ? String(schema.multipleOf)
        : schema.type === "integer"
        ? "1"
        : "any";
    }
    input.placeholder = name === "seed"
      ? "random"
      : schema.default !== undefined
      ? String(schema.default)
      : "";
  }
  input.id = name;
  input.name = name;
  if (schema.description) input.title = schema.description;
  const hint = document.createElement("div");
  hint.className = "hint";
  hint.id = `${name}-hint`;
  hint.textContent = name === "seed" ? "Blank = random" : limitsText(schema);
  if (hint.textContent) input.setAttribute("aria-describedby", hint.id);
  if (input.type === "checkbox") {
    const check = document.createElement("label");
    check.className = "check";
    check.append(input, ` ${schema.title || name}`);
    label.textContent = "";
    label.className = "label";
    element.append(check);
  } else {
    element.append(label, input);
  }
  if (hint.textContent) element.append(hint);
  return { element, input };
}

function option(value, text) {
  const element = document.createElement("option");
  element.value = value;
  element.textContent = text;
  return element;
}

/** A numeric field's limits as the document gives them: `min–max`, `, ×step` for multiples. */
function limitsText(schema) {
  if (schema.type !== "integer" && schema.type !== "number") return "";
  const min = schema.minimum ??
    (schema.exclusiveMinimum !== undefined ? `>${schema.exclusiveMinimum}` : "");
  const max = schema.maximum ?? "";
  return `${min}–${max}${schema.multipleOf ? `, ×${schema.multipleOf}` : ""}`;
}

function fieldInput(name) {
  return fields.find((field) => field.name === name)?.input ?? null;
}

// ---- image picking: file input, drag & drop, paste -------------------------------------------------
function showThumb() {
  const file = fileInput.files && fileInput.files[0];
  if (thumb.src) URL.revokeObjectURL(thumb.src);
  if (!file) {
    thumb.hidden = true;
    thumb.removeAttribute("src");
    return;
  }
  thumb.src = URL.createObjectURL(file);
  thumb.hidden = false;
  dropText.textContent = `${file.name} · ${formatBytes(file.size)}`;
  fileInput.removeAttribute("aria-invalid");
}
function setFiles(files) {
  if (!files || !files.length) return;
  const transfer = new DataTransfer();
  transfer.items.add(files[0]);
  fileInput.files = transfer.files;
  showThumb();
}
fileInput.addEventListener("change", showThumb);
for (const type of ["dragenter", "dragover"]) {
  drop.addEventListener(type, (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
}
for (const type of ["dragleave", "dragend"]) {
  drop.addEventListener(type, () => drop.classList.remove("over"));
}
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  setFiles(e.dataTransfer && e.dataTransfer.files);
});
document.addEventListener("paste", (e) => {
  const items = (e.clipboardData && e.clipboardData.files) || [];
  if (items.length && /^image\//.test(items[0].type)) setFiles(items);
});

// ---- formatting helpers ------------------------------------------------------------------------------
function formatBytes(n) {
  if (!(n >= 0)) return "";
  if (n < 1024) return `${n} B`;
  if (n < 1048576) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1048576).toFixed(2)} MB`;
}
function formatMs(ms) {
  if (!(ms >= 0)) return "–";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${Math.round(s - m * 60)} s`;
}
function setStatus(state, text, progress) {
  statusEl.dataset.state = state;
  statusEl.textContent = text;
  if (progress !== undefined) progressEl.value = Math.max(0, Math.min(1, progress));
}

// ---- errors ------------------------------------------------------------------------------------------
function clearError() {
  errorEl.hidden = true;
  errorEl.textContent = "";
  for (const element of document.querySelectorAll("[aria-invalid]")) {
    element.removeAttribute("aria-invalid");
    element.removeAttribute("aria-errormessage");
  }
}
/** Shows {code, message, field}; the field's input is marked invalid and focused. */
function showError(err = {}) {
  let text = err.message || "Something went wrong.";
  if (err.field) text = `Field “${err.field}”: ${text}`;
  if (err.code) text += ` (${err.code})`;
  errorEl.textContent = text;
  errorEl.dataset.field = err.field || "";
  errorEl.hidden = false;
  let input = err.field ? form.elements.namedItem(err.field) : null;
  if (!input && err.code === "unauthorized") input = tokenInput; // 401: the token is at fault
  if (input && input.setAttribute) {
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-errormessage", "error");
    const details = input.closest("details");
    if (details) details.open = true;
    input.focus();
  }
  setStatus("error", `Failed: ${err.message || err.code || "error"}`);
}

// ---- preview animation: cycle the latest step's frames at the chosen fps ------------------------------
let frames = []; // data URLs of the latest step
let frameIndex = 0;
let stepLabel = "";
function previewFps() {
  const input = fieldInput("fps");
  const fps = Number(input && (input.value || input.placeholder));
  return fps >= 1 && fps <= 60 ? fps : 7;
}
function ensureStrip(count) {
  while (strip.children.length > count) strip.removeChild(strip.lastChild);
  while (strip.children.length < count) {
    const li = document.createElement("li");
    const img = document.createElement("img");
    const n = strip.children.length;
    img.alt = `Frame ${n + 1}`;
    img.decoding = "async";
    const num = document.createElement("span");
    num.textContent = String(n + 1);
    li.append(img, num);
    strip.appendChild(li);
  }
}
function showFrames(urls, label) {
  frames = urls;
  stepLabel = label;
  ensureStrip(urls.length);
  urls.forEach((url, i) => strip.children[i].firstChild.src = url);
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
  strip.querySelector("li.current")?.classList.remove("current");
  strip.children[frameIndex]?.classList.add("current");
  badge.textContent = `${stepLabel} · frame ${frameIndex + 1}/${frames.length}`;
  frameIndex++;
}
function startAnimation(gen) {
  stopAnimation(gen);
  gen.timer = setInterval(tick, 1000 / previewFps());
}
function stopAnimation(gen) {
  if (gen && gen.timer) {
    clearInterval(gen.timer);
    gen.timer = 0;
  }
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

// ---- SSE parsing over a fetch body -------------------------------------------------------------------
/**
 * Reads an SSE stream from a fetch Response, calling onEvent({id, event, data}) for every event
 * (a blank line ends one; "retry:" and ":" comments are ignored). Resolves when the body ends.
 */
async function readSse(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let ev = { id: undefined, event: "", data: [] };
  function line(l) {
    if (l === "") {
      if (ev.data.length || ev.event) {
        onEvent({ id: ev.id, event: ev.event || "message", data: ev.data.join("\n") });
      }
      ev = { id: undefined, event: "", data: [] };
      return;
    }
    if (l.charAt(0) === ":") return;
    const colon = l.indexOf(":");
    const name = colon < 0 ? l : l.slice(0, colon);
    let value = colon < 0 ? "" : l.slice(colon + 1);
    if (value.charAt(0) === " ") value = value.slice(1);
    if (name === "data") ev.data.push(value);
    else if (name === "event") ev.event = value;
    else if (name === "id") ev.id = value;
    // "retry" and unknown fields are ignored
  }
  for (;;) {
    const chunk = await reader.read();
    if (chunk.done) break;
    buffer += decoder.decode(chunk.value, { stream: true });
    let start = 0;
    for (;;) {
      const nl = buffer.slice(start).search(/\r\n|\r|\n/);
      if (nl < 0) break;
      const end = start + nl;
      // a lone "\r" at the end of the buffer may be the first half of "\r\n": wait for more
      if (buffer.charAt(end) === "\r" && end + 1 === buffer.length) break;
      line(buffer.slice(start, end));
      start = end + (buffer.substr(end, 2) === "\r\n" ? 2 : 1);
    }
    buffer = buffer.slice(start);
  }
  buffer += decoder.decode();
  if (buffer) line(buffer);
  line(""); // dispatch a final event without its blank line
}

// ---- generation lifecycle ------------------------------------------------------------------------------
/** A fresh random unsigned 32-bit seed, as the API takes. */
function randomSeed() {
  return crypto.getRandomValues(new Uint32Array(1))[0];
}

/**
 * The multipart body: the image and every field whose input differs from "the default": a
 * non-blank text or number, a choice (its default is preselected), a checkbox off its default. A
 * blank seed is drawn here, so every generation gets a fresh one (the model's config may fix one).
 */
function buildBody(gen) {
  const body = new FormData();
  body.append("image", fileInput.files[0]);
  for (const { name, schema, input } of fields) {
    if (input.type === "checkbox") {
      if (input.checked !== (schema.default === true)) body.append(name, String(input.checked));
      continue;
    }
    let value = String(input.value).trim();
    if (name === "seed" && value === "") {
      value = String(randomSeed());
      gen.drawnSeed = value;
    }
    if (value !== "") body.append(name, value);
  }
  return body;
}

/** Shows the seed a generation uses under the seed input, ready to be typed back in. */
function showSeed(seed, drawn) {
  const hint = $("seed-hint");
  if (hint && seed !== undefined && seed !== null) {
    hint.textContent = drawn ? `Blank = random · this run: ${seed}` : `This run: ${seed}`;
  }
}

/** An API error answer as {code, message, field}, whatever the body. */
async function errorOf(response) {
  let text = "";
  try {
    text = await response.text();
  } catch { /* ignore */ }
  try {
    const json = JSON.parse(text);
    if (json && json.error) {
      return typeof json.error === "string" ? { message: json.error } : json.error;
    }
  } catch { /* not JSON */ }
  return {
    code: `http_${response.status}`,
    message: text.trim() || response.statusText || `HTTP ${response.status}`,
  };
}

/** The generation id from the response headers, if the server gives it. */
function idFromHeaders(headers) {
  const direct = headers.get("X-Generation-Id");
  if (direct) return direct;
  const loc = headers.get("Location") || headers.get("Content-Location") || "";
  const m = /\/v1\/generations\/([^/?#]+)/.exec(loc);
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
  if (!(await fieldsReady) && !(await (fieldsReady = loadFields()))) return;
  if (current) stopAnimation(current);
  clearResult();
  resetPreview();
  const gen = {
    controller: new AbortController(),
    id: null,
    statusUrl: null,
    eventsUrl: null,
    lastEventId: null,
    finished: false,
    timer: 0,
    totalSteps: 0,
    frames: 0,
    drawnSeed: null,
    cancelRequested: false,
  };
  current = gen;
  setRunning(true);
  setStatus("submitting", "Uploading…", 0);
  statusEl.scrollIntoView({ behavior: "smooth", block: "nearest" }); // below the form on phones
  try {
    const body = buildBody(gen);
    if (gen.drawnSeed !== null) showSeed(gen.drawnSeed, true);
    const response = await fetch("/v1/generations", {
      method: "POST",
      body,
      headers: authHeaders({ Accept: "text/event-stream" }),
      signal: gen.controller.signal,
    });
    if (!response.ok) {
      finish(gen);
      showError(await errorOf(response));
      return;
    }
    gen.id = idFromHeaders(response.headers);
    gen.statusUrl = response.headers.get("Location");
    const type = response.headers.get("Content-Type") || "";
    if (type.includes("text/event-stream")) {
      try {
        await readSse(response, (e) => handle(gen, e));
      } catch (err) {
        if (gen.controller.signal.aborted) throw err; // else the connection dropped: resume
      }
    } else {
      // 202 JSON: follow events_url (fetch, so the token goes along)
      const job = await response.json();
      gen.id = job.id || gen.id;
      gen.eventsUrl = job.events_url || null;
      setStatus("queued", "Submitted, waiting for events…", 0);
    }
    // follow events_url while the stream ends before a terminal event (resuming after the
    // last SSE id): a dropped connection is retried with a growing pause
    if (!gen.finished && !gen.eventsUrl && gen.statusUrl) {
      // a streamed POST that dropped: its status JSON tells where the events are
      try {
        const status = await fetch(gen.statusUrl, {
          headers: authHeaders(),
          signal: gen.controller.signal,
        });
        if (status.ok) gen.eventsUrl = (await status.json()).events_url || null;
      } catch { /* reported below as a stream that ended early */ }
    }
    let attempts = 0;
    while (!gen.finished && gen.eventsUrl && attempts < 5 && current === gen) {
      if (attempts > 0) await sleep(500 * attempts);
      attempts++;
      const headers = authHeaders({ Accept: "text/event-stream" });
      if (gen.lastEventId) headers["Last-Event-ID"] = gen.lastEventId;
      let r;
      try {
        r = await fetch(gen.eventsUrl, { headers, signal: gen.controller.signal });
      } catch (err) {
        if (gen.controller.signal.aborted) throw err;
        continue;
      }
      if (r.status === 204) break; // the stream had ended: nothing more will come
      if (!r.ok) {
        finish(gen);
        showError(await errorOf(r));
        return;
      }
      try {
        await readSse(r, (e) => {
          attempts = 0;
          handle(gen, e);
        });
      } catch (err) {
        if (gen.controller.signal.aborted) throw err;
      }
    }
    if (!gen.finished) {
      finish(gen);
      if (gen.cancelRequested) setStatus("cancelled", "Cancelled.");
      else {
        showError({
          code: "stream_ended",
          message: "The event stream ended before the generation finished.",
        });
      }
    }
  } catch (err) {
    if (gen.finished) return;
    finish(gen);
    if (gen.cancelRequested || (err && err.name === "AbortError")) {
      setStatus("cancelled", "Cancelled.");
    } else showError({ code: "network", message: String((err && err.message) || err) });
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Ends a generation in the UI. The preview keeps cycling the last step's frames; the stream, if
 * still open, is aborted by the caller.
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
  let d = {};
  try {
    d = e.data ? JSON.parse(e.data) : {};
  } catch {
    return;
  }
  if (d && typeof d.id === "string" && !gen.id && e.event !== "step") gen.id = d.id;
  if (d && d.events_url && !gen.eventsUrl) gen.eventsUrl = d.events_url;
  switch (e.event) {
    case "queued":
      setStatus("queued", d.position > 0 ? `Queued — position ${d.position}` : "Queued", 0);
      break;
    case "started":
      gen.totalSteps = d.steps || 0;
      gen.frames = d.frames || 0;
      showSeed(d.seed, gen.drawnSeed !== null);
      if (d.width > 0 && d.height > 0) setAspect(`${d.width} / ${d.height}`);
      setStatus(
        "started",
        `Started ${d.model ? `${d.model} ` : ""}· ${d.frames} frames, ${d.steps} steps, ` +
          `${d.width}×${d.height}, seed ${d.seed}`,
        0.01,
      );
      startAnimation(gen);
      break;
    case "step": {
      const total = d.total || gen.totalSteps || 1;
      let text = `Step ${d.step}/${total}`;
      if (typeof d.sigma === "number") text += ` · σ ${d.sigma.toPrecision(4)}`;
      if (typeof d.eta_ms === "number") text += ` · ETA ${formatMs(d.eta_ms)}`;
      if (typeof d.elapsed_ms === "number") text += ` · elapsed ${formatMs(d.elapsed_ms)}`;
      setStatus("step", text, 0.85 * d.step / total);
      if (Array.isArray(d.frames) && d.frames.length) {
        showFrames(d.frames, `step ${d.step}/${total}`);
        if (!gen.timer) startAnimation(gen);
      }
      break;
    }
    case "decoding":
      setStatus(
        "decoding",
        `Decoding chunk ${d.chunk}/${d.total}`,
        0.85 + 0.1 * (d.total ? (d.chunk - 1) / d.total : 0),
      );
      break;
    case "encoding":
      setStatus("encoding", `Encoding ${fieldInput("format")?.value || "video"}…`, 0.96);
      break;
    case "done":
      finish(gen);
      showResult(d);
      setStatus(
        "done",
        `Done${
          d.timings && typeof d.timings.total_ms === "number"
            ? ` in ${formatMs(d.timings.total_ms)}`
            : ""
        } · seed ${d.seed}`,
        1,
      );
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
  if (TERMINAL.has(e.event)) gen.controller.abort();
}

/** Cancel: DELETE when the id is known, else (or if DELETE fails) drop the stream. */
async function cancel() {
  const gen = current;
  if (!gen || gen.finished) return;
  gen.cancelRequested = true;
  cancelBtn.disabled = true;
  setStatus("cancelling", "Cancelling…");
  if (gen.id) {
    try {
      const r = await fetch(`/v1/generations/${encodeURIComponent(gen.id)}`, {
        method: "DELETE",
        headers: authHeaders(),
      });
      if (r.ok || r.status === 409) {
        // the stream ends with "cancelled"; give it a moment, then stop listening anyway
        setTimeout(() => {
          if (!gen.finished) gen.controller.abort();
        }, 5000);
        return;
      }
    } catch { /* fall through to aborting */ }
  }
  gen.controller.abort();
}

// ---- result ----------------------------------------------------------------------------------------------
function clearResult() {
  resultEl.hidden = true;
  resultStage.textContent = "";
  $("timings").textContent = "";
  for (const url of objectUrls) URL.revokeObjectURL(url);
  objectUrls = [];
}

async function showResult(d) {
  const format = d.format || "mp4";
  let src = d.video_url;
  if (tokenInput.value.trim()) {
    // <video src> cannot send Authorization: fetch it with the token and play a blob URL
    try {
      const r = await fetch(src, { headers: authHeaders() });
      if (r.ok) {
        src = URL.createObjectURL(await r.blob());
        objectUrls.push(src);
      }
    } catch { /* try the plain URL */ }
  }
  let media;
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
  downloadEl.download = `svd-${d.seed !== undefined ? d.seed : "video"}.${format}`;
  downloadEl.textContent = `Download ${format.toUpperCase()}`;
  $("result-seed").textContent = String(d.seed);
  $("result-size").textContent = formatBytes(d.bytes);
  const dl = $("timings");
  dl.textContent = "";
  for (const [key, value] of Object.entries(d.timings || {})) {
    const dt = document.createElement("dt");
    dt.textContent = key.replace(/_ms$/, "").replace(/_/g, " ");
    const dd = document.createElement("dd");
    dd.textContent = typeof value === "number" && /_ms$/.test(key)
      ? formatMs(value)
      : String(value);
    dl.append(dt, dd);
  }
  resultEl.hidden = false;
  // bring the result into view (Chromium also pauses muted autoplay video while off screen)
  resultEl.scrollIntoView({ behavior: "smooth", block: "nearest" });
}

// ---- wiring ----------------------------------------------------------------------------------------------
form.addEventListener("submit", (e) => {
  e.preventDefault();
  start();
});
cancelBtn.addEventListener("click", cancel);
form.addEventListener("input", (e) => {
  if (e.target && e.target.removeAttribute) e.target.removeAttribute("aria-invalid");
  if (e.target && e.target.name === "fps" && current && current.timer) startAnimation(current);
});
globalThis.addEventListener("beforeunload", () => {
  if (current && !current.finished) current.controller.abort();
});
