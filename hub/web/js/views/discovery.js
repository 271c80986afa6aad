// Devices found on the LAN and over BLE: adopt, ignore, provision Wi-Fi, see attestation.
import { get, post } from "../api.js";
import { errorBox, field, h, mount, toast, when } from "../dom.js";
import { eventOf, items } from "../util.js";
import { pairForm } from "./homekit.js";

export default async function discovery({ main, live }) {
  const list = h("div", { class: "grid", id: "discovered" });
  const panel = h("div", { id: "provision-panel" });
  async function refresh() {
    let found;
    try { found = items(await get("/api/discovered"), "discovered", "devices"); }
    catch (err) { mount(list, errorBox(err)); return; }
    mount(list, found.length ? found.map((d) => card(d, refresh, panel))
      : h("p", { class: "muted" }, "Nothing discovered right now."));
  }
  await refresh();
  mount(main, h("h1", {}, "Discovery"),
    h("p", { class: "muted" }, "Devices the hub found by itself over the LAN (mDNS) and Bluetooth LE."),
    list, panel);
  let timer = null;
  return live.on((msg) => {
    const ev = eventOf(msg);
    if (!ev || !String(ev.type || "").startsWith("discover")) return;
    clearTimeout(timer);
    timer = setTimeout(refresh, 150);
  });
}

function card(d, refresh, panel) {
  const id = encodeURIComponent(d.id);
  const act = (path, label) => h("button", {
    type: "button", class: "secondary", "aria-label": `${label} ${d.name || d.id}`,
    onclick: async () => {
      try { await post(`/api/discovered/${id}/${path}`); toast(`${label}: ${d.name || d.id}`); }
      catch (err) { toast(err.message, "error"); }
      refresh();
    },
  }, label);
  const canProvision = d.source === "ble" || d.needs_wifi || d.state === "awaiting_wifi"
    || d.integration === "improv";
  const data = d.data || {};
  // ESPHome devices with an encrypted API: adoption asks for the key (never shown again)
  const wantsKey = d.integration === "esphome" && (data.needs_key || data.key_error);
  const adopt = wantsKey && d.state !== "adopted"
    ? h("button", { type: "button", class: "secondary", "aria-label": `Adopt ${d.name || d.id}`,
      onclick: () => keyForm(d, panel, refresh) }, "Adopt")
    // HomeKit accessories: adoption is pairing with the setup code printed on them
    : d.integration === "homekit_controller" && d.state !== "adopted"
      ? h("button", { type: "button", "aria-label": `Pair ${d.name || d.id}`,
        onclick: () => pairForm(d, panel, refresh) }, "Pair")
      : act("adopt", "Adopt");
  const problems = [data.key_error && `Encryption key: ${data.key_error}`,
    data.identity_conflict,
    d.integration === "homekit_controller" && data.error].filter(Boolean);
  return h("article", { class: "card", dataset: { discovered: d.id } },
    h("h3", {}, d.name || d.id),
    h("div", { class: "row" },
      h("span", { class: "badge" }, { ble: "BLE", mqtt: "MQTT" }[d.source] || "LAN"),
      h("span", { class: "badge" }, d.integration || "unknown"),
      d.state ? h("span", { class: "badge" }, d.state) : null),
    h("p", { class: "muted" },
      [d.model, d.mac, d.rssi !== undefined && d.rssi !== null ? `RSSI ${d.rssi}` : null,
        d.ble_source && d.ble_source !== "local" ? `via ${d.ble_source}` : null]
        .filter(Boolean).join(" · ")),
    entities(d),
    h("p", { class: "muted" }, `last seen ${when(d.last_seen)}`),
    problems.map((text) => h("p", { class: "error", role: "alert" }, text)),
    h("div", { class: "row" }, adopt, act("ignore", "Ignore"),
      canProvision ? h("button", { type: "button", "aria-label": `Set up Wi-Fi for ${d.name || d.id}`,
        onclick: () => provisionForm(d, panel) }, "Set up Wi-Fi") : null));
}

// What an MQTT device announced (its entities), and the ones failing, with why.
function entities(d) {
  const list = (d.data && Array.isArray(d.data.entities)) ? d.data.entities : [];
  if (!list.length) return null;
  const failing = list.filter((e) => e.error);
  return [
    h("p", { class: "muted", dataset: { entities: d.id } },
      list.map((e) => `${e.name || e.key} (${e.component})`).join(", ")),
    failing.length ? h("ul", { class: "error", role: "status" },
      failing.map((e) => h("li", {}, `${e.key}: ${e.error}`))) : null,
  ];
}

function keyForm(d, panel, refresh) {
  const input = h("input", { type: "password", name: "encryption_key", required: true,
    autocomplete: "off", spellcheck: false, "aria-label": "Encryption key",
    placeholder: "44 characters of base64" });
  const status = h("div", { "aria-live": "polite", id: "adopt-status" });
  const form = h("form", {
    onsubmit: async (e) => {
      e.preventDefault();
      const key = input.value.trim();
      input.value = "";
      try {
        await post(`/api/discovered/${encodeURIComponent(d.id)}/adopt`,
          { credentials: { encryption_key: key } });
        toast(`Adopt: ${d.name || d.id}`);
        panel.replaceChildren();
      } catch (err) { status.replaceChildren(errorBox(err)); }
      refresh();
    },
  }, field("Encryption key (api: encryption: key: in the device's YAML)", input),
  h("button", { type: "submit" }, "Adopt with this key"), status);
  mount(panel, h("h2", {}, `Adopt ${d.name || d.id}`),
    h("p", { class: "muted" }, "This ESPHome device encrypts its API. The key is checked "
      + "with the device, then kept in the hub's encrypted vault; it is never shown again."),
    form);
  input.focus();
}

async function provisionForm(d, panel) {
  let networks = [];
  try { networks = items(await get("/api/wifi/networks"), "networks"); }
  catch (err) { mount(panel, errorBox(err)); return; }
  const select = h("select", { name: "ssid", required: true },
    networks.map((n) => h("option", { value: n.ssid }, n.ssid)));
  const status = h("div", { "aria-live": "polite", id: "provision-status" });
  const form = h("form", {
    onsubmit: async (e) => {
      e.preventDefault();
      status.replaceChildren(h("p", {}, "Starting…"));
      try {
        const job = await post(`/api/discovered/${encodeURIComponent(d.id)}/provision`,
          { ssid: select.value });
        follow(job, status);
      } catch (err) { status.replaceChildren(errorBox(err)); }
    },
  }, field("Wi-Fi network", select), h("button", { type: "submit" }, "Provision"), status);
  mount(panel, h("h2", {}, `Wi-Fi for ${d.name || d.id}`),
    networks.length ? form : h("p", {}, "Add a Wi-Fi network first (Wi-Fi page)."));
  select.focus();
}

async function follow(job, status) {
  const id = job.id || job.job_id;
  for (let i = 0; i < 240; i++) {
    render(job, status);
    if (["succeeded", "failed", "cancelled", "adopted", "done"].includes(job.state)) return;
    await new Promise((r) => setTimeout(r, 500));
    try { job = await get(`/api/provisioning/${encodeURIComponent(id)}`); }
    catch (err) { status.replaceChildren(errorBox(err)); return; }
  }
}

// A job's status: only what is known (a field the job has not reached yet is null: it is
// left out, never printed), each step it went through with its message and time.
function render(job, status) {
  const att = job.attestation;
  const warnings = (job.warnings || []).filter(Boolean);
  const err = job.error;
  const errText = err && typeof err === "object"
    ? [err.message, err.code ? `(${err.code})` : ""].filter(Boolean).join(" ") : err ? String(err) : "";
  const steps = (job.history || []).filter((s) => s && s.state);
  mount(status,
    job.encrypted === false ? h("div", { class: "notice", role: "alert" },
      warnings.length ? warnings.join(" ")
        : "This method sends the Wi-Fi password unencrypted over Bluetooth.") : null,
    h("p", {}, "Progress: ", h("strong", { dataset: { jobState: job.state || "" } }, (job.state || "starting").replaceAll("_", " "))),
    steps.length ? h("ol", { class: "timeline", "data-steps": "" }, steps.map((s) => h("li", {},
      s.state.replaceAll("_", " "), s.message ? ` — ${s.message}` : "",
      s.ts ? h("span", { class: "muted" }, ` · ${new Date(s.ts * 1000).toLocaleTimeString()}`) : null))) : null,
    att && att.outcome ? h("p", {}, "Attestation: ",
      h("strong", { class: att.outcome === "verified" ? "ok" : att.outcome === "failed" ? "bad" : "warn",
                    dataset: { attestation: att.outcome } }, att.outcome),
      att.reason ? ` — ${att.reason}` : "") : null,
    job.redirect_url ? h("p", {}, "The device says: continue at ",
      h("code", {}, job.redirect_url)) : null,
    job.device_id ? h("p", {}, "Device: ", h("a", { href: `#/device/${encodeURIComponent(job.device_id)}` }, job.device_id)) : null,
    errText ? h("div", { class: "error" }, errText) : null);
}
