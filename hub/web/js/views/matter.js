// Matter: the server's status, commissioning with a pairing code (progress live from the
// websocket), and per device: quick controls, sharing with a phone ecosystem, removal.
import { del, get, post } from "../api.js";
import { errorBox, field, h, mount, toast } from "../dom.js";
import { qrSvg } from "../qr.js";
import { eventOf, items, withUnit } from "../util.js";

const QUICK = ["turn_on", "turn_off", "toggle", "open", "stop", "close", "lock", "unlock"];

// "Memory: server 118 MiB, hub 64 MiB" (or why the server's is unknown)
function memoryText(mem) {
  if (!mem) return "";
  const mib = (b) => `${(b / 1048576).toFixed(0)} MiB`;
  const server = mem.server && mem.server.bytes != null ? mib(mem.server.bytes)
    : `unknown (${(mem.server && mem.server.unknown) || "not measured"})`;
  const hub = mem.hub && mem.hub.bytes != null ? `, hub ${mib(mem.hub.bytes)}` : "";
  return ` Memory: server ${server}${hub}.`;
}

export default async function matter({ main, live }) {
  const status = h("p", { id: "matter-status", class: "muted" });
  const list = h("div", { id: "matter-devices" });
  const progress = h("ol", { id: "matter-progress", "aria-live": "polite" });
  const out = h("div", { "aria-live": "assertive" });
  let jobId = null;

  async function refresh() {
    const health = await get("/api/health");
    const m = (health.integration_details || {}).matter;
    const state = (health.integrations || {}).matter;
    status.textContent = !m ? (state
      ? `The Matter integration is not running (${state}): see the hub's log.`
      : "Matter is not configured (integrations.matter).")
      : (m.problem ? m.problem : `Matter server connected (${m.nodes} devices).`) + memoryText(m.memory);
    const devices = items(await get("/api/devices"), "devices")
      .filter((d) => d.integration === "matter");
    const states = await Promise.all(devices.map((d) =>
      get(`/api/devices/${encodeURIComponent(d.id)}/state`).catch(() => ({}))));
    mount(list, devices.length ? devices.map((d, i) => card(d, states[i]))
      : h("p", { class: "muted" }, "No Matter devices yet."));
  }

  function card(d, st) {
    const attrs = (st && st.attributes) || {};
    const codes = h("div", { class: "pairing", "aria-live": "polite" });
    return h("section", { class: "card", dataset: { matterDevice: d.id } },
      h("h3", {}, d.name, st && st.available === false ? h("span", { class: "muted" }, " (unavailable)") : null),
      h("p", { class: "matter-state" }, Object.entries(attrs).map(([k, v]) =>
        `${k}: ${withUnit(d, k, v && typeof v === "object" ? v.value : v)}`).join(" · ")),
      h("div", { class: "row" },
        (d.commands || []).filter((c) => QUICK.includes(c.name)).map((c) =>
          h("button", { type: "button", dataset: { command: c.name }, onclick: () => send(d, c.name) },
            c.name.replace("_", " "))),
        h("button", { type: "button", dataset: { share: d.id }, onclick: async () => {
          try {
            const r = await post(`/api/matter/devices/${encodeURIComponent(d.id)}/commissioning-window`, { timeout: 300 });
            // the QR code drawn in the page, like the TOTP and HomeKit ones
            codes.replaceChildren(h("p", {}, "Pairing code for another app (5 min): ", h("code", {}, r.manual_code)),
              r.qr_code ? h("div", { class: "qr-box" }, qrSvg(r.qr_code, { label: `Matter pairing QR code for ${d.name}` })) : null);
          } catch (err) { toast(err.message, "error"); }
        } }, "Share with another app"),
        h("button", { type: "button", class: "danger", onclick: async () => {
          if (!confirm(`Remove ${d.name} from the hub and its Matter fabric?`)) return;
          try { await del(`/api/devices/${encodeURIComponent(d.id)}`); toast(`Removed ${d.name}`); }
          catch (err) { toast(err.message, "error"); }
          refresh();
        } }, "Remove")),
      codes);
  }

  async function send(d, command) {
    try { await post(`/api/devices/${encodeURIComponent(d.id)}/commands`, { command }); }
    catch (err) { toast(err.message, "error"); }
  }

  function showJob(job) {
    mount(progress, job.history.map((s) => h("li", { dataset: { state: s.state } },
      s.state, s.message ? ` – ${s.message}` : "")));
    if (job.state === "succeeded") {
      const a = job.attestation;
      if (a) progress.append(h("li", { dataset: { attestation: a.outcome } }, `attestation: ${a.outcome} – ${a.reason || ""}`));
      refresh();
    }
    if (job.state === "failed" && job.error) out.append(errorBox(new Error(job.error.message)));
  }

  const code = h("input", { name: "code", required: true, maxlength: 64, autocomplete: "off",
                            placeholder: "3497-011-2332 or MT:..." });
  // a device already on the LAN, or a new one over Bluetooth given a Wi-Fi network of the vault
  let networks = [];
  try { networks = items(await get("/api/wifi/networks"), "networks"); } catch { /* IP only */ }
  const via = h("select", { name: "ssid" },
    h("option", { value: "" }, "it is already on this network"),
    networks.map((n) => h("option", { value: n.ssid }, `over Bluetooth, give it ${n.ssid}`)));
  const form = h("form", {
    id: "matter-form",
    onsubmit: async (e) => {
      e.preventDefault();
      out.replaceChildren(); progress.replaceChildren();
      try {
        const body = { code: code.value };
        if (via.value) body.ssid = via.value;
        const job = await post("/api/matter/commission", body);
        jobId = job.id; showJob(job); code.value = "";
      } catch (err) { out.append(errorBox(err)); }
    },
  }, field("Pairing code", code), field("Network", via),
  h("button", { type: "submit" }, "Add Matter device"), out);

  let pending = null;  // state changes of Matter devices: one refresh per burst
  const off = live.on((msg) => {
    const ev = eventOf(msg);
    if (!ev) return;
    if (ev.type === "matter_commissioning" && ev.job_id === jobId) showJob(ev.job);
    if ((ev.type === "state_changed" || ev.type === "availability_changed") &&
        String(ev.device_id || "").startsWith("matter-") && !pending) {
      pending = setTimeout(() => { pending = null; refresh(); }, 200);
    }
  });
  mount(main, h("h1", {}, "Matter"), status,
    h("h2", {}, "Add a device"),
    h("p", { class: "muted" }, "Put the device in pairing mode on this network and type the code printed on it."),
    form, progress, h("h2", {}, "Devices"), list);
  await refresh();
  return () => { off(); clearTimeout(pending); };
}
