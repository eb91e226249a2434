// One object: its metadata, each blob with a full preview, and the documents it became (OCR
// text, transcript segments with their times, labels, keyframe thumbnails).

import { all, get, path } from "../api.js";
import { fill, formatBytes, formatDate, h, route, show } from "../dom.js";
import { thumbnailUrl } from "../media.js";
import { blobPreview, mainBlob, segmentLabel } from "../preview.js";
import { empty, facts, section } from "../ui.js";

export async function objectPage(page, ns, bucket, objectId) {
  page.crumbs([["Namespaces", "#/"], [ns, route("ns", ns)], [bucket, route("ns", ns, "b", bucket)], [objectId]]);
  const [object, documents, collections] = await Promise.all([
    get(path`/v1/buckets/${bucket}/objects/${objectId}`, { ns, signal: page.signal }),
    get(path`/v1/objects/${objectId}/documents`, { ns, signal: page.signal }),
    all("/v1/collections", { ns, signal: page.signal }),
  ]);
  const collectionName = Object.fromEntries(collections.map((c) => [c.collection_id, c.collection_name]));
  const metadata = Object.entries(object.metadata ?? {});
  const players = {}; // blob id -> its preview element, for the segment buttons

  const blobs = object.blobs.map((blob) => {
    const preview = blobPreview(ns, bucket, objectId, blob);
    players[blob.blob_id] = preview;
    const docs = documents
      .filter((d) => d.source.blob_id === blob.blob_id)
      .sort((a, b) => (a.source.segment?.start_ms ?? 0) - (b.source.segment?.start_ms ?? 0));
    const keyframe = docs.find((d) => d.content?.thumbnail);
    if (keyframe && preview.tagName === "VIDEO") {
      thumbnailUrl(ns, keyframe.collection_id, keyframe.document_id).then((url) => (preview.poster = url)).catch(() => {});
    }
    return section(
      `${blob.property} (${blob.type})`,
      h("div", { class: "blob" }, h("div", { class: "blob-preview" }, preview), facts([
        ["Blob", h("span", { class: "mono" }, blob.blob_id)],
        ["File name", blob.filename],
        ["Content type", blob.content_type],
        ["Size", formatBytes(blob.size_bytes)],
        ["SHA-256", h("span", { class: "mono small" }, blob.sha256)],
        ["Source URL", blob.url],
      ])),
      h("h3", {}, `Documents (${docs.length})`),
      docs.length
        ? h("ol", { class: "documents" }, docs.map((d) => documentItem(ns, d, collectionName, players)))
        : empty("No documents yet: process this object in a batch."),
    );
  });

  fill(
    page.main,
    h("h1", { class: "break" }, object.key_prefix || mainBlob(object)?.filename || object.object_id),
    section(
      "Object",
      facts([
        ["Object", h("span", { class: "mono" }, object.object_id)],
        ["Key", object.key_prefix],
        ["Status", object.status],
        ["Created", formatDate(object.created_at)],
        ["Updated", formatDate(object.updated_at)],
      ]),
      metadata.length ? [h("h3", {}, "Metadata"), facts(metadata.map(([k, v]) => [k, show(v)]))] : null,
    ),
    blobs,
  );
}

function documentItem(ns, doc, collectionName, players) {
  const content = doc.content ?? {};
  const segment = doc.source.segment;
  const when = segmentLabel(segment);
  const seek = when
    ? h(
        "button",
        {
          type: "button",
          class: "time",
          onclick: () => {
            const player = players[doc.source.blob_id];
            if (player?.play) {
              player.currentTime = segment.start_ms / 1000;
              player.play().catch(() => {});
            }
          },
        },
        `▶ ${when}`,
      )
    : null;
  const labels = Array.isArray(content.labels) ? content.labels : [];
  const thumb = content.thumbnail ? h("img", { class: "doc-thumb", alt: `keyframe ${when ?? ""}` }) : null;
  if (thumb) {
    thumbnailUrl(ns, doc.collection_id, doc.document_id).then((url) => (thumb.src = url)).catch(() => thumb.remove());
  }
  const spoken = content.transcript;
  const plain = !labels.length && !content.ocr_text && !spoken ? content.text : null;
  return h(
    "li",
    { class: "doc", dataset: { documentId: doc.document_id } },
    h("p", { class: "doc-head" }, seek, h("span", { class: "muted small" }, `${collectionName[doc.collection_id] ?? doc.collection_id} (${doc.extractor})`)),
    thumb,
    labels.length
      ? h("p", { class: "chips" }, labels.map((l) => h("span", { class: "chip" }, typeof l === "string" ? l : `${l.label} ${Math.round((l.score ?? 0) * 100)}%`)))
      : null,
    content.ocr_text ? h("p", {}, h("b", {}, "OCR: "), h("span", { class: "ocr" }, content.ocr_text)) : null,
    spoken ? h("p", {}, h("b", {}, "Transcript: "), h("span", { class: "transcript" }, spoken)) : null,
    plain ? h("p", { class: "excerpt" }, plain) : null,
  );
}
