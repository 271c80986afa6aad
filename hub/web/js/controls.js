// Controls that fit what a device accepts: sliders for brightness, colour temperature,
// position and fan speed, setpoints for thermostats, a colour picker and an effect list for
// lights, a checkbox for a yes/no parameter (a fan's oscillation), lists for parameters with
// known values (select option, HVAC mode, preset, direction), number fields for the rest, and
// one row of buttons per entity when several entities of the device take the same commands
// (two relays: each its own turn on/off). Built from the device's command specs (`params`,
// `required`, `choices`: which entities take a command, which values a parameter takes) and
// attribute names (`<entity>_brightness`...), with ranges and options from attribute metadata
// when the device has it. Used by the home view for every device; plain buttons stay for the
// rest.
import { h } from "./dom.js";

const SLIDERS = [
  // attribute suffix, command, parameter, default range
  { suffix: "_brightness", command: "turn_on", param: "brightness", min: 0, max: 255, step: 1 },
  { suffix: "_color_temp", command: "turn_on", param: "color_temp", min: 153, max: 500, step: 1 },
  { suffix: "_position", command: "set_position", param: "position", min: 0, max: 100, step: 1 },
  { suffix: "_tilt", command: "set_tilt", param: "tilt", min: 0, max: 100, step: 1 },
  { suffix: "_percentage", command: "set_percentage", param: "percentage", min: 0, max: 100, step: 1 },
  { suffix: "_target_temperature", command: "set_temperature", param: "temperature", min: 5, max: 35, step: 0.5, number: true },
  { suffix: "_target_temp_low", command: "set_temperature", param: "target_temp_low", min: 5, max: 35, step: 0.5, number: true },
  { suffix: "_target_temp_high", command: "set_temperature", param: "target_temp_high", min: 5, max: 35, step: 0.5, number: true },
  // the same setpoints as MQTT climates name their attributes
  { suffix: "_target_temperature_low", command: "set_temperature", param: "target_temp_low", min: 5, max: 35, step: 0.5, number: true },
  { suffix: "_target_temperature_high", command: "set_temperature", param: "target_temp_high", min: 5, max: 35, step: 0.5, number: true },
];
// the last resort for a thermostat that says neither its modes nor the command's values
const HVAC_MODES = ["off", "heat", "cool", "auto", "dry", "fan_only"];
// parts of other entities that also list options (a light's effect, a fan's preset...)
const NOT_SELECT = /_(effect|preset_mode|direction|color_mode|action)$/;
// parameters that set an entity's own value (its attribute is the entity's key)
const MAIN_VALUE = new Set(["hvac_mode", "option", "value"]);

const words = (s) => String(s).replaceAll("_", " ");

function meta(d, attr) {
  return (d.attribute_meta || {})[attr] || {};
}

// The entities a command can be aimed at (`choices.entity`), or null when it names none.
function entitiesOf(cmd) {
  const list = cmd?.choices?.entity;
  return Array.isArray(list) && list.length ? list : null;
}

// The parameters as sent: with `entity` when the command takes it and one is meant.
function aimed(cmd, entity, params) {
  return entity && "entity" in (cmd?.params || {}) ? { entity, ...params } : params;
}

function hex(rgb) {
  if (!Array.isArray(rgb) || rgb.length !== 3) return null;
  return "#" + rgb.map((c) => Math.max(0, Math.min(255, Math.round(Number(c) || 0)))
    .toString(16).padStart(2, "0")).join("");
}

// Returns { elements, handled: Set of command names given a control here, update(attr, v) }.
export function deviceControls(d, attrs, send) {
  const commands = new Map((d.commands || []).map((c) => [c.name, c]));
  const inputs = new Map();  // attribute -> (value) => show it
  const handled = new Set();
  const elements = [];
  const current = (attr) => attrs[attr]?.value;
  const follow = (attr, input, show = (v) => { input.value = v; }) => {
    inputs.set(attr, (v) => { if (document.activeElement !== input) show(v); });
  };

  // sliders and setpoints
  for (const attr of d.attributes || []) {
    const spec = SLIDERS.find((s) => attr.endsWith(s.suffix));
    if (!spec) continue;
    const cmd = commands.get(spec.command);
    if (!cmd || !(spec.param in (cmd.params || {}))) continue;
    const entity = attr.slice(0, -spec.suffix.length);
    const m = meta(d, attr);
    const input = h("input", {
      type: spec.number ? "number" : "range", min: m.min ?? spec.min, max: m.max ?? spec.max,
      step: m.step ?? spec.step, value: current(attr) ?? "", dataset: { control: attr },
      "aria-label": `${words(attr)} of ${d.name}`,
      onchange: () => {
        // a setpoint typed outside the entity's range is refused here, saying why
        const v = input.validity;
        if (v.rangeUnderflow || v.rangeOverflow || v.badInput) { input.reportValidity(); return; }
        send(spec.command, aimed(cmd, entity, { [spec.param]: Number(input.value) }));
      },
    });
    follow(attr, input);
    if (spec.command !== "turn_on") handled.add(spec.command);
    elements.push(h("label", { class: "control" }, `${words(attr)} `, input));
  }

  // a light's colour (a colour picker sending "#rrggbb") and its effect (a list)
  const turnOn = commands.get("turn_on");
  for (const attr of d.attributes || []) {
    const params = turnOn?.params || {};
    if (attr.endsWith("_rgb") && "rgb" in params) {
      const entity = attr.slice(0, -4);
      const input = h("input", { type: "color", value: hex(current(attr)) || "#ffffff",
        dataset: { control: attr }, "aria-label": `${words(attr)} of ${d.name}`,
        onchange: () => send("turn_on", aimed(turnOn, entity, { rgb: input.value })) });
      follow(attr, input, (v) => { const x = hex(v); if (x) input.value = x; });
      elements.push(h("label", { class: "control" }, `${words(attr)} `, input));
    } else if (attr.endsWith("_effect") && "effect" in params
               && Array.isArray(meta(d, attr).options)) {
      const entity = attr.slice(0, -7);
      const options = meta(d, attr).options;
      // no effect running reads as null; ESPHome lists it as "None"
      const none = options.includes("None") ? "None" : "";
      const input = h("select", { dataset: { control: attr }, "aria-label": `${words(attr)} of ${d.name}`,
        onchange: () => { if (input.value) send("turn_on", aimed(turnOn, entity, { effect: input.value })); } },
        none ? null : h("option", { value: "", disabled: true }, "—"),
        options.map((o) => h("option", { value: o }, o)));
      input.value = current(attr) ?? none;
      follow(attr, input, (v) => { input.value = v ?? none; });
      elements.push(h("label", { class: "control" }, `${words(attr)} `, input));
    }
  }

  // commands without parameters that several entities take: a row of buttons per entity
  // (the home view's plain buttons would reach only the first)
  const rows = new Map();
  const first = ["turn_on", "turn_off", "toggle"];
  const rank = (c) => (first.includes(c.name) ? first.indexOf(c.name) : first.length);
  for (const cmd of [...(d.commands || [])].sort((a, b) => rank(a) - rank(b))) {
    const entities = entitiesOf(cmd);
    if ((cmd.required || []).length || handled.has(cmd.name) || !entities || entities.length < 2) continue;
    for (const entity of entities) {
      if (!rows.has(entity)) rows.set(entity, []);
      rows.get(entity).push(h("button", {
        type: "button", class: "secondary", dataset: { command: cmd.name, entity },
        "aria-label": `${words(cmd.name)} ${words(entity)} of ${d.name}`,
        onclick: () => send(cmd.name, aimed(cmd, entity, {})),
      }, words(cmd.name)));
    }
    handled.add(cmd.name);
  }
  for (const [entity, buttons] of rows) {
    elements.push(h("div", { class: "row control", dataset: { entityControls: entity } },
      h("span", { class: "muted" }, `${words(entity)}: `), buttons));
  }

  // commands that need a value: per entity, the input its parameter calls for
  for (const cmd of d.commands || []) {
    const required = cmd.required || [];
    if (!required.length || handled.has(cmd.name)) continue;
    const param = required[0];
    const type = cmd.params?.[param];
    let targets = entitiesOf(cmd);
    if (!targets && cmd.name === "select_option" && selectAttributes(d).length) targets = selectAttributes(d);
    for (const entity of targets || [null]) {
      elements.push(valueControl(d, cmd, entity, param, type, attrs, send, follow));
    }
    handled.add(cmd.name);
  }
  return {
    elements,
    handled,
    update(attr, value) {
      const show = inputs.get(attr);
      if (show && value !== null && value !== undefined) show(value);
    },
  };
}

// One command's control for one entity (or the device when `entity` is null).
function valueControl(d, cmd, entity, param, type, attrs, send, follow) {
  const names = (d.attributes || []);
  // the attribute showing the parameter's current value: `<entity>_<param>`, or the entity's
  // own value for a parameter that sets it
  const attr = entity === null ? null
    : [`${entity}_${param}`, MAIN_VALUE.has(param) ? entity : null].find((a) => a && names.includes(a)) || null;
  const m = attr ? meta(d, attr) : {};
  const value = attr ? attrs[attr]?.value : undefined;
  const who = entity === null ? d.name : `${words(entity)} of ${d.name}`;
  const dataset = entity === null ? { command: cmd.name } : { command: cmd.name, entity };
  const control = attr ? { control: attr } : {};  // the input, named like the sliders
  if (type === "boolean") {
    // a yes/no parameter: a checkbox sending true/false as it changes
    const box = h("input", { type: "checkbox", dataset: { ...dataset, ...control },
      "aria-label": `${words(param)} of ${who}`,
      onchange: () => send(cmd.name, aimed(cmd, entity, { [param]: box.checked })) });
    box.checked = value === true;
    if (attr) follow(attr, box, (v) => { box.checked = v === true; });
    return h("label", { class: "control" }, `${words(attr || param)} `, box);
  }
  const options = (Array.isArray(m.options) && m.options.length ? m.options : null)
    || cmd.choices?.[param] || (param === "hvac_mode" ? HVAC_MODES : null);
  let input;
  if (options) {
    input = h("select", { dataset: control, "aria-label": `${words(param)} of ${who}` },
      options.map((o) => h("option", { value: o }, o)));
    if (value !== null && value !== undefined) input.value = value;
  } else if (type === "number") {
    input = h("input", { type: "number", step: m.step ?? "any", min: m.min, max: m.max,
      value: value ?? "", dataset: control, "aria-label": `${words(param)} of ${who}` });
  } else {
    input = h("input", { type: "text", dataset: control, "aria-label": `${words(param)} of ${who}` });
  }
  if (attr) follow(attr, input);
  // which entity the form sets (a select's button names it already)
  const whose = entity !== null && cmd.name !== "select_option"
    ? h("span", { class: "muted" }, `${words(entity)}: `) : null;
  return h("form", { class: "row control", dataset,
    onsubmit: (ev) => {
      ev.preventDefault();
      const raw = input.value;
      send(cmd.name, aimed(cmd, entity, { [param]: type === "number" ? Number(raw) : raw }));
    } }, whose, input, h("button", { type: "submit", class: "secondary" },
    entity === null || cmd.name !== "select_option" ? words(cmd.name) : words(entity)));
}

// The attributes a select_option command sets: those with options that are an entity's
// own value, not a part of another one (a cover's or thermostat's state has parts).
function selectAttributes(d) {
  const names = d.attributes || [];
  return names.filter((a) => Array.isArray(meta(d, a).options) && !NOT_SELECT.test(a)
    && !names.some((b) => b.startsWith(a + "_") && !b.endsWith("_attributes")));
}
