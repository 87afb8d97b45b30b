// codex-pool window: talks to the management API (/api/) with the token from the URL fragment.
// One module and one render function per page; no framework, nothing loaded from elsewhere.

import { TOKEN_KEY, api, h, setServerTime } from "./lib.js";
import { accountsPage } from "./accounts.js";
import { addPage } from "./add.js";
import { activityPage } from "./activity.js";
import { usagePage } from "./usage.js";
import { refreshOnOpen } from "./quota.js";
import { connectPage } from "./connect.js";
import { settingsPage } from "./settings.js";

const PAGES = {
  accounts: { title: "Accounts", render: accountsPage },
  add: { title: "Add account", render: addPage },
  usage: { title: "Usage", render: usagePage },
  activity: { title: "Activity", render: activityPage },
  connect: { title: "Connect clients", render: connectPage },
  settings: { title: "Settings", render: settingsPage },
};
let stopPage = () => {};

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

async function refreshStatus() {
  try {
    const s = await api("GET", "/status");
    setServerTime(s.now);
    const box = document.getElementById("health");
    box.dataset.state = s.health.state;
    document.getElementById("health-text").textContent =
      { healthy: "Healthy", degraded: "Degraded", exhausted: "Exhausted", empty: "No accounts" }[s.health.state] || s.health.state;
    box.title = s.health.message;
    document.getElementById("proxy-url").textContent = s.proxy_url.replace(/^https?:\/\//, "");
    const banner = document.getElementById("banner");
    const problems = s.config_problems || [];
    banner.replaceChildren(...(problems.length ? [`${s.config_path} has problems (defaults are used for these): `,
      problems.join("; "), " ", h("a", { href: "#settings" }, "Open settings")] : []));
    banner.className = "banner warn";
    banner.hidden = !problems.length;
    return s;
  } catch (err) {
    document.getElementById("health").dataset.state = "error";
    document.getElementById("health-text").textContent = "Offline";
    const banner = document.getElementById("banner");
    banner.className = "banner";
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

takeToken();
window.addEventListener("hashchange", () => { takeToken(); show(); });  // the tray may re-open ui_url
refreshStatus().then((s) => { if (s) refreshOnOpen(); });
setInterval(refreshStatus, 10000);
document.addEventListener("pool-changed", refreshStatus);
show();
