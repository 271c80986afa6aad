// Devices by area with live state; quick controls for commandable devices.
import { get, post } from "../api.js";
import { deviceControls } from "../controls.js";
import { h, mount, toast, when } from "../dom.js";
import { eventOf, items, withUnit } from "../util.js";

export default async function home({ main, live }) {
  const devices = items(await get("/api/devices"), "devices");
  const cards = new Map();
  const states = new Map();
  await Promise.all(devices.map(async (d) => {
    try { states.set(d.id, await get(`/api/devices/${encodeURIComponent(d.id)}/state`)); }
    catch { states.set(d.id, { attributes: {} }); }
  }));
  const byArea = new Map();
  for (const d of devices) {
    const area = d.area || "No area";
    if (!byArea.has(area)) byArea.set(area, []);
    byArea.get(area).push(d);
  }
  const sections = [...byArea.keys()].sort().map((area) => h("section", { "aria-label": area },
    h("h2", {}, area),
    h("div", { class: "grid" }, byArea.get(area).map((d) => {
      const card = deviceCard(d, states.get(d.id));
      cards.set(d.id, card);
      return card.el;
    }))));
  mount(main, h("h1", {}, "Home"),
    devices.length ? sections : h("p", { class: "muted" }, "No devices yet: see Discovery."));
  return live.on((msg) => {
    const ev = eventOf(msg);
    if (!ev) return;
    const card = cards.get(ev.device_id);
    if (!card) return;
    if (ev.type === "state_changed") card.update(ev.attribute, ev.new, ev.ts);
    else if (ev.type === "availability_changed") card.available(ev.available);
  });
}

// Parts of the device that are failing and why (e.g. an MQTT entity's refused template).
function problems(d) {
  const list = Object.entries(d.problems || {});
  if (!list.length) return null;
  return h("ul", { class: "error", role: "status", dataset: { problems: d.id } },
    list.map(([part, why]) => h("li", {}, `${part}: ${why}`)));
}

function deviceCard(d, state) {
  const attrs = { ...(state?.attributes || {}) };
  const valueEls = new Map();
  const show = (name, value) => withUnit(d, name, value);
  const seen = h("span", { class: "muted" });
  const avail = h("span", { class: "badge" });
  const setAvail = (a) => {
    avail.textContent = a === false ? "unavailable" : "available";
    avail.className = `badge ${a === false ? "bad" : "ok"}`;
  };
  setAvail(state?.available ?? d.available);
  let last = 0;
  const rows = Object.entries(attrs).map(([name, st]) => {
    const v = h("span", { class: "value", dataset: { attr: name } }, show(name, st.value));
    valueEls.set(name, v);
    last = Math.max(last, st.last_updated || 0);
    return h("div", {}, h("span", { class: "muted" }, `${name}: `), v);
  });
  seen.textContent = `last seen ${when(last)}`;
  const send = async (command, params) => {
    try { await post(`/api/devices/${encodeURIComponent(d.id)}/commands`, { command, params }); }
    catch (err) { toast(err.message, "error"); }
  };
  const fitted = deviceControls(d, attrs, send);
  const controls = (d.commands || []).map((c) => {
    if ((c.required && c.required.length) || fitted.handled.has(c.name)) return null;
    return h("button", {
      type: "button", class: "secondary", dataset: { command: c.name },
      "aria-label": `${c.name.replace("_", " ")} ${d.name}`,
      onclick: () => send(c.name, {}),
    }, c.name.replace("_", " "));
  });
  const el = h("article", { class: "card", dataset: { device: d.id } },
    h("h3", {}, h("a", { href: `#/device/${encodeURIComponent(d.id)}`, "data-open": "" }, d.name)),
    h("div", { class: "row" }, avail,
      h("span", { class: "badge", title: d.transport_reason || "" }, d.transport || "—")),
    rows, problems(d), h("div", { class: "row" }, controls), fitted.elements, seen);
  return {
    el,
    update(attr, value, ts) {
      let v = valueEls.get(attr);
      if (!v) {
        v = h("span", { class: "value", dataset: { attr } });
        valueEls.set(attr, v);
        el.insertBefore(h("div", {}, h("span", { class: "muted" }, `${attr}: `), v), seen);
      }
      v.textContent = show(attr, value);
      fitted.update(attr, value);
      seen.textContent = `last seen ${when(ts || Date.now() / 1000)}`;
    },
    available: setAvail,
  };
}
