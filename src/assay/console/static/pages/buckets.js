// A namespace's buckets, and a form to create one with its schema.

import { all, post } from "../api.js";
import { field, fill, form, formatBytes, h, route } from "../dom.js";
import { attempt, empty, namespaceTabs, section } from "../ui.js";

const TYPES = ["image", "video", "audio", "text", "json", "pdf", "binary", "string", "number", "integer", "boolean", "date", "datetime", "object", "array"];

export async function bucketsPage(page, ns) {
  page.crumbs([["Namespaces", "#/"], [ns]]);
  const buckets = await all("/v1/buckets", { ns, signal: page.signal });
  const list = buckets.length
    ? h(
        "ul",
        { class: "cards" },
        buckets.map((b) =>
          h(
            "li",
            { class: "card" },
            h("a", { class: "title", href: route("ns", ns, "b", b.bucket_name) }, b.bucket_name),
            h("p", { class: "muted mono" }, b.bucket_id),
            b.description ? h("p", {}, b.description) : null,
            h("p", { class: "counts" }, `${b.object_count} objects · ${formatBytes(b.total_size_bytes)}`),
            h(
              "p",
              { class: "chips" },
              Object.entries(b.bucket_schema?.properties ?? {}).map(([name, spec]) =>
                h("span", { class: "chip" }, `${name}: ${spec.type}${spec.required ? " *" : ""}`),
              ),
            ),
          ),
        ),
      )
    : empty("No buckets in this namespace yet.");

  const rows = h("div", { class: "schema-rows" });
  const addRow = (name = "", type = "image") =>
    rows.append(
      h(
        "div",
        { class: "schema-row" },
        h("input", { name: "prop", "aria-label": "Property name", placeholder: "property", value: name, required: true }),
        h(
          "select",
          { name: "type", "aria-label": "Property type" },
          TYPES.map((t) => h("option", { value: t, selected: t === type }, t)),
        ),
        h("label", { class: "check" }, h("input", { type: "checkbox", name: "required" }), h("span", {}, "required")),
        h("button", { type: "button", class: "link", "aria-label": "Remove property", onclick: (e) => e.target.closest(".schema-row").remove() }, "Remove"),
      ),
    );
  addRow();
  const create = form(
    { class: "stack", id: "create-bucket" },
    [
      field("Name", { name: "name", required: true, pattern: "[A-Za-z0-9_\\-]+", placeholder: "product-catalog" }),
      h("fieldset", {}, h("legend", {}, "Schema properties"), rows, h("button", { type: "button", class: "secondary", id: "add-property", onclick: () => addRow("", "text") }, "Add property")),
      h("button", { type: "submit", class: "primary" }, "Create bucket"),
    ],
    async (el) => {
      const properties = {};
      for (const row of el.querySelectorAll(".schema-row")) {
        const name = row.querySelector("[name=prop]").value.trim();
        if (!name) continue;
        properties[name] = { type: row.querySelector("[name=type]").value };
        if (row.querySelector("[name=required]").checked) properties[name].required = true;
      }
      const body = { bucket_name: el.elements.name.value.trim(), bucket_schema: { properties } };
      const made = await attempt(() => post("/v1/buckets", body, { ns }));
      if (made) location.hash = route("ns", ns, "b", made.bucket_name);
    },
  );
  fill(page.main, h("h1", {}, ns), namespaceTabs(ns, "buckets"), list, section("New bucket", create));
}
