// Activity page: the newest routing decisions, refreshed every few seconds.

import { api, h, act, clock, every } from "./lib.js";

export function activityPage(root, actions) {
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
