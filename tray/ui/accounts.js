// Accounts page: the pool with quota bars, inline relabel, reorder, enable/disable, remove, primary,
// and a quota refresh.

import {
  api, h, put, act, toast, confirmDialog, countdown, tickCountdowns, every, STATUS_WORDS, poolChanged,
  onPoolUpdated, statusReason,
} from "./lib.js";
import { fetchQuota, quotaStates, refreshAll } from "./quota.js";

function fill(percent) {
  const el = h("span");
  el.style.width = `${percent}%`;  // through CSSOM: the page's CSP allows no inline style attributes
  return el;
}

// Unknown quota says why: a fetch in flight (with a spinner), what the last fetch said, or that a
// turned-off account is not asked.
function unknownQuota(account, state) {
  if (state && state.fetching) {
    return h("div", { class: "quota quota-state muted small", dataset: { quota: "fetching" } },
      h("span", { class: "spinner", "aria-hidden": "true" }), "Quota not known yet: fetching it now…");
  }
  if (state && state.error) {
    return h("div", { class: "quota quota-state quota-error small", dataset: { quota: "error" } }, `Quota not known: ${state.error}`);
  }
  if (account.state === "needs_login") return h("div", { class: "quota muted small", dataset: { quota: "off" } }, "Quota not known: sign in again to fetch it");
  if (!account.enabled) return h("div", { class: "quota muted small", dataset: { quota: "off" } }, "Quota is not fetched while the account is off");
  return h("div", { class: "quota muted small", dataset: { quota: "unknown" } }, "Quota not known yet");
}

function barRow(w) {
  const name = w.label === "weekly" ? "Weekly" : w.label;
  if (w.resetting) {
    // The window's reset time has passed: how much of the new one is used is not known until the
    // next fetch, which the page asks for; no made-up 0 %.
    return h("div", { class: "bar-row", dataset: { window: w.label, resetting: "true" } },
      h("span", { class: "bar-label" }, name),
      h("div", { class: "bar resetting", role: "meter", "aria-label": `${w.label}: resetting` }),
      h("div", { class: "bar-text" }, h("span", {}, "resetting, checking…")));
  }
  const used = w.used_percent ?? 0;
  const level = used >= 90 ? "bad" : used >= 70 ? "warn" : "ok";
  return h("div", { class: "bar-row", dataset: { window: w.label } },
    h("span", { class: "bar-label" }, name),
    h("div", { class: "bar", dataset: { level }, role: "meter", "aria-valuenow": used, "aria-valuemin": 0, "aria-valuemax": 100, "aria-label": `${w.label} used` },
      fill(Math.min(100, used))),
    h("div", { class: "bar-text" },
      h("span", {}, `${Math.round(used)}% used`),
      w.reset_at ? h("span", { dataset: { reset: w.reset_at } }, countdown(w.reset_at)) : null));
}

function quotaBars(account, state) {
  const q = account.quota;
  if (!q.known) return unknownQuota(account, state);
  const minutes = Math.round((q.age_seconds || 0) / 60);
  const checking = state && state.fetching;
  const age = checking ? h("div", { class: "small muted quota-age" }, "Checking now…")
    : minutes >= 5 ? h("div", { class: "small muted quota-age" }, `As of ${minutes < 120 ? `${minutes} min` : `${Math.round(minutes / 60)} h`} ago`)
      : null;
  return h("div", { class: "quota" }, q.windows.map(barRow), age);
}

// The name: the label or the email, cut short with an ellipsis when long; hovering shows the full
// address. Clicking it (or "Rename") edits the label in place.
function nameCell(account, reload) {
  const full = [account.label, account.email].filter(Boolean).join(" · ") || account.name;
  const text = h("span", { class: "text", title: full, tabindex: 0, "aria-label": `${full} (click to rename)` }, account.name);
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
    put(box, input);
    input.focus();
    input.select();
  };
  text.addEventListener("click", edit);
  text.addEventListener("keydown", (e) => { if (e.key === "Enter") edit(); });
  return { box, edit };
}

function accountRow(account, index, count, reload, state) {
  const call = (method, path, body, done) => async () => { await act(() => api(method, path, body), done); reload(); };
  const remove = async () => {
    const yes = await confirmDialog(`Remove ${account.name}?`,
      "Its tokens are deleted from the pool. You can add the account again later by signing in.", "Remove");
    if (yes) await call("DELETE", `/accounts/${account.id}`, undefined, `Removed ${account.name}`)();
  };
  const relogin = () => { location.hash = `add/relogin=${account.id}`; };
  const needsLogin = account.status === "needs_login";
  const sub = [account.email && account.email !== account.name ? account.email : null, account.plan && account.plan.toUpperCase()]
    .filter(Boolean).join(" · ");
  const name = nameCell(account, reload);
  const reason = statusReason(account);
  return h("div", { class: "acct", dataset: { id: account.id, status: account.status } },
    h("div", { class: "who" },
      name.box,
      h("div", { class: "sub", title: sub }, sub || "\u00a0"),
      h("div", { class: "badges" },
        h("span", { class: `badge ${account.role}` }, account.role),
        h("span", { class: `badge ${account.status}`, "data-role": "status" }, STATUS_WORDS[account.status] || account.status)),
      reason ? h("div", { class: "reason", "data-role": "reason" }, reason) : null,
      h("div", { class: "links" },
        h("button", { class: "link", onclick: name.edit }, "Rename"),
        // An account that needs a new sign-in cannot serve: making it primary would not help.
        account.primary || needsLogin ? null : h("button", { class: "link", title: "Make this the account your own clients use",
          onclick: call("POST", `/accounts/${account.id}/primary`, undefined, `${account.name} is now primary`) }, "Make primary"),
        h("button", { class: "link danger", onclick: remove }, "Remove"))),
    quotaBars(account, state),
    h("div", { class: "row-actions" },
      needsLogin ? h("button", { class: "btn primary", onclick: relogin }, "Re-login") : null,
      h("button", { class: "btn icon", title: "Move up", "aria-label": "Move up", disabled: index === 0,
        onclick: call("POST", `/accounts/${account.id}/move`, { index: index - 1 }) }, "↑"),
      h("button", { class: "btn icon", title: "Move down", "aria-label": "Move down", disabled: index === count - 1,
        onclick: call("POST", `/accounts/${account.id}/move`, { index: index + 1 }) }, "↓"),
      needsLogin ? null
        : h("button", { class: "btn toggle", onclick: call("PATCH", `/accounts/${account.id}`, { enabled: !account.enabled },
          account.enabled ? `Disabled ${account.name}` : `Enabled ${account.name}`) }, account.enabled ? "Disable" : "Enable")));
}

export function accountsPage(root, actions) {
  const list = h("div", { class: "panel accounts", id: "accounts", hidden: true });  // shown once loaded
  root.append(list);
  const editing = () => list.querySelector("input") !== null || document.getElementById("confirm").open;
  let soon = null;  // a quick look again while a quota fetch is in flight
  let asked = new Set();  // accounts whose reset passed and whose quota this page asked for
  const refresh = h("button", { class: "btn", id: "refresh-quota", title: "Ask every account's quota now (at most once a minute each)",
    onclick: async () => {
      refresh.disabled = true;
      await refreshAll();
      toast("Checking quota…");
      await load();
      refresh.disabled = false;
    } }, "Refresh quota");
  actions.append(refresh, h("a", { class: "btn primary", href: "#add" }, "Add account"));
  // auto: a reload nobody on this page asked for (a change elsewhere, the timer), which waits while
  // a label is being typed or a dialog is open.
  const load = async (auto = false) => {
    clearTimeout(soon);
    const [data, states] = await Promise.all([act(() => api("GET", "/accounts")), quotaStates()]);
    if (!data) return;
    list.hidden = false;
    for (const a of data.accounts) {
      const st = states[a.id];
      const busy = st && (st.fetching || st.error);
      // An enabled account nobody is fetching yet, or one whose window just reset: ask now rather
      // than show a bare "not known" or an old number.
      const resetting = a.quota.windows.some((w) => w.resetting);
      if (a.state === "enabled" && !busy && (!a.quota.known || (resetting && !asked.has(a.id)))) {
        if (resetting) asked.add(a.id);
        Object.assign(states, await fetchQuota(a.id));
      }
    }
    if (data.accounts.some((a) => states[a.id] && states[a.id].fetching)) soon = setTimeout(() => load(true), 1000);
    poolChanged();
    if (!data.accounts.length) {
      put(list, h("div", { class: "empty" },
        h("h2", {}, "No accounts yet"),
        h("p", { class: "muted" }, "Add your ChatGPT account first; it becomes the primary. Add more to pool their quota."),
        h("a", { class: "btn primary", href: "#add" }, "Add account")));
      return;
    }
    if (auto && editing()) return;  // the next change, or the user's own action, redraws
    const reload = () => load();
    put(list, data.accounts.map((a, i) => accountRow(a, i, data.accounts.length, reload, states[a.id])));
  };
  load();
  const stopTick = every(5000, tickCountdowns);
  const stopWatch = onPoolUpdated(() => { asked = new Set(); load(true); });
  const stopPoll = every(30000, () => load(true));
  return () => { stopTick(); stopWatch(); stopPoll(); clearTimeout(soon); };
}
