// Settings page: every config key, checked here and by the server. Most apply as soon as they are
// saved; host, port and allow-remote wait for the proxy to restart, which the page says and offers.

import { api, h, put, toast, act, poolChanged, onPoolUpdated } from "./lib.js";

const RESTART_WORDS = { host: "the listen address", port: "the port", "allow-remote": "allowing other machines" };

// Labels and key names break at spaces only, never at their hyphens ("fast‑mode‑bias").
const unbroken = (text) => String(text).replace(/-/g, "\u2011");

function listWords(items) {
  return items.length < 2 ? items.join("") : `${items.slice(0, -1).join(", ")} and ${items[items.length - 1]}`;
}

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
    ["upstream-proxy", "Forward proxy (blank: from the environment)", "text"],
  ]],
  ["Notifications", [
    ["quota-low-percent", "Quota-low threshold (% left)", "number", { min: 0, max: 100, step: 1 }],
  ]],
];
const KIND_WORDS = {
  "config-invalid": "Config problems", "config_invalid": "Config problems", "needs-login": "An account needs login",
  "needs_login": "An account needs login", "exhausted": "Pool exhausted", "pool-exhausted": "Pool exhausted",
  "available": "Pool available again", "pool-available": "Pool available again", "quota-low": "Quota running low", "quota_low": "Quota running low",
  "forecast": "Pool may run out before it resets",
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

export function settingsPage(root) {
  const inputs = {};
  const errors = {};
  const field = (key, label, kind, opts, hint, value) => {
    let input;
    if (kind === "bool") {
      input = h("input", { type: "checkbox", id: `f-${key}`, name: key, checked: value === true });
      inputs[key] = { input, kind };
      errors[key] = h("div", { class: "err", id: `err-${key}`, hidden: true });
      return h("div", { class: "field" }, h("label", { class: "check" }, input, unbroken(label), h("span", { class: "key" }, unbroken(key))),
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
    return h("div", { class: "field" }, h("label", { for: `f-${key}` }, unbroken(label), h("span", { class: "key" }, unbroken(key))), input,
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
      if (input.readOnly) continue;  // changed only by editing config.toml
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
    for (const key of data.file_only || []) {
      if (!inputs[key]) continue;
      inputs[key].input.readOnly = true;
      inputs[key].input.setAttribute("aria-readonly", "true");
      inputs[key].input.closest(".field").append(h("div", { class: "hint locked" },
        "Read-only in the window."));
    }
    const status = h("span", { class: "small muted", id: "save-status" }, data.problems && data.problems.length
      ? `The config file has problems: ${data.problems.join("; ")}` : "Most changes apply as soon as they are saved.");
    const restart = h("div", { class: "restart-note", id: "restart-note", hidden: true });
    root.replaceChildren(h("form", { class: "stack", id: "settings", novalidate: true, onsubmit: save },
      h("p", { class: "muted small path" }, "File: ", h("span", { class: "mono" }, data.path)), sections,
      h("div", { class: "save-bar" },
        h("div", { class: "save-row" }, h("button", { class: "btn primary", type: "submit", id: "save" }, "Save"),
          h("button", { class: "btn", type: "button", onclick: load }, "Revert"), status),
        restart)));
    showRestart(data.pending_restart || [], restart);
    dirty = false;
    shown = stamp(data);
    root.querySelector("form").addEventListener("input", () => { dirty = true; });
  };
  // Saved settings that wait for the proxy to restart: say which, and offer to do it now.
  const showRestart = (pending, box) => {
    const names = pending.map((k) => RESTART_WORDS[k] || k);
    box.hidden = !pending.length;
    if (!pending.length) return;
    put(box, h("span", {}, `Saved: ${listWords(names)} take${names.length === 1 ? "s" : ""} effect when the proxy restarts. `),
      h("button", { class: "btn primary", type: "button", id: "restart-proxy", onclick: () => restartProxy(box) }, "Restart proxy now"));
  };
  const restartProxy = async (box) => {
    const button = box.querySelector("button");
    button.disabled = true;
    let out;
    try {
      out = await api("POST", "/proxy/restart");
    } catch (err) {
      button.disabled = false;
      put(box, h("span", { class: "err" }, err.message), " ", button);
      return;
    }
    put(box, h("span", { class: "spinner", "aria-hidden": "true" }), h("span", {}, "Restarting the proxy…"));
    if (!out.same) {
      // A new address: this page cannot call it (its policy allows its own origin only), so the
      // window moves there with the fresh one-time code the answer carries.
      location.replace(out.ui_url);
      return;
    }
    for (let tries = 0; tries < 60; tries++) {
      await new Promise((r) => setTimeout(r, 500));
      try {
        await api("GET", "/status");
        toast("Proxy restarted");
        poolChanged();
        load();
        return;
      } catch { /* still restarting */ }
    }
    put(box, h("span", { class: "err" }, "The proxy did not come back: see the tray menu or the log."));
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
      const waiting = data.pending_restart || [];
      toast(waiting.length ? "Settings saved" : "Settings saved and applied");
      poolChanged();
      render(data);
      document.getElementById("save-status").textContent = waiting.length
        ? "Saved. The rest applies now; see below for what waits for a restart." : "Saved and applied.";
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
  let dirty = false;  // the form has edits not saved yet
  let shown = "";  // what the form shows, to tell a change made elsewhere
  const stamp = (data) => JSON.stringify([data.values, data.pending_restart, data.problems]);
  const load = async () => {
    const data = await act(() => api("GET", "/settings"));
    if (data) render(data);
  };
  load();
  // A change made elsewhere (config.toml edited, `codex-pool config set`) shows here, unless the
  // form holds edits of its own.
  return onPoolUpdated(async () => {
    if (dirty) return;
    const data = await act(() => api("GET", "/settings"));
    if (data && !dirty && stamp(data) !== shown) render(data);
  });
}
