// codex-pool window: talks to the management API (/api/) with a session it gets for the one-time
// code in the address. One module and one render function per page; no framework, nothing loaded
// from elsewhere.

import { api, h, hasSession, put, setServerTime, setSession, untilWords, usableLanguage } from "./lib.js";
import { accountsPage } from "./accounts.js";
import { addPage } from "./add.js";
import { activityPage } from "./activity.js";
import { refreshOnOpen } from "./quota.js";
import { connectPage } from "./connect.js";
import { settingsPage } from "./settings.js";

// The Usage page (and its chart library) loads on first use, so an engine that cannot load it
// still gets every other page.
function lazyUsagePage(root, actions) {
  let stop = () => {};
  let gone = false;
  usableLanguage();
  import("./usage.js").then((m) => {
    if (!gone) stop = m.usagePage(root, actions) || (() => {});
  }).catch((err) => {
    if (!gone) root.textContent = `The Usage page could not load (${err.message}).`;
  });
  return () => { gone = true; stop(); };
}

const PAGES = {
  accounts: { title: "Accounts", render: accountsPage },
  add: { title: "Add account", render: addPage },
  usage: { title: "Usage", render: lazyUsagePage },
  activity: { title: "Activity", render: activityPage },
  connect: { title: "Connect clients", render: connectPage },
  settings: { title: "Settings", render: settingsPage },
};
let stopPage = () => {};

let current = "accounts";
let linkRefused = false; // the address had a code that was expired or used already

// The window opens at ui_url (#code=...), optionally with &page=<page> and, for the Add account
// page, &start=browser|device to begin that sign-in at once (the tray menu's Add account items).
// The code leaves the address (and so the history entry) before it is used; it works once, within a
// minute, and is traded for a session kept in memory. The tray sends a fresh code each time it shows
// the window, so a session that ended (idle, or codex-pool restarted) is replaced then.
async function takeCode() {
  const params = {};
  for (const part of location.hash.replace(/^#/, "").split("&")) {
    const at = part.indexOf("=");
    if (at > 0) params[part.slice(0, at)] = part.slice(at + 1);
  }
  if (!params.code) return;
  const page = params.page && /^[a-z]+(\/[a-z]+=[\w-]+)?$/.test(params.page) ? params.page : current;
  const start = /^(browser|device)$/.test(params.start || "") ? `/start=${params.start}` : "";
  history.replaceState(null, "", location.pathname + location.search + "#" + page + start);
  try {
    const res = await fetch("/api/session", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ code: decodeURIComponent(params.code) }) });
    linkRefused = res.status === 401;
    if (res.ok) setSession((await res.json()).session);
  } catch { /* offline: refreshStatus says so */ }
}

// What the health pill says: one line, the same words as the tray menu's top line.
function healthWords(s) {
  const health = s.health;
  if (health.state === "exhausted") {
    return health.soonest_reset ? `Pool exhausted ${untilWords(health.soonest_reset)}` : "Pool exhausted";
  }
  if ((s.config_problems || []).length && health.state !== "empty") return "Config problem";
  const words = health.words || health.state;
  return words.charAt(0).toUpperCase() + words.slice(1);
}

let revision = null;  // the last /status stamp: a new one means something changed somewhere

async function refreshStatus() {
  try {
    const s = await api("GET", "/status");
    setServerTime(s.now);
    const box = document.getElementById("health");
    box.dataset.state = (s.config_problems || []).length && ["healthy", "degraded"].includes(s.health.state)
      ? "config" : s.health.state;
    document.getElementById("health-text").textContent = healthWords(s);
    box.title = s.health.message;
    document.getElementById("proxy-url").textContent = s.proxy_url.replace(/^https?:\/\//, "");
    const banner = document.getElementById("banner");
    const problems = s.config_problems || [];
    put(banner, problems.length ? [`${s.config_path} has problems (defaults are used for these): `,
      problems.join("; "), " ", h("a", { href: "#settings" }, "Open settings")] : []);
    banner.className = "banner warn";
    banner.hidden = !problems.length;
    if (revision !== null && s.revision !== revision) document.dispatchEvent(new Event("pool-updated"));
    revision = s.revision;
    return s;
  } catch (err) {
    const box = document.getElementById("health");
    const banner = document.getElementById("banner");
    banner.className = "banner";
    banner.hidden = false;
    if (err.status === 401) {
      // No session (the page was opened or reloaded without its one-time code) or one that ended:
      // the window's link carries its key, and only the tray (or `codex-pool status`) has it.
      box.dataset.state = "signed-out";
      document.getElementById("health-text").textContent = "Open it from the tray";
      const why = hasSession() ? "This window's session has ended (codex-pool restarted, or it sat unused for hours)"
        : linkRefused ? "This window link has expired or was used already (each link works once, for a minute)"
          : "This page was opened without its key (a reload, or an address typed in)";
      banner.textContent = `Open it from the tray (the link needs its key). ${why}: use "Open pool window" ` +
        "in the tray menu, or open the address `codex-pool status` prints.";
    } else {
      box.dataset.state = "error";
      document.getElementById("health-text").textContent = "Not reachable";
      banner.textContent = `Cannot reach codex-pool: ${err.message}. Is it still running?`;
    }
    return null;
  }
}

function show() {
  const name = (location.hash.replace(/^#/, "").split(/[/&]/)[0]) || "accounts";
  const page = PAGES[name] ? name : "accounts";
  current = page;
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

sessionStorage.removeItem("codex-pool-token");  // where earlier versions kept a long-lived token
await takeCode();
// Opening the window (and the tray showing it again) asks for every account's quota that is not fresh.
window.addEventListener("hashchange", async () => {  // the tray re-opens the window with a new code
  const renew = /[#&]code=/.test(location.hash);
  await takeCode();
  show();
  if (renew) refreshStatus().then((s) => { if (s) refreshOnOpen(); });
});
refreshStatus().then((s) => { if (s) refreshOnOpen(); });
// Every 1.5 s: a change made elsewhere (the CLI, another codex-pool, the tray) shows within 2 s.
setInterval(refreshStatus, 1500);
document.addEventListener("pool-changed", refreshStatus);
show();
