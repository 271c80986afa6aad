// Building DOM without innerHTML: text is always text, so device names cannot inject markup.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function mount(root, ...nodes) {
  root.replaceChildren(...nodes.flat(Infinity).filter(Boolean));
}

export function toast(message, kind = "info") {
  const box = document.getElementById("toasts");
  const t = h("div", { class: `toast ${kind === "error" ? "bad" : ""}` }, message);
  box.append(t);
  setTimeout(() => t.remove(), 5000);
}

export function when(ts) {
  if (!ts) return "never";
  const d = new Date(ts * 1000);
  const s = Math.round((Date.now() - d.getTime()) / 1000);
  if (s < 60) return `${Math.max(s, 0)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return d.toLocaleString();
}

let uid = 0;
export function field(label, input) {
  const id = input.id || `f${++uid}`;
  input.id = id;
  return h("label", { for: id }, label, input);
}

export function errorBox(err) {
  return h("div", { class: "error", role: "alert" }, err.message || String(err));
}
