// The chat page. Model output and every stored string are shown with textContent only:
// nothing the model or a user writes is ever parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { current: null, controller: null };
const SETTINGS = ["temperature", "max-tokens", "system", "api-key"];

function headers(json) {
  const h = {};
  const key = $("api-key").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  if (json) h["Content-Type"] = "application/json";
  return h;
}

function status(text) { $("status").textContent = text || ""; }

async function api(method, path, body) {
  const res = await fetch(path, {
    method, headers: headers(body !== undefined),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error((data.error && data.error.message) || res.statusText);
  return data;
}

function addMessage(role, text) {
  const div = document.createElement("div");
  div.className = "message " + role;
  const label = document.createElement("span");
  label.className = "role";
  label.textContent = role === "user" ? "You" : role === "assistant" ? "Assistant" : role;
  const body = document.createElement("span");
  body.className = "content";
  body.textContent = text;
  div.append(label, body);
  $("messages").append(div);
  div.scrollIntoView({ block: "end" });
  return body;
}

async function refreshList() {
  const { conversations } = await api("GET", "/api/conversations");
  const ul = $("conversations");
  ul.replaceChildren();
  for (const c of conversations) {
    const li = document.createElement("li");
    li.textContent = c.title;
    li.dataset.id = c.id;
    li.title = c.title;
    if (state.current && c.id === state.current.id) li.className = "active";
    li.addEventListener("click", () => openConversation(c.id));
    ul.append(li);
  }
  return conversations;
}

async function openConversation(id) {
  const conv = await api("GET", "/api/conversations/" + encodeURIComponent(id));
  state.current = conv;
  localStorage.setItem("chatforge.current", id);
  $("title").textContent = conv.title;
  $("messages").replaceChildren();
  for (const m of conv.messages) addMessage(m.role, m.content);
  await refreshList();
}

async function newConversation() {
  const conv = await api("POST", "/api/conversations", { title: "New chat" });
  await openConversation(conv.id);
  return conv;
}

function readSSE(buffer, onEvent) {
  // Returns the unparsed tail; each complete "data: ..." event goes to onEvent.
  let cut;
  while ((cut = buffer.indexOf("\n\n")) >= 0) {
    const event = buffer.slice(0, cut);
    buffer = buffer.slice(cut + 2);
    for (const line of event.split("\n")) {
      if (line.startsWith("data: ")) onEvent(JSON.parse(line.slice(6)));
    }
  }
  return buffer;
}

async function send(text) {
  if (!state.current) await newConversation();
  const id = state.current.id;
  addMessage("user", text);
  const out = addMessage("assistant", "");
  out.parentElement.classList.add("streaming");
  state.controller = new AbortController();
  $("send").disabled = true;
  $("stop").disabled = false;
  status("");
  try {
    const res = await fetch("/api/conversations/" + encodeURIComponent(id) + "/reply", {
      method: "POST", headers: headers(true), signal: state.controller.signal,
      body: JSON.stringify({
        content: text,
        system: $("system").value,
        temperature: Number($("temperature").value),
        max_tokens: Math.max(1, Math.floor(Number($("max-tokens").value))),
      }),
    });
    if (!res.ok) {
      const data = await res.json().catch(() => ({}));
      throw new Error((data.error && data.error.message) || res.statusText);
    }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer = readSSE(buffer + decoder.decode(value, { stream: true }), (ev) => {
        if (ev.delta) out.textContent += ev.delta;
        if (ev.error) status(ev.error);
        if (ev.finish_reason === "length") status("reply cut at the token limit");
      });
    }
  } catch (err) {
    if (err.name !== "AbortError") status(String(err.message || err));
  } finally {
    out.parentElement.classList.remove("streaming");
    out.parentElement.classList.add("done");
    state.controller = null;
    $("send").disabled = false;
    $("stop").disabled = true;
    await refreshList().catch(() => {});
    if (state.current) $("title").textContent = (await api("GET", "/api/conversations/" + id)).title;
  }
}

$("composer").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const text = $("input").value.trim();
  if (!text || state.controller) return;
  $("input").value = "";
  send(text);
});
$("input").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); $("composer").requestSubmit(); }
});
$("stop").addEventListener("click", () => { if (state.controller) state.controller.abort(); });
$("new-chat").addEventListener("click", () => newConversation().catch((e) => status(e.message)));
$("rename").addEventListener("click", async () => {
  if (!state.current) return;
  const title = prompt("Rename conversation", state.current.title);
  if (title === null) return;
  await api("PATCH", "/api/conversations/" + state.current.id, { title }).catch((e) => status(e.message));
  await openConversation(state.current.id);
});
$("delete").addEventListener("click", async () => {
  if (!state.current || !confirm("Delete this conversation?")) return;
  await api("DELETE", "/api/conversations/" + state.current.id).catch((e) => status(e.message));
  state.current = null;
  localStorage.removeItem("chatforge.current");
  $("messages").replaceChildren();
  $("title").textContent = "chatforge";
  await refreshList();
});
$("export").addEventListener("click", async () => {
  if (!state.current) return;
  const data = await api("GET", "/api/conversations/" + state.current.id + "/export");
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([JSON.stringify(data, null, 1)], { type: "application/json" }));
  a.download = (data.title || "chat").replace(/[^\w-]+/g, "-") + ".json";
  a.click();
  URL.revokeObjectURL(a.href);
});
$("import-file").addEventListener("change", async (ev) => {
  const file = ev.target.files[0];
  ev.target.value = "";
  if (!file) return;
  try {
    const { conversations } = await api("POST", "/api/conversations/import", JSON.parse(await file.text()));
    if (conversations.length) await openConversation(conversations[0].id);
  } catch (err) { status("import failed: " + err.message); }
});
for (const id of SETTINGS) {
  const saved = localStorage.getItem("chatforge." + id);
  if (saved !== null) $(id).value = saved;
  $(id).addEventListener("change", () => localStorage.setItem("chatforge." + id, $(id).value));
}

(async () => {
  try {
    const list = await refreshList();
    const last = localStorage.getItem("chatforge.current");
    const pick = list.find((c) => c.id === last) || list[0];
    if (pick) await openConversation(pick.id);
  } catch (err) { status(String(err.message || err)); }
})();
