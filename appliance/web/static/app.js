// The appliance page: class list, teach / rename / delete, status and recognition kept live over SSE.
// Every label coming from the server is put into the page with textContent, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
let classes = [];
let recognisedId = null;
let busy = false;

class ApiError extends Error {
  constructor(status, body) {
    super(body && body.error ? body.error : `HTTP ${status}`);
    this.status = status;
    this.fix = body && body.fix ? body.fix : "";
  }
}

async function api(method, url, body) {
  const options = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(url, options);
  if (response.status === 401) {
    window.location.assign("/login");
  }
  if (response.status === 204) return null;
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

function say(text, kind) {
  const el = $("message");
  el.textContent = text;
  el.className = "message" + (kind ? " " + kind : "");
}

function sayError(err) {
  say(err.fix ? `${err.message} (${err.fix})` : err.message, "error");
}

// ---- status ----------------------------------------------------------------------------------
function duration(seconds) {
  const s = Math.floor(seconds || 0);
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  if (d) return `${d} d ${h} h`;
  if (h) return `${h} h ${String(m).padStart(2, "0")} min`;
  if (m) return `${m} min ${String(s % 60).padStart(2, "0")} s`;
  return `${s} s`;
}

const number = (x, digits) => (typeof x === "number" ? x.toFixed(digits) : "–");

function renderStatus(s) {
  if (!s) return;
  const backend = s.backend_label || String(s.backend || "?");
  const badge = $("backend");
  badge.textContent = backend;
  badge.className = "badge " + (s.backend === "cpu" ? "cpu" : "accelerator");
  $("s-backend").textContent = backend + (s.mode ? ` · ${s.mode}` : "");
  $("warning-text").textContent = s.backend_warning ? "⚠ " + s.backend_warning : "";
  $("warning").hidden = !s.backend_warning;
  $("retry-accelerator").hidden = !s.backend_fallback;
  const fps = s.fps || {};
  $("s-fps").textContent = `${number(fps.capture, 1)} / ${number(fps.inference, 1)}`;
  $("s-ms").textContent = `${number(s.inference_ms, 1)} ms`;
  $("s-dropped").textContent = String(s.dropped_frames ?? "–");
  $("s-uptime").textContent = duration(s.uptime_s);
  $("s-source").textContent = (s.source || "–") + (s.connected === false ? " (no signal)" : "");
  $("s-viewers").textContent = String(s.viewers ?? "–");
  renderDemo(s.demo);
  const hasTemp = typeof s.cpu_temp_c === "number";
  document.querySelectorAll(".temp").forEach((el) => { el.hidden = !hasTemp; });
  if (hasTemp) $("s-temp").textContent = `${s.cpu_temp_c.toFixed(1)} °C`;
  renderMqtt(s.mqtt);
  if (s.result !== undefined) renderRecognition(s.result);
}

// the demo camera: which photo shows and for how long (it holds still while a burst records). The
// status comes once a second, so the time left counts down here between two of them.
let demo = null;  // {name, held, until (performance.now() ms)}
function renderDemo(d) {
  document.querySelectorAll(".demo").forEach((el) => { el.hidden = !d; });
  demo = d ? { name: String(d.showing || "").replace(/\.[a-z0-9]+$/i, ""), held: Boolean(d.held),
               until: performance.now() + 1000 * (Number(d.seconds_left) || 0) } : null;
  showDemo();
}
function showDemo() {
  if (!demo) return;
  const left = (demo.until - performance.now()) / 1000;
  $("s-demo").textContent = demo.held ? `${demo.name} (held still while teaching)`
    : left > 0 ? `${demo.name} (${number(left, 1)} s left)` : `${demo.name} (changing now)`;
}
setInterval(showDemo, 200);

// "mqtt: connected" or "mqtt: disconnected (reason)"; hidden while MQTT is off
function renderMqtt(m) {
  const on = Boolean(m && m.enabled);
  document.querySelectorAll(".mqtt").forEach((el) => { el.hidden = !on; });
  if (!on) return;
  const text = m.connected ? "mqtt: connected" : `mqtt: disconnected (${m.error || "connecting"})`;
  const dropped = m.dropped_events ? `, ${m.dropped_events} events dropped` : "";
  $("s-mqtt").textContent = text + dropped;
  $("s-mqtt").className = "mqtt" + (m.connected ? "" : " warn");
}

// the classes as a fleet class set (docs/mqtt.md): boxes subscribed to the name import them
async function publishSet(event) {
  event.preventDefault();
  const name = $("publish-name").value.trim();
  try {
    const set = await api("POST", "/api/classes/publish", { name });
    say(`Published class set "${set.name}" version ${set.version} (${set.classes.length} classes).`, "ok");
  } catch (err) {
    sayError(err);
  }
}

// ---- what is recognised now ------------------------------------------------------------------
// unknown: the taught class it was closest to and how close (never a bare "69 %", which reads as how
// sure "unknown" is). "unlike": it looks like nothing taught, so the number is its similarity to that
// class's closest sample; "unsure": two classes nearly tie, so it is the head's probability for it.
function closestText(rec, el) {
  if (!rec.closest) return "";
  const unlike = rec.reason === "unlike" && typeof rec.similarity === "number";
  el.title = unlike ? "looks like nothing taught: how alike it is to the closest sample of that class"
    : "too unsure to name it: how sure the best guess was";
  return unlike ? `— closest: ${rec.closest}, ${Math.round(rec.similarity * 100)}\u00a0% alike`
    : `— closest: ${rec.closest}, ${Math.round((rec.score || 0) * 100)}\u00a0%`;
}

function renderRecognition(data) {
  if (!data) return;
  const rec = "recognition" in data ? data.recognition : ("label" in data ? data : null);
  const label = $("now-label"), score = $("now-score"), list = $("now-objects");
  const objects = Array.isArray(data.objects) ? data.objects : [];
  const base = Array.isArray(data.classes) ? data.classes : [];
  score.title = "";
  if (rec && rec.label && rec.class_id === null) {
    label.textContent = classes.length ? "unknown" : "nothing taught yet";
    score.textContent = classes.length ? closestText(rec, score) : "";
  } else if (rec && rec.label) {
    label.textContent = rec.label;
    score.textContent = typeof rec.score === "number" ? `${Math.round(rec.score * 100)}\u00a0%` : "";
  } else if (objects.length) {
    label.textContent = `${objects.length} object${objects.length > 1 ? "s" : ""}`;
    score.textContent = "";
  } else if (base.length) {
    label.textContent = base[0].label || "unknown";
    score.textContent = `${Math.round(base[0].score * 100)} % (base model)`;
  } else {
    label.textContent = classes.length ? "unknown" : "nothing taught yet";
    score.textContent = "";
  }
  list.replaceChildren(...objects.slice(0, 8).map((o) => {
    const li = document.createElement("li");
    const name = o.match && o.match.label ? `${o.match.label} (${o.label})` : o.label;
    li.textContent = `${name} ${Math.round((o.score || 0) * 100)}\u00a0%`;
    return li;
  }));
  const id = rec && rec.class_id !== undefined ? rec.class_id : null;
  if (id !== recognisedId) {
    recognisedId = id;
    document.querySelectorAll("#class-list .class").forEach((li) => {
      li.classList.toggle("recognised", Number(li.dataset.id) === recognisedId);
    });
  }
}

// ---- classes --------------------------------------------------------------------------------
function renderClasses(list) {
  classes = list;
  const template = $("class-row");
  const rows = list.map((c) => {
    const li = template.content.firstElementChild.cloneNode(true);
    li.dataset.id = String(c.id);
    li.classList.toggle("recognised", c.id === recognisedId);
    li.querySelector(".label").textContent = c.label;
    li.querySelector(".samples").textContent = plural(c.samples, "sample");
    const img = li.querySelector(".thumb");
    img.alt = c.label;
    img.addEventListener("error", () => { img.removeAttribute("src"); }, { once: true });
    img.src = c.thumbnail_url;
    li.querySelector(".more").addEventListener("click", () => addSamples(c));
    li.querySelector(".rename").addEventListener("click", () => startRename(li, c));
    li.querySelector(".delete").addEventListener("click", () => removeClass(c));
    const form = li.querySelector(".rename-form");
    form.addEventListener("submit", (e) => { e.preventDefault(); rename(c, form.elements.label.value); });
    form.querySelector(".cancel").addEventListener("click", () => { form.hidden = true; });
    return li;
  });
  $("class-list").replaceChildren(...rows);
  $("class-count").textContent = list.length ? `(${list.length})` : "";
  $("no-classes").hidden = list.length > 0;
}

async function loadClasses() {
  try { renderClasses(await api("GET", "/api/classes")); } catch (err) { sayError(err); }
}

async function busyDo(startText, action) {
  if (busy) return;
  busy = true;
  document.querySelectorAll("button").forEach((b) => { b.disabled = true; });
  say(startText);
  try {
    await action();
  } catch (err) {
    sayError(err);
  } finally {
    busy = false;
    document.querySelectorAll("button").forEach((b) => { b.disabled = false; });
  }
}

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

// what a teach answered: the samples, and a warning when the view changed during the burst
function sayTaught(c, text) {
  const warning = c.burst && c.burst.warning;
  say(warning ? `${text} Note: ${warning}.` : text, warning ? "warn" : "ok");
}

// a short countdown while a burst records (from the teach event, which says how long it takes)
let countdownTimer = null;
function startCountdown(seconds) {
  const el = $("countdown");
  const end = Date.now() + Math.max(0.3, Number(seconds) || 1) * 1000;
  clearInterval(countdownTimer);
  const tick = () => {
    const left = (end - Date.now()) / 1000;
    if (left <= 0) { stopCountdown(); return; }
    el.hidden = false;
    el.textContent = `● Recording… keep it in view: ${left.toFixed(1)} s`;
  };
  tick();
  countdownTimer = setInterval(tick, 100);
}

function stopCountdown() {
  clearInterval(countdownTimer);
  $("countdown").hidden = true;
}

function teachNew(event) {
  event.preventDefault();
  const input = $("teach-label");
  const label = input.value.trim();
  if (!label) {
    say("Type a name for the new class first: a label cannot be empty or only spaces.", "error");
    input.focus();
    return;
  }
  const existing = classes.find((c) => c.label.toLowerCase() === label.toLowerCase());
  if (existing) {
    addSamples(existing);
    input.value = "";
    return;
  }
  busyDo(`Teaching “${label}”: hold it in front of the camera…`, async () => {
    const c = await api("POST", "/api/classes", { label });
    input.value = "";
    sayTaught(c, `Learned “${c.label}” (${plural(c.samples, "sample")}).`);
    await loadClasses();
  });
}

function addSamples(c) {
  busyDo(`Adding samples to “${c.label}”: hold it in front of the camera…`, async () => {
    const updated = await api("POST", `/api/classes/${c.id}/samples`);
    sayTaught(updated, `“${updated.label}” now has ${plural(updated.samples, "sample")}.`);
    await loadClasses();
  });
}

function startRename(li, c) {
  const form = li.querySelector(".rename-form");
  form.hidden = false;
  form.elements.label.value = c.label;
  form.elements.label.focus();
  form.elements.label.select();
}

function rename(c, value) {
  const label = value.trim();
  if (!label) {
    say("A label cannot be empty or only spaces: type the new name, or press Cancel.", "error");
    return;
  }
  if (label === c.label) return;
  busyDo(`Renaming “${c.label}”…`, async () => {
    const updated = await api("PATCH", `/api/classes/${c.id}`, { label });
    say(`Renamed “${c.label}” to “${updated.label}”.`, "ok");
    await loadClasses();
  });
}

function removeClass(c) {
  if (!window.confirm(`Delete the class “${c.label}” and its ${plural(c.samples, "sample")}?`)) return;
  busyDo(`Deleting “${c.label}”…`, async () => {
    await api("DELETE", `/api/classes/${c.id}`);
    say(`Deleted “${c.label}”.`, "ok");
    await loadClasses();
  });
}

// ---- live updates ---------------------------------------------------------------------------
let classesTimer = null;
function classesChanged() {  // several events in a burst: one reload
  clearTimeout(classesTimer);
  classesTimer = setTimeout(loadClasses, 150);
}

function connectEvents() {
  const source = new EventSource("/api/events");
  const parse = (handler) => (e) => { try { handler(JSON.parse(e.data)); } catch (err) { /* ignore */ } };
  source.addEventListener("open", () => { $("live").classList.add("on"); });
  source.addEventListener("error", () => {
    $("live").classList.remove("on");
    // a lost connection is retried by the browser itself; a refused one (429 too many live views from
    // this device, 503 server full) closes the feed for good: try again in a few seconds
    if (source.readyState === EventSource.CLOSED) setTimeout(connectEvents, 5000);
  });
  source.addEventListener("status", parse(renderStatus));
  source.addEventListener("recognition", parse(renderRecognition));
  source.addEventListener("classes", parse((d) => {
    if (Array.isArray(d.classes)) renderClasses(d.classes); else classesChanged();
  }));
  source.addEventListener("teach", parse((d) => {
    if (d.state === "started") startCountdown(d.seconds);
    if (d.state === "finished" || d.state === "failed") stopCountdown();
    if (d.state === "finished") classesChanged();
  }));
}

function keepStreamAlive() {
  const img = $("stream");
  const retry = () => setTimeout(() => { img.src = "/stream.mjpg?t=" + Date.now(); }, 2000);
  img.addEventListener("error", retry);
  if (img.complete && img.naturalWidth === 0) retry();  // it failed (e.g. 429) before this script ran
}

async function retryAccelerator() {
  $("retry-accelerator").disabled = true;
  try {
    await api("POST", "/api/inference/retry");
  } catch (err) {
    sayError(err);
  } finally {
    $("retry-accelerator").disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("teach-form").addEventListener("submit", teachNew);
  $("retry-accelerator").addEventListener("click", retryAccelerator);
  $("publish-form").addEventListener("submit", publishSet);
  keepStreamAlive();
  loadClasses();
  api("GET", "/api/status").then(renderStatus).catch(sayError);
  connectEvents();
});
