// The Sealog console: one page over the HTTP API, signed in with a session cookie. Every
// read goes through the same routes and role checks as any client, so the console sees
// exactly what its key may see, and every read of records is recorded like any other.
// Text from the log is only ever set as text, never parsed as HTML.

import { checkInclusion, toHex, sha256, utf8 } from "/console/verify.js";

const $main = document.getElementById("main");
const $nav = document.getElementById("nav");
const $who = document.getElementById("who");
const $status = document.getElementById("status");

let session = null;
let refreshTimer = null;

// ---------------------------------------------------------------- DOM helpers

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const SVG = "http://www.w3.org/2000/svg";
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// Sets an element's children: arrays are flattened, null and false left out.
function fill(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

function page(title, ...children) {
  document.title = `${title} · Sealog`;
  fill($main, h("h1", {}, title), ...children);
  $main.focus({ preventScroll: true });
}

function say(text) {
  $status.textContent = text;
}

function field(label, name, value, attrs = {}) {
  return h("label", {}, label, h("input", { name, value: value ?? "", ...attrs }));
}

function select(label, name, options, value) {
  return h("label", {}, label,
    h("select", { name },
      options.map(([v, text]) => h("option", { value: v, selected: v === (value ?? "") }, text))));
}

function table(caption, columns, rows, opts = {}) {
  return h("table", {},
    caption ? h("caption", {}, caption) : null,
    h("thead", {}, h("tr", {}, columns.map((c, i) =>
      h("th", { scope: "col", class: opts.numeric && opts.numeric.includes(i) ? "num" : null }, c)))),
    h("tbody", {}, rows.length === 0
      ? h("tr", {}, h("td", { colspan: columns.length }, opts.empty || "Nothing here."))
      : rows.map((r) => h("tr", { class: r.className || null }, r.map((c, i) =>
        h("td", { class: opts.numeric && opts.numeric.includes(i) ? "num" : null }, c))))));
}

function formValues(form) {
  const out = {};
  for (const [k, v] of new FormData(form).entries()) {
    if (String(v).trim() !== "") out[k] = String(v).trim();
  }
  return out;
}

function qs(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") p.set(k, v);
  const t = p.toString();
  return t ? `?${t}` : "";
}

function shortId(id) {
  return typeof id === "string" && id.length > 20 ? `${id.slice(0, 15)}…${id.slice(-6)}` : id ?? "";
}

function show(v) {
  if (v === undefined || v === null) return "—";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

// ---------------------------------------------------------------- the API

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(path, { method = "GET", body, text = false } = {}) {
  const headers = {};
  if (method !== "GET" && method !== "HEAD" && session && session.csrf_token) {
    headers["X-CSRF-Token"] = session.csrf_token;
  }
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!resp.ok) {
    let code = String(resp.status);
    let message = resp.statusText;
    try {
      const e = await resp.json();
      code = e.error.code;
      message = e.error.message;
    } catch (_) { /* not our JSON error */ }
    if (resp.status === 401 && session && !path.startsWith("/v1/session")) {
      session = null;
      signIn("Your session has ended; sign in again.");
    }
    throw new ApiError(resp.status, code, message);
  }
  if (resp.status === 204) return null;
  if (text) return new Uint8Array(await resp.arrayBuffer());
  return resp.json();
}

function failure(e) {
  return h("p", { class: "error", role: "alert" }, e instanceof ApiError ? `${e.code}: ${e.message}` : String(e));
}

// ---------------------------------------------------------------- who may see what

function roles() {
  return session ? session.principal.roles : [];
}
function has(...want) {
  return roles().some((r) => r === "admin" || want.includes(r));
}
function unscoped() {
  return session && !session.principal.tenant && !session.principal.data_subject;
}

const PAGES = [
  { id: "records", title: "Records", may: () => has("reader", "auditor", "subject") },
  { id: "quarantine", title: "Quarantine", may: () => has("auditor") },
  { id: "conflicts", title: "Conflicts", may: () => has("auditor") },
  { id: "reports", title: "Reports", may: () => has("auditor") },
  { id: "integrity", title: "Integrity", may: () => has("auditor") && unscoped() },
  { id: "dashboard", title: "Dashboard", may: () => has("auditor") && unscoped() },
];

function renderChrome(current) {
  fill($nav, h("ul", {}, PAGES.filter((p) => p.may()).map((p) =>
    h("li", {}, h("a", { href: `#/${p.id}`, "aria-current": p.id === current ? "page" : null }, p.title)))));
  if (!session) {
    fill($who);
    return;
  }
  const p = session.principal;
  const scope = [p.roles.join(", "), p.tenant ? `tenant ${p.tenant}` : "every tenant",
    p.data_subject ? `data subject ${p.data_subject}` : null].filter(Boolean).join(" · ");
  fill($who,
    h("span", { id: "principal" }, `${p.key_id} — ${scope}`),
    session.open_mode ? h("span", { class: "error" }, "open mode: no keys exist") :
      h("button", { class: "quiet", id: "sign-out", type: "button", onclick: signOut }, "Sign out"));
}

// ---------------------------------------------------------------- sign-in

function signIn(message) {
  stopRefresh();
  session = null;
  renderChrome(null);
  const form = h("form", { id: "sign-in", onsubmit: async (ev) => {
    ev.preventDefault();
    const key = form.elements.key.value.trim();
    try {
      session = await api("/v1/session", { method: "POST", body: { key } });
      form.elements.key.value = "";
      if (!location.hash || location.hash === "#/signin") location.hash = defaultPage();
      route();
    } catch (e) {
      fill(out, failure(e));
      form.elements.key.focus();
    }
  } },
  h("label", {}, "API key", h("input", { name: "key", type: "password", autocomplete: "off", required: true, id: "key" })),
  h("button", { type: "submit" }, "Sign in"));
  const out = h("div", { "aria-live": "assertive" }, message ? h("p", { class: "note" }, message) : null);
  page("Sign in", h("div", { class: "signin" },
    h("p", {}, "Sign in with an API key. The key is exchanged for a session: the page never keeps it."),
    form, out));
  form.elements.key.focus();
}

async function signOut() {
  try {
    await api("/v1/session", { method: "DELETE" });
  } catch (_) { /* ended anyway */ }
  session = null;
  location.hash = "#/signin";
  signIn("You are signed out.");
}

function defaultPage() {
  const first = PAGES.find((p) => p.may());
  return first ? `#/${first.id}` : "#/records";
}

// ---------------------------------------------------------------- router

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query] = raw.split("?");
  const parts = path.split("/").map(decodeURIComponent);
  return { parts, params: Object.fromEntries(new URLSearchParams(query || "")) };
}

function go(path, params = {}) {
  location.hash = `#/${path}${qs(params)}`;
}

function stopRefresh() {
  if (refreshTimer) clearInterval(refreshTimer);
  refreshTimer = null;
}

async function route() {
  stopRefresh();
  // Which view the page shows once it has loaded (tests and scripts wait for it).
  delete document.body.dataset.route;
  if (!session) {
    try {
      session = await api("/v1/session");
    } catch (_) {
      signIn();
      return;
    }
  }
  const { parts, params } = parseHash();
  const [name, arg] = parts;
  renderChrome(name === "record" ? "records" : name === "subject" ? "records" : name);
  const pages = {
    records: () => recordsPage(params),
    record: () => recordPage(arg),
    subject: () => subjectPage(arg, params),
    quarantine: () => quarantinePage(params),
    conflicts: () => conflictsPage(params),
    integrity: () => integrityPage(),
    dashboard: () => dashboardPage(),
    reports: () => (arg ? reportPage(arg, params) : reportsIndex()),
  };
  const show = pages[name];
  if (!show) {
    location.replace(defaultPage());
    return;
  }
  try {
    await show();
  } catch (e) {
    if (session) page("Something went wrong", failure(e));
  }
  document.body.dataset.route = location.hash;
}

// ---------------------------------------------------------------- records explorer

const ENVELOPE = ["scope", "tenant", "subject", "type", "source", "actor", "id", "data_subject"];

function recordsRow(r) {
  return [
    h("a", { href: `#/record/${r.seq}` }, String(r.seq)),
    r.time ?? "",
    r.type ?? "",
    r.subject ? h("a", { href: `#/subject/${encodeURIComponent(r.subject)}${qs({ scope: r.scope })}` }, r.subject) : "",
    r.source ?? "",
    r.tenant ?? "",
    h("code", { title: r.record_id }, shortId(r.record_id)),
  ];
}

async function recordsPage(params) {
  const packAxes = (session.axes || []).filter((a) => !ENVELOPE.includes(a));
  const axisName = params.axis_name || "";
  const form = h("form", { class: "filters", "aria-label": "Filters", onsubmit: (ev) => {
    ev.preventDefault();
    go("records", formValues(form));
  } },
  ENVELOPE.map((a) => field(a === "id" ? "event id" : a.replace("_", " "), a, params[a])),
  select("pack axis", "axis_name", [["", "(none)"], ...packAxes.map((a) => [a, a])], axisName),
  field("axis value", "axis_value", params.axis_value),
  field("event time from", "from", params.from, { placeholder: "2026-01-31 or RFC 3339" }),
  field("event time to", "to", params.to),
  field("ingested from", "ingested_from", params.ingested_from),
  field("ingested to", "ingested_to", params.ingested_to),
  select("view", "view", [["history", "history (every record)"], ["current", "current (chain heads)"]], params.view || "history"),
  field("as of (time or tree size)", "as_of", params.as_of),
  field("valid at (event time)", "valid_at", params.valid_at),
  field("per page", "limit", params.limit || "50", { type: "number", min: 1, max: 1000 }),
  h("div", { class: "actions" }, h("button", { type: "submit" }, "Search"),
    h("button", { type: "button", class: "quiet", onclick: () => go("records") }, "Clear")));
  const results = h("div", { id: "results", "aria-live": "polite" }, h("p", { class: "note" }, "Loading…"));
  page("Records", form, results);
  const q = { ...params };
  delete q.axis_name;
  delete q.axis_value;
  if (axisName && params.axis_value) q[`axis.${axisName}`] = params.axis_value;
  q.limit = params.limit || "50";
  try {
    const body = await api(`/v1/records${qs(q)}`);
    const rows = body.records.map(recordsRow);
    const cursors = (params.back || "").split(",").filter(Boolean);
    const pager = h("div", { class: "pager" },
      cursors.length || params.cursor ? h("button", { type: "button", class: "quiet", onclick: () => {
        const back = [...cursors];
        const prev = back.pop();
        go("records", { ...params, cursor: prev === "first" ? undefined : prev, back: back.join(",") || undefined });
      } }, "Previous page") : null,
      body.next_cursor ? h("button", { type: "button", id: "next-page", onclick: () => {
        go("records", { ...params, cursor: body.next_cursor, back: [...cursors, params.cursor || "first"].join(",") });
      } }, "Next page") : null,
      h("span", { class: "note" }, `${body.records.length} record(s) on this page`));
    fill(results,
      table(null, ["seq", "time", "type", "subject", "source", "tenant", "record id"], rows, { empty: "No record matches." }),
      pager);
  } catch (e) {
    fill(results, failure(e));
  }
}

// ---------------------------------------------------------------- one record and its proof

let pinnedKey = () => localStorage.getItem("sealog.verifier_key");

async function recordPage(seq) {
  const mark = h("p", { id: "proof-mark", class: "mark pending" }, "Checking the proof…");
  const proofBox = h("div", {});
  const body = h("div", {});
  page(`Record ${seq}`, mark, proofBox, body);
  let record;
  try {
    record = await api(`/v1/records/${encodeURIComponent(seq)}`);
  } catch (e) {
    mark.remove();
    fill(body, failure(e));
    return;
  }
  const links = h("p", { class: "links" },
    record.subject ? h("a", { href: `#/subject/${encodeURIComponent(record.subject)}${qs({ scope: record.scope })}` }, "Subject timeline") : null,
    h("a", { href: `#/records${qs({ subject: record.subject })}` }, "Records of this subject"));
  fill(body, links, h("h2", {}, "Record"), h("pre", { id: "record-json" }, JSON.stringify(record, null, 2)));
  if (!has("auditor")) {
    mark.className = "mark pending";
    mark.textContent = "The proof is checked for auditors and admins: this key may not read proofs.";
    return;
  }
  await checkProof(record.seq, mark, proofBox);
}

async function checkProof(seq, mark, box) {
  try {
    const sealed = await api(`/v1/records/${seq}?form=sealed`, { text: true });
    const note = new TextDecoder().decode(await api("/checkpoint", { text: true }));
    const served = new TextDecoder().decode(await api("/checkpoint/key", { text: true })).trim();
    let verifierKey = pinnedKey();
    let keyNote = "pinned in this browser";
    if (!verifierKey) {
      localStorage.setItem("sealog.verifier_key", served);
      verifierKey = served;
      keyNote = "pinned in this browser now, on first use";
    }
    const size = note.split("\n")[1];
    const proof = await api(`/v1/proofs/inclusion${qs({ seq, size })}`);
    let result = checkInclusion({ note, verifierKey, recordBytes: sealed, index: proof.leaf_index, proof: proof.hashes, size: Number(size) });
    if (result.ok && served !== verifierKey) {
      result = { ok: false, reason: "the server now names another verifier key than the one pinned in this browser" };
    }
    mark.className = `mark ${result.ok ? "verified" : "failed"}`;
    mark.textContent = result.ok
      ? `✓ Verified in this browser: record ${seq} is in the log of ${result.size} records signed by the checkpoint`
      : `✗ Failed: ${result.reason}`;
    fill(box,
      h("details", {}, h("summary", {}, "The proof, as checked"),
        table(null, ["what", "value"], [
          ["leaf hash (SHA-256 of 0x00 and the record's stored bytes)", h("code", {}, toHex(leaf(sealed)))],
          ["leaf index", String(proof.leaf_index)],
          ["tree size", String(proof.tree_size)],
          ["root in the signed checkpoint", h("code", {}, result.root || "—")],
          ["verifier key", h("code", {}, `${verifierKey} (${keyNote})`)],
          ["proof hashes", h("code", {}, proof.hashes.join(" "))],
        ]),
        h("h2", {}, "Canonical record (the bytes the proof covers)"),
        h("pre", { id: "sealed-json" }, new TextDecoder().decode(sealed)),
        h("h2", {}, "Signed checkpoint"), h("pre", {}, note)));
  } catch (e) {
    mark.className = "mark failed";
    mark.textContent = `✗ Failed: ${e.message}`;
  }
}

function leaf(bytes) {
  const b = new Uint8Array(bytes.length + 1);
  b.set(bytes, 1);
  return sha256(b);
}

// ---------------------------------------------------------------- subject timeline

function diffRows(before, after) {
  const keys = [...new Set([...Object.keys(before || {}), ...Object.keys(after || {})])].sort();
  return keys.map((k) => {
    const a = before ? before[k] : undefined;
    const b = after ? after[k] : undefined;
    const row = [k, show(a), show(b)];
    if (a === undefined) row.className = "added";
    else if (b === undefined) row.className = "removed";
    else if (JSON.stringify(a) !== JSON.stringify(b)) row.className = "changed";
    else return null;
    return row;
  }).filter(Boolean);
}

async function subjectPage(subject, params) {
  const form = h("form", { class: "filters", "aria-label": "Point in time", onsubmit: (ev) => {
    ev.preventDefault();
    go(`subject/${encodeURIComponent(subject)}`, formValues(form));
  } },
  field("scope", "scope", params.scope),
  field("as of (time or tree size)", "as_of", params.as_of),
  field("valid at (event time)", "valid_at", params.valid_at),
  h("div", { class: "actions" }, h("button", { type: "submit" }, "Rebuild")));
  const out = h("div", { "aria-live": "polite" }, h("p", { class: "note" }, "Loading…"));
  page(`Subject ${subject}`, form, out);
  try {
    const t = await api(`/v1/subjects/${encodeURIComponent(subject)}/timeline${qs(params)}`);
    const steps = t.steps.map((st, i) => {
      const before = i === 0 ? {} : t.steps[i - 1].state;
      const rec = st.record || {};
      return h("li", { class: "step" },
        h("h3", {}, h("a", { href: `#/record/${st.seq}` }, `seq ${st.seq}`), ` · ${rec.type ?? ""} · ${rec.time ?? ""}`),
        h("p", { class: "note" }, `status after: ${st.status}${st.anomalies ? ` · ${st.anomalies} anomaly(ies) so far` : ""}`),
        table(`Before and after seq ${st.seq}`, ["field", "before", "after"], diffRows(before, st.state), { empty: "No field changed." }));
    });
    fill(out,
      h("h2", {}, "Rebuilt state"),
      h("p", { class: "note" }, `status ${t.status} · version ${t.version} · as of tree size ${t.as_of_size}${t.valid_at ? ` · valid at ${t.valid_at}` : ""}`),
      table(null, ["field", "value"], Object.entries(t.state || {}).map(([k, v]) => [k, show(v)]), { empty: "No state." }),
      t.anomalies && t.anomalies.length ? table("Anomalies", ["seq", "kind", "message"], t.anomalies.map((a) => [String(a.seq ?? ""), a.kind, a.message])) : null,
      h("h2", {}, `Timeline (${t.steps.length} record(s))`),
      h("ol", { class: "timeline" }, steps),
      t.superseded.length ? table("Superseded records", ["seq", "record id", "superseded by seq"],
        t.superseded.map((x) => [h("a", { href: `#/record/${x.seq}` }, String(x.seq)), h("code", {}, shortId(x.record_id)), String(x.superseded_by)])) : null);
  } catch (e) {
    fill(out, failure(e));
  }
}

// ---------------------------------------------------------------- quarantine

async function quarantinePage(params) {
  const form = h("form", { class: "filters", "aria-label": "Filters", onsubmit: (ev) => {
    ev.preventDefault();
    go("quarantine", formValues(form));
  } },
  select("reason", "reason", [["", "(any)"], ...(session.reasons || []).map((r) => [r, r])], params.reason),
  field("from", "from", params.from),
  field("to", "to", params.to),
  field("event id", "id", params.id),
  h("div", { class: "actions" }, h("button", { type: "submit" }, "Search")));
  const out = h("div", { "aria-live": "polite" }, h("p", { class: "note" }, "Loading…"));
  page("Quarantine", form, out);
  try {
    const body = await api(`/v1/quarantine${qs({ ...params, limit: 100 })}`);
    const rows = body.records.map((r) => {
      const d = r.data || {};
      const evidence = [
        ...(d.violations || []).map((v) => `${v.pointer ?? v.field ?? ""} ${v.message ?? ""}`),
        d.missing_fields && d.missing_fields.length ? `missing: ${d.missing_fields.join(", ")}` : null,
        d.forbidden_fields && d.forbidden_fields.length ? `forbidden: ${d.forbidden_fields.join(", ")}` : null,
        d.message ?? null,
      ].filter(Boolean).join("; ");
      const payload = d.payload_ref ? h("button", { type: "button", class: "quiet", onclick: async (ev) => {
        const cell = ev.target.parentElement;
        try {
          const bytes = await api(`/v1/quarantine/payloads/${encodeURIComponent(d.payload_ref)}`, { text: true });
          fill(cell, h("pre", {}, new TextDecoder().decode(bytes)));
        } catch (e) {
          fill(cell, failure(e));
        }
      } }, "Show payload") : "—";
      return [String(r.seq), r.ingested_at ?? "", d.reason_code ?? "", d.event_type ?? "", r.id ?? "", evidence, payload];
    });
    fill(out, table(null, ["seq", "quarantined at", "reason", "event type", "event id", "evidence", "payload"], rows, { empty: "Nothing quarantined matches." }),
      body.next_cursor ? h("p", { class: "note" }, "More match: narrow the window.") : null);
  } catch (e) {
    fill(out, failure(e));
  }
}

// ---------------------------------------------------------------- conflicts

async function conflictsPage(params) {
  const form = h("form", { class: "filters", "aria-label": "Filters", onsubmit: (ev) => {
    ev.preventDefault();
    go("conflicts", formValues(form));
  } },
  select("status", "status", [["", "(any)"], ["open", "open"], ["escalated", "escalated"], ["resolved", "resolved"]], params.status),
  select("at least", "criticality", [["", "(any)"], ...["critical", "high", "medium", "low", "info"].map((c) => [c, c])], params.criticality),
  field("rule", "rule", params.rule),
  h("div", { class: "actions" }, h("button", { type: "submit" }, "Show"),
    unscoped() && has() ? h("button", { type: "button", class: "quiet", onclick: runChecks }, "Run the checks now") : null));
  const out = h("div", { "aria-live": "polite" }, h("p", { class: "note" }, "Loading…"));
  page("Conflicts", form, out);
  try {
    const body = await api(`/v1/conflicts${qs(params)}`);
    const list = body.conflicts.slice().reverse();
    fill(out, table(null, ["status", "criticality", "rule", "message", "subjects", "found", "resolve"],
      list.map((c) => [c.status, c.criticality, c.rule, c.message,
        (c.subjects || []).map((x) => x.subject ?? show(x)).join(", "), c.detected_at ?? "",
        c.status === "resolved" ? (c.resolutions || []).map((r) => r.resolution).join(", ") : resolveForm(c)]),
      { empty: "No conflict matches." }));
  } catch (e) {
    fill(out, failure(e));
  }
}

function resolveForm(c) {
  const id = c.conflict_id;
  const form = h("form", { class: "resolve", onsubmit: async (ev) => {
    ev.preventDefault();
    const v = formValues(form);
    try {
      await api(`/v1/conflicts/${encodeURIComponent(id)}/resolve`, { method: "POST", body: { resolution: v.resolution, reason: v.reason || "" } });
      say(`Conflict ${shortId(id)} resolved.`);
      route();
    } catch (e) {
      form.append(failure(e));
    }
  } },
  // Every rule takes dismissed and escalate; the winner rules only where the rule declares them.
  select("resolution", "resolution", [["dismissed", "dismissed"], ["escalate", "escalate"], ["human_wins", "human wins"], ["authority_wins", "authority wins"], ["recency_wins", "recency wins"]], "dismissed"),
  field("reason", "reason", "", { required: true }),
  h("button", { type: "submit" }, "Resolve"));
  return form;
}

async function runChecks() {
  try {
    const r = await api("/v1/checks", { method: "POST", body: {} });
    say(`Checks ran: ${(r.findings || []).length} finding(s).`);
    route();
  } catch (e) {
    say(`The checks did not run: ${e.message}`);
  }
}

// ---------------------------------------------------------------- integrity

async function integrityPage() {
  const out = h("div", {}, h("p", { class: "note" }, "Loading…"));
  page("Integrity", out);
  const load = async () => {
    const i = await api("/v1/integrity");
    const pinned = pinnedKey();
    const keyState = !pinned ? "not pinned in this browser yet (pinned on the first proof checked)"
      : pinned === i.verifier_key ? "the same as the key pinned in this browser" : "DIFFERENT from the key pinned in this browser";
    fill(out,
      h("h2", {}, "Newest signed checkpoint"),
      table(null, ["what", "value"], [["tree size", String(i.checkpoint.size)], ["root", h("code", {}, i.checkpoint.root)],
        ["verifier key", h("code", { id: "verifier-key" }, i.verifier_key)], ["pinned key", keyState]]),
      h("pre", {}, i.checkpoint.note),
      pinned ? h("button", { type: "button", class: "quiet", onclick: () => { localStorage.removeItem("sealog.verifier_key"); route(); } }, "Forget the pinned key") : null,
      h("h2", {}, "Tree growth (size at each day's end, last 30 days)"),
      lineChart(i.growth.map((g) => g.at.slice(5, 10)), i.growth.map((g) => g.size), "Tree size per day"),
      h("h2", {}, "Verifications"),
      has() ? h("p", {}, h("button", { type: "button", id: "start-verify", disabled: i.verifying, onclick: startVerify },
        i.verifying ? "A verification is running…" : "Verify the whole data directory now")) : null,
      table(null, ["finished", "outcome", "records", "signed", "where / why"], i.verify_runs.map((v) =>
        [v.finished_at ?? "", v.outcome, show(v.records), show(v.signed_records), v.location ? `${v.location}: ${v.message}` : ""]),
      { empty: "No verification recorded yet." }),
      h("h2", {}, "Check runs"),
      table(null, ["checked at", "tree size", "from size", "findings", "full"], i.check_runs.map((c) =>
        [c.checked_at ?? "", show(c.tree_size), show(c.from_size), show(c.findings), show(c.full)]),
      { empty: "No check run recorded yet." }));
    return i;
  };
  let i = await load();
  if (i.verifying) {
    refreshTimer = setInterval(async () => {
      i = await load();
      if (!i.verifying) stopRefresh();
    }, 1000);
  }
}

async function startVerify() {
  try {
    await api("/v1/verify", { method: "POST" });
    say("Verification started.");
  } catch (e) {
    say(`Verification did not start: ${e.message}`);
  }
  route();
}

// ---------------------------------------------------------------- dashboard

async function dashboardPage() {
  const out = h("div", { id: "dashboard" }, h("p", { class: "note" }, "Loading…"));
  const stamp = h("p", { class: "note", id: "dashboard-updated" });
  page("Dashboard", stamp, out);
  const load = async () => {
    const d = await api("/v1/dashboard");
    const open = Object.values(d.conflicts_open || {}).reduce((a, b) => a + b, 0);
    const lastMinute = d.appended_per_minute[d.appended_per_minute.length - 1] ?? 0;
    const qHour = d.quarantined_per_minute.reduce((a, b) => a + b, 0);
    const age = d.checkpoint.age_seconds;
    fill(out,
      h("ul", { class: "tiles" },
        tile("records", d.records), tile("quarantined in all", d.quarantined),
        tile("appended in the last minute", lastMinute), tile("quarantined in the last hour", qHour),
        tile("append latency p50 (ms)", d.append_latency.p50_ms ?? "—"), tile("append latency p99 (ms)", d.append_latency.p99_ms ?? "—"),
        tile("checkpoint age (s)", age === null ? "—" : Math.round(age)), tile("open conflicts", open)),
      h("h2", {}, "Appended per minute, last hour"),
      barChart(d.appended_per_minute.map((_, i) => `-${60 - i}m`), [{ name: "appended", values: d.appended_per_minute }], "Records appended per minute"),
      h("h2", {}, "Quarantined in the last hour, by reason"),
      table(null, ["reason", "events"], d.quarantined_last_hour.map((r) => [r.reason, String(r.count)]), { numeric: [1], empty: "Nothing quarantined in the last hour." }),
      h("h2", {}, "Open conflicts by criticality"),
      table(null, ["criticality", "open"], Object.entries(d.conflicts_open || {}).map(([k, v]) => [k, String(v)]), { numeric: [1], empty: "No open conflict." }));
    stamp.textContent = `Updated ${d.now} · refreshes every 5 seconds`;
  };
  await load();
  refreshTimer = setInterval(() => load().catch((e) => { stamp.textContent = `Not updated: ${e.message}`; }), 5000);
}

function tile(label, value) {
  return h("li", {}, h("span", { class: "figure" }, String(value)), label);
}

// ---------------------------------------------------------------- reports

const REPORTS = [
  ["daily", "Daily activity"], ["weekly", "Weekly compliance"], ["monthly", "Monthly audit summary"],
  ["quarantine", "Quarantine by reason"], ["coordination", "Coordination decisions by class and decision"], ["popia", "POPIA request status"],
];

function reportsIndex() {
  page("Reports", h("ul", {}, REPORTS.map(([id, title]) => h("li", {}, h("a", { href: `#/reports/${id}` }, title)))),
    h("p", { class: "note" }, "Each report is counted from the index over its window, and can be downloaded as CSV or Markdown, or printed."));
}

async function reportPage(name, params) {
  const title = (REPORTS.find(([id]) => id === name) || [name, name])[1];
  const form = h("form", { class: "filters", "aria-label": "Window", onsubmit: (ev) => {
    ev.preventDefault();
    go(`reports/${name}`, formValues(form));
  } },
  field("from (event time)", "from", params.from, { placeholder: "default: the report's span" }),
  field("to", "to", params.to, { placeholder: "default: now" }),
  h("div", { class: "actions" }, h("button", { type: "submit" }, "Report")));
  const out = h("div", { "aria-live": "polite" }, h("p", { class: "note" }, "Loading…"));
  page(title, form, out);
  try {
    const r = await api(`/v1/reports/${encodeURIComponent(name)}${qs(params)}`);
    const link = (fmt, text) => h("a", { href: `/v1/reports/${encodeURIComponent(name)}${qs({ ...params, format: fmt })}`, download: `sealog-${name}-report.${fmt}` }, text);
    const periods = r.periods.map((p) => (r.period === "hour" ? p.slice(11, 16) : p.slice(5, 10)));
    fill(out,
      h("p", { class: "note" }, `${r.from} to ${r.to} (UTC), by ${r.period} · log size ${r.log_size} · quarantine ${r.quarantine_size} · ${r.basis}`),
      h("p", { class: "links noprint" }, link("csv", "Download CSV"), link("md", "Download Markdown"),
        h("button", { type: "button", class: "quiet", onclick: () => window.print() }, "Print")),
      r.sections.map((sec) => h("section", { "aria-labelledby": `sec-${sec.id}` },
        h("h2", { id: `sec-${sec.id}` }, sec.title),
        sec.kind === "series"
          ? (sec.series.length === 0 ? h("p", { class: "note" }, "Nothing in this window.") : [
            barChart(periods, sec.series, sec.title),
            table(null, ["series", "total"], sec.series.map((x) => [x.name, String(x.total)]), { numeric: [1] })])
          : [table(null, sec.columns, sec.rows.map((row) => row.map(show)), { empty: "Nothing in this window." }),
            sec.of ? h("p", { class: "note" }, `The newest ${sec.rows.length} subjects, of ${sec.of} records.`) : null])));
  } catch (e) {
    fill(out, failure(e));
  }
}

// ---------------------------------------------------------------- charts (SVG)

const PALETTE = ["#0b5cad", "#b35900", "#2e7d32", "#8e24aa", "#c62828", "#00838f", "#5d4037", "#546e7a", "#ad1457", "#9e9d24"];

function barChart(labels, series, title) {
  const W = 760, H = 220, L = 44, B = 28, T = 10;
  const n = Math.max(labels.length, 1);
  const totals = labels.map((_, i) => series.reduce((a, x) => a + (x.values[i] || 0), 0));
  const max = Math.max(1, ...totals);
  const bw = (W - L - 10) / n;
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const svg = s("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `${title}: stacked bars, one per period; the table below holds the figures` },
    s("title", {}, title),
    s("line", { x1: L, y1: y(0), x2: W - 5, y2: y(0), stroke: "#8a96a3" }),
    s("text", { x: L - 6, y: y(max) + 4, "text-anchor": "end" }, String(max)),
    s("text", { x: L - 6, y: y(0) + 4, "text-anchor": "end" }, "0"));
  labels.forEach((label, i) => {
    let base = 0;
    series.forEach((x, k) => {
      const v = x.values[i] || 0;
      if (v > 0) {
        svg.append(s("rect", { x: L + i * bw + 1, y: y(base + v), width: Math.max(bw - 2, 1), height: y(base) - y(base + v), fill: PALETTE[k % PALETTE.length] },
          s("title", {}, `${label} · ${x.name}: ${v}`)));
      }
      base += v;
    });
    const every = Math.ceil(n / 12);
    if (i % every === 0) svg.append(s("text", { x: L + i * bw + bw / 2, y: H - 10, "text-anchor": "middle" }, label));
  });
  const legend = series.length > 1 ? h("ul", { class: "legend" }, series.map((x, k) =>
    h("li", {}, h("span", { style: null, "data-colour": k }), x.name))) : null;
  if (legend) {
    legend.querySelectorAll("span").forEach((el) => { el.style.background = PALETTE[Number(el.dataset.colour) % PALETTE.length]; });
  }
  return h("figure", {}, svg, legend);
}

function lineChart(labels, values, title) {
  const W = 760, H = 200, L = 60, B = 28, T = 10;
  const max = Math.max(1, ...values);
  const n = Math.max(values.length - 1, 1);
  const x = (i) => L + (W - L - 10) * (i / n);
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const points = values.map((v, i) => `${x(i)},${y(v)}`).join(" ");
  const svg = s("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `${title}: from ${values[0] ?? 0} to ${values[values.length - 1] ?? 0}` },
    s("title", {}, title),
    s("line", { x1: L, y1: y(0), x2: W - 5, y2: y(0), stroke: "#8a96a3" }),
    s("text", { x: L - 6, y: y(max) + 4, "text-anchor": "end" }, String(max)),
    s("text", { x: L - 6, y: y(0) + 4, "text-anchor": "end" }, "0"),
    s("polyline", { points, fill: "none", stroke: PALETTE[0], "stroke-width": 2 }));
  labels.forEach((label, i) => {
    const last = i === labels.length - 1;
    if (i % 5 === 0 || last) svg.append(s("text", { x: x(i), y: H - 10, "text-anchor": last ? "end" : "middle" }, label));
  });
  return svg;
}

// ---------------------------------------------------------------- start

window.addEventListener("hashchange", () => {
  // The skip link is not a page.
  if (location.hash === "#main") return;
  say("");
  route();
});
document.querySelector("a.skip").addEventListener("click", (ev) => {
  ev.preventDefault();
  $main.focus();
});
document.getElementById("loading")?.remove();
route();

// For the console's tests: the page's own check of a record, callable on any bytes.
window.sealogVerify = { checkInclusion, sha256, utf8, toHex };
