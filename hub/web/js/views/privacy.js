// The privacy center: consents and their history, device scope and restriction, export,
// erasure (with re-authentication), retention, the audit log and backups.
import { api, get, patch, post, put } from "../api.js";
import { errorBox, field, h, mount, toast, when } from "../dom.js";
import { items } from "../util.js";

export default async function privacy({ main }) {
  const sections = await Promise.all([consents(), devices(), exportBox(), erasure(), retention(),
    audit(), backups()]);
  mount(main, h("h1", {}, "Privacy center"), sections);
}

async function consents() {
  const box = h("section", { "aria-labelledby": "consents-h" });
  async function refresh() {
    let data, hist;
    try {
      data = await get("/api/privacy/consents");
      hist = items(await get("/api/privacy/consents/history"), "history");
    } catch (err) { mount(box, h("h2", { id: "consents-h" }, "Consents"), errorBox(err)); return; }
    const list = Object.values(data.consents || {});
    mount(box, h("h2", { id: "consents-h" }, "Consents"),
      h("div", { class: "grid" }, list.map((c) => {
        const on = c.granted === true;
        const input = h("input", { type: "checkbox", checked: on, dataset: { purpose: c.purpose },
          onchange: async () => {
            try { await put("/api/privacy/consents", { [c.purpose]: input.checked }); toast("Saved"); }
            catch (err) { toast(err.message, "error"); }
            refresh();
          } });
        return h("div", { class: "card" }, h("label", { class: "row" }, input, c.purpose),
          h("p", { class: "muted" }, c.description || ""),
          c.status === "paused" ? h("p", { class: "warn" }, "Paused: the privacy notice changed; grant it again to resume.") : null);
      })),
      h("details", {}, h("summary", {}, "History"), h("div", { class: "scroll" }, h("table", {},
        h("tbody", {}, hist.map((r) => h("tr", {}, h("td", {}, when(r.ts)), h("td", {}, r.purpose),
          h("td", {}, r.action), h("td", {}, r.by || ""),
          h("td", {}, `notice v${r.notice_version ?? ""}`))))))));
  }
  await refresh();
  return box;
}

async function devices() {
  const list = items(await get("/api/devices"), "devices");
  return h("section", {}, h("h2", {}, "Devices: what automations may read"),
    h("div", { class: "scroll" }, h("table", {}, h("thead", {}, h("tr", {},
      ["Device", "Attributes automations may read", "Restricted"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, list.map((d) => {
      const attrs = d.scope?.attributes;
      const input = h("input", { value: attrs ? attrs.join(", ") : "", placeholder: "all",
        "aria-label": `Readable attributes of ${d.name}` });
      const restricted = h("input", { type: "checkbox", checked: !!d.restricted,
        "aria-label": `Restrict ${d.name}`,
        onchange: async () => {
          try {
            await put(`/api/privacy/restrictions/devices/${encodeURIComponent(d.id)}`,
              { restricted: restricted.checked });
            toast("Saved");
          } catch (err) { toast(err.message, "error"); }
        } });
      return h("tr", {}, h("td", {}, d.name),
        h("td", {}, h("div", { class: "row" }, input, h("button", { type: "button", class: "secondary",
          onclick: async () => {
            const names = input.value.split(",").map((s) => s.trim()).filter(Boolean);
            try {
              await patch(`/api/devices/${encodeURIComponent(d.id)}`,
                { scope: { attributes: names.length ? names : null, events: d.scope?.events ?? null } });
              toast("Scope saved");
            } catch (err) { toast(err.message, "error"); }
          } }, "Save"))),
        h("td", {}, restricted));
    })))));
}

function exportBox() {
  const out = h("div", { "aria-live": "polite" });
  return h("section", {}, h("h2", {}, "Export your data"),
    h("p", { class: "muted" }, "A ZIP of JSON files, each with its JSON Schema. Secrets are never included."),
    h("button", { type: "button", id: "export-button", onclick: async () => {
      out.replaceChildren(h("p", {}, "Preparing…"));
      try {
        const blob = await api("POST", "/api/privacy/export", {}, { blob: true });
        const a = h("a", { href: URL.createObjectURL(blob), download: "uone-hub-export.zip",
                           id: "export-link" }, "Download export");
        out.replaceChildren(a);
        a.click();
      } catch (err) { out.replaceChildren(errorBox(err)); }
    } }, "Export"), out);
}

function erasure() {
  const scope = h("select", { name: "scope" },
    h("option", { value: "me" }, "My own data"), h("option", { value: "hub" }, "The whole hub (factory reset)"));
  const password = h("input", { type: "password", autocomplete: "current-password" });
  const totp = h("input", { inputmode: "numeric", autocomplete: "one-time-code" });
  const out = h("div", { "aria-live": "assertive" });
  return h("section", {}, h("h2", {}, "Erase"),
    h("form", { onsubmit: async (e) => {
      e.preventDefault();
      out.replaceChildren();
      if (!confirm("Erase for good? This cannot be undone.")) return;
      const body = { target: scope.value };
      if (scope.value === "hub") {
        body.password = password.value;
        if (totp.value) body.totp = totp.value;
      }
      try { await post("/api/privacy/erase", body); out.append(h("p", { class: "ok" }, "Erased.")); }
      catch (err) { out.append(errorBox(err)); }
    } }, field("What", scope), field("Your password (to confirm it is you)", password),
    field("Verification code (if enabled)", totp), h("button", { type: "submit", class: "danger" }, "Erase"), out));
}

async function retention() {
  const box = h("section", { id: "retention" });
  const out = h("div", { "aria-live": "polite" });
  async function refresh(data) {
    try { data = data || await get("/api/privacy/retention"); }
    catch (err) { mount(box, h("h2", {}, "Retention"), errorBox(err)); return; }
    const classes = Object.entries(data.classes || {}).map(([name, v]) => ({ name, ...v }));
    const inputs = {};
    const rows = classes.map((c) => {
      const input = h("input", { type: "number", name: c.name, value: c.days, required: true,
        min: c.min ?? 0.01, max: c.max ?? 36500, step: "any", inputmode: "decimal" });
      inputs[c.name] = input;
      return h("tr", { "data-class": c.name }, h("th", { scope: "row" }, c.name),
        h("td", {}, field("days", input)),
        h("td", { class: "muted" }, c.set_by_owner ? `set here (config: ${c.configured})` : "from the config"),
        h("td", { class: "muted" }, `oldest: ${c.oldest ? when(c.oldest) : "none"}`));
    });
    const form = h("form", { id: "retention-form", class: "wide", onsubmit: async (e) => {
      e.preventDefault();
      const changes = {};
      for (const c of classes) {
        const days = Number(inputs[c.name].value);
        if (days !== c.days) changes[c.name] = days;
      }
      if (!Object.keys(changes).length) { toast("Nothing changed"); return; }
      try { const fresh = await patch("/api/privacy/retention", changes); toast("Saved; older data is being deleted"); refresh(fresh); }
      catch (err) { out.replaceChildren(errorBox(err)); }
    } }, h("div", { class: "scroll" }, h("table", {}, h("tbody", {}, rows))),
    h("button", { type: "submit" }, "Save"));
    mount(box, h("h2", {}, "Retention"),
      h("p", { class: "muted" }, "How long each kind of data is kept. Shorter ages delete older data right away."),
      form, out);
  }
  await refresh();
  return box;
}

async function audit() {
  let rows;
  try { rows = items(await get("/api/audit?limit=50"), "entries", "audit"); }
  catch (err) { return h("section", {}, h("h2", {}, "Audit log"), errorBox(err)); }
  // user ids as names: the owner may list accounts; others see their own name only
  const names = new Map();
  try { for (const u of items(await get("/api/users"), "users")) names.set(u.id, u.username); }
  catch { try { const u = await get("/api/users/me"); names.set(u.id, u.username); } catch { /* ids stay */ } }
  // deleted accounts and tokens: the names their own entries keep
  const tokens = new Map();
  for (const r of rows) {
    const d = r.details || {};
    if (r.action.startsWith("user.") && d.username && !names.has(r.target)) names.set(r.target, d.username);
    if (r.action.startsWith("token.") && d.name) tokens.set(r.target, `token “${d.name}”`);
  }
  const who = (id) => names.get(id) || id || "";
  return h("section", {}, h("h2", {}, "Audit log"), h("div", { class: "scroll" }, h("table", { id: "audit" },
    h("tbody", {}, rows.map((r) => h("tr", { dataset: { action: r.action } }, h("td", {}, when(r.ts)), h("td", { "data-actor": "" }, who(r.actor)),
      h("td", {}, r.action), h("td", { "data-target": "" }, tokens.get(r.target) || who(r.target))))))));
}

function backups() {
  const pass = h("input", { type: "password", minlength: 12, required: true, autocomplete: "new-password" });
  const out = h("div", { "aria-live": "polite" });
  return h("section", {}, h("h2", {}, "Encrypted backup"),
    h("form", { onsubmit: async (e) => {
      e.preventDefault();
      try {
        const blob = await api("POST", "/api/backups", { passphrase: pass.value }, { blob: true });
        out.replaceChildren(h("a", { href: URL.createObjectURL(blob), download: "uone-hub.backup" }, "Download backup"));
      } catch (err) { out.replaceChildren(errorBox(err)); }
    } }, field("Backup passphrase (keep it safe: without it the backup cannot be read)", pass),
    h("button", { type: "submit" }, "Create backup"), out));
}
