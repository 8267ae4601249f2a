// The page of `instructrec serve`: plain JavaScript, no build step, no outside requests.
"use strict";

const $ = (id) => document.getElementById(id);
const chosen = []; // titles the person liked, in the order typed
const TOP_K = 10;

async function getJSON(url) {
  const response = await fetch(url);
  const body = await response.json();
  if (!response.ok) throw new Error(body.message || response.statusText);
  return body;
}

async function recommend(payload) {
  const response = await fetch("/recommend", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(payload),
  });
  const body = await response.json();
  if (!response.ok) {
    const retry = response.headers.get("Retry-After");
    throw new Error(body.message + (retry ? ` (Retry-After: ${retry} s)` : ""));
  }
  return body;
}

function option(list, value, label) {
  const node = document.createElement("option");
  node.value = value;
  if (label) node.label = label;
  list.appendChild(node);
}

async function loadInfo() {
  try {
    const info = await getJSON("/info");
    const stage = info.candidate_model
      ? `the retriever's top ${info.rerank_top_k} re-ranked`
      : `all ${info.n_items} items ranked`;
    $("info").textContent =
      `${info.dataset}: ${info.n_items} items, ${info.n_users} users · model ${info.llm.split("/").pop()}` +
      (info.checkpoint ? ` + ${info.checkpoint}` : " (zero-shot)") + ` · ${stage}`;
    const users = await getJSON("/users?limit=100");
    for (const u of users.users) option($("user-options"), u.user, `${u.interactions} ratings`);
    if (!$("user").value && users.users.length) $("user").placeholder = `e.g. ${users.users[0].user}`;
  } catch (error) {
    $("info").textContent = `Could not read /info: ${error.message}`;
  }
}

function setMode() {
  const byUser = $("mode-user").checked;
  $("user-box").hidden = !byUser;
  $("titles-box").hidden = byUser;
  $("user").required = byUser;
}

let lookup = 0;
async function suggestTitles() {
  const query = $("title").value.trim();
  const mine = ++lookup;
  const found = await getJSON(`/items?limit=10&query=${encodeURIComponent(query)}`);
  if (mine !== lookup) return; // a later keystroke has its own answer
  const list = $("title-options");
  list.replaceChildren();
  for (const item of found.items) option(list, item.title, item.categories.join(", "));
}

function renderChosen() {
  const list = $("chosen");
  list.replaceChildren();
  chosen.forEach((title, i) => {
    const li = document.createElement("li");
    li.textContent = title;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "×";
    remove.title = `Remove ${title}`;
    remove.addEventListener("click", () => {
      chosen.splice(i, 1);
      renderChosen();
    });
    li.appendChild(remove);
    list.appendChild(li);
  });
}

function addTitle() {
  const title = $("title").value.trim();
  if (title && !chosen.includes(title)) chosen.push(title);
  $("title").value = "";
  renderChosen();
}

function renderList(list, items, other) {
  list.replaceChildren();
  const before = new Map((other || []).map((item) => [item.item_id, item.rank]));
  for (const item of items) {
    const li = document.createElement("li");
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = item.score.toFixed(3);
    if (item.llm_score !== null && item.llm_score !== undefined) {
      score.title = `LLM's own score: ${item.llm_score.toFixed(3)}`;
    }
    const title = document.createElement("span");
    title.className = "title";
    title.textContent = item.title;
    li.append(score, title);
    if (other && !before.has(item.item_id)) {
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = "new";
      li.appendChild(badge);
    } else if (other && before.get(item.item_id) > item.rank) {
      const up = document.createElement("span");
      up.className = "up";
      up.textContent = `▲${before.get(item.item_id) - item.rank}`;
      li.appendChild(up);
    }
    const categories = document.createElement("span");
    categories.className = "categories";
    categories.textContent = item.categories.join(" · ") || "no category";
    li.appendChild(categories);
    list.appendChild(li);
  }
}

async function submit(event) {
  event.preventDefault();
  $("error").hidden = true;
  const byUser = $("mode-user").checked;
  if (!byUser && $("title").value.trim()) addTitle();
  const who = byUser ? { user: $("user").value.trim() } : { history_titles: chosen.slice() };
  const instruction = $("instruction").value.trim();
  $("submit").disabled = true;
  $("status").textContent = "Ranking…";
  try {
    // both lists at once: the server scores requests that arrive together in one pass
    const [asked, plain] = await Promise.all([
      instruction ? recommend({ ...who, instruction, top_k: TOP_K }) : null,
      recommend({ ...who, top_k: TOP_K }),
    ]);
    const shown = asked || plain;
    $("with-caption").textContent = instruction
      ? `“${instruction}”`
      : "No instruction given: type one to see what it changes.";
    renderList($("with-list"), shown.items, asked ? plain.items : null);
    renderList($("without-list"), plain.items, null);
    const unmatched = shown.unmatched.length
      ? ` · not found (left out): ${shown.unmatched.join("; ")}`
      : "";
    $("history").textContent =
      `History used (${shown.history.length}, most recent last): ` +
      shown.history.slice(-5).join(" · ") + unmatched;
    $("results").hidden = false;
    const t = shown.timing;
    const shared = t.batch_size > 1 ? ` (one scoring pass with ${t.batch_size - 1} other request(s))` : "";
    $("status").textContent =
      `${shown.candidates} candidates ranked in ${(t.total_ms / 1000).toFixed(2)} s${shared}.`;
  } catch (error) {
    $("error").textContent = error.message;
    $("error").hidden = false;
    $("status").textContent = "";
  } finally {
    $("submit").disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("mode-user").addEventListener("change", setMode);
  $("mode-titles").addEventListener("change", setMode);
  let timer = null;
  $("title").addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => suggestTitles().catch(() => {}), 150);
  });
  $("title").addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      addTitle();
    }
  });
  $("add-title").addEventListener("click", addTitle);
  $("ask").addEventListener("submit", submit);
  setMode();
  loadInfo();
});
