// Sign-in (with the two-step code when enabled) and onboarding of the first owner.
import { api, get, session } from "../api.js";
import { errorBox, field, h } from "../dom.js";

export async function loginView(onSignedIn) {
  let health = {};
  try { health = await get("/api/health"); } catch { /* shown as sign-in anyway */ }
  return health.onboarding_required ? onboarding(onSignedIn) : login(onSignedIn);
}

function login(onSignedIn) {
  const user = h("input", { name: "username", autocomplete: "username", required: true });
  const pass = h("input", { name: "password", type: "password", autocomplete: "current-password",
                            required: true });
  const code = h("input", { name: "totp", inputmode: "numeric", autocomplete: "one-time-code",
                            "aria-describedby": "totp-help" });
  const out = h("div", { "aria-live": "assertive" });
  const form = h("form", {
    id: "login-form",
    onsubmit: async (e) => {
      e.preventDefault();
      out.replaceChildren();
      const body = { username: user.value.trim(), password: pass.value };
      if (code.value.trim()) body.totp = code.value.trim();
      try {
        session.set(await api("POST", "/api/auth/login", body, { auth: false }));
        onSignedIn();
      } catch (err) {
        out.append(errorBox(err));
        if (err.code === "totp_required") code.focus();
      }
    },
  },
  field("Username", user), field("Password", pass),
  field("Verification code (if two-step verification is on)", code),
  h("p", { id: "totp-help", class: "muted" }, "Six digits from your authenticator app, or a recovery code."),
  h("button", { type: "submit" }, "Sign in"), out);
  return [h("h1", {}, "Sign in to your hub"), form];
}

function onboarding(onSignedIn) {
  const code = h("input", { name: "code", required: true, autocomplete: "off" });
  const user = h("input", { name: "username", autocomplete: "username", required: true });
  const pass = h("input", { name: "password", type: "password", autocomplete: "new-password",
                            minlength: 10, required: true });
  const out = h("div", { "aria-live": "assertive" });
  const form = h("form", {
    id: "onboarding-form",
    onsubmit: async (e) => {
      e.preventDefault();
      out.replaceChildren();
      try {
        session.set(await api("POST", "/api/onboarding",
          { code: code.value.trim(), username: user.value.trim(), password: pass.value },
          { auth: false }));
        onSignedIn();
      } catch (err) { out.append(errorBox(err)); }
    },
  },
  h("p", {}, "This hub has no owner yet. The one-time onboarding code is in the hub's log and in ",
    h("code", {}, "onboarding-code"), " in its state directory."),
  field("Onboarding code", code), field("Owner username", user), field("Password", pass),
  h("button", { type: "submit" }, "Create owner"), out);
  return [h("h1", {}, "Welcome to Uone Hub"), form];
}
