// Automations: enable/disable, run now, traces of runs (running ones first, with the step
// they are in). YAML ones are read-only.
import { get, post } from "../api.js";
import { errorBox, h, mount, toast, when } from "../dom.js";
import { items } from "../util.js";

export default async function automations({ main }) {
  const traces = h("div", { id: "traces" });
  const table = h("tbody");
  async function refresh() {
    const list = items(await get("/api/automations"), "automations");
    mount(table, list.map((a) => row(a, refresh, traces)));
  }
  await refresh();
  mount(main, h("h1", {}, "Automations"),
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
      h("button", { type: "button", class: "link", "aria-label": `Traces of ${a.name || a.id}`,
        onclick: () => showTraces(a, traces) }, "Traces"))));
}

async function showTraces(a, box) {
  let list;
  try { list = items(await get(`/api/automations/${encodeURIComponent(a.id)}/traces`), "traces"); }
  catch (err) { mount(box, errorBox(err)); return; }
  mount(box, h("h2", { tabindex: -1, id: "traces-title" }, `Recent runs of ${a.name || a.id}`),
    list.length ? list.map((t) => h("details", { class: "card", open: true,
                                                 dataset: { trace: t.run_id, state: t.state } },
      h("summary", {}, `${when(t.started)} — ${t.state}`, t.late ? " (late)" : "",
        t.duration != null ? ` in ${(t.duration * 1000).toFixed(1)} ms` : ""),
      t.state === "running" ? current(t.current) : null,
      h("p", {}, "Trigger: ", h("code", {}, JSON.stringify(t.trigger))),
      t.error ? h("div", { class: "error" }, t.error) : null,
      (t.conditions || []).length ? h("p", {}, "Conditions: ", t.conditions.map((c) =>
        h("span", { class: `badge ${c.result ? "ok" : "bad"}` }, `${c.path}: ${c.result}`))) : null,
      h("ol", {}, (t.actions || []).map((a) => h("li", {}, `${a.path} `,
        a.error ? h("span", { class: "bad" }, a.error)
          : h("span", { class: "muted" }, JSON.stringify(a.result ?? null)),
        a.duration != null ? h("span", { class: "muted" }, ` (${(a.duration * 1000).toFixed(2)} ms)`) : null)))))
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
