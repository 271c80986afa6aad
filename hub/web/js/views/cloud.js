// Cloud sync: status, opt-in and opt-out (consent is what turns it on and off), and the
// secrets the config names (broker password, sync passphrase): write-only, kept in the vault.
import { get, post, put } from "../api.js";
import { errorBox, field, h, mount, toast, when } from "../dom.js";
import { qrSvg } from "../qr.js";

const LABELS = { "cloud.password_secret": "Broker password", "cloud.passphrase_secret": "Sync passphrase" };

function secretForm(ref, done) {
  const input = h("input", { name: ref.name, type: "password", required: true, autocomplete: "new-password" });
  const out = h("div", { "aria-live": "assertive" });
  return h("form", {
    class: "card", dataset: { secret: ref.name },
    onsubmit: async (e) => {
      e.preventDefault();
      out.replaceChildren();
      try {
        await put(`/api/vault/secrets/${encodeURIComponent(ref.name)}`, { value: input.value });
        input.value = "";
        toast(`Saved ${LABELS[ref.key] || ref.name}`);
        done();
      } catch (err) { out.append(errorBox(err)); }
    },
  }, field(`${LABELS[ref.key] || ref.key} (vault secret "${ref.name}": ${ref.set ? "set" : "not set"})`, input),
  h("button", { type: "submit" }, ref.set ? "Replace" : "Save"), out);
}

export default async function cloud({ main }) {
  async function render() {
    let status, secrets;
    try { [status, secrets] = await Promise.all([get("/api/cloud/status"), get("/api/vault/secrets")]); }
    catch (err) { mount(main, h("h1", {}, "Cloud"), errorBox(err)); return; }
    const set = (on) => async () => {
      try {
        await put("/api/privacy/consents", { cloud_sync: on, ...(on ? {} : { remote_access: false }) });
        toast(on ? "Cloud sync on" : "Cloud sync off");
        // the hub starts or stops sync right after the consent: wait a moment for it
        for (let i = 0; i < 20 && (await get("/api/cloud/status")).enabled !== on; i++) await new Promise((r) => setTimeout(r, 250));
      } catch (err) { toast(err.message, "error"); }
      render();
    };
    const refs = secrets.referenced || [];
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
        h("button", { type: "button", class: "secondary", onclick: set(false) }, "Opt out")),
      pairing(),
      ...(refs.length ? [h("h2", {}, "Secrets"),
        h("p", { class: "muted" }, "Kept encrypted on the hub and never shown again."),
        ...refs.map((ref) => secretForm(ref, render))] : []));
  }
  await render();
}

// A pairing code for another of the owner's devices, as a QR code drawn in the page: it
// carries the sync key, so it is shown once, on request, and never stored by the page.
function pairing() {
  const out = h("div", { id: "pairing", "aria-live": "polite" });
  return h("section", {}, h("h2", {}, "Pair another device"),
    h("button", { type: "button", class: "secondary", onclick: async () => {
      try {
        const r = await post("/api/cloud/pairing", {});
        out.replaceChildren(h("p", {}, "Scan this with the other device. It holds your sync key: do not share it."),
          qrSvg(r.pairing_code, { label: "Pairing QR code" }),
          h("details", {}, h("summary", {}, "Show the code as text"), h("pre", {}, r.pairing_code)));
      } catch (err) { out.replaceChildren(errorBox(err)); }
    } }, "Show pairing code"), out);
}
