// The automation form: triggers, conditions and actions of every documented type
// (docs/automation.md), device/attribute/command pickers from the registry, the API's
// validation errors shown on the field it names, and a YAML view of the same definition that
// can be edited and saved as it is (the hub parses it; an error names its line).
import { api, get, post } from "../api.js";
import { errorBox, field, h, toast } from "../dom.js";
import { items } from "../util.js";

// Per kind and type: the keys of one item. "device", "attribute", "command" get pickers;
// nested lists (":triggers", ":conditions", ":actions", ":options" of choose) are edited
// with the same widgets, recursively; "json" keys (params, data, entries) as JSON text.
const KEYS = {
  triggers: {
    state: ["device", "attribute", "from:value", "to:value", "for"],
    numeric: ["device", "attribute", "above:number", "below:number", "for"],
    event: ["device", "event"], availability: ["device", "to", "for"], time: ["at"],
    cron: ["cron"], sun: ["event", "offset"], hub_start: [],
  },
  conditions: {
    state: ["device", "attribute", "state:value"],
    numeric: ["device", "attribute", "above:number", "below:number"],
    time: ["after", "before", "weekdays:json"], weekday: ["weekdays:json"],
    sun: ["after", "before", "after_offset", "before_offset"],
    and: ["conditions:conditions"], or: ["conditions:conditions"], not: ["conditions:conditions"],
  },
  actions: {
    command: ["device", "command", "params:json"], scene: ["entries:json"], delay: ["seconds"],
    wait: ["triggers:triggers", "timeout", "continue_on_timeout:value"],
    if: ["conditions:conditions", "then:actions", "else:actions"],
    choose: ["options:options", "default:actions"],
    event: ["event", "data:json"], enable: ["automation"], disable: ["automation"],
    notify: ["message", "title", "severity"],
  },
};

// `existing`: the stored definition, with `enabled` as the automation is now (on or off).
export async function editor(box, existing, done) {
  const devices = items(await get("/api/devices"), "devices");
  const def = existing ? structuredClone(existing) : { id: "", name: "", mode: "single", triggers: [{ type: "state" }], conditions: [], actions: [{ type: "command" }] };
  const id = h("input", { name: "id", value: def.id || "", required: true, pattern: "[a-z0-9_.\\-]+", disabled: !!existing });
  const name = h("input", { name: "name", value: def.name || "" });
  const description = h("input", { name: "description", value: def.description || "" });
  const mode = h("select", { name: "mode" }, ["single", "restart", "queued", "parallel"].map((m) => h("option", { value: m, selected: m === (def.mode || "single") }, m)));
  const max = h("input", { name: "max", type: "number", min: 1, max: 1000, step: 1, inputmode: "numeric", placeholder: "10", value: def.max ?? "" });
  const enabled = h("input", { name: "enabled", type: "checkbox", checked: def.enabled !== false });
  const lists = {};
  const out = h("div", { "aria-live": "polite" });
  const yaml = h("textarea", { id: "automation-yaml", "aria-label": "Automation as YAML", rows: 14, spellcheck: false });
  const yamlOut = h("div", { "aria-live": "polite" });
  const saveYaml = async () => {
    yamlOut.replaceChildren();
    yaml.removeAttribute("aria-invalid");
    const path = existing ? `/api/automations/${encodeURIComponent(existing.id)}` : "/api/automations";
    try {
      const r = await api(existing ? "PUT" : "POST", path, yaml.value, { type: "application/yaml" });
      toast(`Saved ${r.name || r.id}`);
      done();
    } catch (err) {
      yamlOut.replaceChildren(h("div", { class: "error", role: "alert", "data-yaml-error": err.line || "" }, err.message));
      yaml.setAttribute("aria-invalid", "true");
      if (err.line) {  // put the cursor on the line the hub names
        const start = yaml.value.split("\n").slice(0, err.line - 1).join("\n").length + (err.line > 1 ? 1 : 0);
        yaml.focus();
        yaml.setSelectionRange(start, start);
      }
    }
  };
  const yamlBox = h("section", { hidden: true, "data-yaml": "" }, yaml,
    h("div", { class: "row" }, h("button", { type: "button", onclick: saveYaml }, "Save YAML")), yamlOut);
  // the loaded definition with the form's values over it: keys the form has no field for stay
  const collect = () => {
    const d = { id: "", name: "", description: "", mode: "", max: 0, enabled: true, ...structuredClone(def) };
    Object.assign(d, { id: id.value.trim(), name: name.value.trim(), description: description.value.trim(),
      mode: mode.value, max: max.value === "" ? undefined : Number(max.value), enabled: enabled.checked });
    for (const kind of ["triggers", "conditions", "actions"]) d[kind] = lists[kind].read();
    for (const k of ["name", "description", "max"]) if (d[k] === "" || d[k] === undefined) delete d[k];
    if (!d.conditions.length) delete d.conditions;
    return d;
  };
  const form = h("form", { id: "automation-form", onsubmit: async (e) => {
    e.preventDefault();
    for (const el of form.querySelectorAll(".field-error")) el.remove();
    for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    out.replaceChildren();
    let body;
    try { body = collect(); } catch (err) { out.replaceChildren(errorBox(err)); return; }
    try {
      if (existing) await api("PUT", `/api/automations/${encodeURIComponent(existing.id)}`, body);
      else await post("/api/automations", body);
      toast(`Saved ${body.name || body.id}`);
      done();
    } catch (err) {
      const inputs = new Map([["id", id], ["name", name], ["description", description], ["mode", mode], ["max", max], ["enabled", enabled]]);  // API path -> input
      for (const kind of ["triggers", "conditions", "actions"]) lists[kind].register(kind, inputs);
      showOnField(err, inputs, out);
    }
  } },
  h("div", { class: "inline" }, field("Id", id), field("Name", name), field("Description", description), field("Mode", mode),
    field("Max (queued/parallel)", max), h("label", { class: "check" }, enabled, "Enabled")),
  ...["triggers", "conditions", "actions"].map((kind) => { lists[kind] = itemList(kind, def[kind] || [], devices); lists[kind].ol.dataset.list = kind; return lists[kind].el; }),
  h("div", { class: "row" }, h("button", { type: "submit" }, "Save automation"),
    h("button", { type: "button", class: "secondary", onclick: () => {
      try {
        if (yamlBox.hidden) yaml.value = `${toYaml(collect())}\n`;
        yamlBox.hidden = !yamlBox.hidden;
      } catch (err) { out.replaceChildren(errorBox(err)); }
    } }, "YAML view"),
    h("button", { type: "button", class: "link", onclick: () => done() }, "Cancel")), out, yamlBox);
  box.replaceChildren(h("h2", {}, existing ? `Edit ${existing.name || existing.id}` : "New automation"), form);
}

// A list of triggers, conditions or actions (`kind`), top-level or nested in an item; `label`
// names it (e.g. "then"). read(path) gives the items; register(path, map) maps each API
// field path under `path` to its input, for errors.
function itemList(kind, initial, devices, label = kind) {
  const rows = [];
  const list = h("ol", { class: "items" });
  const add = (item) => {
    const row = itemRow(kind, item, devices, () => { rows.splice(rows.indexOf(row), 1); row.el.remove(); });
    rows.push(row); list.append(row.el);
  };
  for (const item of initial) add(item);
  const one = kind.slice(0, -1);
  const el = h("fieldset", { "data-kind": kind }, h("legend", {}, label[0].toUpperCase() + label.slice(1)), list,
    h("button", { type: "button", class: "secondary", onclick: () => add({ type: Object.keys(KEYS[kind])[0] }) },
      label === kind ? `Add ${one}` : `Add ${one} to ${label}`));
  return {
    el, ol: list,
    read: (path = kind) => rows.map((r, i) => r.read(`${path}[${i}]`)),
    register: (path, map) => rows.forEach((r, i) => r.register(`${path}[${i}]`, map)),
  };
}

// choose's options: each a list of conditions and the actions they lead to.
function optionList(initial, devices) {
  const rows = [];
  const list = h("ol", { class: "items" });
  const add = (opt) => {
    const conditions = itemList("conditions", opt.conditions || [], devices, "when");
    const actions = itemList("actions", opt.actions || [], devices, "do");
    const row = { conditions, actions, el: null };
    row.el = h("li", { class: "card" }, conditions.el, actions.el,
      h("button", { type: "button", class: "link", onclick: () => { rows.splice(rows.indexOf(row), 1); row.el.remove(); } }, "Remove this option"));
    rows.push(row); list.append(row.el);
  };
  for (const opt of initial) add(opt);
  return {
    el: h("fieldset", { "data-kind": "options" }, h("legend", {}, "Options"), list,
      h("button", { type: "button", class: "secondary", onclick: () => add({ conditions: [{ type: "state" }], actions: [{ type: "command" }] }) }, "Add option")),
    read: (path) => rows.map((r, i) => ({ conditions: r.conditions.read(`${path}[${i}].conditions`), actions: r.actions.read(`${path}[${i}].actions`) })),
    register: (path, map) => rows.forEach((r, i) => {
      r.conditions.register(`${path}[${i}].conditions`, map);
      r.actions.register(`${path}[${i}].actions`, map);
    }),
  };
}

const NESTED = new Set(["triggers", "conditions", "actions", "options"]);

function itemRow(kind, item, devices, remove) {
  const typeSel = h("select", { "aria-label": `${kind.slice(0, -1)} type`, "data-type": "" },
    Object.keys(KEYS[kind]).map((t) => h("option", { value: t, selected: t === item.type }, t)));
  const body = h("div", { class: "inline" });
  const el = h("li", { class: "card" }, h("div", { class: "row" }, typeSel,
    h("button", { type: "button", class: "link", "aria-label": `Remove this ${kind.slice(0, -1)}`, onclick: remove }, "Remove")), body);
  const row = { el, typeSel, inputs: new Map(), nested: new Map(), read: null, register: null };
  const draw = (values) => {
    row.inputs.clear();
    row.nested.clear();
    const fields = KEYS[kind][typeSel.value].map((spec) => {
      const [key, as] = spec.split(":");
      const v = values[key];
      if (NESTED.has(as)) {  // a nested list: the same widgets, one level down
        const items = Array.isArray(v) ? v : [];
        const sub = as === "options" ? optionList(items, devices) : itemList(as, items, devices, key);
        sub.el.dataset.nested = key;
        row.nested.set(key, sub);
        return sub.el;
      }
      let input;
      if (key === "device") {
        input = h("select", { name: key }, h("option", { value: "" }, "— device —"),
          devices.map((d) => h("option", { value: d.id, selected: d.id === v }, d.area ? `${d.name} — ${d.area}` : d.name || d.id)));
        input.addEventListener("change", () => { const cur = read(); draw(cur); });
      } else if ((key === "attribute" || key === "command") && values.device) {
        const d = devices.find((x) => x.id === values.device);
        const opts = key === "attribute" ? (d?.attributes || []) : (d?.commands || []).map((c) => c.name);
        input = h("select", { name: key }, h("option", { value: "" }, `— ${key} —`), opts.map((o) => h("option", { value: o, selected: o === v }, o)));
      } else if (as === "json") {
        input = h("textarea", { name: key, rows: 2, placeholder: "JSON, e.g. [] or {}" }, v === undefined ? "" : JSON.stringify(v));
      } else {
        input = h("input", { name: key, value: v === undefined ? "" : typeof v === "object" ? JSON.stringify(v) : String(v),
          inputmode: as === "number" ? "decimal" : undefined });
      }
      input.dataset.as = as || "text";
      row.inputs.set(key, input);
      return field(key.replace("_", " "), input);
    });
    body.replaceChildren(...fields);
  };
  const read = (path = "") => {
    const out = { type: typeSel.value };
    for (const [key, input] of row.inputs) {
      const raw = input.value.trim();
      if (raw === "") continue;
      const as = input.dataset.as;
      if (as === "json") {
        try { out[key] = JSON.parse(raw); } catch { throw new Error(`${path}.${key}: not valid JSON`); }
      } else if (as === "number") out[key] = Number(raw);
      else if (as === "value") out[key] = raw === "true" ? true : raw === "false" ? false : raw !== "" && !Number.isNaN(Number(raw)) ? Number(raw) : raw;
      else out[key] = raw;
    }
    for (const [key, sub] of row.nested) {
      const items = sub.read(`${path}.${key}`);
      if (items.length) out[key] = items;  // an empty one left out: the API says if it is needed
    }
    return out;
  };
  row.read = read;
  row.register = (path, map) => {
    map.set(path, typeSel);
    for (const [key, input] of row.inputs) map.set(`${path}.${key}`, input);
    for (const [key, sub] of row.nested) sub.register(`${path}.${key}`, map);
  };
  typeSel.addEventListener("change", () => draw({}));
  draw(item);
  return row;
}

// The API names the bad field (e.g. actions[0].device): the message goes next to that input,
// or next to the item (actions[0]) or the form when no input matches.
function showOnField(err, inputs, out) {
  const path = err.field || "";
  let input;
  for (let p = path; p;) {
    input = inputs.get(p);
    if (input) break;
    const up = p.replace(/(\.[^.[\]]+|\[\d+\])$/, "");
    if (up === p) break;
    p = up;
  }
  if (!input) { out.replaceChildren(errorBox(err)); return; }
  input.setAttribute("aria-invalid", "true");
  (input.closest("label") || input).after(h("span", { class: "field-error", role: "alert", "data-field": path }, err.message));
  input.focus();
}

// A small YAML emitter for the view (the API and YAML files take this as it is).
export function toYaml(value, indent = "") {
  if (Array.isArray(value)) {
    if (!value.length) return "[]";
    return value.map((v) => {
      const inner = toYaml(v, `${indent}  `);
      return `${indent}- ${typeof v === "object" && v !== null && !Array.isArray(v) ? inner.trimStart() : inner.trim()}`;
    }).join("\n");
  }
  if (value && typeof value === "object") {
    const keys = Object.keys(value);
    if (!keys.length) return "{}";
    return keys.map((k) => {
      const v = value[k];
      if (v && typeof v === "object" && (Array.isArray(v) ? v.length : Object.keys(v).length)) return `${indent}${k}:\n${toYaml(v, `${indent}  `)}`;
      return `${indent}${k}: ${scalar(v)}`;
    }).join("\n");
  }
  return scalar(value);
}

function scalar(v) {
  if (Array.isArray(v)) return "[]";
  if (v && typeof v === "object") return "{}";
  if (typeof v === "string" && (/^[\w./-][\w ./-]*$/.test(v) && !/^(true|false|null|yes|no|on|off|y|n|~|[\d.].*)$/i.test(v))) return v;
  return JSON.stringify(v);
}
