// "Your own model" card: upload a .tflite classifier or detector to /api/models, list and forget them.
// The server checks it for the Edge TPU and loads it before keeping it; its answer is shown as text only.
"use strict";

(function () {
  const el = (id) => document.getElementById(id);
  const form = el("model-form");
  if (!form) return;

  function show(text, kind) {
    const out = el("model-message");
    out.textContent = text;
    out.className = "message" + (kind ? " " + kind : "");
  }

  async function call(method, url, body) {
    const response = await fetch(url, { method, body, credentials: "same-origin",
                                         headers: { Accept: "application/json" } });
    if (response.status === 401) window.location.assign("/login");
    if (response.status === 204) return null;
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (!response.ok) {
      const problem = data && data.error ? data.error : `HTTP ${response.status}`;
      throw new Error(problem + (data && data.fix ? ` (fix: ${data.fix})` : ""));
    }
    return data;
  }

  async function refresh() {
    const list = el("model-list");
    try {
      const data = await call("GET", "/api/models");
      list.replaceChildren(...data.models.map((m) => {
        const li = document.createElement("li");
        li.className = "model";
        const text = document.createElement("span");
        text.textContent = `${m.name} (${m.kind}): ` + (m.notice ? `⚠ ${m.notice}` : m.summary);
        const forget = document.createElement("button");
        forget.type = "button";
        forget.className = "link";
        forget.textContent = "Forget";
        forget.addEventListener("click", async () => {
          try { await call("DELETE", `/api/models/${encodeURIComponent(m.name)}`); refresh(); }
          catch (err) { show(err.message, "error"); }
        });
        li.append(text, " ", forget);
        return li;
      }));
    } catch (err) {
      show(err.message, "error");
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = el("model-button");
    button.disabled = true;
    show("Checking and loading the model…");
    try {
      const info = await call("POST", "/api/models", new FormData(form));
      show((info.notice ? `⚠ ${info.notice}` : `${info.name}: ${info.summary}`) + `. To use it: ${info.use}`,
           info.notice ? "" : "ok");
      form.reset();
      refresh();
    } catch (err) {
      show(err.message, "error");
    } finally {
      button.disabled = false;
    }
  });
  refresh();
})();
