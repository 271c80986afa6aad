// Wi-Fi networks kept (encrypted) on the hub: add (password write-only), list, delete.
import { del, get, put } from "../api.js";
import { errorBox, field, h, mount, toast, when } from "../dom.js";
import { items } from "../util.js";

export default async function wifi({ main }) {
  const tbody = h("tbody");
  async function refresh() {
    const list = items(await get("/api/wifi/networks"), "networks");
    mount(tbody, list.length ? list.map((n) => h("tr", { dataset: { ssid: n.ssid } },
      h("td", {}, n.ssid), h("td", {}, n.security || ""), h("td", {}, when(n.last_used)),
      h("td", {}, h("button", { type: "button", class: "danger", "aria-label": `Delete ${n.ssid}`,
        onclick: async () => {
          try { await del(`/api/wifi/networks/${encodeURIComponent(n.ssid)}`); toast(`Deleted ${n.ssid}`); }
          catch (err) { toast(err.message, "error"); }
          refresh();
        } }, "Delete"))))
      : h("tr", {}, h("td", { colspan: 4, class: "muted" }, "No networks stored.")));
  }
  const ssid = h("input", { name: "ssid", required: true, maxlength: 32, autocomplete: "off" });
  const pass = h("input", { name: "password", type: "password", required: true, minlength: 8,
                            maxlength: 63, autocomplete: "new-password" });
  const security = h("select", { name: "security" },
    ["wpa2", "wpa3", "wpa2-wpa3", "open"].map((s) => h("option", { value: s }, s)));
  const out = h("div", { "aria-live": "assertive" });
  const form = h("form", {
    id: "wifi-form",
    onsubmit: async (e) => {
      e.preventDefault();
      out.replaceChildren();
      try {
        await put(`/api/wifi/networks/${encodeURIComponent(ssid.value)}`,
          { password: pass.value, security: security.value });
        toast(`Saved ${ssid.value}`);
        ssid.value = ""; pass.value = "";
        refresh();
      } catch (err) { out.append(errorBox(err)); }
    },
  }, field("Network name (SSID)", ssid), field("Password", pass), field("Security", security),
  h("button", { type: "submit" }, "Save network"), out);
  await refresh();
  mount(main, h("h1", {}, "Wi-Fi networks"),
    h("p", { class: "muted" }, "Passwords are encrypted and never leave the hub; they cannot be read back."),
    h("div", { class: "scroll" }, h("table", {}, h("thead", {}, h("tr", {},
      ["SSID", "Security", "Last used", ""].map((t) => h("th", { scope: "col" }, t)))), tbody)),
    h("h2", {}, "Add a network"), form);
}
