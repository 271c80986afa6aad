// HomeKit: the bridge page (setup code, QR code, which devices Apple Home sees) and the
// setup-code form the Discovery page uses to pair a HomeKit accessory.
import { del, get, post, put } from "../api.js";
import { errorBox, field, h, mount, toast } from "../dom.js";
import { qrSvg } from "../qr.js";
import { items } from "../util.js";

export default async function homekit({ main }) {
  const body = h("div", { id: "homekit" });
  mount(main, h("h1", {}, "HomeKit"),
    h("p", { class: "muted" }, "Devices shown here appear in Apple Home through the hub's own "
      + "HomeKit bridge, on the LAN only. Restricted devices never do."), body);
  await render(body);
}

async function render(body) {
  let bridge, devices;
  try {
    bridge = await get("/api/homekit/bridge");
    devices = items(await get("/api/devices"), "devices");
  } catch (err) { mount(body, errorBox(err)); return; }
  const shown = new Set(bridge.devices.map((d) => d.device_id));
  // drawn in the page from the setup URI, like every other QR code of the dashboard
  const qr = bridge.setup_uri ? h("div", { id: "homekit-qr", class: "qr-box" },
    qrSvg(bridge.setup_uri, { label: "HomeKit setup QR code" })) : null;
  const pairing = bridge.enabled ? h("section", { class: "card" },
    h("h2", {}, "Add the bridge to Apple Home"),
    h("p", {}, "State: ", h("strong", { dataset: { bridgeState: bridge.state } }, bridge.state),
      bridge.error ? ` — ${bridge.error}` : ""),
    bridge.paired ? h("p", { class: "ok" }, "Paired with a phone.")
      : h("p", {}, "In the Home app: Add Accessory, then scan this code or enter ",
        h("code", { id: "homekit-code" }, bridge.setup_code || "…")),
    qr)
    : h("div", { class: "notice" }, "The bridge is off: set homekit_bridge.enabled: true in the "
      + "config to show devices in Apple Home. Devices picked now are shown once it runs.");
  const rows = bridge.devices.map((d) => h("li", { dataset: { shown: d.device_id } },
    h("strong", {}, d.name || d.device_id), " ",
    d.problem ? h("span", { class: "bad" }, d.problem) : h("span", { class: "muted" },
      d.characteristics.join(", ")),
    d.source === "api" ? h("button", {
      type: "button", class: "secondary", "aria-label": `Stop showing ${d.name || d.device_id}`,
      onclick: async () => {
        try { await del(`/api/homekit/bridge/devices/${encodeURIComponent(d.device_id)}`); }
        catch (err) { toast(err.message, "error"); }
        render(body);
      },
    }, "Remove") : h("span", { class: "muted" }, " (from the config file)")));
  const candidates = devices.filter((d) => !shown.has(d.id) && !d.restricted);
  const select = h("select", { name: "device" },
    candidates.map((d) => h("option", { value: d.id }, d.area ? `${d.name} — ${d.area}` : d.name || d.id)));
  const status = h("div", { "aria-live": "polite" });
  const form = h("form", {
    onsubmit: async (e) => {
      e.preventDefault();
      try {
        await put(`/api/homekit/bridge/devices/${encodeURIComponent(select.value)}`);
        toast("Shown in Apple Home");
        render(body);
      } catch (err) { status.replaceChildren(errorBox(err)); }
    },
  }, field("Device", select), h("button", { type: "submit" }, "Show in Apple Home"), status);
  mount(body, pairing, h("h2", {}, "Shown in Apple Home"),
    rows.length ? h("ul", { id: "homekit-devices" }, rows)
      : h("p", { class: "muted" }, "Nothing yet: pick devices below."),
    candidates.length ? form : null);
}

// Discovery: a HomeKit accessory is adopted with the setup code printed on it.
export function pairForm(d, panel, refresh) {
  const input = h("input", { name: "setup_code", required: true, inputmode: "numeric",
    autocomplete: "off", placeholder: "123-45-678", pattern: "[0-9]{3}-?[0-9]{2}-?[0-9]{3}" });
  const status = h("div", { "aria-live": "polite", id: "pair-status" });
  const form = h("form", {
    onsubmit: async (e) => {
      e.preventDefault();
      status.replaceChildren(h("p", {}, "Pairing…"));
      try {
        await post(`/api/discovered/${encodeURIComponent(d.id)}/adopt`,
          { credentials: { setup_code: input.value } });
        toast(`Paired: ${d.name || d.id}`);
        mount(panel);
      } catch (err) { status.replaceChildren(errorBox(err)); }
      refresh();
    },
  }, field("HomeKit setup code", input), h("button", { type: "submit" }, "Pair"), status);
  mount(panel, h("h2", {}, `Pair ${d.name || d.id}`), form);
  input.focus();
}
