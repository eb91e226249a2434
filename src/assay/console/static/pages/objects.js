// A bucket's objects as a grid of previews, a page at a time.

import { get, path } from "../api.js";
import { formatDate, fill, h, route, show } from "../dom.js";
import { blobPreview, mainBlob } from "../preview.js";
import { attempt, bucketTabs, empty } from "../ui.js";

export async function objectsPage(page, ns, bucket) {
  page.crumbs([["Namespaces", "#/"], [ns, route("ns", ns)], [bucket]]);
  const grid = h("ul", { class: "grid", id: "objects" });
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "Load more");
  let cursor = null;

  async function load() {
    const query = `?limit=24${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
    const answer = await get(path`/v1/buckets/${bucket}/objects` + query, { ns, signal: page.signal });
    grid.append(...answer.results.map((object) => card(ns, bucket, object)));
    cursor = answer.pagination?.next_cursor ?? null;
    more.hidden = !cursor;
    if (!grid.children.length) grid.replaceWith(empty("No objects yet: drop files on the Upload tab."));
  }
  more.addEventListener("click", () => attempt(load));

  fill(page.main, h("h1", {}, bucket), bucketTabs(ns, bucket, "objects"), grid, more);
  await load();
}

function card(ns, bucket, object) {
  const blob = mainBlob(object);
  const href = route("ns", ns, "b", bucket, "o", object.object_id);
  const metadata = Object.entries(object.metadata ?? {}).slice(0, 3);
  return h(
    "li",
    { class: "card object-card", dataset: { objectId: object.object_id } },
    h("div", { class: "thumb" }, blob ? blobPreview(ns, bucket, object.object_id, blob, { compact: true }) : null),
    h("a", { class: "title", href }, object.key_prefix || blob?.filename || object.object_id),
    h("p", { class: "muted mono small" }, object.object_id),
    metadata.length
      ? h("p", { class: "small meta" }, metadata.map(([k, v]) => h("span", { class: "kv" }, h("b", {}, k), " ", show(v))))
      : null,
    h("p", { class: "small" }, h("span", { class: "chip" }, object.status), " ", formatDate(object.created_at)),
  );
}
