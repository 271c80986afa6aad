// Controls that fit what a device accepts: sliders for brightness, colour temperature,
// position and fan speed, a setpoint for thermostats, forms for commands that need a value
// (select an option, set a number, an HVAC mode). Built from the device's command specs and
// attribute names (`<entity>_brightness`...), with ranges from attribute metadata when the
// device has it. Used by the home view for every device; plain buttons stay for the rest.
import { h } from "./dom.js";

const SLIDERS = [
  // attribute suffix, command, parameter, default range
  { suffix: "_brightness", command: "turn_on", param: "brightness", min: 0, max: 255, step: 1 },
  { suffix: "_color_temp", command: "turn_on", param: "color_temp", min: 153, max: 500, step: 1 },
  { suffix: "_position", command: "set_position", param: "position", min: 0, max: 100, step: 1 },
  { suffix: "_tilt", command: "set_tilt", param: "tilt", min: 0, max: 100, step: 1 },
  { suffix: "_percentage", command: "set_percentage", param: "percentage", min: 0, max: 100, step: 1 },
  { suffix: "_target_temperature", command: "set_temperature", param: "temperature", min: 5, max: 35, step: 0.5, number: true },
];
const HVAC_MODES = ["off", "heat", "cool", "auto", "dry", "fan_only"];
// parts of other entities that also list options (a light's effect, a fan's preset...)
const NOT_SELECT = /_(effect|preset_mode|direction|color_mode|action)$/;

function meta(d, attr) {
  return (d.attribute_meta || {})[attr] || {};
}

// Returns { elements, handled: Set of command names given a control here, update(attr, v) }.
export function deviceControls(d, attrs, send) {
  const commands = new Map((d.commands || []).map((c) => [c.name, c]));
  const inputs = new Map();
  const handled = new Set();
  const elements = [];
  for (const attr of d.attributes || []) {
    const spec = SLIDERS.find((s) => attr.endsWith(s.suffix));
    if (!spec) continue;
    const cmd = commands.get(spec.command);
    if (!cmd || !(spec.param in (cmd.params || {}))) continue;
    const entity = attr.slice(0, -spec.suffix.length);
    const m = meta(d, attr);
    const input = h("input", {
      type: spec.number ? "number" : "range", min: m.min ?? spec.min, max: m.max ?? spec.max,
      step: m.step ?? spec.step, value: attrs[attr]?.value ?? "", dataset: { control: attr },
      "aria-label": `${attr.replaceAll("_", " ")} of ${d.name}`,
      onchange: () => send(spec.command, { entity, [spec.param]: Number(input.value) }),
    });
    inputs.set(attr, input);
    if (spec.command !== "turn_on") handled.add(spec.command);
    elements.push(h("label", { class: "control" }, `${attr.replaceAll("_", " ")} `, input));
  }
  for (const cmd of d.commands || []) {
    const required = cmd.required || [];
    if (!required.length || handled.has(cmd.name)) continue;
    if (cmd.name === "select_option" && selectAttributes(d).length) {
      for (const attr of selectAttributes(d)) {
        const input = h("select", { "aria-label": `${attr.replaceAll("_", " ")} of ${d.name}` },
          meta(d, attr).options.map((o) => h("option", { value: o }, o)));
        input.value = attrs[attr]?.value ?? "";
        inputs.set(attr, input);
        const params = () => ({ ...("entity" in (cmd.params || {}) ? { entity: attr } : {}),
          option: input.value });
        elements.push(h("form", { class: "row control", dataset: { command: cmd.name, entity: attr },
          onsubmit: (ev) => { ev.preventDefault(); send(cmd.name, params()); } },
          input, h("button", { type: "submit", class: "secondary" }, attr.replaceAll("_", " "))));
      }
      handled.add(cmd.name);
      continue;
    }
    const param = required[0];
    const type = cmd.params?.[param];
    let input;
    if (cmd.name === "set_hvac_mode") {
      input = h("select", { "aria-label": `${param} of ${d.name}` },
        HVAC_MODES.map((mode) => h("option", { value: mode }, mode)));
    } else {
      input = h("input", { type: type === "number" ? "number" : "text", step: "any",
        "aria-label": `${param} of ${d.name}` });
    }
    const form = h("form", { class: "row control", dataset: { command: cmd.name },
      onsubmit: (ev) => {
        ev.preventDefault();
        const raw = input.value;
        send(cmd.name, { [param]: type === "number" ? Number(raw) : raw });
      } }, input, h("button", { type: "submit", class: "secondary" }, cmd.name.replaceAll("_", " ")));
    handled.add(cmd.name);
    elements.push(form);
  }
  return {
    elements,
    handled,
    update(attr, value) {
      const input = inputs.get(attr);
      if (input && document.activeElement !== input && value !== null && value !== undefined) {
        input.value = value;
      }
    },
  };
}

// The attributes a select_option command sets: those with options that are an entity's
// own value, not a part of another one (a cover's or thermostat's state has parts).
function selectAttributes(d) {
  const names = d.attributes || [];
  return names.filter((a) => Array.isArray(meta(d, a).options) && !NOT_SELECT.test(a)
    && !names.some((b) => b.startsWith(a + "_") && !b.endsWith("_attributes")));
}
