// Add account page: browser sign-in and device code, also used for re-login.

import { api, h, put, act, copy, tickCountdowns, every, poolChanged } from "./lib.js";

export function addPage(root) {
  const relogin = (location.hash.match(/relogin=(\d+)/) || [])[1];
  let poll = () => {};
  let ticket = null;
  const primary = h("input", { type: "checkbox", id: "make-primary" });
  const output = h("div", { class: "panel card flow", id: "login-flow", hidden: true });

  const finish = (t) => {
    poll();
    ticket = null;
    const ok = t.status === "done";
    if (ok) poolChanged();
    const who = t.account ? (t.account.email || t.account.name) : "the account";
    const said = !ok ? (t.error || `Sign-in ${t.status}.`)
      : t.again ? `Signed in again as ${who}.` : `Signed in as ${who}: added to the pool.`;
    put(output,
      h("p", { class: ok ? "result-ok" : "result-bad", id: "login-result" }, said),
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
    put(output,
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
    put(output,
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

  // Re-login names the account it is for (filled in once the pool answers).
  const forWhom = relogin ? h("p", { class: "panel card", id: "relogin-for" }, "Sign in again to this account.") : null;
  if (relogin) {
    api("GET", "/accounts").then((data) => {
      const account = data.accounts.find((a) => String(a.id) === relogin);
      if (!account) return;
      const email = account.email && account.email !== account.name ? ` (${account.email})` : "";
      put(forWhom, "Sign in again to ", h("strong", {}, account.name), email,
        ". Use the same ChatGPT login; its tokens are replaced.");
    }).catch(() => {});
  }
  root.append(h("div", { class: "stack" },
    forWhom,
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
