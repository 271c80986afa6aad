// Questions a device's integration puts to the owner (the device's `confirmations`), e.g. a
// BTHome sensor whose encryption counter went back: a replay, or its battery was changed.
// Shown as a banner on the device page; an admin answers with Confirm (audited by the hub).
import { post } from "./api.js";
import { errorBox, h, toast, when } from "./dom.js";

const ADMIN = new Set(["admin", "owner"]);

export function confirmationBanners(d, path, me) {
  return (d.confirmations || []).map((q) => {
    const out = h("div", { "aria-live": "polite" });
    const box = h("div", { class: "notice", role: "alert", dataset: { confirmation: q.kind } },
      h("p", {}, h("strong", {}, "Confirmation needed"), ` (asked ${when(q.asked_at)}): `, q.message));
    if (ADMIN.has(me?.role)) {
      const button = h("button", { type: "button", onclick: async () => {
        button.disabled = true;
        try {
          await post(`${path}/confirmations/${encodeURIComponent(q.kind)}`);
          toast("Confirmed");
          box.remove();
        } catch (err) { button.disabled = false; out.replaceChildren(errorBox(err)); }
      } }, "Confirm");
      box.append(button, out);
    } else {
      box.append(h("p", { class: "muted" }, "An admin of this hub can confirm it."));
    }
    return box;
  });
}
