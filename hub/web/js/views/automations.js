// Automations: enable/disable, run now, traces of runs (running ones first, with the step
// they are in). YAML ones are read-only.
import { get, post } from "../api.js";
import { errorBox, h, mount, toast, when } from "../dom.js";
import { fmt, items } from "../util.js";
import { editor } from "./automation_editor.js";

let openEditor = () => {};

export default async function automations({ main }) {
  const traces = h("div", { id: "traces" });
  const table = h("tbody");
  async function refresh() {
    const list = items(await get("/api/automations"), "automations");
    mount(table, list.map((a) => row(a, refresh, traces)));
  }
  const edit = h("section", { id: "automation-editor" });
  openEditor = (a) => editor(edit, a, () => { edit.replaceChildren(); refresh(); });
  await refresh();
  mount(main, h("h1", {}, "Automations"),
    h("button", { type: "button", onclick: () => openEditor(null) }, "New automation"), edit,
    h("div", { class: "scroll" }, h("table", { class: "stack" },
      h("thead", {}, h("tr", {}, ["Name", "Source", "State", "Actions"].map((t) =>
        h("th", { scope: "col" }, t)))), table)), traces);
}

function row(a, refresh, traces) {
  const id = encodeURIComponent(a.id);
  const enabled = a.enabled !== false;
  const btn = (label, path) => h("button", {
    type: "button", class: "secondary", "aria-label": `${label} ${a.name || a.id}`,
    onclick: async () => {
      try { await post(`/api/automations/${id}/${path}`); toast(`${label}: ${a.name || a.id}`); }
      catch (err) { toast(err.message, "error"); }
      refresh();
    },
  }, label);
  return h("tr", { dataset: { automation: a.id } },
    h("td", {}, a.name || a.id,
      (a.errors || []).map((e) => h("div", { class: "bad" },
        typeof e === "string" ? e : `${e.field || e.path || ""} ${e.message || ""}`.trim()))),
    h("td", {}, a.source === "yaml" ? `YAML (read-only)${a.where ? `, ${a.where}` : ""}` : "API"),
    h("td", {}, h("span", { class: `badge ${enabled ? "ok" : ""}`, dataset: { enabled } },
      enabled ? "enabled" : "disabled"),
      a.running ? h("span", { class: "badge", dataset: { running: a.running } },
        ` ${a.running} running`) : null),
    h("td", {}, h("div", { class: "row" }, enabled ? btn("Disable", "disable") : btn("Enable", "enable"),
      btn("Run now", "trigger"),
      a.source !== "yaml" ? h("button", { type: "button", class: "secondary", "aria-label": `Edit ${a.name || a.id}`,
        onclick: () => openEditor({ ...(a.definition || a), enabled }) }, "Edit") : null,
      h("button", { type: "button", class: "link", "aria-label": `Traces of ${a.name || a.id}`,
        onclick: () => showTraces(a, traces) }, "Traces"))));
}

async function showTraces(a, box) {
  let list;
  let devices = [];
  try {
    [list, devices] = await Promise.all([get(`/api/automations/${encodeURIComponent(a.id)}/traces`),
      get("/api/devices").then((d) => items(d, "devices")).catch(() => [])]);
    list = items(list, "traces");
  } catch (err) { mount(box, errorBox(err)); return; }
  const names = new Map(devices.map((d) => [d.id, d.name]));
  mount(box, h("h2", { tabindex: -1, id: "traces-title" }, `Recent runs of ${a.name || a.id}`),
    list.length ? list.map((t) => h("details", { class: "card trace", open: true,
                                                 dataset: { trace: t.run_id, state: t.state } },
      h("summary", {}, `${when(t.started)} — ${STATES[t.state] || t.state}`, t.late ? " (late)" : "",
        t.duration != null ? ` in ${duration(t.duration)}` : ""),
      t.state === "running" ? current(t.current) : null,
      h("p", { "data-trigger": "" }, "Started by ", triggerInWords(t.trigger || {}, names)),
      t.error ? h("div", { class: "error" }, t.error) : null,
      h("ol", { class: "timeline" },
        (t.conditions || []).map((c) => h("li", { class: c.result ? "ok" : "bad" },
          `Check ${c.path}: ${c.result ? "holds" : "does not hold"}`,
          c.value !== undefined ? h("span", { class: "muted" }, ` (read ${fmt(c.value)})`) : null)),
        (t.actions || []).map((s) => h("li", { class: s.error ? "bad" : "ok", "data-step": s.path },
          `${stepInWords(at(a.definition, s.path), names)} `, h("span", { class: "muted" }, `(${s.path}) `), s.error ? h("span", { class: "bad" }, `failed — ${s.error}`)
            : h("span", {}, resultInWords(s.result)),
          s.duration != null ? h("span", { class: "muted" }, ` · ${duration(s.duration)}`) : null)))))
      : h("p", { class: "muted" }, "No runs yet."));
  box.querySelector("#traces-title")?.focus();
}

// Where a running run is: e.g. "Now: actions[1] (delay) until 14:05:00".
function current(step) {
  if (!step) return h("p", { class: "muted", dataset: { current: "" } }, "Now: checking conditions");
  return h("p", { dataset: { current: step.path } }, "Now: ", h("code", {}, step.path),
    ` (${step.type})`,
    step.until != null ? ` until ${new Date(step.until * 1000).toLocaleTimeString()}` : "");
}

const STATES = { done: "done", conditions_failed: "stopped: conditions did not hold", error: "failed",
  stopped: "stopped: a wait timed out", restarted: "restarted", disabled: "stopped: disabled",
  interrupted: "interrupted: the hub stopped", skipped: "skipped: already running", running: "running" };

// Seconds as people read them: 12 ms, 3.4 s, 2 min 31 s, 1 h 5 min. Rounded to the unit shown
// first, then split, so 119.6 s reads "2 min 0 s", never "1 min 60 s".
export function duration(sec) {
  const ms = Math.round(sec * 1000);
  if (ms < 1000) return `${ms} ms`;
  const tenths = Math.round(sec * 10) / 10;
  if (tenths < 60) return `${tenths.toFixed(1)} s`;
  const s = Math.round(sec);
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  const min = Math.round(sec / 60);
  return `${Math.floor(min / 60)} h ${min % 60} min`;
}

function triggerInWords(tr, names) {
  const dev = names.get(tr.device) || tr.device;
  switch (tr.type) {
    case "manual": return "hand (Run now)";
    case "state": case "numeric": return `${dev}: ${tr.attribute} changed from ${fmt(tr.from)} to ${fmt(tr.to)}`;
    case "event": return `${dev} reported ${tr.event}`;
    case "availability": return `${dev} became ${tr.available ? "available" : "unavailable"}`;
    case "hub_start": return "the hub starting";
    case "time": case "cron": case "sun": return `the ${tr.type === "sun" ? "sun" : "clock"} (${tr.type})`;
    default: return tr.type || "unknown";
  }
}

function resultInWords(r) {
  if (r === null || r === undefined) return "ok";
  if (typeof r !== "object") return `ok (${fmt(r)})`;
  const parts = Object.entries(r).map(([k, v]) => `${k}: ${fmt(v)}`);
  return parts.length ? `ok — ${parts.join(", ")}` : "ok";
}

// The step a trace path names (actions[2].then[0]) in the automation's definition.
function at(def, path) {
  let cur = def;
  for (const m of String(path).matchAll(/([a-z_]+)|\[(\d+)\]/g)) cur = cur?.[m[1] ?? Number(m[2])];
  return cur;
}

function stepInWords(step, names) {
  if (!step || typeof step !== "object") return "Step";
  const dev = names.get(step.device) || step.device;
  switch (step.type) {
    case "command": return `${step.command?.replace("_", " ")} ${dev}`;
    case "delay": return `Wait ${typeof step.seconds === "number" ? duration(step.seconds) : step.seconds}`;
    case "notify": return `Notify “${step.message}”`;
    case "scene": return "Apply a scene";
    case "wait": return "Wait for a trigger";
    case "if": return "If";
    case "choose": return "Choose";
    case "event": return `Send event ${step.event}`;
    case "enable": case "disable": return `${step.type} automation ${step.automation}`;
    default: return step.type || "Step";
  }
}
