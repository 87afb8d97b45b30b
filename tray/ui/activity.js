// Activity page: the newest routing decisions in words, refreshed every two seconds. A wide window
// shows a table; a narrow one shows each request as a card (the same cells, labelled).

import { api, h, put, act, clock, every, onPoolUpdated } from "./lib.js";
import { fastWords, reasonWords, scoreWords, SCORES_HELP } from "./words.js";

const COLUMNS = [
  ["Time", "time"], ["Account", "account"], ["What happened", "reason"], ["Status", "status"],
  ["Fast mode", "fast"], ["Latency", "latency"], ["Candidates", "scores"],
];

// Each cell carries its column's name, shown only when the table is a stack of cards.
function cell(column, attrs, ...children) {
  const [label] = COLUMNS.find(([, c]) => c === column);
  const named = ["fast", "latency", "scores"].includes(column) ? h("span", { class: "cell-label" }, label) : null;
  return h("td", { class: `c-${column}`, ...attrs }, named, ...children);
}

// Long names (emails) are cut short with an ellipsis; hovering shows the full address.
function who(name, full) {
  return h("span", { class: "ellipsis", title: full || name }, name);
}

function chip(score, chosen, emails) {
  const full = emails[score.account_id] || score.name;
  return h("span", { class: "chip" + (chosen ? " chosen" : ""), title: `${full}: ${scoreWords(score.score)}` },
    h("span", { class: "chip-name" }, score.name),
    h("span", { class: "chip-score" }, score.score == null ? "?" : score.score.toFixed(2)));
}

function fastCell(note) {
  const fast = fastWords(note);
  if (!fast) return cell("fast", { class: "c-fast muted", title: "Fast mode applies to Codex requests only" }, "—");
  return cell("fast", { title: fast.why, dataset: { fast: fast.on ? "on" : "off" } },
    h("span", { class: `badge ${fast.on ? "ready" : ""}` }, fast.on ? "On" : "Off"));
}

function row(d, emails) {
  const chosen = d.scores.filter((s) => s.account_id === d.account_id);
  const others = d.scores.filter((s) => s.account_id !== d.account_id);
  return h("tr", { class: "decision" },
    cell("time", { class: "c-time num" }, clock(d.at)),
    cell("account", {}, d.account ? who(d.account, emails[d.account_id]) : "—"),
    cell("reason", { title: d.reason || "" }, reasonWords(d.reason),
      d.route ? h("div", { class: "small muted route" }, d.route.replace("/backend-api/codex", "codex")) : null),
    cell("status", { class: `c-status ${d.status && d.status < 400 ? "status-ok" : "status-bad"}` }, String(d.status ?? "—")),
    fastCell(d.fast_note),
    cell("latency", { class: "c-latency num" }, d.latency_ms == null ? "—" : `${Math.round(d.latency_ms)} ms`),
    // The chosen account's chip comes first and is never cut short.
    cell("scores", {}, h("div", { class: "scores" }, [...chosen, ...others].map((s) => chip(s, s.account_id === d.account_id, emails)))));
}

export function activityPage(root, actions) {
  const auto = h("input", { type: "checkbox", checked: true, id: "auto-refresh" });
  actions.append(h("label", { class: "check small" }, auto, "Auto-refresh"));
  const body = h("tbody", { id: "activity-rows" });
  const table = h("div", { class: "panel table-wrap" }, h("table", { class: "activity" },
    h("colgroup", {}, COLUMNS.map(([, c]) => h("col", { class: `col-${c}` }))),
    h("thead", {}, h("tr", {}, COLUMNS.map(([t, c]) => h("th", { class: `c-${c}`, title: c === "scores" ? SCORES_HELP : null }, t)))),
    body));
  root.append(table);
  let emails = {};
  const names = async () => {
    const data = await act(() => api("GET", "/accounts"));
    if (data) emails = Object.fromEntries(data.accounts.map((a) => [a.id, a.email || a.name]));
  };
  const load = async () => {
    const data = await act(() => api("GET", "/activity?limit=200"));
    if (!data) return;
    if (!data.decisions.length) {
      put(body, h("tr", {}, h("td", { colspan: COLUMNS.length, class: "empty muted" },
        "No requests yet. Point a client at the proxy (Connect clients) and they show up here.")));
      return;
    }
    put(body, data.decisions.map((d) => row(d, emails)));
  };
  names().then(load);
  const stopWatch = onPoolUpdated(() => names().then(load));
  const stop = every(2000, () => { if (auto.checked) load(); });
  return () => { stop(); stopWatch(); };
}
