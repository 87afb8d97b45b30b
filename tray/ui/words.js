// What the proxy's routing records mean, in words, for the Activity page: the reason an account was
// chosen, fast mode's verdict and what a candidate's score says. The proxy records short terms
// ("sticky session kept pool", "Fast: disabled (cap<3%, 5h)"); the raw term stays on hover.

const REASONS = {
  "only available account": "the only account that could take it",
  "no available account": "no account could take it",
  "quota cache warming": "no quota known yet: took the first account in your order",
  "all accounts blocked": "every account was at its limit: tried the one that comes back first",
  "tied score kept priority": "scores were equal: kept your order",
  "higher score": "the account with the most quota to spend",
  "turn state kept its account": "kept on the same account to finish the turn",
  "client went away before the answer": "the client went away before the answer",
  "no accounts in the pool": "no accounts in the pool",
  "local connection limit": "too many answers in flight on this computer",
  "pool file busy": "the pool file was busy (another codex-pool held it)",
  "upstream unreachable": "the Codex backend could not be reached",
  "pool exhausted": "every account was at its usage limit",
  "no usable account": "no account could serve (off, or signed out)",
  "untouched dormant window": "started an idle quota window",
  "upstream dropped the stream after output started": "the backend cut the answer off midway",
  "the client went away mid-stream": "the client went away midway",
};

const FAILURES = {
  "usage limit": "a usage limit", "429": "a rate limit (HTTP 429)", "401": "a refused sign-in (HTTP 401)",
  "timeout": "a timeout", "transport error": "a connection error", "needs login": "an expired sign-in",
  "refresh failed": "a failed token refresh", "pool busy": "a busy pool file", "connection limit": "the connection limit",
};

function part(text) {
  const term = text.trim();
  if (REASONS[term]) return REASONS[term];
  let m = term.match(/^sticky session kept (core|pool)$/);
  if (m) return "kept on the same account for the session's prompt cache";
  m = term.match(/^higher score beat sticky (core|pool)$/);
  if (m) return "moved the session on: another account had far more quota to spend";
  m = term.match(/^touch dormant (?:windows \((.+)\)|(\S+))$/);
  if (m) return `started the account's idle ${m[1] || m[2]} quota window${m[1] ? "s" : ""}, so its reset clock runs`;
  m = term.match(/^failover after (.+?) on (.+)$/);
  if (m) return `moved on after ${FAILURES[m[1]] || m[1]} on ${m[2]}`;
  return term;
}

// "sticky session kept pool; the client went away mid-stream" → sentences joined the same way.
export function reasonWords(reason) {
  if (!reason) return "—";
  const text = reason.split("; ").map(part).join("; ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

const FAST_WHY = {
  "config": "fast-mode is set in Settings",
  "no data": "the account's quota is not known, so it is not spent faster",
  "manual tier": "the client chose its own service tier",
  "blocked": "the account is at its usage limit",
};

// Fast mode for one request: { on, why } from the note the proxy recorded (null: not a Codex
// responses request, so fast mode did not apply).
export function fastWords(note) {
  if (!note) return null;
  const m = note.match(/^Fast: (enabled|disabled)\s*(.*)$/s);
  if (!m) return { on: false, why: note };
  const on = m[1] === "enabled";
  const rest = m[2].replace(/\s+/g, " ").trim();
  const plain = rest.match(/^\((.+)\)$/);
  if (plain) {
    const term = plain[1];
    const cap = term.match(/^cap<3%(?:, (.+))?$/);
    if (cap) return { on, why: `less than 3 % left${cap[1] ? ` in the ${cap[1]} window` : ""}` };
    if (term === "config") return { on, why: on ? "fast-mode is \"always\" in Settings" : "fast-mode is \"disabled\" in Settings" };
    return { on, why: FAST_WHY[term] || term };
  }
  const margin = rest.match(/^([+-][\d.]+)/);
  const points = margin ? Math.abs(Number(margin[1])).toFixed(1) : null;
  const why = on
    ? `the account has quota to spare: ${points ?? "?"} points ahead of an even pace`
    : `the account has no quota to spare: ${points ?? "?"} points short of the fast-mode gate`;
  return { on, why: `${why} (${rest})` };
}

// What a candidate's score says, for the chip's hover.
export function scoreWords(score) {
  if (score == null) return "score not known: no quota reading yet";
  if (score <= 0) return `score ${score.toFixed(2)}: out of quota for now`;
  return `score ${score.toFixed(2)}: how much quota it has to spend before its reset (higher goes first)`;
}

export const SCORES_HELP = "Accounts in the order they were considered, with their score: the higher, " +
  "the more quota an account has to spend before it resets. ? means its quota was not known yet.";
