// Shared plumbing for the pages: the API call, a tiny DOM builder, toasts, the confirm dialog,
// clipboard, times and countdowns in words, and timers.

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

// The shell fires "pool-updated" when the pool or the settings changed, here or in another process
// (the CLI, another codex-pool): pages that show them load again.
export function onPoolUpdated(fn) {
  document.addEventListener("pool-updated", fn);
  return () => document.removeEventListener("pool-updated", fn);
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

// A short note in the page's header: it takes room there (never covering a button) and goes away
// after a few seconds; a newer one replaces it.
export function toast(text, bad = false) {
  const box = document.getElementById("toasts");
  const el = h("div", { class: "toast" + (bad ? " bad" : ""), role: bad ? "alert" : "status" }, text);
  box.replaceChildren(el);
  setTimeout(() => el.remove(), bad ? 6000 : 2500);
}

// replaceChildren without the nulls: the DOM's own turns a null child into the text "null".
export function put(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

export async function act(fn, done) {
  try {
    const out = await fn();
    if (done) toast(done);
    return out;
  } catch (err) {
    if (err.status !== 401) toast(err.message, true);  // signed out: the banner says what to do
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

// A duration in words, in minutes (seconds only under a minute, so nothing ticks above that):
// "40 s", "23 min", "2 h 09 min", "2 d 23 h".
export function duration(seconds) {
  let s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  let m = Math.ceil(s / 60);
  if (m < 60) return `${m} min`;
  const d = Math.floor(m / 1440); m -= d * 1440;
  const hr = Math.floor(m / 60); m -= hr * 60;
  if (d) return hr ? `${d} d ${hr} h` : `${d} d`;
  return `${hr} h ${String(m).padStart(2, "0")} min`;
}

export function countdown(at) {
  const left = at - now();
  if (left <= 0) return "resetting";
  return left < 60 ? "resets in under a minute" : `resets in ${duration(left)}`;
}

// A wall-clock time: "15:40", or "Tue 15:40" when it is not today.
export function hhmm(at) {
  const date = new Date(at * 1000);
  const time = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
  const today = new Date(now() * 1000).toDateString() === date.toDateString();
  return today ? time : `${date.toLocaleDateString([], { weekday: "short" })} ${time}`;
}

// "until 15:40 (in 23 min)"
export function untilWords(at) {
  return `until ${hhmm(at)} (in ${duration(at - now())})`;
}

export function clock(at) {
  return new Date(at * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
}

// Countdowns and expiry notes in the page, brought up to date (pages call it every few seconds).
export function tickCountdowns() {
  for (const el of document.querySelectorAll("[data-reset]")) el.textContent = countdown(Number(el.dataset.reset));
  for (const el of document.querySelectorAll("[data-expires]")) {
    const left = Math.max(0, Number(el.dataset.expires) - now());
    el.textContent = left < 60 ? "Code expires in under a minute" : `Code expires in ${duration(left)}`;
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

// Why an account is not ready, with the time it comes back: "usage limit reached, resets 15:40",
// "rate limited, back at 15:40".
export function statusReason(account) {
  if (!account.reason) return null;
  if (!account.until || account.until <= now()) return account.reason;
  return `${account.reason}, ${account.status === "exhausted" ? "resets" : "back at"} ${hhmm(account.until)}`;
}
