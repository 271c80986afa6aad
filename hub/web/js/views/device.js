// One device: rename, move to an area (by name, new ones made on the fly), remove; its
// attributes with units, availability, connectivity, and its history as graphs.
import { del, get, patch } from "../api.js";
import { bandChart, eventChart, lineChart } from "../chart.js";
import { confirmationBanners } from "../confirmations.js";
import { errorBox, field, h, mount, toast, when } from "../dom.js";
import { eventOf, items, withUnit } from "../util.js";
import { showError } from "./users.js";

const RANGES = [["1 h", 3600], ["24 h", 86400], ["7 d", 7 * 86400]];

export default async function device({ main, live, me }) {
  const id = decodeURIComponent(location.hash.replace(/^#\/device\//, ""));
  const path = `/api/devices/${encodeURIComponent(id)}`;
  const d = await get(path);
  const state = await get(`${path}/state`).catch(() => ({ attributes: {} }));
  const unit = (a) => d.attribute_meta?.[a]?.unit || "";
  const show = (a, v) => withUnit(d, a, v);

  const title = h("h1", {}, d.name);
  const avail = h("span", { class: "badge", "data-available": "" });
  const setAvail = (a) => { avail.textContent = a === false ? "unavailable" : "available"; avail.className = `badge ${a === false ? "bad" : "ok"}`; };
  setAvail(state.available ?? d.available);
  const values = new Map();
  const attrRows = Object.entries(state.attributes || {}).map(([a, st]) => {
    const v = h("td", { "data-attr": a }, show(a, st.value));
    values.set(a, v);
    return h("tr", {}, h("th", { scope: "row" }, a), v, h("td", { class: "muted" }, when(st.last_updated)));
  });
  const c = d.connectivity;
  const conn = c ? [c.transport, c.reason, c.ble_source ? `heard by ${c.ble_source}` : null, c.rssi != null ? `${c.rssi} dBm` : null,
    c.lan ? `${c.lan.host}:${c.lan.port} ${c.lan.ok ? "reachable" : `unreachable${c.lan.error ? ` (${c.lan.error})` : ""}`}` : null]
    .filter((x) => x !== null && x !== undefined && x !== "").join(" · ") : (d.transport || "—");

  const graphs = h("section", { id: "history", "aria-live": "polite" });
  let range = 86400;
  const picker = h("div", { class: "row", role: "group", "aria-label": "History range" },
    RANGES.map(([label, secs]) => h("button", { type: "button", class: "secondary", "data-range": label,
      "aria-pressed": secs === range ? "true" : "false", onclick: (e) => {
        range = secs;
        for (const b of picker.querySelectorAll("button")) b.setAttribute("aria-pressed", b === e.currentTarget ? "true" : "false");
        draw();
      } }, label)));
  const draw = async () => {
    const until = Date.now() / 1000;
    try {
      const r = await get(`${path}/history?since=${until - range}&until=${until}&points=200`);
      const byAttr = new Map();
      const of = (a) => byAttr.get(a) || byAttr.set(a, { series: [], changes: [] }).get(a);
      for (const p of r.series) of(p.attribute).series.push(p);
      for (const p of r.changes) of(p.attribute).changes.push(p);
      // the value each attribute held when the range starts (recorded before it)
      for (const { attribute, value } of r.before || []) {
        const g = of(attribute);
        if (typeof value === "number") {
          const p = { ts: r.since, min: value, max: value, avg: value, held: true };
          g.series.unshift(p);
          if (g.series.length === 1) g.series.push({ ...p, ts: r.until });  // unchanged since
        } else if (r.changes_from == null) {  // (older changes left out: start at the first kept)
          if (g.changes[0]?.value === value) g.changes[0] = { ...g.changes[0], ts: r.since };
          else g.changes.unshift({ ts: r.since, value });
        }
      }
      const out = [];
      for (const [a, { series, changes }] of [...byAttr].sort()) {
        out.push(h("h3", {}, a));
        if (series.length) out.push(lineChart(series, { since: r.since, until: r.until, bucket: r.bucket, unit: unit(a), title: a }));
        if (changes.length) out.push(bandChart(changes, { since: r.since, until: r.until, title: a }));
      }
      if (r.events?.length) out.push(h("h3", {}, "Events"), eventChart(r.events, { since: r.since, until: r.until }));
      graphs.replaceChildren(...(out.length ? out : [h("p", { class: "muted" }, "Nothing recorded in this range.")]));
    } catch (err) { graphs.replaceChildren(errorBox(err)); }
  };

  mount(main, h("p", {}, h("a", { href: "#/home" }, "← Home")), title,
    confirmationBanners(d, path, me),
    h("div", { class: "row" }, avail, h("span", { class: "badge", "data-connectivity": "" }, conn)),
    h("div", { class: "scroll" }, h("table", { id: "attributes" }, h("tbody", {}, attrRows))),
    h("h2", {}, "History"), picker, graphs,
    h("h2", {}, "Settings"), settings(d, path, title), remove(d, path));
  await draw();
  let redraw = null;
  return live.on((msg) => {
    const ev = eventOf(msg);
    if (!ev || ev.device_id !== id) return;
    if (ev.type === "state_changed" && values.has(ev.attribute)) values.get(ev.attribute).textContent = show(ev.attribute, ev.new);
    else if (ev.type === "availability_changed") setAvail(ev.available);
    else if (ev.type === "device_event" && !redraw) redraw = setTimeout(() => { redraw = null; draw(); }, 500);  // a burst: one fetch
  });
}

function settings(d, path, title) {
  const name = h("input", { name: "name", value: d.name, required: true, maxlength: 100 });
  const area = h("input", { name: "area", value: d.area || "", maxlength: 100, list: "areas", placeholder: "e.g. Kitchen" });
  const areas = h("datalist", { id: "areas" });
  get("/api/devices").then((list) => {
    const names = [...new Set(items(list, "devices").map((x) => x.area).filter(Boolean))].sort();
    areas.replaceChildren(...names.map((a) => h("option", { value: a })));
  }).catch(() => {});
  const out = h("div", { "aria-live": "polite" });
  const form = h("form", { id: "device-settings", class: "inline", onsubmit: async (e) => {
    e.preventDefault();
    for (const el of form.querySelectorAll(".field-error")) el.remove();
    try {
      const r = await patch(path, { name: name.value.trim(), area: area.value.trim() || null });
      title.textContent = r.name;
      toast("Saved");
    } catch (err) { showError(form, out, err, { name, area }); }
  } }, field("Name", name), field("Area", area), areas, h("button", { type: "submit" }, "Save"), out);
  return form;
}

function remove(d, path) {
  const out = h("div", { "aria-live": "polite" });
  const yes = h("button", { type: "button", class: "danger", hidden: true, onclick: async () => {
    try { await del(path); toast(`Removed ${d.name}`); location.hash = "#/home"; }
    catch (err) { out.replaceChildren(errorBox(err)); }
  } }, `Yes, remove ${d.name}`);
  return h("div", {}, h("button", { type: "button", class: "secondary", onclick: () => { yes.hidden = false; } }, "Remove device"), yes, out);
}
