// Users: accounts (add, role, guest grants, password reset, delete), long-lived tokens,
// sign-in histories and two-step verification. Everything goes through the public API.
import { api, del, get, patch, post, put } from "../api.js";
import { errorBox, field, h, mount, toast, when } from "../dom.js";
import { qrSvg } from "../qr.js";
import { items } from "../util.js";

const ROLES = ["owner", "admin", "member", "guest"];

export default async function users({ main, me }) {
  const meNow = me || await get("/api/users/me");
  const render = async () => {
    const parts = [h("h1", {}, "Users")];
    if (meNow && meNow.role === "owner") parts.push(...await accounts(meNow, render));
    parts.push(await tokens(meNow));
    let logins = [];
    try { logins = items(await get("/api/users/me/logins"), "logins"); } catch (err) { parts.push(errorBox(err)); }
    parts.push(h("h2", {}, "Your sign-in history"), loginTable(logins, "logins"));
    parts.push(totpSection(meNow));
    mount(main, parts);
  };
  await render();
}

async function accounts(meNow, rerender) {
  let list;
  let devices = [];
  try {
    [list, devices] = await Promise.all([get("/api/users").then((r) => items(r, "users")),
      get("/api/devices?fields=id,name,area").then((r) => items(r, "devices"))]);
  } catch (err) { return [errorBox(err)]; }
  const names = new Map(devices.map((d) => [d.id, d.name || d.id]));
  const areas = [...new Set(devices.map((d) => d.area).filter(Boolean))].sort();
  const theirs = h("section", { id: "user-logins", "aria-live": "polite" });
  const detail = h("section", { id: "user-detail", "aria-live": "polite" });
  const show = async (u) => {
    try {
      const rows = items(await get(`/api/users/${encodeURIComponent(u.id)}/logins`), "logins");
      theirs.replaceChildren(h("h2", {}, `Sign-in history of ${u.username}`), loginTable(rows));
    } catch (err) { theirs.replaceChildren(errorBox(err)); }
  };
  const table = h("div", { class: "scroll" }, h("table", { id: "users" }, h("thead", {}, h("tr", {},
    ["User", "Role", "Two-step", "Minor", "Access", ""].map((t) => h("th", { scope: "col" }, t)))),
  h("tbody", {}, list.map((u) => h("tr", { "data-user": u.username },
    h("td", {}, u.username), h("td", {}, roleSelect(u, meNow, rerender, detail)),
    h("td", {}, u.totp_enabled ? "on" : "off"), h("td", {}, u.is_minor ? "yes" : ""),
    h("td", { "data-grants": "" }, grantsText(u, names)),
    h("td", { class: "actions" },
      h("button", { type: "button", class: "secondary", onclick: () => show(u) }, "Sign-ins"),
      h("button", { type: "button", class: "secondary", "aria-label": `Manage ${u.username}`,
        onclick: () => manage(u, meNow, detail, rerender, areas) }, "Manage")))))));
  return [addForm(rerender), table, detail, theirs];
}

// Devices by their names and areas by name (ids only for a device the list does not know).
function grantsText(u, names) {
  if (u.role !== "guest") return "all devices";
  const g = [...(u.granted_devices || []).map((id) => names.get(id) || id),
    ...(u.granted_areas || []).map((a) => `area ${a}`)];
  return g.length ? g.join(", ") : "nothing yet";
}

function roleSelect(u, meNow, rerender, out) {
  const sel = h("select", { "aria-label": `Role of ${u.username}`, "data-role": "",
    disabled: u.id === meNow.id, onchange: async () => {
      try { await patch(`/api/users/${encodeURIComponent(u.id)}`, { role: sel.value }); toast(`${u.username} is now ${sel.value}`); await rerender(); }
      catch (err) { out.replaceChildren(errorBox(err)); sel.value = u.role; }
    } }, ROLES.map((r) => h("option", { value: r, selected: r === u.role }, r)));
  return sel;
}

function addForm(rerender) {
  const name = h("input", { name: "username", required: true, autocomplete: "off" });
  const pass = h("input", { name: "password", type: "password", required: true, minlength: 8, autocomplete: "new-password" });
  const role = h("select", { name: "role" }, ROLES.map((r) => h("option", { value: r, selected: r === "member" }, r)));
  const minor = h("input", { name: "is_minor", type: "checkbox" });
  const out = h("div", { "aria-live": "polite" });
  const form = h("form", { id: "user-add", class: "inline", onsubmit: async (e) => {
    e.preventDefault();
    clearInvalid(form);
    try {
      await post("/api/users", { username: name.value, password: pass.value, role: role.value, is_minor: minor.checked });
      toast(`Added ${name.value}`);
      await rerender();
    } catch (err) { showError(form, out, err, { username: name, password: pass, role }); }
  } }, field("Name", name), field("Password", pass), field("Role", role), field("Minor", minor),
  h("button", { type: "submit" }, "Add user"), out);
  return h("details", { class: "card" }, h("summary", {}, "Add a user"), form);
}

function manage(u, meNow, box, rerender, knownAreas = []) {
  const uid = encodeURIComponent(u.id);
  const parts = [h("h2", {}, `Manage ${u.username}`)];
  if (u.role === "guest") {
    const devs = h("input", { name: "granted_devices", value: (u.granted_devices || []).join(", "), placeholder: "virtual.lamp, …" });
    const granted = new Set(u.granted_areas || []);
    const areaBoxes = [...new Set([...knownAreas, ...granted])].map((a) => h("input", {
      type: "checkbox", name: "granted_areas", value: a, checked: granted.has(a) }));
    const areas = h("fieldset", { "data-areas": "" }, h("legend", {}, "Areas"),
      areaBoxes.length ? areaBoxes.map((b) => h("label", { class: "check" }, b, ` ${b.value}`))
        : h("p", { class: "muted" }, "No device is in an area yet."));
    const out = h("div", { "aria-live": "polite" });
    const form = h("form", { id: "grants", onsubmit: async (e) => {
      e.preventDefault();
      clearInvalid(form);
      try {
        await patch(`/api/users/${uid}`, { granted_devices: split(devs.value), granted_areas: areaBoxes.filter((b) => b.checked).map((b) => b.value) });
        toast(`Access of ${u.username} saved`); await rerender();
      } catch (err) { showError(form, out, err, { granted_devices: devs, granted_areas: areas }); }
    } }, field("Devices (ids, comma separated; names are suggested)", devs), areas,
    h("button", { type: "submit" }, "Save access"), out);
    deviceHints(devs);
    parts.push(form);
  }
  const pass = h("input", { name: "password", type: "password", minlength: 8, required: true, autocomplete: "new-password" });
  const pout = h("div", { "aria-live": "polite" });
  const pform = h("form", { id: "reset-password", onsubmit: async (e) => {
    e.preventDefault();
    clearInvalid(pform);
    try { await patch(`/api/users/${uid}`, { password: pass.value }); pass.value = ""; pout.replaceChildren(h("p", { class: "ok" }, "Password changed")); }
    catch (err) { showError(pform, pout, err, { password: pass }); }
  } }, field("New password", pass), h("button", { type: "submit" }, "Reset password"), pout);
  parts.push(pform);
  if (u.id !== meNow.id) {
    const dout = h("div", { "aria-live": "polite" });
    const confirmBtn = h("button", { type: "button", class: "danger", hidden: true, onclick: async () => {
      try { await del(`/api/users/${uid}`); toast(`Deleted ${u.username}`); box.replaceChildren(); await rerender(); }
      catch (err) { dout.replaceChildren(errorBox(err)); }
    } }, `Yes, delete ${u.username}`);
    parts.push(h("div", {}, h("button", { type: "button", class: "secondary", onclick: () => { confirmBtn.hidden = false; } },
      "Delete user"), confirmBtn, dout));
  }
  box.replaceChildren(...parts);
  box.scrollIntoView?.({ block: "nearest" });
}

async function deviceHints(input) {
  try {
    const list = items(await get("/api/devices"), "devices");
    const dl = h("datalist", { id: "device-ids" }, list.map((d) => h("option", { value: d.id }, d.name || d.id)));
    input.setAttribute("list", "device-ids");
    input.after(dl);
  } catch { /* hints only */ }
}

async function tokens(meNow) {
  const box = h("section", { id: "tokens" }, h("h2", {}, "Access tokens"),
    h("p", { class: "muted" }, "For scripts and other apps; each acts as you. The value is shown once."));
  const list = h("div", { class: "scroll" });
  const shown = h("div", { "aria-live": "polite" });
  const refresh = async () => {
    try {
      const rows = items(await get("/api/tokens"), "tokens").filter((t) => t.kind === "long");
      list.replaceChildren(h("table", {}, h("thead", {}, h("tr", {}, ["Name", "Created", "Last used", "Expires", ""].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, rows.map((t) => h("tr", { "data-token": t.name }, h("td", {}, t.name), h("td", {}, when(t.created_at)),
          h("td", {}, when(t.last_used_at)), h("td", {}, t.expires_at ? new Date(t.expires_at * 1000).toLocaleDateString() : "never"),
          h("td", {}, h("button", { type: "button", class: "secondary", "aria-label": `Revoke ${t.name}`, onclick: async () => {
            try { await del(`/api/tokens/${encodeURIComponent(t.id)}`); toast(`Revoked ${t.name}`); await refresh(); }
            catch (err) { shown.replaceChildren(errorBox(err)); }
          } }, "Revoke")))))));
    } catch (err) { list.replaceChildren(errorBox(err)); }
  };
  const name = h("input", { name: "name", required: true, maxlength: 100 });
  const days = h("select", { name: "expires" }, [["", "never"], ["30", "30 days"], ["365", "1 year"]].map(([v, t]) => h("option", { value: v }, t)));
  const form = h("form", { id: "token-add", class: "inline", onsubmit: async (e) => {
    e.preventDefault();
    clearInvalid(form);
    try {
      const r = await post("/api/tokens", { name: name.value, expires_in: days.value ? Number(days.value) * 86400 : null });
      shown.replaceChildren(h("p", { class: "ok" }, `Token “${r.name}” — copy it now, it will not be shown again:`),
        h("pre", { id: "new-token" }, r.token));
      name.value = "";
      await refresh();
    } catch (err) { showError(form, shown, err, { name }); }
  } }, field("Name", name), field("Expires", days), h("button", { type: "submit" }, "Create token"));
  box.append(form, shown, list);
  await refresh();
  void meNow;
  return box;
}

function split(text) { return text.split(",").map((s) => s.trim()).filter(Boolean); }

function clearInvalid(form) {
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  for (const el of form.querySelectorAll(".field-error")) el.remove();
}

// The API names the bad field (e.g. granted_devices[1]): put the message next to that input.
export function showError(form, out, err, inputs) {
  const base = (err.field || "").replace(/\[.*$/, "");
  const input = inputs[base];
  if (!input) { out.replaceChildren(errorBox(err)); return; }
  input.setAttribute("aria-invalid", "true");
  const note = h("span", { class: "field-error", role: "alert", "data-field": err.field }, err.message);
  input.after(note);
  input.focus();
  void form;
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
      const uri = r.otpauth_uri || r.uri;
      out.replaceChildren(h("p", {}, "Scan this with your authenticator app:"),
        h("div", { id: "totp-qr" }, qrSvg(uri, { label: "Two-step verification QR code" })),
        h("details", {}, h("summary", {}, "Cannot scan? Enter it by hand"), h("pre", { id: "otpauth-uri" }, uri)),
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
