// Sign in with an API key: checked against the API, then kept in this tab only.

import { ApiError, get, storeKey } from "../api.js";
import { field, fill, form, h } from "../dom.js";

export async function signinPage(page, done) {
  page.crumbs([["Sign in"]]);
  const message = h("p", { class: "error", role: "alert", hidden: true });
  const signin = form(
    { class: "card narrow", autocomplete: "off" },
    [
      h("h1", {}, "Sign in"),
      h("p", { class: "muted" }, "Use an Assay API key (sk_…). It stays in this browser tab and is sent only in the Authorization header of API calls."),
      field("API key", { type: "password", name: "key", required: true, autocomplete: "off", spellcheck: "false", id: "api-key" }),
      message,
      h("button", { type: "submit", class: "primary" }, "Sign in"),
    ],
    async (el) => {
      const key = el.elements.key.value.trim();
      message.hidden = true;
      try {
        await get("/v1/namespaces?limit=1", { key });
      } catch (error) {
        const refused = error instanceof ApiError && error.status === 401;
        fill(message, refused ? "That key is not valid, or it was revoked." : `Could not sign in: ${error.message}`);
        message.hidden = false;
        return;
      }
      el.elements.key.value = "";
      storeKey(key);
      done();
    },
  );
  fill(page.main, signin);
  signin.elements.key.focus();
}
