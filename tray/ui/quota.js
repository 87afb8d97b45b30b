// Quota the window does not know yet: whether this codex-pool is fetching it now, or what failed.
// The window asks for every account's quota when it opens, so nothing stays unknown for long.

import { api } from "./lib.js";

let asked = false;

// Once per window: fetch every enabled account's quota now (the answer comes back at once).
export async function refreshOnOpen() {
  if (asked) return;
  asked = true;
  try { await api("POST", "/quota/refresh"); } catch { asked = false; }
}

// { "<account id>": { fetching: bool, error: string|null } }
export async function quotaStates() {
  try { return (await api("GET", "/quota")).accounts; } catch { return {}; }
}

export async function fetchQuota(accountId) {
  try { return (await api("POST", "/quota/refresh", { account_id: accountId })).accounts; } catch { return {}; }
}
