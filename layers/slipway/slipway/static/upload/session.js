// Who the page acts for, and its calls to Slipway's API (same origin as the page).
// The token comes from the hosting application (URL fragment #token=… or postMessage),
// from the token field, or on the local stack from the development sign-in. It is kept
// in sessionStorage: it survives a reload, not a browser restart.

const V1 = new URL(".", location.href); // the page is /v1/upload: its API is beside it
const TOKEN_KEY = "slipway.token";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(`${status} ${code}: ${message}`);
    this.status = status;
    this.code = code;
    this.detail = message;
  }
}

function claimsOf(token) {
  const part = token.split(".")[1];
  if (!part) throw new Error("not a JWT");
  const text = atob(part.replace(/-/g, "+").replace(/_/g, "/"));
  const claims = JSON.parse(decodeURIComponent(escape(text)));
  if (typeof claims.sub !== "string" || !claims.sub) throw new Error("the token has no subject");
  return claims;
}

export class Session extends EventTarget {
  constructor() {
    super();
    this.token = null;
    this.claims = null;
  }

  restore() {
    const fragment = new URLSearchParams(location.hash.slice(1));
    if (fragment.get("token")) {
      history.replaceState(null, "", location.pathname + location.search); // out of sight
      return this.use(fragment.get("token"));
    }
    const kept = sessionStorage.getItem(TOKEN_KEY);
    if (kept) {
      try {
        return this.use(kept);
      } catch {
        sessionStorage.removeItem(TOKEN_KEY);
      }
    }
    return false;
  }

  use(token) {
    const claims = claimsOf(token.trim()); // the API verifies it; this only names the owner
    if (claims.exp && claims.exp * 1000 < Date.now()) throw new Error("this token has expired");
    this.token = token.trim();
    this.claims = claims;
    sessionStorage.setItem(TOKEN_KEY, this.token);
    this.dispatchEvent(new Event("change"));
    return true;
  }

  signOut() {
    this.token = null;
    this.claims = null;
    sessionStorage.removeItem(TOKEN_KEY);
    this.dispatchEvent(new Event("change"));
  }

  get owner() {
    return this.claims ? this.claims.sub : null;
  }

  async devSignIn(user) {
    const reply = await this.call("POST", "dev/sign-in", { user }, { anonymous: true });
    return this.use(reply.token);
  }

  // Accept a token from the embedding application, only from the configured origins.
  listenToParent(origins) {
    if (window.parent === window || origins.length === 0) return;
    window.addEventListener("message", (event) => {
      if (event.source !== window.parent || !origins.includes(event.origin)) return;
      const data = event.data || {};
      if (data.type === "slipway:token" && typeof data.token === "string") {
        try {
          this.use(data.token);
        } catch (err) {
          this.dispatchEvent(new CustomEvent("problem", { detail: err.message }));
        }
      }
    });
    for (const origin of origins) window.parent.postMessage({ type: "slipway:ready" }, origin);
  }

  async call(method, path, body, { anonymous = false, signal } = {}) {
    const headers = {};
    if (!anonymous) {
      if (!this.token) throw new ApiError(401, "UNAUTHORIZED", "sign in first");
      headers.Authorization = `Bearer ${this.token}`;
    }
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const reply = await fetch(new URL(path, V1), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
    const text = await reply.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!reply.ok) {
      const error = (data && data.error) || {};
      const failure = new ApiError(reply.status, error.code || "HTTP", error.message || text.slice(0, 200));
      if (reply.status === 401 && !anonymous) {
        this.dispatchEvent(new CustomEvent("expired", { detail: failure.detail }));
      }
      throw failure;
    }
    return data;
  }
}
