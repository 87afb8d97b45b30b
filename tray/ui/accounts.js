// Accounts page: the pool with quota bars, inline relabel, reorder, enable/disable, remove, primary.

import { api, h, act, confirmDialog, countdown, tickCountdowns, every, STATUS_WORDS, poolChanged } from "./lib.js";
import { fetchQuota, quotaStates } from "./quota.js";

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

function quotaBars(account, state) {
  const q = account.quota;
  if (!q.known) return unknownQuota(account, state);
  const minutes = Math.round((q.age_seconds || 0) / 60);
  const age = minutes >= 5 ? h("div", { class: "small muted quota-age" }, `As of ${minutes < 120 ? `${minutes} min` : `${Math.round(minutes / 60)} h`} ago`) : null;
  return h("div", { class: "quota", title: `Quota data from ${Math.round(q.age_seconds || 0)} s ago` }, q.windows.map((w) => {
    const used = w.used_percent ?? 0;
    const level = used >= 90 ? "bad" : used >= 70 ? "warn" : "ok";
    return h("div", { class: "bar-row", dataset: { window: w.label } },
      h("span", { class: "bar-label" }, w.label === "weekly" ? "Weekly" : w.label),
      h("div", { class: "bar", dataset: { level }, role: "meter", "aria-valuenow": used, "aria-valuemin": 0, "aria-valuemax": 100, "aria-label": `${w.label} used` },
        fill(Math.min(100, used))),
      h("div", { class: "bar-text" },
        h("span", {}, `${Math.round(used)}% used`),
        w.reset_at ? h("span", { dataset: { reset: w.reset_at } }, countdown(w.reset_at)) : h("span", {}, "")));
  }), age);
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

function accountRow(account, index, count, reload, state) {
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
    quotaBars(account, state),
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

export function accountsPage(root, actions) {
  actions.append(h("a", { class: "btn primary", href: "#add" }, "Add account"));
  const list = h("div", { class: "panel accounts", id: "accounts" });
  root.append(list);
  let editing = () => list.querySelector("input") !== null;
  let soon = null;  // a quick look again while a quota fetch is in flight
  const load = async () => {
    clearTimeout(soon);
    const [data, states] = await Promise.all([act(() => api("GET", "/accounts")), quotaStates()]);
    if (!data) return;
    // An enabled account nobody is fetching yet: ask now rather than show a bare "not known".
    for (const a of data.accounts) {
      const st = states[a.id];
      if (!a.quota.known && a.state === "enabled" && !(st && (st.fetching || st.error))) {
        Object.assign(states, await fetchQuota(a.id));
      }
    }
    if (data.accounts.some((a) => !a.quota.known && states[a.id] && states[a.id].fetching)) soon = setTimeout(load, 1000);
    poolChanged();
    if (!data.accounts.length) {
      list.replaceChildren(h("div", { class: "empty" },
        h("h2", {}, "No accounts yet"),
        h("p", { class: "muted" }, "Add your ChatGPT account first; it becomes the primary. Add more to pool their quota."),
        h("a", { class: "btn primary", href: "#add" }, "Add account")));
      return;
    }
    list.replaceChildren(...data.accounts.map((a, i) => accountRow(a, i, data.accounts.length, load, states[a.id])));
  };
  load();
  const stopTick = every(1000, tickCountdowns);
  const stopPoll = every(15000, () => { if (!editing() && !document.getElementById("confirm").open) load(); });
  return () => { stopTick(); stopPoll(); clearTimeout(soon); };
}
