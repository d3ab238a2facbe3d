// The upload page: files in, Slipway uploads out. Uppy's S3 multipart uploader sends the
// parts in parallel straight to storage; every step it needs goes through Slipway's own
// routes (docs/uploads.md, "Browser uploads"):
//   create  POST /v1/uploads            (here, before Uppy: it fixes the part size)
//   sign    POST /v1/uploads/{id}/parts  {"parts": [{partNumber, sha256}]}
//   list    POST /v1/uploads/{id}/parts  {} → "uploaded": what storage holds (resume)
//   finish  POST /v1/uploads/{id}/complete {"parts": [{partNumber, etag}]}
// then the processing status, polled until it is final.

import { AwsS3, Uppy } from "../uppy/uppy.min.js";
import * as book from "./book.js";
import { ApiError, Session } from "./session.js";

const SLIDE = [".svs", ".ndpi", ".tif", ".tiff", ".btf", ".dcm", ".scn", ".bif", ".qptiff", ".vsi",
  ".jpg", ".jpeg", ".png", ".webp", ".jp2"];
const TELEMETRY = [".csv", ".gpx", ".tcx", ".fit", ".nmea", ".nma"];
const PARALLEL = 4; // part requests at once, all files together
const HASHING = Boolean(globalThis.crypto && crypto.subtle); // a secure context (https, localhost)
const FORBIDDEN_HEADERS = new Set(["content-length", "host"]); // the browser sets these itself

const $ = (selector, root = document) => root.querySelector(selector);
const session = new Session();
const entries = new Map(); // entry id → entry
const byUppyId = new Map(); // Uppy file id → entry
const partSizes = new WeakMap(); // File → the part size Slipway chose for it
let nextEntry = 1;

// --- formatting -----------------------------------------------------------------------

function bytes(n) {
  if (n < 1e3) return `${n} B`;
  const units = ["kB", "MB", "GB", "TB"];
  let value = n;
  let unit = -1;
  do {
    value /= 1000;
    unit += 1;
  } while (value >= 1000 && unit < units.length - 1);
  return `${value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
}

function duration(seconds) {
  if (!Number.isFinite(seconds)) return "";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function problem(err) {
  if (err instanceof ApiError) return `${err.code}: ${err.detail}`;
  if (err && err.source && "status" in err.source) {
    return `storage refused the request (HTTP ${err.source.status})`;
  }
  return (err && err.message) || String(err);
}

function say(text) {
  $("#message").textContent = text || "";
}

function guessKind(name) {
  const lower = name.toLowerCase();
  if (SLIDE.some((ext) => lower.endsWith(ext))) return "slide";
  if (TELEMETRY.some((ext) => lower.endsWith(ext))) return "telemetry";
  return "";
}

function extension(name) {
  const dot = name.lastIndexOf(".");
  return dot > 0 ? name.slice(dot).toLowerCase() : "";
}

function hex(buffer) {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
}

function storageHeaders(headers) {
  return Object.fromEntries(
    Object.entries(headers || {}).filter(([name]) => !FORBIDDEN_HEADERS.has(name.toLowerCase())),
  );
}

function tellParent(message) {
  const origins = document.body.dataset.embedOrigins.split(" ").filter(Boolean);
  if (window.parent === window) return;
  for (const origin of origins) window.parent.postMessage(message, origin);
}

// --- entries (one row per file) -------------------------------------------------------

function newEntry({ file = null, record = null }) {
  const row = $("#file-row").content.firstElementChild.cloneNode(true);
  const entry = {
    id: nextEntry++,
    file,
    record,
    kind: record ? record.kind : guessKind(file.name),
    kindWhy: "",
    uppyId: null,
    single: null, // a single PUT's URL and headers (never stored)
    samples: [],
    polling: false,
    removed: false,
    row,
  };
  entry.kindWhy = record ? "as chosen when it started" : entry.kind
    ? `${entry.kind} by its extension ${extension(file.name)}` : "unknown extension: choose a kind";
  entries.set(entry.id, entry);
  const name = record ? record.name : file.name;
  const size = record ? record.size : file.size;
  row.dataset.name = name;
  $(".name", row).textContent = name;
  $(".size", row).textContent = bytes(size);
  $("progress", row).max = size;
  const kind = $(".kind", row);
  kind.value = entry.kind;
  kind.addEventListener("change", () => {
    entry.kind = kind.value;
    entry.kindWhy = kind.value ? "chosen by you" : "choose a kind";
    showKind(entry);
  });
  $(".start", row).addEventListener("click", () => start(entry));
  $(".pause", row).addEventListener("click", () => pauseOrResume(entry));
  $(".retry", row).addEventListener("click", () => retry(entry));
  $(".remove", row).addEventListener("click", () => remove(entry, { forget: true }));
  $("#files").prepend(row);
  showKind(entry);
  return entry;
}

function showKind(entry) {
  const locked = Boolean(entry.record);
  $(".kind", entry.row).disabled = locked;
  $(".kind-why", entry.row).textContent = `(${entry.kindWhy})`;
  $(".start", entry.row).disabled = !entry.kind || !entry.file;
}

function setState(entry, state, text) {
  entry.row.dataset.state = state;
  $(".state", entry.row).textContent = text;
  const active = state === "uploading" || state === "paused";
  $(".start", entry.row).hidden = state !== "waiting";
  $(".pause", entry.row).hidden = !active || !entry.record || entry.record.method !== "MULTIPART";
  $(".pause", entry.row).textContent = state === "paused" ? "Resume" : "Pause";
  $(".retry", entry.row).hidden = state !== "error";
  if (entry.record) {
    entry.row.dataset.uploadId = entry.record.uploadId;
    $(".upload-id", entry.row).textContent = `upload ${entry.record.uploadId}`;
  }
  tellParent({ type: "slipway:upload", name: entry.row.dataset.name, state,
    uploadId: entry.record ? entry.record.uploadId : null });
}

function setProgress(entry, sent, total) {
  $("progress", entry.row).value = sent;
  $(".bytes", entry.row).textContent = `${bytes(sent)} of ${bytes(total)}`;
  const now = performance.now();
  entry.samples.push([now, sent]);
  while (entry.samples.length > 2 && now - entry.samples[0][0] > 8000) entry.samples.shift();
  const [t0, b0] = entry.samples[0];
  const rate = now - t0 > 500 ? ((sent - b0) * 1000) / (now - t0) : 0;
  $(".speed", entry.row).textContent = rate > 0 ? `${bytes(rate)}/s` : "";
  $(".eta", entry.row).textContent = rate > 0 && sent < total
    ? `about ${duration((total - sent) / rate)} left` : "";
}

function clearRate(entry) {
  entry.samples = [];
  $(".speed", entry.row).textContent = "";
  $(".eta", entry.row).textContent = "";
}

function showHeld(entry, held) {
  const { record } = entry;
  const stored = held.reduce((n, p) => n + p.size, 0);
  entry.row.dataset.partsHeld = String(held.length);
  $("progress", entry.row).value = stored;
  $(".bytes", entry.row).textContent =
    `${held.length} of ${record.partCount} parts stored (${bytes(stored)} of ${bytes(record.size)})`;
}

// --- the uploader ---------------------------------------------------------------------

const uppy = new Uppy({ id: "slipway", autoProceed: false, allowMultipleUploadBatches: true });

function entryOf(file) {
  const entry = byUppyId.get(file.id);
  if (!entry) throw new Error(`no entry for ${file.name}`);
  return entry;
}

uppy.use(AwsS3, {
  limit: PARALLEL,
  shouldUseMultipart: (file) => entryOf(file).record.method === "MULTIPART",
  // Slipway chose the part size when it recorded the upload; Uppy must cut the same parts.
  getChunkSize: (data) => {
    const size = partSizes.get(data);
    if (!size) throw new Error("no part size for this file");
    return size;
  },
  getUploadParameters: async (file) => {
    const { single } = entryOf(file);
    return { method: "PUT", url: single.url, headers: storageHeaders(single.headers) };
  },
  createMultipartUpload: async (file) => {
    const { uploadId } = entryOf(file).record; // recorded already (start below)
    return { uploadId, key: uploadId };
  },
  signPart: async (file, { uploadId, partNumber, body, signal }) => {
    const entry = entryOf(file);
    let request = { partNumbers: [partNumber] };
    if (entry.record.checksumParts) {
      const digest = await crypto.subtle.digest("SHA-256", await body.arrayBuffer());
      request = { parts: [{ partNumber, sha256: hex(digest) }] }; // storage checks it
    }
    const signed = await session.call("POST", `uploads/${uploadId}/parts`, request, { signal });
    const part = signed.parts[0];
    return { method: "PUT", url: part.url, headers: storageHeaders(part.headers) };
  },
  listParts: async (file, { uploadId, signal }) => {
    const state = await session.call("POST", `uploads/${uploadId}/parts`, {}, { signal });
    showHeld(entryOf(file), state.uploaded);
    return state.uploaded.map((p) => ({ PartNumber: p.partNumber, ETag: p.etag, Size: p.size }));
  },
  completeMultipartUpload: async (file, { uploadId, parts, signal }) => {
    const body = { parts: parts.map((p) => ({ partNumber: p.PartNumber, etag: p.ETag })) };
    await session.call("POST", `uploads/${uploadId}/complete`, body, { signal });
    return {};
  },
  // Slipway has no abort route: storage keeps the parts until `resumableUntil`, then the
  // sweeper aborts the upload (UPLOAD_ABANDONED). Removing a file forgets it here.
  abortMultipartUpload: async () => {},
});

uppy.on("upload-progress", (file, progress) => {
  const entry = byUppyId.get(file.id);
  if (!entry || entry.row.dataset.state !== "uploading") return;
  setProgress(entry, progress.bytesUploaded, progress.bytesTotal || entry.file.size);
});

uppy.on("upload-success", async (file) => {
  const entry = byUppyId.get(file.id);
  if (!entry) return;
  clearRate(entry);
  try {
    if (entry.record.method === "PUT") {
      await session.call("POST", `uploads/${entry.record.uploadId}/complete`);
    }
  } catch (err) {
    // the storage notification completes a single PUT by itself: the status will show it
    say(`complete: ${problem(err)}`);
  }
  setProgress(entry, entry.record.size, entry.record.size);
  clearRate(entry);
  book.update(entry.record.key, { phase: "processing" });
  follow(entry);
});

uppy.on("upload-error", (file, err) => {
  const entry = byUppyId.get(file.id);
  if (!entry) return;
  clearRate(entry);
  setState(entry, "error", `upload failed: ${problem(err)}`);
});

uppy.on("upload-pause", (file, isPaused) => {
  const entry = byUppyId.get(file.id);
  if (!entry) return;
  clearRate(entry);
  setState(entry, isPaused ? "paused" : "uploading", isPaused ? "paused" : "uploading");
});

function run() {
  uppy.upload().catch((err) => say(problem(err)));
}

function addToUppy(entry, { resuming }) {
  const { record, file } = entry;
  const id = uppy.addFile({
    name: file.name,
    type: file.type || "application/octet-stream",
    data: file,
    source: "slipway",
    meta: { entry: entry.id },
  });
  entry.uppyId = id;
  byUppyId.set(id, entry);
  if (record.method === "MULTIPART") {
    partSizes.set(uppy.getFile(id).data, record.partSize);
    if (resuming) uppy.setFileState(id, { s3Multipart: { uploadId: record.uploadId, key: record.uploadId } });
  }
  setState(entry, "uploading", resuming ? "resuming" : "uploading");
}

async function start(entry) {
  if (entry.uppyId || !entry.file) return;
  if (!session.owner) return say("Sign in first.");
  if (!entry.kind) return say(`Choose a kind for ${entry.file.name}.`);
  say("");
  $(".start", entry.row).disabled = true;
  try {
    const created = await session.call("POST", "uploads", {
      kind: entry.kind,
      filename: entry.file.name,
      size: entry.file.size,
      contentType: entry.file.type || "application/octet-stream",
      checksumParts: HASHING,
    });
    entry.record = book.record(session.owner, entry.file, entry.kind, created);
    if (created.method === "PUT") entry.single = created;
    book.put(entry.record); // before any byte: a reload finds it
    showKind(entry);
    addToUppy(entry, { resuming: false });
    run();
  } catch (err) {
    $(".start", entry.row).disabled = false;
    setState(entry, "waiting", `not started: ${problem(err)}`);
  }
}

// An interrupted upload: check it is still pending, then send only what storage lacks.
async function resume(entry) {
  const { record } = entry;
  try {
    const upload = await session.call("GET", `uploads/${record.uploadId}`);
    if (upload.state !== "pending") {
      book.update(record.key, { phase: "processing" });
      return follow(entry);
    }
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      book.forget(record.key);
      return setState(entry, "failed", "Slipway no longer knows this upload: start it again");
    }
    return setState(entry, "error", `cannot resume: ${problem(err)}`);
  }
  if (!entry.file) return; // waits for the user to choose the file again
  addToUppy(entry, { resuming: true });
  run();
}

function pauseOrResume(entry) {
  if (entry.uppyId) uppy.pauseResume(entry.uppyId);
}

function retry(entry) {
  if (!entry.uppyId) return start(entry);
  const { record } = entry;
  if (record.method === "MULTIPART") { // resume from what storage holds
    uppy.setFileState(entry.uppyId, { s3Multipart: { uploadId: record.uploadId, key: record.uploadId } });
  }
  setState(entry, "uploading", "retrying");
  uppy.retryUpload(entry.uppyId).catch((err) => say(problem(err)));
}

// Off the page; `forget` also takes it out of the resume book (the user removed it).
function remove(entry, { forget = true } = {}) {
  entry.removed = true;
  if (entry.uppyId && uppy.getFile(entry.uppyId)) uppy.removeFile(entry.uppyId);
  if (forget && entry.record) book.forget(entry.record.key);
  entries.delete(entry.id);
  entry.row.remove();
}

// --- processing status ----------------------------------------------------------------

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(fetchOne, isFinal, show) {
  for (let wait = 1000; ; wait = Math.min(wait * 1.3, 5000)) {
    const current = await fetchOne();
    show(current);
    if (isFinal(current)) return current;
    await sleep(wait);
  }
}

function status(entry, html) {
  $(".status", entry.row).replaceChildren(...html);
}

function text(value, className) {
  const span = document.createElement("span");
  span.textContent = value;
  if (className) span.className = className;
  return span;
}

function link(href, label) {
  const a = document.createElement("a");
  a.href = href;
  a.textContent = label;
  a.target = "_blank";
  a.rel = "noopener";
  return a;
}

function failure(entry, what, error) {
  setState(entry, "failed", `${what} failed`);
  status(entry, [text(`${what}: `), text(error ? error.code : "FAILED", "code"),
    text(error ? ` ${error.message}` : "")]);
}

async function follow(entry) {
  if (entry.polling) return;
  entry.polling = true;
  const { record } = entry;
  const id = record.uploadId;
  $("progress", entry.row).value = record.size; // storage holds every byte
  setState(entry, "processing", "verifying");
  try {
    const upload = await until(
      () => session.call("GET", `uploads/${id}`),
      (u) => u.state !== "pending" || entry.removed,
      () => status(entry, [text("Storage holds every byte; Slipway is verifying them (SHA-256, BLAKE3).")]),
    );
    if (upload.state === "failed") {
      book.update(record.key, { phase: "done" });
      return failure(entry, "verification", upload.error);
    }
    if (record.kind === "slide") await followSlide(entry, id);
    else await followSession(entry, id);
    book.update(record.key, { phase: "done" });
  } catch (err) {
    setState(entry, "error", `status: ${problem(err)}`);
    entry.polling = false;
  }
}

async function followSlide(entry, id) {
  const slide = await until(
    () => session.call("GET", `slides/${id}`),
    (s) => s.status === "SUCCEEDED" || s.status === "FAILED" || entry.removed,
    (s) => {
      setState(entry, "processing", `tiling: ${s.status.toLowerCase()}`);
      status(entry, [text(`Verified. Tile job ${s.status}.`)]);
    },
  );
  if (slide.status === "FAILED") return failure(entry, "tiling", slide.error);
  setState(entry, "ready", "ready");
  const source = slide.source || {};
  status(entry, [text(`Slide ready: ${slide.width} × ${slide.height} px, ${slide.levels} levels` +
    (source.format ? `, from ${source.format}` : "") + ".")]);
  $(".links", entry.row).replaceChildren(link(slide.viewerUrl, "Open in the viewer"),
    link(slide.dziUrl, "Deep Zoom (DZI)"), ...(slide.iiifUrl ? [link(`${slide.iiifUrl}/info.json`, "IIIF")] : []));
  tellParent({ type: "slipway:ready", kind: "slide", uploadId: id, viewerUrl: slide.viewerUrl });
}

async function followSession(entry, id) {
  const { sessionId } = await session.call("POST", `telemetry/uploads/${id}/finalise`);
  entry.row.dataset.sessionId = sessionId;
  const found = await until(
    () => session.call("GET", `telemetry/sessions/${sessionId}`),
    (s) => s.status !== "processing" || entry.removed,
    (s) => {
      setState(entry, "processing", `parsing: ${s.status}`);
      status(entry, [text(`Verified. Session ${sessionId} is ${s.status}.`)]);
    },
  );
  if (found.status === "failed") return failure(entry, "parsing", found.failure);
  setState(entry, "ready", "ready");
  const rows = found.streams.map((s) => `${s.name} ${s.rows} rows`).join(", ");
  status(entry, [text(`Session ${sessionId} ready: ${found.startTimeUtc} – ${found.endTimeUtc}; ${rows}.`)]);
  $(".links", entry.row).replaceChildren(...found.streams.map((s) => link(s.parquetUrl, `${s.name}.parquet`)));
  tellParent({ type: "slipway:ready", kind: "telemetry", uploadId: id, sessionId });
}

// --- files in -------------------------------------------------------------------------

function addFiles(files) {
  for (const file of files) {
    const owner = session.owner;
    const waiting = owner && [...entries.values()].find(
      (e) => !e.file && e.record && e.record.key === book.fingerprint(owner, file),
    );
    if (waiting) { // chosen again: resume it
      waiting.file = file;
      showKind(waiting);
      resume(waiting);
      continue;
    }
    if ([...entries.values()].some((e) => e.file && e.file.name === file.name &&
      e.file.size === file.size && e.file.lastModified === file.lastModified)) {
      say(`${file.name} is in the list already.`);
      continue;
    }
    const kept = owner ? book.find(owner, file) : null;
    if (kept && kept.phase === "uploading" && kept.method === "MULTIPART" &&
      Date.parse(kept.resumableUntil) > Date.now()) {
      const entry = newEntry({ file, record: kept });
      resume(entry);
      continue;
    }
    const entry = newEntry({ file });
    setState(entry, "waiting", entry.kind ? "ready to upload" : "choose a kind");
  }
}

function startAll() {
  for (const entry of entries.values()) {
    if (!entry.uppyId && entry.file && !entry.record) start(entry);
  }
}

// What this browser remembers for the signed-in owner: interrupted uploads wait for
// their file; those past the upload show their status again.
let lastOwner = null;

async function recall() {
  const owner = session.owner;
  for (const entry of [...entries.values()]) {
    // rows waiting for a file are made again below; another owner's go altogether
    if (!entry.file || (owner && lastOwner && owner !== lastOwner)) remove(entry, { forget: false });
  }
  if (!owner) return;
  lastOwner = owner;
  const shown = new Set([...entries.values()].filter((e) => e.record).map((e) => e.record.key));
  for (const record of book.ofOwner(owner).reverse()) {
    if (shown.has(record.key)) continue; // a row that still has its file
    if (record.phase === "uploading") {
      if (record.method !== "MULTIPART" || Date.parse(record.resumableUntil) <= Date.now()) {
        book.forget(record.key); // a single PUT's URL is gone; an expired one is swept
        continue;
      }
      const entry = newEntry({ record });
      setState(entry, "interrupted",
        `interrupted: choose ${record.name} again to resume (parts kept until ${new Date(record.resumableUntil).toLocaleString()})`);
      session.call("POST", `uploads/${record.uploadId}/parts`, {})
        .then((state) => showHeld(entry, state.uploaded))
        .catch((err) => {
          if (err instanceof ApiError && err.status === 409) follow(entry); // it finished
          else if (err instanceof ApiError && err.status === 404) remove(entry, { forget: true });
        });
    } else {
      follow(newEntry({ record }));
    }
  }
}

// --- the page -------------------------------------------------------------------------

function showWho() {
  const who = $("#who");
  who.hidden = !session.owner;
  $("#signin").hidden = Boolean(session.owner);
  if (session.owner) {
    const until = session.claims.exp ? ` until ${new Date(session.claims.exp * 1000).toLocaleString()}` : "";
    $("#who-text").textContent = `Signed in as ${session.owner}${until}`;
  }
}

function wire() {
  const body = document.body;
  const local = body.dataset.environment === "local";
  $("#dev-signin").hidden = !local;
  $("#signin-note").textContent = local
    ? "Local stack: sign in as any user (development only)."
    : "The application that opened this page passes a token (postMessage or #token=…); or paste one.";

  session.listenToParent(body.dataset.embedOrigins.split(" ").filter(Boolean));
  try {
    session.restore();
  } catch (err) {
    say(`token: ${problem(err)}`);
  }
  session.addEventListener("change", () => {
    showWho();
    recall();
  });
  session.addEventListener("expired", (event) => {
    uppy.pauseAll();
    say(`The token was refused (${event.detail}); sign in again, then resume.`);
    session.signOut();
  });
  session.addEventListener("problem", (event) => say(event.detail));

  $("#dev-signin").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await session.devSignIn($("#dev-user").value);
      say("");
    } catch (err) {
      say(`sign-in: ${problem(err)}`);
    }
  });
  $("#token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    try {
      session.use($("#token").value);
      $("#token").value = "";
      say("");
    } catch (err) {
      say(`token: ${problem(err)}`);
    }
  });
  $("#sign-out").addEventListener("click", () => {
    uppy.pauseAll();
    session.signOut();
  });

  const drop = $("#drop");
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
  }
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    addFiles([...event.dataTransfer.files]);
  });
  window.addEventListener("dragover", (event) => event.preventDefault()); // no navigation
  window.addEventListener("drop", (event) => event.preventDefault());
  $("#picker").addEventListener("change", (event) => {
    addFiles([...event.target.files]);
    event.target.value = "";
  });
  $("#start-all").addEventListener("click", startAll);
  $("#pause-all").addEventListener("click", () => uppy.pauseAll());
  $("#resume-all").addEventListener("click", () => uppy.resumeAll());
  uppy.on("pause-all", () => {
    for (const e of entries.values()) if (e.row.dataset.state === "uploading") setState(e, "paused", "paused");
  });
  uppy.on("resume-all", () => {
    for (const e of entries.values()) if (e.row.dataset.state === "paused") setState(e, "uploading", "uploading");
  });

  showWho();
  recall();
  body.dataset.ready = "true";
}

wire();
