// Cloud sync: status, opt-in and opt-out (consent is what turns it on and off).
import { get, put } from "../api.js";
import { errorBox, h, mount, toast, when } from "../dom.js";

export default async function cloud({ main }) {
  async function render() {
    let status;
    try { status = await get("/api/cloud/status"); } catch (err) { mount(main, h("h1", {}, "Cloud"), errorBox(err)); return; }
    const set = (on) => async () => {
      try { await put("/api/privacy/consents", { cloud_sync: on, ...(on ? {} : { remote_access: false }) }); toast(on ? "Cloud sync on" : "Cloud sync off"); }
      catch (err) { toast(err.message, "error"); }
      render();
    };
    mount(main, h("h1", {}, "Cloud"),
      h("p", { class: "muted" }, "Off unless you opt in. Everything sent is end-to-end encrypted; the broker sees only ciphertext."),
      h("dl", { class: "card", id: "cloud-status" },
        h("dt", {}, "Connected"), h("dd", {}, status.connected ? "yes" : "no"),
        h("dt", {}, "Enabled"), h("dd", {}, status.enabled ? "yes" : "no"),
        h("dt", {}, "Waiting to send"), h("dd", {}, String(status.outbox_depth ?? 0)),
        h("dt", {}, "Last delivery"), h("dd", {}, when(status.last_delivery)),
        h("dt", {}, "Last error"), h("dd", {}, status.last_error || "none")),
      h("div", { class: "row" },
        h("button", { type: "button", onclick: set(true) }, "Opt in"),
        h("button", { type: "button", class: "secondary", onclick: set(false) }, "Opt out")));
  }
  await render();
}
