// The fastfax web console: talks to the daemon's /console/ routes (a login cookie,
// JSON calls, Server-Sent Events). Plain DOM; values from the server are only ever
// set as text, never parsed as HTML.
"use strict";

const FINAL = new Set(["completed", "failed", "canceled", "retries_exceeded"]);
const WAITING = new Set(["preparing", "pending", "retrying", "noline", "inprogress"]);
const EVENT_KINDS = [
  "service_started", "service_ended", "job_queued", "job_changed", "dialing", "sending",
  "receiving", "ringing", "completed", "busy", "no_answer", "bad_address", "fatal_error",
  "no_dial_tone", "disconnected", "not_fax_call", "call_delayed", "call_blacklisted",
  "offline", "initializing", "prepared", "aborting", "line_released", "routing", "deleted",
  "config_changed", "port_changed",
];
const THUMBS = 6;

const state = { user: null, rights: {}, events: null, timer: null, busy: false, again: false };
const $ = (id) => document.getElementById(id);

class LoginNeeded extends Error {}

async function request(path, body) {
  const init = { credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    init.headers["X-Fastfax-Console"] = "1";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  let answer = {};
  try {
    answer = await response.json();
  } catch (e) {
    answer = {};
  }
  if (response.status === 401) {
    throw new LoginNeeded(answer.error ? answer.error.message : "log in");
  }
  if (!response.ok) {
    throw new Error(answer.error ? answer.error.message : `HTTP ${response.status}`);
  }
  return answer.result;
}

const call = (name, args) => request(`api/${name}`, args || {});

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function when(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleString() : "";
}

function showError(where, error) {
  if (error instanceof LoginNeeded) {
    showLogin(error.message);
    return;
  }
  $(where).textContent = error ? String(error.message || error) : "";
}

// -- logging in --------------------------------------------------------------------------

function showLogin(message) {
  stopEvents();
  state.user = null;
  $("main-view").hidden = true;
  $("logout").hidden = true;
  $("who").textContent = "";
  $("login-view").hidden = false;
  $("login-error").textContent = message && message !== "log in" ? message : "";
  $("token").focus();
}

async function start() {
  let me;
  try {
    me = await request("me");
  } catch (error) {
    showLogin(error instanceof LoginNeeded ? "" : error.message);
    return;
  }
  state.user = me.user;
  try {
    const [manage, submit, ports] = await Promise.all(
      ["job_manage", "job_submit", "port_query"].map((right) => call("has_access", { right })),
    );
    state.rights = { manage, submit, ports };
  } catch (error) {
    showLogin(error instanceof LoginNeeded ? "" : error.message);
    return;
  }
  $("login-view").hidden = true;
  $("main-view").hidden = false;
  $("logout").hidden = false;
  $("who").textContent = me.user;
  $("send-card").hidden = !state.rights.submit;
  startEvents();
  await refresh();
}

async function login(event) {
  event.preventDefault();
  const token = $("token").value.trim();
  $("login-error").textContent = "";
  try {
    await request("login", { token });
  } catch (error) {
    $("login-error").textContent = error.message;
    return;
  } finally {
    $("token").value = "";
  }
  await start();
}

async function logout() {
  try {
    await request("logout", {});
  } finally {
    $("received").replaceChildren();
    $("queue").tBodies[0].replaceChildren();
    $("lines").tBodies[0].replaceChildren();
    showLogin("");
  }
}

// -- live updates ------------------------------------------------------------------------

function setLive(open) {
  document.body.dataset.live = open ? "open" : "closed";
  $("live").textContent = open ? "live" : "offline";
  $("live").classList.toggle("on", open);
}

function startEvents() {
  stopEvents();
  const source = new EventSource("events");
  state.events = source;
  source.onopen = () => {
    setLive(true);
    schedule();
  };
  source.onerror = () => {
    setLive(false);
    if (source.readyState === EventSource.CLOSED) {
      request("me").then(() => window.setTimeout(startEvents, 2000), (e) => showError("error", e));
    }
  };
  for (const kind of EVENT_KINDS) source.addEventListener(kind, schedule);
}

function stopEvents() {
  if (state.events) state.events.close();
  state.events = null;
  setLive(false);
}

function schedule() {
  if (state.timer === null) state.timer = window.setTimeout(refresh, 150);
}

async function refresh() {
  state.timer = null;
  if (state.busy) {
    state.again = true;
    return;
  }
  state.busy = true;
  try {
    await Promise.all([refreshLines(), refreshJobs()]);
    showError("error", null);
  } catch (error) {
    showError("error", error);
  } finally {
    state.busy = false;
    if (state.again) {
      state.again = false;
      schedule();
    }
  }
}

// -- lines -------------------------------------------------------------------------------

async function refreshLines() {
  if (!state.rights.ports) return;
  const ports = await call("ports");
  const status = await Promise.all(ports.map((p) => call("port_status", { port: p.id })));
  const rows = ports.map((port, n) => {
    const s = status[n];
    return el("tr", { "data-port": port.id },
      el("td", {}, port.id), el("td", {}, port.kind), el("td", {}, port.number),
      el("td", {}, port.send ? "yes" : "no"), el("td", {}, port.receive ? "yes" : "no"),
      el("td", { class: `state ${s.state}` }, s.state),
      el("td", {}, s.job_id === null ? "" : s.job_id),
      el("td", {}, s.total_pages ? `${s.current_page}/${s.total_pages}` : ""),
      el("td", {}, s.remote_id || s.caller_id || ""));
  });
  $("lines").tBodies[0].replaceChildren(...rows);
}

// -- the queue ---------------------------------------------------------------------------

function actionsOf(job) {
  if (job.type !== "send") return [];
  if (!(state.rights.manage || (state.rights.submit && job.owner === state.user))) return [];
  if (FINAL.has(job.state)) return ["restart"];
  if (job.state === "paused") return ["resume", "cancel"];
  if (WAITING.has(job.state)) return ["pause", "cancel"];
  return [];
}

async function act(job, action) {
  const args = { job_id: job.id, action };
  if (action === "restart" && job.state === "completed") {
    if (!window.confirm(`Job ${job.id} was sent. Send it again?`)) return;
    args.confirm = true;
  }
  try {
    await call("job_control", args);
  } catch (error) {
    showError("error", error);
  }
  schedule();
}

async function refreshJobs() {
  const jobs = await call("jobs");
  jobs.sort((a, b) => b.id - a.id);
  const rows = jobs.map((job) => {
    const buttons = actionsOf(job).map((action) =>
      el("button", { type: "button", class: "action", "data-action": action,
        onclick: () => act(job, action) }, action));
    const pages = job.current_page ? `${job.current_page}/${job.pages}` : job.pages || "";
    return el("tr", { id: `job-${job.id}`, "data-state": job.state, "data-type": job.type },
      el("td", {}, job.id), el("td", {}, job.type),
      el("td", { class: `state ${job.state}` }, job.state),
      el("td", {}, job.number), el("td", {}, pages), el("td", {}, job.owner),
      el("td", {}, when(job.submitted)), el("td", {}, job.port || ""),
      el("td", {}, job.cause), el("td", { class: "actions" }, ...buttons));
  });
  $("queue").tBodies[0].replaceChildren(...rows);
  // a fax's pages: one's own with the job query right, anyone's with job manage too
  showReceived(jobs.filter((j) => j.type === "receive" && j.pages > 0 &&
    (state.rights.manage || j.owner === state.user) &&
    (j.state === "completed" || j.state === "routing" || j.state === "failed")));
}

// -- received faxes ----------------------------------------------------------------------

function showReceived(faxes) {
  const box = $("received");
  const wanted = new Set(faxes.map((f) => `fax-${f.id}`));
  for (const card of [...box.children]) if (!wanted.has(card.id)) card.remove();
  for (const fax of faxes) {
    if ($(`fax-${fax.id}`)) continue;
    const thumbs = [];
    for (let page = 1; page <= Math.min(fax.pages, THUMBS); page++) {
      const img = el("img", { class: "thumb", alt: `fax ${fax.id} page ${page}`, loading: "lazy",
        src: `jobs/${fax.id}/pages/${page}.png?width=180` });
      thumbs.push(el("a", { href: `jobs/${fax.id}/pages/${page}.png?width=1200`,
        target: "_blank", rel: "noopener" }, img));
    }
    const from = fax.remote_id || fax.number || "unknown sender";
    const card = el("article", { id: `fax-${fax.id}`, class: "fax" },
      el("h3", {}, `Fax ${fax.id} from ${from}`),
      el("p", { class: "meta" },
        `${fax.pages} page(s), ${when(fax.finished || fax.submitted)} on ${fax.port || "?"}`),
      el("div", { class: "thumbs" }, ...thumbs),
      el("a", { class: "pdf", href: `jobs/${fax.id}/fax.pdf`, download: `fax-${fax.id}.pdf` },
        "Download PDF"));
    const next = [...box.children].find((c) => Number(c.id.slice(4)) < fax.id);
    box.insertBefore(card, next || null);
  }
}

// -- sending -----------------------------------------------------------------------------

function readFile(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function send(event) {
  event.preventDefault();
  const file = $("send-file").files[0];
  if (!file) return;
  const result = $("send-result");
  result.textContent = "sending…";
  const args = {
    document: { $bytes: await readFile(file) },
    filename: file.name,
    to: $("send-to").value.trim(),
    recipient_name: $("send-recipient").value.trim(),
    sender_name: $("send-sender").value.trim(),
    sender_company: $("send-company").value.trim(),
  };
  if ($("send-cover").checked) {
    args.cover = { subject: $("send-subject").value.trim(), note: $("send-note").value.trim() };
  }
  try {
    const ids = await call("send", args);
    result.textContent = `queued as job ${ids.join(", ")}`;
    $("send").reset();
  } catch (error) {
    result.textContent = "";
    showError("error", error);
  }
  schedule();
}

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  $("send").addEventListener("submit", send);
  start();
});
