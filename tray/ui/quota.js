// Quota the window does not know yet: whether this codex-pool is fetching it now, or what failed.
// The window asks for every account's quota when it opens, so nothing stays unknown for long.

import { api } from "./lib.js";

// When the window opens: fetch every enabled account's quota that is not fresh (answers at once).
export async function refreshOnOpen() {
  try { await api("POST", "/quota/refresh"); } catch { /* offline: the status line says so */ }
}

// { "<account id>": { fetching: bool, error: string|null } }
export async function quotaStates() {
  try { return (await api("GET", "/quota")).accounts; } catch { return {}; }
}

export async function fetchQuota(accountId) {
  try { return (await api("POST", "/quota/refresh", { account_id: accountId })).accounts; } catch { return {}; }
}

// The Accounts page's "Refresh quota": every enabled account's quota that is over a minute old.
export async function refreshAll() {
  try { return (await api("POST", "/quota/refresh")).accounts; } catch { return {}; }
}
