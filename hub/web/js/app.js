// The dashboard shell: sign-in gate, hash router, live connection, views loaded on demand.
import { api, get, Live, session, whenSignedOut } from "./api.js";
import { mount, h, toast } from "./dom.js";
import { loginView } from "./views/login.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
export const live = new Live();
export let me = null;

const views = {
  home: () => import("./views/home.js"),
  discovery: () => import("./views/discovery.js"),
  matter: () => import("./views/matter.js"),
  automations: () => import("./views/automations.js"),
  wifi: () => import("./views/wifi.js"),
  privacy: () => import("./views/privacy.js"),
  cloud: () => import("./views/cloud.js"),
  users: () => import("./views/users.js"),
  homekit: () => import("./views/homekit.js"),
  device: () => import("./views/device.js"),
};

let cleanup = null;

async function route() {
  if (cleanup) { cleanup(); cleanup = null; }
  if (!session.access) {
    nav.hidden = true;
    mount(main, await loginView(onSignedIn));
    return;
  }
  nav.hidden = false;
  let name = (location.hash.replace(/^#\//, "") || "home").split("/")[0];
  shapeNav();
  const link = nav.querySelector(`a[href="#/${name}"]`);
  if (link && link.hidden) name = "home";  // a tab this role does not have: nothing to show
  const load = views[name] || views.home;
  for (const a of nav.querySelectorAll("a")) {
    if (a.getAttribute("href") === `#/${name}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  try {
    const mod = await load();
    const result = await mod.default({ main, live, me });
    cleanup = typeof result === "function" ? result : null;
  } catch (err) {
    mount(main, h("h1", {}, "Something went wrong"), h("div", { class: "error", role: "alert" },
      err.message || String(err)));
  }
  main.focus({ preventScroll: true });
}

// Roles shape the navigation: tabs whose API this role may not use are not shown.
const RANK = { guest: 10, member: 20, admin: 30, owner: 40 };
function shapeNav() {
  const rank = RANK[me?.role] ?? 0;
  for (const a of nav.querySelectorAll("a[data-min-role]")) a.hidden = rank < RANK[a.dataset.minRole];
}

async function onSignedIn() {
  try { me = await get("/api/users/me"); } catch { me = null; }
  live.closed = false;
  live.open();
  if (!location.hash || location.hash === "#/login") location.hash = "#/home";
  else route();
}

whenSignedOut(() => { live.close(); me = null; route(); });

document.getElementById("logout").addEventListener("click", async () => {
  try { await api("POST", "/api/auth/logout", { refresh_token: session.refresh }); }
  catch { /* signing out locally is what matters */ }
  session.clear();
  live.close();
  toast("Signed out");
  location.hash = "#/login";
  route();
});

window.addEventListener("hashchange", route);
if (session.access) onSignedIn(); else route();
