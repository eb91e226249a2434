// Namespaces the key can see, and a form to create one.

import { all, get, post } from "../api.js";
import { field, fill, form, formatDate, h, route } from "../dom.js";
import { attempt, empty, section } from "../ui.js";

export async function namespacesPage(page) {
  page.crumbs([["Namespaces"]]);
  const [namespaces, extractors] = await Promise.all([
    all("/v1/namespaces", { signal: page.signal }),
    get("/v1/feature-extractors", { signal: page.signal }),
  ]);
  const list = namespaces.length
    ? h(
        "ul",
        { class: "cards" },
        namespaces.map((ns) =>
          h(
            "li",
            { class: "card" },
            h("a", { class: "title", href: route("ns", ns.namespace_name) }, ns.namespace_name),
            h("p", { class: "muted mono" }, ns.namespace_id),
            ns.description ? h("p", {}, ns.description) : null,
            h(
              "p",
              { class: "counts" },
              `${ns.bucket_count} buckets · ${ns.object_count} objects · ${ns.document_count} documents`,
            ),
            h(
              "p",
              { class: "chips" },
              ns.feature_extractors.map((fe) => h("span", { class: "chip" }, `${fe.feature_extractor_name} ${fe.version}`)),
            ),
            h("p", { class: "muted small" }, `created ${formatDate(ns.created_at)}`),
          ),
        ),
      )
    : empty("No namespaces yet (or none this key may see).");

  const create = form(
    { class: "stack", id: "create-namespace" },
    [
      field("Name", { name: "name", required: true, pattern: "[A-Za-z0-9_\\-]+", placeholder: "production" }),
      field("Description", { name: "description", placeholder: "optional" }),
      h(
        "fieldset",
        { class: "options" },
        h("legend", {}, "Feature extractors"),
        extractors.map((fe, i) =>
          h(
            "label",
            { class: "check" },
            h("input", {
              type: "checkbox",
              name: "extractor",
              value: i,
              checked: fe.feature_extractor_name === "multimodal_extractor",
            }),
            h("span", {}, `${fe.feature_extractor_name} ${fe.version}`),
            h("span", { class: "muted small" }, fe.description),
          ),
        ),
      ),
      h("button", { type: "submit", class: "primary" }, "Create namespace"),
    ],
    async (el) => {
      const chosen = [...el.querySelectorAll("input[name=extractor]:checked")].map((box) => extractors[Number(box.value)]);
      const body = {
        namespace_name: el.elements.name.value.trim(),
        feature_extractors: chosen.map((fe) => ({ feature_extractor_name: fe.feature_extractor_name, version: fe.version })),
      };
      if (el.elements.description.value.trim()) body.description = el.elements.description.value.trim();
      const made = await attempt(() => post("/v1/namespaces", body));
      if (made) location.hash = route("ns", made.namespace_name);
    },
  );
  fill(page.main, h("h1", {}, "Namespaces"), list, section("New namespace", create));
}
