// A namespace's webhooks; one webhook with its delivery log, redeliver and a test event.

import { all, get, path, post } from "../api.js";
import { badge, field, fill, form, formatDate, h, route } from "../dom.js";
import { attempt, empty, facts, namespaceTabs, notify, section } from "../ui.js";

const EVENTS = [
  "batch.queued", "batch.processing", "batch.completed", "batch.failed", "batch.canceled",
  "object.created", "object.deleted", "upload.confirmed", "collection.documents.written",
];
const REFRESH_MS = 3000;

export async function webhooksPage(page, ns) {
  page.crumbs([["Namespaces", "#/"], [ns, route("ns", ns)], ["Webhooks"]]);
  const hooks = await all("/v1/webhooks", { ns, signal: page.signal });
  const list = hooks.length
    ? h(
        "ul",
        { class: "cards" },
        hooks.map((w) =>
          h(
            "li",
            { class: "card" },
            h("a", { class: "title break", href: route("ns", ns, "webhooks", w.webhook_id) }, w.webhook_name || w.webhook_id),
            h("p", { class: "mono small break" }, w.url),
            w.description ? h("p", {}, w.description) : null,
            h("p", { class: "chips" }, w.event_types.map((t) => h("span", { class: "chip" }, t))),
            h("p", { class: "small" }, w.is_active ? "active" : "paused"),
          ),
        ),
      )
    : empty("No webhooks in this namespace.");
  const secret = h("div");
  const create = form(
    { class: "stack", id: "create-webhook" },
    [
      field("URL", { name: "url", type: "url", required: true, placeholder: "where the receiver listens (http or https)" }),
      field("Description", { name: "description", placeholder: "optional" }),
      h(
        "fieldset",
        { class: "inline" },
        h("legend", {}, "Events"),
        h("label", { class: "check" }, h("input", { type: "checkbox", name: "event", value: "*" }), h("span", {}, "all")),
        EVENTS.map((t) => h("label", { class: "check" }, h("input", { type: "checkbox", name: "event", value: t, checked: t === "batch.completed" }), h("span", {}, t))),
      ),
      h("button", { type: "submit", class: "primary" }, "Create webhook"),
    ],
    async (el) => {
      const events = [...el.querySelectorAll("input[name=event]:checked")].map((box) => box.value);
      if (!events.length) return notify("Choose at least one event.");
      const body = { url: el.elements.url.value.trim(), event_types: events.includes("*") ? ["*"] : events };
      if (el.elements.description.value.trim()) body.description = el.elements.description.value.trim();
      const made = await attempt(() => post("/v1/webhooks", body, { ns }));
      if (!made) return;
      fill(
        secret,
        h(
          "div",
          { class: "notice notice-ok" },
          h("p", {}, "Webhook created. Its signing secret is shown this once:"),
          h("p", { class: "mono break" }, made.secret),
          h("a", { href: route("ns", ns, "webhooks", made.webhook_id) }, "Open its delivery log"),
        ),
      );
    },
  );
  fill(page.main, h("h1", {}, "Webhooks"), namespaceTabs(ns, "webhooks"), list, section("New webhook", secret, create));
}

export async function webhookPage(page, ns, webhookId) {
  page.crumbs([["Namespaces", "#/"], [ns, route("ns", ns)], ["Webhooks", route("ns", ns, "webhooks")], [webhookId]]);
  const where = path`/v1/webhooks/${webhookId}`;
  const hook = await get(where, { ns, signal: page.signal });
  const log = h("div");
  let timer = null;

  async function refresh() {
    clearTimeout(timer);
    const deliveries = await get(`${where}/deliveries?limit=100`, { ns, signal: page.signal });
    fill(
      log,
      deliveries.results.length
        ? h(
            "div",
            { class: "scroll" },
            h(
              "table",
              { id: "deliveries" },
              h("thead", {}, h("tr", {}, ["Event", "Status", "Attempts", "Last answer", "Last attempt", ""].map((t) => h("th", {}, t)))),
              h(
                "tbody",
                {},
                deliveries.results.map((d) =>
                  h(
                    "tr",
                    {},
                    h("td", {}, h("div", {}, d.event_type), h("div", { class: "mono small muted" }, d.event_id)),
                    h("td", {}, badge(d.status)),
                    h("td", {}, String(d.attempts)),
                    h("td", { class: "break" }, d.last_status_code ? String(d.last_status_code) : "", d.last_error ? ` ${d.last_error}` : ""),
                    h("td", {}, formatDate(d.last_attempt_at ?? d.created_at)),
                    h(
                      "td",
                      {},
                      h(
                        "button",
                        {
                          type: "button",
                          class: "secondary",
                          onclick: async () => {
                            if (await attempt(() => post(where + path`/deliveries/${d.delivery_id}/redeliver`, {}, { ns }), "Redelivery queued.")) refresh();
                          },
                        },
                        "Redeliver",
                      ),
                    ),
                  ),
                ),
              ),
            ),
          )
        : empty("No deliveries yet."),
    );
    timer = setTimeout(() => refresh().catch(() => {}), REFRESH_MS);
  }
  page.signal.addEventListener("abort", () => clearTimeout(timer));

  const test = h(
    "button",
    {
      type: "button",
      class: "secondary",
      onclick: async () => {
        if (await attempt(() => post(`${where}/test`, {}, { ns }), "Test event queued.")) refresh();
      },
    },
    "Send a test event",
  );
  fill(
    page.main,
    h("h1", { class: "break" }, hook.webhook_name || hook.webhook_id),
    namespaceTabs(ns, "webhooks"),
    section(
      "Webhook",
      facts([
        ["Id", h("span", { class: "mono" }, hook.webhook_id)],
        ["URL", h("span", { class: "mono break" }, hook.url)],
        ["Events", hook.event_types.join(", ")],
        ["Description", hook.description],
        ["Active", hook.is_active ? "yes" : "no"],
        ["Created", formatDate(hook.created_at)],
      ]),
      test,
    ),
    section("Deliveries", log),
  );
  await refresh();
}
