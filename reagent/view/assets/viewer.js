// reagent trajectory viewer. Every piece of data is set with textContent, never innerHTML:
// trajectory text is untrusted model output. Only one page of table rows and the one
// opened trajectory are ever in the DOM, so 10,000 items stay responsive.
(function () {
  "use strict";
  const DATA = JSON.parse(document.getElementById("reagent-data").textContent);
  const ITEMS = DATA.items;
  const PAGE = DATA.meta.page_size || 100;
  const HACK = DATA.meta.threshold;
  const DEFAULTS = {outcome: "all", smin: "", smax: "", stop: "all", status: "all", stage: "all",
                    file: "all", step: "", q: "", sort: "idx", desc: "0", page: "0", open: ""};
  let state = Object.assign({}, DEFAULTS);

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function fmt(x) { return x === null || x === undefined ? "–" : (Math.round(x * 1000) / 1000).toString(); }
  function score(it) { return it.judge ? it.judge.score : null; }
  function status(it) { return it.judge ? (it.judge.status || "ok") : "none"; }
  function outcomeClass(it) { return it.outcome === null ? "unknown" : (it.outcome >= 1 ? "correct" : "wrong"); }

  function readHash() {
    state = Object.assign({}, DEFAULTS);
    const h = decodeURIComponent(location.hash.replace(/^#/, ""));
    for (const part of h.split("&")) {
      const i = part.indexOf("=");
      if (i > 0 && part.slice(0, i) in DEFAULTS) state[part.slice(0, i)] = part.slice(i + 1);
    }
  }
  function writeHash() {
    const parts = [];
    for (const k in DEFAULTS) if (state[k] !== DEFAULTS[k]) parts.push(k + "=" + encodeURIComponent(state[k]));
    history.replaceState(null, "", parts.length ? "#" + parts.join("&") : location.pathname);
  }

  function matches(it) {
    if (state.outcome !== "all" && outcomeClass(it) !== state.outcome) return false;
    const s = score(it);
    if (state.smin !== "" && (s === null || s < parseFloat(state.smin))) return false;
    if (state.smax !== "" && (s === null || s > parseFloat(state.smax))) return false;
    if (state.stop !== "all" && it.stop_reason !== state.stop) return false;
    if (state.status !== "all" && status(it) !== state.status) return false;
    if (state.stage !== "all" && it.stage !== state.stage) return false;
    if (state.file !== "all" && it.file !== state.file) return false;
    if (state.step !== "" && String(it.step) !== state.step) return false;
    if (state.q !== "") {
      const q = state.q.toLowerCase();
      if ((it.id + " " + it.task_id + " " + it.question + " " + it.final_answer).toLowerCase().indexOf(q) < 0) return false;
    }
    return true;
  }
  const SORTS = {
    idx: it => it.idx, id: it => it.id, task: it => it.task_id, stage: it => it.stage, step: it => it.step,
    outcome: it => it.outcome, score: score, status: status, stop: it => it.stop_reason, turns: it => it.turns,
    tools: it => it.tool_calls, answer: it => it.final_answer, file: it => it.file,
  };
  function sorted(list) {
    const key = SORTS[state.sort] || SORTS.idx, dir = state.desc === "1" ? -1 : 1;
    return list.slice().sort((a, b) => {
      const x = key(a), y = key(b);
      if (x === y) return a.idx - b.idx;
      if (x === null || x === undefined) return 1;   // missing values last either way
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * dir;
    });
  }

  const COLUMNS = [["idx", "#"], ["id", "id"], ["task", "task"], ["stage", "stage"], ["step", "step"],
                   ["outcome", "outcome"], ["score", "judge score"], ["status", "judge status"],
                   ["stop", "stop reason"], ["turns", "turns"], ["tools", "tool calls"], ["answer", "final answer"],
                   ["file", "file"]];
  function cell(col, it) {
    switch (col) {
      case "idx": return [it.idx, ""];
      case "id": return [it.id, ""];
      case "task": return [it.task_id, ""];
      case "stage": return [it.stage, ""];
      case "step": return [it.step === undefined ? "" : it.step, ""];
      case "outcome": return [fmt(it.outcome), outcomeClass(it) === "correct" ? "good" : (outcomeClass(it) === "wrong" ? "bad" : "muted")];
      case "score": return [fmt(score(it)), ""];
      case "status": return [status(it), status(it) === "ok" ? "" : "muted"];
      case "stop": return [it.stop_reason, ""];
      case "turns": return [it.turns, ""];
      case "tools": return [it.tool_calls, ""];
      case "answer": return [it.final_answer, ""];
      case "file": return [it.file.split("/").slice(-3).join("/"), ""];
    }
  }

  function renderTable() {
    const shown = sorted(ITEMS.filter(matches));
    const pages = Math.max(1, Math.ceil(shown.length / PAGE));
    let page = Math.min(Math.max(parseInt(state.page, 10) || 0, 0), pages - 1);
    state.page = String(page);
    const head = document.getElementById("thead"), body = document.getElementById("tbody");
    head.textContent = "";
    const tr = el("tr");
    for (const [key, label] of COLUMNS) {
      const th = el("th", "", label + (state.sort === key ? (state.desc === "1" ? " ▼" : " ▲") : ""));
      th.dataset.sort = key;
      th.addEventListener("click", () => {
        if (state.sort === key) state.desc = state.desc === "1" ? "0" : "1"; else { state.sort = key; state.desc = "0"; }
        update();
      });
      tr.appendChild(th);
    }
    head.appendChild(tr);
    body.textContent = "";
    for (const it of shown.slice(page * PAGE, (page + 1) * PAGE)) {
      const row = el("tr", "row" + (String(it.idx) === state.open ? " open" : ""));
      row.dataset.idx = it.idx;
      for (const [key] of COLUMNS) {
        const [text, cls] = cell(key, it);
        const td = el("td", cls, text);
        td.title = String(text);
        row.appendChild(td);
      }
      row.addEventListener("click", () => { state.open = String(it.idx); update(); });
      body.appendChild(row);
    }
    const from = shown.length ? page * PAGE + 1 : 0, to = Math.min((page + 1) * PAGE, shown.length);
    const count = document.getElementById("count");
    count.textContent = `rows ${from}–${to} of ${shown.length} shown (${ITEMS.length} in all), page ${page + 1}/${pages}`;
    count.dataset.shown = shown.length;
    document.getElementById("prev").disabled = page === 0;
    document.getElementById("next").disabled = page >= pages - 1;
  }

  function bars(values) {
    const box = el("div", "bars");
    for (const k in values) {
      if (k.startsWith("@")) continue;  // a position, not a value
      const v = values[k], b = el("div", "bar");
      b.appendChild(el("span", "", k));
      const track = el("span", "track"), fill = el("span", "fill " + (v >= 0 ? "pos" : "neg"));
      fill.style.width = Math.min(50, 50 * Math.abs(v) / (DATA.meta.step_scale[k] || 1)) + "%";
      track.appendChild(fill);
      b.appendChild(track);
      b.appendChild(el("span", "", fmt(v)));
      box.appendChild(b);
    }
    return box;
  }

  function message(m, stepValues) {
    const box = el("div", "msg " + m.role), head = el("div", "msghead");
    head.appendChild(el("div", "role", m.role + (m.name ? " · " + m.name : "")));
    if (stepValues) head.appendChild(bars(stepValues));
    box.appendChild(head);
    if (m.reasoning) {
      const r = el("details", "reasoning");
      r.open = true;
      r.appendChild(el("summary", "", "reasoning"));
      r.appendChild(el("pre", "", m.reasoning));
      box.appendChild(r);
    }
    if (m.role === "tool" || m.role === "system") {
      const d = el("details");
      d.appendChild(el("summary", "", (m.role === "tool" ? "tool result: " : "system: ") + m.content.slice(0, 100)));
      d.appendChild(el("pre", "", m.content));
      box.appendChild(d);
    } else if (m.content) {
      box.appendChild(el("pre", "", m.content));
    }
    for (const c of m.tool_calls || []) {
      const call = el("div", "call" + (c.error ? " err" : ""));
      call.appendChild(el("span", "name", "→ " + c.name));
      call.appendChild(el("pre", "", c.arguments));
      if (c.error) call.appendChild(el("pre", "bad", c.error));
      box.appendChild(call);
    }
    return box;
  }

  function attempt(it) {
    const box = el("div", "attempt");
    box.dataset.idx = it.idx;
    box.appendChild(el("h2", "", `${it.stage} attempt · ${it.id}`));
    const kv = el("div", "kv");
    const add = (k, v) => { if (v !== undefined && v !== null && v !== "") kv.appendChild(el("span", "", k + ": " + v)); };
    add("task", it.task_id); add("outcome", fmt(it.outcome)); add("judge score", fmt(score(it)));
    add("stop", it.stop_reason); add("truncated", it.truncated ? "yes" : ""); add("step", it.step);
    add("policy", it.policy); add("source", it.src);
    if (it.rewards) for (const k in it.rewards) add("reward." + k, fmt(it.rewards[k]));
    if (it.steps) add("step values", `${it.steps.length} (${it.step_method || "per step"})`);
    box.appendChild(kv);
    const q = el("div", "final");
    q.appendChild(el("h3", "", "question"));
    q.appendChild(el("pre", "", it.question));
    box.appendChild(q);
    if (it.critique_in) {
      const c = el("div", "judge");
      c.appendChild(el("h3", "", "critique this attempt answered"));
      c.appendChild(el("pre", "", it.critique_in));
      box.appendChild(c);
    }
    const placed = it.steps && it.steps.some(s => "@message" in s);
    let k = 0;
    it.messages.forEach((m, i) => {
      let vals = null;
      if (placed) vals = it.steps.find(s => s["@message"] === i) || null;
      else if (m.role === "assistant" && it.steps) vals = it.steps[k];
      if (m.role === "assistant") k += 1;
      box.appendChild(message(m, vals));
    });
    const fin = el("div", "final");
    fin.appendChild(el("h3", "", "final answer"));
    fin.appendChild(el("pre", "", it.final_answer || "(none)"));
    if (it.reference) fin.appendChild(el("div", "kv", "reference: " + it.reference));
    fin.appendChild(el("div", outcomeClass(it) === "correct" ? "good" : "bad", "outcome: " + fmt(it.outcome)));
    box.appendChild(fin);
    const j = el("div", "judge");
    j.appendChild(el("h3", "", "judge" + (it.judge ? ` · ${status(it)} · score ${fmt(score(it))}` : ": not judged")));
    if (it.judge) {
      for (const key of ["analysis", "critique", "error", "model", "teacher"]) {
        if (!it.judge[key]) continue;
        j.appendChild(el("div", "role", key));
        j.appendChild(el("pre", "", it.judge[key]));
      }
    }
    box.appendChild(j);
    return box;
  }

  function renderDetail() {
    const box = document.getElementById("detail");
    box.textContent = "";
    box.className = "detail";
    const it = state.open === "" ? null : ITEMS[parseInt(state.open, 10)];
    if (!it) return;
    let pair = [it];
    if (it.pair !== undefined) {
      const other = ITEMS[it.pair];
      pair = it.stage === "revised" ? [other, it] : [it, other];
      box.className = "detail pair";
    }
    for (const p of pair) box.appendChild(attempt(p));
  }

  function syncControls() {
    for (const k of ["outcome", "smin", "smax", "stop", "status", "stage", "file", "step", "q"]) {
      const c = document.getElementById("f-" + k);
      if (c && c.value !== state[k]) c.value = state[k];
    }
  }
  function update() { writeHash(); syncControls(); renderTable(); renderDetail(); }

  function options(id, values) {
    const s = document.getElementById(id);
    for (const v of [...new Set(values)].sort()) {
      const o = el("option", "", v === "" ? "(empty)" : v);
      o.value = v;
      s.appendChild(o);
    }
  }

  options("f-stop", ITEMS.map(it => it.stop_reason));
  options("f-status", ITEMS.map(status));
  options("f-stage", ITEMS.map(it => it.stage));
  options("f-file", ITEMS.map(it => it.file));
  for (const k of ["outcome", "smin", "smax", "stop", "status", "stage", "file", "step", "q"]) {
    const c = document.getElementById("f-" + k);
    c.addEventListener(c.tagName === "SELECT" ? "change" : "input", () => { state[k] = c.value; state.page = "0"; update(); });
  }
  document.getElementById("prev").addEventListener("click", () => { state.page = String(+state.page - 1); update(); });
  document.getElementById("next").addEventListener("click", () => { state.page = String(+state.page + 1); update(); });
  document.getElementById("p-low").addEventListener("click", () => {
    Object.assign(state, DEFAULTS, {outcome: "correct", smax: String(HACK)}); update(); });
  document.getElementById("p-high").addEventListener("click", () => {
    Object.assign(state, DEFAULTS, {outcome: "wrong", smin: String(HACK)}); update(); });
  document.getElementById("p-all").addEventListener("click", () => { Object.assign(state, DEFAULTS); update(); });
  window.addEventListener("hashchange", () => { readHash(); syncControls(); renderTable(); renderDetail(); });
  readHash();
  update();
})();
