// The resume book: what the browser remembers about each upload, in localStorage, so a
// reload or a browser restart finds it again. A record is written as soon as Slipway
// has recorded the upload (before any byte is sent) and names the file by its name, size
// and modification time; storage itself (through /parts) says which parts it holds.
// Nothing secret is kept: no token, no pre-signed URL.

const BOOK_KEY = "slipway.uploads.v1";
const KEEP_FINISHED = 20;

function load() {
  try {
    const book = JSON.parse(localStorage.getItem(BOOK_KEY) || "{}");
    return book && typeof book === "object" ? book : {};
  } catch {
    return {};
  }
}

function save(book) {
  localStorage.setItem(BOOK_KEY, JSON.stringify(book));
}

export function fingerprint(owner, file) {
  return [owner, file.name, file.size, file.lastModified].join("\u0000");
}

export function find(owner, file) {
  return load()[fingerprint(owner, file)] || null;
}

export function put(record) {
  const book = load();
  book[record.key] = record;
  const finished = Object.values(book)
    .filter((r) => r.phase === "done")
    .sort((a, b) => (b.updatedAt || 0) - (a.updatedAt || 0));
  for (const old of finished.slice(KEEP_FINISHED)) delete book[old.key];
  save(book);
}

export function update(key, changes) {
  const book = load();
  if (!book[key]) return null;
  book[key] = { ...book[key], ...changes, updatedAt: Date.now() };
  save(book);
  return book[key];
}

export function forget(key) {
  const book = load();
  delete book[key];
  save(book);
}

export function ofOwner(owner) {
  return Object.values(load())
    .filter((r) => r.owner === owner)
    .sort((a, b) => (b.createdAt || 0) - (a.createdAt || 0));
}

export function record(owner, file, kind, created) {
  return {
    key: fingerprint(owner, file),
    owner,
    name: file.name,
    size: file.size,
    lastModified: file.lastModified,
    kind,
    uploadId: created.uploadId,
    method: created.method,
    partSize: created.partSize || null,
    partCount: created.partCount || null,
    checksumParts: Boolean(created.checksumParts),
    resumableUntil: created.resumableUntil || created.expiresAt,
    phase: "uploading", // → processing (bytes complete) → done (final status seen)
    createdAt: Date.now(),
    updatedAt: Date.now(),
  };
}
