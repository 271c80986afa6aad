// Users and sign-in history; each user's own sign-in history and two-step verification.
import { api, get, post, put } from "../api.js";
import { errorBox, field, h, mount, toast, when } from "../dom.js";
import { items } from "../util.js";

export default async function users({ main, me }) {
  const meNow = me || await get("/api/users/me");
  const parts = [h("h1", {}, "Users")];
  if (meNow && meNow.role === "owner") {
    try {
      const list = items(await get("/api/users"), "users");
      // someone else's sign-ins, on request only (each look is written to the audit log)
      const theirs = h("section", { id: "user-logins", "aria-live": "polite" });
      const show = async (u) => {
        try {
          const rows = items(await get(`/api/users/${encodeURIComponent(u.id)}/logins`), "logins");
          theirs.replaceChildren(h("h2", {}, `Sign-in history of ${u.username}`), loginTable(rows));
        } catch (err) { theirs.replaceChildren(errorBox(err)); }
      };
      parts.push(h("div", { class: "scroll" }, h("table", {}, h("thead", {}, h("tr", {},
        ["User", "Role", "Two-step", "Minor", ""].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, list.map((u) => h("tr", { "data-user": u.username }, h("td", {}, u.username),
        h("td", {}, u.role), h("td", {}, u.totp_enabled ? "on" : "off"), h("td", {}, u.is_minor ? "yes" : ""),
        h("td", {}, h("button", { type: "button", class: "secondary", onclick: () => show(u) }, "Sign-ins"))))))),
      theirs);
    } catch (err) { parts.push(errorBox(err)); }
  }
  let logins = [];
  try { logins = items(await get("/api/users/me/logins"), "logins"); } catch (err) { parts.push(errorBox(err)); }
  parts.push(h("h2", {}, "Your sign-in history"), loginTable(logins, "logins"));
  parts.push(totpSection(meNow));
  mount(main, parts);
}

function loginTable(logins, id) {
  return h("div", { class: "scroll" }, h("table", id ? { id } : {},
    h("tbody", {}, logins.map((l) => h("tr", {}, h("td", {}, when(l.ts)), h("td", {}, l.address || ""),
      h("td", { class: l.ok ? "ok" : "bad" }, l.ok ? "ok" : "failed"))))));
}

function totpSection(me) {
  const box = h("section", {}, h("h2", {}, "Two-step verification"));
  const out = h("div", { "aria-live": "polite" });
  const uid = encodeURIComponent(me?.id || "me");
  if (me?.totp_enabled) {
    const pass = h("input", { type: "password", autocomplete: "current-password", required: true });
    box.append(h("p", {}, "On."), h("form", { onsubmit: async (e) => {
      e.preventDefault();
      try { await api("DELETE", `/api/users/${uid}/totp`, { password: pass.value }); toast("Two-step verification off"); }
      catch (err) { out.replaceChildren(errorBox(err)); }
    } }, field("Your password", pass), h("button", { type: "submit", class: "secondary" }, "Turn off")), out);
    return box;
  }
  box.append(h("p", {}, "Off."), h("button", { type: "button", onclick: async () => {
    try {
      const r = await post(`/api/users/${uid}/totp`, {});
      const code = h("input", { inputmode: "numeric", autocomplete: "one-time-code", required: true });
      out.replaceChildren(h("p", {}, "Add this to your authenticator app:"), h("pre", { id: "otpauth-uri" }, r.otpauth_uri || r.uri),
        h("form", { onsubmit: async (e) => {
          e.preventDefault();
          try {
            const done = await put(`/api/users/${uid}/totp`, { code: code.value });
            out.replaceChildren(h("p", { class: "ok" }, "On. Keep these recovery codes somewhere safe:"),
              h("pre", {}, (done.recovery_codes || []).join("\n")));
          } catch (err) { out.append(errorBox(err)); }
        } }, field("First code from the app", code), h("button", { type: "submit" }, "Confirm")));
    } catch (err) { out.replaceChildren(errorBox(err)); }
  } }, "Turn on"), out);
  return box;
}
