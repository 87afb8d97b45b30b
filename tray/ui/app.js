// codex-pool window: talks to the management API (/api/) with the token from the URL fragment.
// One render function per page; no framework, nothing loaded from elsewhere.

const TOKEN_KEY = "codex-pool-token";
const PAGES = {
  accounts: { title: "Accounts", render: accountsPage },
  add: { title: "Add account", render: addPage },
  activity: { title: "Activity", render: activityPage },
  connect: { title: "Connect clients", render: connectPage },
  settings: { title: "Settings", render: settingsPage },
};
let skew = 0; // server clock minus ours, seconds
let stopPage = () => {};

// ---------- plumbing ----------

// The window opens at ui_url (#token=...), optionally with &page=<page> and, for the Add account
// page, &start=browser|device to begin that sign-in at once (the tray menu's Add account items).
function takeToken() {
  const match = location.hash.match(/token=([^&]+)/);
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    const page = (location.hash.match(/[#&]page=([a-z]+)/) || [])[1] || "accounts";
    const start = (location.hash.match(/[#&]start=(browser|device)/) || [])[1];
    history.replaceState(null, "", location.pathname + location.search + "#" + page + (start ? `/start=${start}` : ""));
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

async function api(method, path, body) {
  const headers = { "X-Codex-Pool-Token": sessionStorage.getItem(TOKEN_KEY) || "" };
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

function h(tag, attrs = {}, ...children) {
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

function toast(text, bad = false) {
  const el = h("div", { class: "toast" + (bad ? " bad" : "") }, text);
  document.getElementById("toasts").append(el);
  setTimeout(() => el.remove(), bad ? 6000 : 3000);
}

async function act(fn, done) {
  try {
    const out = await fn();
    if (done) toast(done);
    return out;
  } catch (err) {
    toast(err.message, true);
    return null;
  }
}

function confirmDialog(title, text, okLabel) {
  const dlg = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = okLabel;
  dlg.returnValue = "";
  dlg.showModal();
  return new Promise((resolve) => dlg.addEventListener("close", () => resolve(dlg.returnValue === "ok"), { once: true }));
}

async function copy(text, what) {
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

const now = () => Date.now() / 1000 + skew;

function countdown(at) {
  let s = Math.max(0, Math.round(at - now()));
  if (s === 0) return "resetting";
  const d = Math.floor(s / 86400); s -= d * 86400;
  const hr = Math.floor(s / 3600); s -= hr * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (d) return `resets in ${d}d ${hr}h`;
  if (hr) return `resets in ${hr}h ${String(m).padStart(2, "0")}m`;
  return `resets in ${m}m ${String(s).padStart(2, "0")}s`;
}

function clock(at) {
  return new Date(at * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
}

function tickCountdowns() {
  for (const el of document.querySelectorAll("[data-reset]")) el.textContent = countdown(Number(el.dataset.reset));
  for (const el of document.querySelectorAll("[data-expires]")) {
    const left = Math.max(0, Math.round(Number(el.dataset.expires) - now()));
    el.textContent = `Code expires in ${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
  }
}

function every(ms, fn) {
  const id = setInterval(fn, ms);
  return () => clearInterval(id);
}

const STATUS_WORDS = {
  ready: "Ready", low: "Low", cooling: "Cooling down", exhausted: "Limit reached",
  needs_login: "Needs login", disabled: "Disabled",
};

// ---------- shell ----------

async function refreshStatus() {
  try {
    const s = await api("GET", "/status");
    skew = s.now - Date.now() / 1000;
    const box = document.getElementById("health");
    box.dataset.state = s.health.state;
    document.getElementById("health-text").textContent =
      { healthy: "Healthy", degraded: "Degraded", exhausted: "Exhausted", empty: "No accounts" }[s.health.state] || s.health.state;
    box.title = s.health.message;
    document.getElementById("proxy-url").textContent = s.proxy_url.replace(/^https?:\/\//, "");
    document.getElementById("banner").hidden = true;
    return s;
  } catch (err) {
    document.getElementById("health").dataset.state = "error";
    document.getElementById("health-text").textContent = "Offline";
    const banner = document.getElementById("banner");
    banner.textContent = err.status === 401
      ? "This page needs the pool window's link (open it from the tray menu or `codex-pool status`)."
      : `Cannot reach codex-pool: ${err.message}`;
    banner.hidden = false;
    return null;
  }
}

function show() {
  const name = (location.hash.replace(/^#/, "").split(/[/&]/)[0]) || "accounts";
  const page = PAGES[name] ? name : "accounts";
  stopPage();
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  document.title = `${PAGES[page].title} · codex-pool`;
  document.getElementById("page-title").textContent = PAGES[page].title;
  const actions = document.getElementById("page-actions");
  const root = document.getElementById("page");
  actions.replaceChildren();
  root.replaceChildren();
  document.body.dataset.page = page;
  stopPage = PAGES[page].render(root, actions) || (() => {});
}

// ---------- Accounts ----------

function fill(percent) {
  const el = h("span");
  el.style.width = `${percent}%`;  // through CSSOM: the page's CSP allows no inline style attributes
  return el;
}

function quotaBars(account) {
  const q = account.quota;
  if (!q.known) return h("div", { class: "quota muted small" }, "Quota not known yet");
  return h("div", { class: "quota" }, q.windows.map((w) => {
    const used = w.used_percent ?? 0;
    const level = used >= 90 ? "bad" : used >= 70 ? "warn" : "ok";
    return h("div", { class: "bar-row", dataset: { window: w.label } },
      h("span", { class: "bar-label" }, w.label === "weekly" ? "Weekly" : w.label),
      h("div", { class: "bar", dataset: { level }, role: "meter", "aria-valuenow": used, "aria-valuemin": 0, "aria-valuemax": 100, "aria-label": `${w.label} used` },
        fill(Math.min(100, used))),
      h("div", { class: "bar-text" },
        h("span", {}, `${Math.round(used)}% used`),
        w.reset_at ? h("span", { dataset: { reset: w.reset_at } }, countdown(w.reset_at)) : h("span", {}, "")));
  }));
}

function nameCell(account, reload) {
  const text = h("span", { class: "text", title: "Click to rename", tabindex: 0 }, account.name);
  const box = h("div", { class: "name" }, text);
  const edit = () => {
    const input = h("input", { type: "text", value: account.label || "", placeholder: account.email || "Label", "aria-label": "Label" });
    let done = false;
    const finish = async (save) => {
      if (done) return;
      done = true;
      if (save && input.value.trim() !== (account.label || "")) {
        await act(() => api("PATCH", `/accounts/${account.id}`, { label: input.value.trim() || null }), "Label saved");
      }
      reload();
    };
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") finish(true);
      if (e.key === "Escape") finish(false);
    });
    input.addEventListener("blur", () => finish(true));
    box.replaceChildren(input);
    input.focus();
    input.select();
  };
  text.addEventListener("click", edit);
  text.addEventListener("keydown", (e) => { if (e.key === "Enter") edit(); });
  return box;
}

function accountRow(account, index, count, reload) {
  const call = (method, path, body, done) => async () => { await act(() => api(method, path, body), done); reload(); };
  const remove = async () => {
    const yes = await confirmDialog(`Remove ${account.name}?`,
      "Its tokens are deleted from the pool. You can add the account again later by signing in.", "Remove");
    if (yes) await call("DELETE", `/accounts/${account.id}`, undefined, `Removed ${account.name}`)();
  };
  const relogin = async () => {
    location.hash = `add/relogin=${account.id}`;
  };
  const sub = [account.email && account.email !== account.name ? account.email : null, account.plan && account.plan.toUpperCase()]
    .filter(Boolean).join(" · ");
  return h("div", { class: "acct", dataset: { id: account.id, status: account.status } },
    h("div", { class: "who" },
      nameCell(account, reload),
      h("div", { class: "sub" }, sub || "\u00a0"),
      h("div", { class: "badges" },
        h("span", { class: `badge ${account.role}` }, account.role),
        h("span", { class: `badge ${account.status}`, "data-role": "status" }, STATUS_WORDS[account.status] || account.status)),
      account.reason ? h("div", { class: "reason" }, account.reason) : null,
      h("div", { class: "links" },
        account.primary ? null : h("button", { class: "link", title: "Make this the account your own clients use",
          onclick: call("POST", `/accounts/${account.id}/primary`, undefined, `${account.name} is now primary`) }, "Make primary"),
        h("button", { class: "link danger", onclick: remove }, "Remove"))),
    quotaBars(account),
    h("div", { class: "row-actions" },
      h("button", { class: "btn icon", title: "Move up", "aria-label": "Move up", disabled: index === 0,
        onclick: call("POST", `/accounts/${account.id}/move`, { index: index - 1 }) }, "↑"),
      h("button", { class: "btn icon", title: "Move down", "aria-label": "Move down", disabled: index === count - 1,
        onclick: call("POST", `/accounts/${account.id}/move`, { index: index + 1 }) }, "↓"),
      account.status === "needs_login"
        ? h("button", { class: "btn primary", onclick: relogin }, "Re-login")
        : h("button", { class: "btn toggle", onclick: call("PATCH", `/accounts/${account.id}`, { enabled: !account.enabled },
          account.enabled ? `Disabled ${account.name}` : `Enabled ${account.name}`) }, account.enabled ? "Disable" : "Enable")));
}

function accountsPage(root, actions) {
  actions.append(h("a", { class: "btn primary", href: "#add" }, "Add account"));
  const list = h("div", { class: "panel accounts", id: "accounts" });
  root.append(list);
  let editing = () => list.querySelector("input") !== null;
  const load = async () => {
    const data = await act(() => api("GET", "/accounts"));
    if (!data) return;
    refreshStatus();
    if (!data.accounts.length) {
      list.replaceChildren(h("div", { class: "empty" },
        h("h2", {}, "No accounts yet"),
        h("p", { class: "muted" }, "Add your ChatGPT account first; it becomes the primary. Add more to pool their quota."),
        h("a", { class: "btn primary", href: "#add" }, "Add account")));
      return;
    }
    list.replaceChildren(...data.accounts.map((a, i) => accountRow(a, i, data.accounts.length, load)));
  };
  load();
  const stopTick = every(1000, tickCountdowns);
  const stopPoll = every(15000, () => { if (!editing() && !document.getElementById("confirm").open) load(); });
  return () => { stopTick(); stopPoll(); };
}

// ---------- Add account ----------

function addPage(root) {
  const relogin = (location.hash.match(/relogin=(\d+)/) || [])[1];
  let poll = () => {};
  let ticket = null;
  const primary = h("input", { type: "checkbox", id: "make-primary" });
  const output = h("div", { class: "panel card flow", id: "login-flow", hidden: true });

  const finish = (t) => {
    poll();
    ticket = null;
    const ok = t.status === "done";
    if (ok) refreshStatus();
    output.replaceChildren(
      h("p", { class: ok ? "result-ok" : "result-bad", id: "login-result" },
        ok ? `Signed in: ${t.account ? t.account.name : "account"} added to the pool.` : (t.error || `Sign-in ${t.status}.`)),
      t.note ? h("p", { class: "muted" }, t.note) : null,
      h("div", { class: "actions" },
        ok ? h("a", { class: "btn primary", href: "#accounts" }, "See accounts") : null,
        h("button", { class: "btn", onclick: () => { output.hidden = true; } }, ok ? "Add another" : "Try again")));
  };
  const cancel = async () => {
    if (!ticket) return;
    const t = await act(() => api("DELETE", `/login/${ticket.id}`));
    if (t) finish(t.ticket);
  };
  const watch = (t) => {
    ticket = t;
    poll();
    poll = every(1000, async () => {
      if (!ticket) return;
      const data = await act(() => api("GET", `/login/${ticket.id}`));
      if (data && data.ticket.status !== "waiting") finish(data.ticket);
    });
  };
  const waiting = (text) => h("div", { class: "waiting" }, h("span", { class: "spinner" }), h("span", {}, text));

  const startBrowser = async () => {
    const path = relogin ? `/accounts/${relogin}/relogin` : "/login/browser";
    const data = await act(() => api("POST", path, { method: "browser", primary: primary.checked }));
    if (!data) return;
    const t = data.ticket;
    output.hidden = false;
    output.replaceChildren(
      h("h2", {}, "Sign in with your browser"),
      h("p", {}, "Finish signing in on the ChatGPT page in your browser. If no page opened, use Open or copy the link:"),
      h("div", { class: "url-box" },
        h("input", { type: "text", readonly: true, value: t.authorize_url, id: "authorize-url", "aria-label": "Sign-in link" }),
        h("button", { class: "btn", onclick: () => copy(t.authorize_url, "Link") }, "Copy"),
        h("a", { class: "btn primary", href: t.authorize_url, target: "_blank", rel: "noopener noreferrer" }, "Open")),
      waiting("Waiting for you to finish signing in…"),
      h("div", {}, h("button", { class: "btn", onclick: cancel }, "Cancel")));
    watch(t);
  };
  const startDevice = async () => {
    const path = relogin ? `/accounts/${relogin}/relogin` : "/login/device";
    const data = await act(() => api("POST", path, { method: "device", primary: primary.checked }));
    if (!data) return;
    const t = data.ticket;
    output.hidden = false;
    output.replaceChildren(
      h("h2", {}, "Enter this code"),
      h("p", {}, "Open ", h("a", { href: t.verification_url, target: "_blank", rel: "noopener noreferrer", id: "verification-url" }, t.verification_url),
        " on any device, sign in, and enter:"),
      h("div", { class: "code", id: "user-code" }, t.user_code),
      h("div", { class: "actions" },
        h("button", { class: "btn", onclick: () => copy(t.user_code, "Code") }, "Copy code"),
        t.expires_at ? h("span", { class: "muted small", dataset: { expires: t.expires_at } }, "") : null),
      waiting("Waiting for approval…"),
      h("div", {}, h("button", { class: "btn", onclick: cancel }, "Cancel")));
    tickCountdowns();
    watch(t);
  };

  root.append(h("div", { class: "stack" },
    relogin ? h("p", { class: "panel card" }, "Sign in again to this account. Use the same ChatGPT login; its tokens are replaced.") : null,
    h("div", { class: "grid2" },
      h("div", { class: "panel card flow" },
        h("h2", {}, "Browser sign-in"),
        h("p", { class: "muted" }, "Opens the ChatGPT sign-in page in your browser. Best on this computer."),
        h("div", {}, h("button", { class: "btn primary", id: "start-browser", onclick: startBrowser }, "Sign in with browser"))),
      h("div", { class: "panel card flow" },
        h("h2", {}, "Device code"),
        h("p", { class: "muted" }, "Shows a code to enter on another device. Use it when the browser can’t reach this machine."),
        h("div", {}, h("button", { class: "btn", id: "start-device", onclick: startDevice }, "Use a device code")))),
    relogin ? null : h("label", { class: "check" }, primary, "Make the new account the primary (the one your own clients use)"),
    output));
  const auto = (location.hash.match(/start=(browser|device)/) || [])[1];
  if (auto) {
    history.replaceState(null, "", location.pathname + location.search + "#add");
    (auto === "browser" ? startBrowser : startDevice)();
  }
  const stopTick = every(1000, tickCountdowns);
  return () => { poll(); stopTick(); if (ticket) api("DELETE", `/login/${ticket.id}`).catch(() => {}); };
}

// ---------- Activity ----------

function activityPage(root, actions) {
  const auto = h("input", { type: "checkbox", checked: true, id: "auto-refresh" });
  actions.append(h("label", { class: "check small" }, auto, "Auto-refresh"));
  const body = h("tbody", { id: "activity-rows" });
  const cols = [["Time", "time"], ["Account", "account"], ["Reason", "reason"], ["Status", "status"], ["Latency", "latency"],
    ["Candidates", "scores"]];
  const table = h("div", { class: "panel" }, h("table", { class: "activity" },
    h("colgroup", {}, cols.map(([, c]) => h("col", { class: `col-${c}` }))),
    h("thead", {}, h("tr", {}, cols.map(([t]) => h("th", {}, t)))),
    body));
  root.append(table);
  const load = async () => {
    const data = await act(() => api("GET", "/activity?limit=200"));
    if (!data) return;
    if (!data.decisions.length) {
      body.replaceChildren(h("tr", {}, h("td", { colspan: 6, class: "empty muted" }, "No requests yet. Point a client at the proxy (Connect clients) and they show up here.")));
      return;
    }
    body.replaceChildren(...data.decisions.map((d) => h("tr", { class: "decision" },
      h("td", { class: "num" }, clock(d.at)),
      h("td", {}, d.account || "—"),
      h("td", {}, d.reason, d.fast_note ? h("div", { class: "small muted" }, d.fast_note) : null,
        d.route ? h("div", { class: "small muted route" }, d.route.replace("/backend-api/codex", "codex")) : null),
      h("td", { class: d.status && d.status < 400 ? "status-ok" : "status-bad" }, d.status ?? "—"),
      h("td", { class: "num" }, d.latency_ms == null ? "—" : `${Math.round(d.latency_ms)} ms`),
      h("td", {}, h("div", { class: "scores" }, d.scores.map((s) => h("span", { class: "chip" + (s.account_id === d.account_id ? " chosen" : "") },
        `${s.name} ${s.score == null ? "?" : s.score.toFixed(2)}`)))))));
  };
  load();
  return every(3000, () => { if (auto.checked) load(); });
}

// ---------- Connect clients ----------

function connectPage(root) {
  const render = (data) => {
    const masked = (text) => text.split(data.api_key).join(data.api_key.slice(0, 3) + "•".repeat(20));
    const secret = [];  // [element, exact text] pairs that show the key only when asked
    const keyText = (cls, text, id) => {
      const el = h(cls === "pre" ? "pre" : "span", { class: cls === "pre" ? "snippet" : "mono", id }, masked(text));
      secret.push([el, text]);
      return el;
    };
    const toggle = (e) => {
      const show = e.target.textContent === "Show key";
      for (const [el, text] of secret) el.textContent = show ? text : masked(text);
      e.target.textContent = show ? "Hide key" : "Show key";
    };
    root.replaceChildren(h("div", { class: "stack" },
      h("div", { class: "panel card" },
        h("h2", {}, "This proxy"),
        h("div", { class: "kv" },
          h("span", { class: "muted" }, "Address"), h("span", { class: "mono", id: "proxy-address" }, data.proxy_url),
          h("div", { class: "actions" }, h("button", { class: "btn", onclick: () => copy(data.proxy_url, "Address") }, "Copy")),
          h("span", { class: "muted" }, "Local key"), keyText("span", data.api_key, "local-key"),
          h("div", { class: "actions" },
            h("button", { class: "btn", id: "show-key", onclick: toggle }, "Show key"),
            h("button", { class: "btn", onclick: () => copy(data.api_key, "Key") }, "Copy")))),
      ...data.clients.map((c) => h("div", { class: "panel card", dataset: { client: c.id } },
        h("div", { class: "card-head" },
          h("h2", {}, c.name),
          h("span", { class: `badge ${c.applied ? "ready" : ""}` }, c.applied ? "Connected" : "Not set up")),
        h("div", { class: "small muted" }, "File: ", h("span", { class: "mono" }, c.path)),
        keyText("pre", c.snippet, `snippet-${c.id}`),
        h("div", { class: "actions" },
          h("button", { class: "btn", onclick: () => copy(c.snippet, "Config") }, "Copy"),
          h("button", { class: "btn primary", onclick: () => run(c, "apply") }, c.applied ? "Apply again" : "Apply"),
          h("button", { class: "btn", disabled: !c.can_undo, onclick: () => run(c, "undo") }, "Undo")))),
      autostartPanel(data.autostart)));
  };
  const run = async (client, action) => {
    const out = await act(() => api("POST", `/clients/${client.id}/${action}`));
    if (!out) return;
    toast(out.message);
    for (const note of out.notes || []) toast(note);
    load();
  };
  const load = async () => {
    const data = await act(() => api("GET", "/clients"));
    if (data) render(data);
  };
  load();
}

function autostartPanel(state) {
  if (!state) return null;
  const box = h("input", { type: "checkbox", id: "autostart", checked: state.enabled });
  box.addEventListener("change", async () => {
    const out = await act(() => api("PUT", "/autostart", { enabled: box.checked }), box.checked ? "codex-pool starts at login" : "Start at login turned off");
    if (!out) box.checked = !box.checked;
  });
  return h("div", { class: "panel card" }, h("h2", {}, "Start at login"),
    h("label", { class: "check" }, box, "Start codex-pool when I log in"),
    state.location ? h("div", { class: "small muted" }, state.location) : null);
}

// ---------- Settings ----------

// Labels and input kinds; the hint under each field is the config file's own comment for the key.
const FIELDS = [
  ["Routing", [
    ["sticky-mode", "Keep sessions on one account", "choice", ["auto", "always", "disabled"]],
    ["sticky-strength", "Sticky strength", "number", { min: 0, step: 0.1 }],
    ["fast-mode", "Fast mode", "choice", ["auto", "always", "disabled"]],
    ["fast-mode-bias", "Fast-mode bias", "number", { step: 0.01 }],
    ["dormant-touch", "Start idle quota windows", "choice", ["always", "new-session-only", "disabled"]],
  ]],
  ["Proxy", [
    ["host", "Listen address", "text"],
    ["port", "Port", "number", { min: 0, max: 65535, step: 1 }],
    ["allow-remote", "Allow other machines", "bool"],
    ["max-body-mb", "Request size limit (MB)", "number", { min: 0.001, step: 1 }],
    ["log-level", "Log level", "choice", ["debug", "info", "warning", "error"]],
  ]],
  ["Upstream", [
    ["upstream-url", "Codex backend URL", "url"],
    ["auth-url", "Sign-in server URL", "url"],
  ]],
  ["Notifications", [
    ["quota-low-percent", "Quota-low threshold (% left)", "number", { min: 0, max: 100, step: 1 }],
  ]],
];
const KIND_WORDS = {
  "config-invalid": "Config problems", "config_invalid": "Config problems", "needs-login": "An account needs login",
  "needs_login": "An account needs login", "exhausted": "Pool exhausted", "pool-exhausted": "Pool exhausted",
  "available": "Pool available again", "pool-available": "Pool available again", "quota-low": "Quota running low", "quota_low": "Quota running low",
};

function checkField(key, kind, opts, raw) {
  if (kind === "number") {
    if (raw === "" || !Number.isFinite(Number(raw))) return "Enter a number.";
    const n = Number(raw);
    if (opts && opts.min !== undefined && n < opts.min) return `Must be at least ${opts.min}.`;
    if (opts && opts.max !== undefined && n > opts.max) return `Must be at most ${opts.max}.`;
    if (opts && opts.step === 1 && !Number.isInteger(n)) return "Must be a whole number.";
  }
  if (kind === "url" && !/^https?:\/\/[^\s/]+/.test(raw)) return "Enter an http:// or https:// URL.";
  if (kind === "text" && !raw.trim()) return "Cannot be empty.";
  return null;
}

function settingsPage(root) {
  const inputs = {};
  const errors = {};
  const field = (key, label, kind, opts, hint, value) => {
    let input;
    if (kind === "bool") {
      input = h("input", { type: "checkbox", id: `f-${key}`, name: key, checked: value === true });
      inputs[key] = { input, kind };
      errors[key] = h("div", { class: "err", id: `err-${key}`, hidden: true });
      return h("div", { class: "field" }, h("label", { class: "check" }, input, label, h("span", { class: "key" }, key)),
        hint ? h("div", { class: "hint" }, hint) : null, errors[key]);
    }
    if (kind === "choice") {
      const choices = opts.includes(String(value)) ? opts : [...opts, String(value)];
      input = h("select", { id: `f-${key}`, name: key }, choices.map((c) => h("option", { value: c, selected: String(value) === c }, c)));
    } else {
      input = h("input", { id: `f-${key}`, name: key, type: kind === "number" ? "number" : "text", value: value ?? "",
        min: opts && opts.min, max: opts && opts.max, step: opts && opts.step ? opts.step : (kind === "number" ? "any" : undefined) });
    }
    const err = h("div", { class: "err", id: `err-${key}`, hidden: true });
    inputs[key] = { input, kind, opts };
    errors[key] = err;
    input.addEventListener("input", () => setError(key, checkField(key, kind, opts, input.value)));
    return h("div", { class: "field" }, h("label", { for: `f-${key}` }, label, h("span", { class: "key" }, key)), input,
      hint ? h("div", { class: "hint" }, hint) : null, err);
  };
  const setError = (key, text) => {
    if (!errors[key]) return;
    errors[key].textContent = text || "";
    errors[key].hidden = !text;
    const el = inputs[key] && inputs[key].input;
    if (el) el.setAttribute("aria-invalid", text ? "true" : "false");
  };
  const collect = () => {
    const out = {};
    let bad = 0;
    for (const [key, { input, kind, opts }] of Object.entries(inputs)) {
      if (kind === "bool") { out[key] = input.checked; continue; }
      const problem = checkField(key, kind, opts, input.value);
      setError(key, problem);
      if (problem) { bad++; continue; }
      out[key] = kind === "number" ? Number(input.value) : input.value.trim();
    }
    return { out, bad };
  };

  const render = (data) => {
    const help = data.help || {};
    const known = new Set(["notifications"]);
    const sections = FIELDS.map(([title, list]) => h("section", { class: "panel card" }, h("h2", {}, title),
      h("div", { class: "fields" }, list.filter(([key]) => key in data.values).map(([key, label, kind, opts]) => {
        known.add(key);
        return field(key, label, kind, opts, help[key], data.values[key]);
      }))));
    const notes = data.values.notifications;
    if (notes && typeof notes === "object") {
      sections[sections.length - 1].querySelector(".fields").append(...Object.entries(notes).map(([kind, on]) =>
        field(`notifications.${kind}`, KIND_WORDS[kind] || kind, "bool", null, help[`notifications.${kind}`], on)));
    }
    const extra = Object.keys(data.values).filter((k) => !known.has(k));
    if (extra.length) {
      sections.push(h("section", { class: "panel card" }, h("h2", {}, "Other"), h("div", { class: "fields" },
        extra.map((key) => field(key, key, typeof data.values[key] === "number" ? "number" : "text", null, help[key], data.values[key])))));
    }
    const status = h("span", { class: "small muted", id: "save-status" }, data.problems && data.problems.length
      ? `The config file has problems: ${data.problems.join("; ")}` : "Changes apply as soon as they are saved.");
    root.replaceChildren(h("form", { class: "stack", id: "settings", novalidate: true, onsubmit: save },
      h("p", { class: "muted small path" }, "File: ", h("span", { class: "mono" }, data.path)), sections,
      h("div", { class: "save-bar" }, h("button", { class: "btn primary", type: "submit", id: "save" }, "Save"),
        h("button", { class: "btn", type: "button", onclick: load }, "Revert"), status)));
  };
  const save = async (e) => {
    e.preventDefault();
    const { out, bad } = collect();
    if (bad) { toast("Fix the highlighted fields first.", true); focusFirstError(); return; }
    const values = {};
    for (const [key, value] of Object.entries(out)) {
      if (key.startsWith("notifications.")) (values.notifications ||= {})[key.slice(14)] = value;
      else values[key] = value;
    }
    try {
      const data = await api("PUT", "/settings", { values });
      toast("Settings saved and applied");
      render(data);
    } catch (err) {
      const problems = (err.data && err.data.problems) || {};
      for (const [key, text] of Object.entries(problems)) setError(inputs[key] ? key : Object.keys(inputs).find((k) => k.startsWith(key)) || key, text);
      toast(Object.keys(problems).length ? "Not saved: see the highlighted fields." : err.message, true);
      focusFirstError();
    }
  };
  const focusFirstError = () => {
    const bad = root.querySelector("[aria-invalid='true']");
    if (bad) { bad.scrollIntoView({ block: "center" }); bad.focus(); }
  };
  const load = async () => {
    const data = await act(() => api("GET", "/settings"));
    if (data) render(data);
  };
  load();
}

// ---------- start ----------

takeToken();
window.addEventListener("hashchange", () => { takeToken(); show(); });  // the tray may re-open ui_url
refreshStatus();
setInterval(refreshStatus, 10000);
show();
