// Connect clients page: exact Codex CLI and opencode settings, apply/undo, the settings for any other
// OpenAI-compatible tool, start at login.

import { api, h, toast, act, copy } from "./lib.js";

export function connectPage(root) {
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
      genericPanel(data, keyText),
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

// Any tool that speaks the OpenAI API (Chat Completions or Responses): the values to type into it.
function genericPanel(data, keyText) {
  const base = `${data.proxy_url}/v1`;
  const env = `OPENAI_BASE_URL=${base}\nOPENAI_API_KEY=${data.api_key}`;
  return h("div", { class: "panel card", dataset: { client: "openai-compatible" } },
    h("div", { class: "card-head" }, h("h2", {}, "Other OpenAI-compatible tools")),
    h("div", { class: "small muted" },
      "For tools that ask for an OpenAI base URL and API key. Both the Chat Completions and the Responses API work."),
    h("div", { class: "kv" },
      h("span", { class: "muted" }, "Base URL"), h("span", { class: "mono", id: "generic-base-url" }, base),
      h("div", { class: "actions" }, h("button", { class: "btn", onclick: () => copy(base, "Base URL") }, "Copy")),
      h("span", { class: "muted" }, "API key"), keyText("span", data.api_key, "generic-key"),
      h("div", { class: "actions" }, h("button", { class: "btn", onclick: () => copy(data.api_key, "Key") }, "Copy")),
      h("span", { class: "muted" }, "Endpoints"),
      h("span", { class: "mono small" }, "/v1/chat/completions, /v1/responses, /v1/models"), h("span", {}),
      h("span", { class: "muted" }, "Models"),
      h("span", { class: "small" }, "Codex models such as gpt-5.5 (the list: GET /v1/models)"), h("span", {})),
    h("div", { class: "small muted" }, "As environment variables (the OpenAI SDKs read these):"),
    keyText("pre", env, "snippet-generic"),
    h("div", { class: "actions" }, h("button", { class: "btn", onclick: () => copy(env, "Settings") }, "Copy")));
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
