// Shared plumbing for the pages: the API call, a tiny DOM builder, toasts, the confirm dialog,
// clipboard, countdowns and timers.

let skew = 0; // server clock minus ours, seconds
// The window's session: held in this page's memory only (never in storage, a cookie or the address),
// so nothing reusable outlives the page. A reload needs a new window link.
let session = "";

export function setSession(value) {
  session = value;
}

export function hasSession() {
  return session !== "";
}

// WebKitGTK under a C or POSIX locale reports navigator.language as "C", a tag Intl refuses; uPlot
// builds a number format from it as it loads, so the Usage page failed there. Such a page gets a
// language Intl accepts instead (the engine's own default formats stay as they are).
export function usableLanguage() {
  try {
    new Intl.NumberFormat(navigator.language);
  } catch {
    Object.defineProperty(navigator, "language", { value: "en-US", configurable: true });
  }
}

export function setServerTime(serverNow) {
  skew = serverNow - Date.now() / 1000;
}

// Pages call this after a change, so the shell refreshes the health pill.
export function poolChanged() {
  document.dispatchEvent(new Event("pool-changed"));
}

export async function api(method, path, body) {
  const headers = { "X-Codex-Pool-Session": session };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch("/api" + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let data = {};
  try { data = await res.json(); } catch { /* empty body */ }
  if (!res.ok) {
    const err = new Error(data.error || `Request failed (HTTP ${res.status})`);
    err.status = res.status;
    err.data = data;
    throw err;
  }
  return data;
}

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

export function toast(text, bad = false) {
  const el = h("div", { class: "toast" + (bad ? " bad" : "") }, text);
  document.getElementById("toasts").append(el);
  setTimeout(() => el.remove(), bad ? 6000 : 3000);
}

export async function act(fn, done) {
  try {
    const out = await fn();
    if (done) toast(done);
    return out;
  } catch (err) {
    toast(err.message, true);
    return null;
  }
}

export function confirmDialog(title, text, okLabel) {
  const dlg = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = okLabel;
  dlg.returnValue = "";
  dlg.showModal();
  return new Promise((resolve) => dlg.addEventListener("close", () => resolve(dlg.returnValue === "ok"), { once: true }));
}

export async function copy(text, what) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = h("textarea", {}, text);
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  toast(`${what} copied`);
}

export const now = () => Date.now() / 1000 + skew;

export function countdown(at) {
  let s = Math.max(0, Math.round(at - now()));
  if (s === 0) return "resetting";
  const d = Math.floor(s / 86400); s -= d * 86400;
  const hr = Math.floor(s / 3600); s -= hr * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (d) return `resets in ${d}d ${hr}h`;
  if (hr) return `resets in ${hr}h ${String(m).padStart(2, "0")}m`;
  return `resets in ${m}m ${String(s).padStart(2, "0")}s`;
}

export function clock(at) {
  return new Date(at * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
}

export function tickCountdowns() {
  for (const el of document.querySelectorAll("[data-reset]")) el.textContent = countdown(Number(el.dataset.reset));
  for (const el of document.querySelectorAll("[data-expires]")) {
    const left = Math.max(0, Math.round(Number(el.dataset.expires) - now()));
    el.textContent = `Code expires in ${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
  }
}

export function every(ms, fn) {
  const id = setInterval(fn, ms);
  return () => clearInterval(id);
}

export const STATUS_WORDS = {
  ready: "Ready", low: "Low", cooling: "Cooling down", exhausted: "Limit reached",
  needs_login: "Needs login", disabled: "Disabled",
};
