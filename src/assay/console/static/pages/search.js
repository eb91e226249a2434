// The search playground: a text query and/or a dropped image over the namespace's
// collections, run as an inline retriever; results as a grid with a thumbnail, the modality,
// the score and a snippet, and for a video or audio segment a player starting at the segment.

import { all, path, post } from "../api.js";
import { fill, form, h, highlighted, route } from "../dom.js";
import { modality, thumbnailUrl } from "../media.js";
import { blobPreview, segmentLabel } from "../preview.js";
import { empty, namespaceTabs, notify } from "../ui.js";

const TEXT_QUERY_OUTPUTS = ["text_embedding", "clip_embedding"];
const IMAGE_QUERY_OUTPUTS = ["visual_embedding", "clip_embedding"];
const LIMIT = 24;

/** The collections' vector features a query can search (a CLIP one only with its model). */
function featureUris(collections, outputs) {
  const uris = collections.flatMap((c) =>
    (c.feature_uris ?? []).filter((uri) => !uri.endsWith("/clip_embedding") || c.feature_extractor?.params?.clip_model_path),
  );
  return [...new Set(uris.filter((uri) => outputs.some((name) => uri.endsWith(`/${name}`))))];
}

function readAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.addEventListener("load", () => resolve(reader.result));
    reader.addEventListener("error", () => reject(reader.error));
    reader.readAsDataURL(file);
  });
}

/** Where each object lives: its bucket and the object itself, found a bucket at a time. */
async function locate(ns, ids, known, signal) {
  const missing = () => ids.filter((id) => !known.has(id));
  if (!missing().length) return;
  const buckets = await all("/v1/buckets", { ns, signal });
  for (const bucket of buckets) {
    const left = missing();
    if (!left.length) break;
    const body = { filters: { AND: [{ field: "object_id", operator: "in", value: left }] }, limit: 1000 };
    const page = await post(path`/v1/buckets/${bucket.bucket_name}/objects/list`, body, { ns, signal });
    for (const object of page.results) known.set(object.object_id, { bucket: bucket.bucket_name, object });
  }
}

export async function searchPage(page, ns) {
  page.crumbs([["Namespaces", "#/"], [ns, route("ns", ns)], ["Search"]]);
  const collections = await all("/v1/collections", { ns, signal: page.signal });
  const known = new Map(); // object id -> {bucket, object}
  let image = null; // {file, url}
  const results = h("ul", { class: "grid results", id: "results" });
  const summary = h("p", { class: "muted small", id: "search-summary", "aria-live": "polite" });

  const imageSlot = h("div", { class: "image-query" });
  const picker = h("input", { type: "file", accept: "image/*", class: "visually-hidden", id: "image-picker" });
  const drop = h(
    "div",
    { class: "dropzone small-zone", id: "image-drop", tabindex: "0", role: "button", "aria-label": "Drop an image to search by" },
    h("span", {}, "Drop an image to search with it, or "),
    h("label", { for: "image-picker", class: "link" }, "choose one"),
  );
  function setImage(file) {
    if (image) URL.revokeObjectURL(image.url);
    image = file ? { file, url: URL.createObjectURL(file) } : null;
    fill(
      imageSlot,
      image
        ? [
            h("img", { src: image.url, alt: `query image ${file.name}`, class: "query-image" }),
            h("button", { type: "button", class: "link", onclick: () => setImage(null) }, "Remove image"),
          ]
        : null,
    );
  }
  page.signal.addEventListener("abort", () => setImage(null));
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    const file = [...(event.dataTransfer?.files ?? [])].find((f) => f.type.startsWith("image/"));
    if (file) setImage(file);
  });
  drop.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") picker.click();
  });
  picker.addEventListener("change", () => picker.files[0] && setImage(picker.files[0]));

  const searchForm = form(
    { class: "search-form", id: "search-form", role: "search" },
    [
      h(
        "div",
        { class: "row" },
        h("input", { type: "search", name: "query", id: "query", placeholder: "Search words, speech, pictures…", "aria-label": "Query", class: "grow" }),
        h(
          "select",
          { name: "mode", "aria-label": "Match" },
          h("option", { value: "meaning" }, "By meaning"),
          h("option", { value: "words" }, "Exact words"),
        ),
        h("button", { type: "submit", class: "primary" }, "Search"),
      ),
      h("div", { class: "row" }, drop, picker, imageSlot),
      h(
        "fieldset",
        { class: "inline" },
        h("legend", {}, "Collections"),
        collections.map((c) =>
          h(
            "label",
            { class: "check" },
            h("input", { type: "checkbox", name: "collection", value: c.collection_id, checked: true }),
            h("span", {}, `${c.collection_name} (${c.document_count})`),
          ),
        ),
      ),
    ],
    async (el) => {
      const query = el.elements.query.value.trim();
      const mode = el.elements.mode.value;
      const chosen = collections.filter((c) => el.querySelector(`input[name=collection][value="${CSS.escape(c.collection_id)}"]`).checked);
      if (!chosen.length) return notify("Choose at least one collection.");
      if (!query && !image) return notify("Type a query or drop an image.");
      const inputs = {};
      let stage;
      if (mode === "words") {
        if (!query) return notify("Exact words need a text query.");
        inputs.query = query;
        stage = { stage_name: "words", config: { stage_id: "text_search", parameters: { top_k: 100 } } };
      } else {
        const searches = [];
        if (query) {
          inputs.query = query;
          for (const uri of featureUris(chosen, TEXT_QUERY_OUTPUTS)) searches.push({ feature_uri: uri, query: "{{INPUT.query}}", top_k: 100 });
        }
        if (image) {
          inputs.query_image = await readAsDataUrl(image.file);
          for (const uri of featureUris(chosen, IMAGE_QUERY_OUTPUTS)) searches.push({ feature_uri: uri, query: "{{INPUT.query_image}}", top_k: 100 });
        }
        if (!searches.length) return notify("These collections have no feature that this query can search.");
        stage = { stage_name: "semantic", config: { stage_id: "feature_search", parameters: { searches, final_top_k: 100 } } };
      }
      const body = { collection_identifiers: chosen.map((c) => c.collection_id), stages: [stage], inputs, limit: LIMIT };
      fill(summary, "Searching…");
      try {
        const answer = await post("/v1/retrievers/execute", body, { ns, signal: page.signal });
        await locate(ns, [...new Set(answer.results.map((r) => r.source.object_id))], known, page.signal);
        fill(results, answer.results.map((r, i) => resultCard(ns, r, i, known, query)));
        fill(summary, `${answer.pagination.total_count} found · ${Math.round(answer.duration_ms)} ms`);
        if (!answer.results.length) fill(results, empty("Nothing found."));
      } catch (error) {
        fill(summary);
        if (error.name !== "AbortError") notify(error.message);
      }
    },
  );
  fill(page.main, h("h1", {}, "Search"), namespaceTabs(ns, "search"), searchForm, summary, results);
  searchForm.elements.query.focus();
}

function resultCard(ns, result, rank, known, query) {
  const found = known.get(result.source.object_id);
  const blob = found?.object.blobs.find((b) => b.blob_id === result.source.blob_id);
  const kind = blob ? modality(blob) : "document";
  const segment = result.source.segment;
  const content = result.content ?? {};
  const snippet = content.ocr_text || content.transcript || content.text || "";
  let thumb = null;
  if (blob && found && ["image", "video", "audio"].includes(kind)) {
    thumb = blobPreview(ns, found.bucket, result.source.object_id, blob, { compact: true, ...(segment ?? {}) });
    if (kind === "video" && content.thumbnail) {
      thumbnailUrl(ns, result.collection_id, result.document_id).then((url) => (thumb.poster = url)).catch(() => {});
    }
  }
  const title = found ? found.object.key_prefix || blob?.filename || result.source.object_id : result.source.object_id;
  return h(
    "li",
    {
      class: "card result",
      dataset: { rank: String(rank + 1), objectId: result.source.object_id, documentId: result.document_id, modality: kind },
    },
    h("div", { class: "thumb" }, thumb),
    h(
      "p",
      { class: "result-meta" },
      h("span", { class: `chip kind-${kind}` }, kind),
      h("span", { class: "score", title: "score" }, result.score.toFixed(3)),
      segment ? h("span", { class: "segment small" }, segmentLabel(segment)) : null,
    ),
    found
      ? h("a", { class: "title break", href: route("ns", ns, "b", found.bucket, "o", result.source.object_id) }, title)
      : h("span", { class: "title mono" }, title),
    snippet ? h("p", { class: "snippet clamp" }, highlighted(snippet.slice(0, 300), query)) : null,
  );
}
