// Previews of a blob: an image, a player (that can start at a segment), or a text excerpt.

import { formatBytes, formatTime, h } from "./dom.js";
import { blobUrl, modality, textExcerpt } from "./media.js";

/** The blob an object is best shown by: an image, then video, audio, text, anything. */
export function mainBlob(object) {
  const order = ["image", "video", "audio", "text", "file"];
  const blobs = [...(object?.blobs ?? [])];
  blobs.sort((a, b) => order.indexOf(modality(a)) - order.indexOf(modality(b)));
  return blobs[0] ?? null;
}

/** Load `load()`'s URL into `el.src`; a failure shows as a note instead of the element. */
function loadInto(el, load, suffix = "") {
  load()
    .then((url) => {
      el.src = url + suffix;
    })
    .catch((error) => el.replaceWith(h("p", { class: "muted small" }, `Preview unavailable (${error.message})`)));
  return el;
}

/**
 * A preview element for `blob` of `objectId` in `bucket`.
 * options: {start_ms, end_ms} to start a player at a segment; compact for grids.
 */
export function blobPreview(ns, bucket, objectId, blob, options = {}) {
  const kind = modality(blob);
  const load = () => blobUrl(ns, bucket, objectId, blob.blob_id);
  const label = blob.filename || blob.property;
  if (kind === "image") {
    const img = h("img", { class: "preview-image", alt: label, loading: "lazy", dataset: { blobId: blob.blob_id } });
    img.addEventListener("error", () => img.replaceWith(h("p", { class: "muted small" }, "This image cannot be shown.")), { once: true });
    return loadInto(img, load);
  }
  if (kind === "video" || kind === "audio") {
    return player(kind, load, label, blob.blob_id, options);
  }
  if (kind === "text") {
    const excerpt = h("p", { class: options.compact ? "excerpt clamp" : "excerpt" }, "…");
    textExcerpt(ns, bucket, objectId, blob.blob_id, options.compact ? 300 : 4000)
      .then((text) => excerpt.replaceChildren(text))
      .catch((error) => excerpt.replaceChildren(`Excerpt unavailable (${error.message})`));
    return excerpt;
  }
  return h("p", { class: "file-kind" }, `${blob.content_type} · ${formatBytes(blob.size_bytes)}`);
}

/** A <video> or <audio> that starts at options.start_ms (when given). */
export function player(kind, load, label, blobId, options = {}) {
  const start = options.start_ms ? options.start_ms / 1000 : 0;
  const el = h(kind, {
    controls: true,
    preload: "metadata",
    playsinline: kind === "video",
    class: `preview-${kind}`,
    "aria-label": label,
    dataset: { blobId, start: String(start) },
  });
  if (start) {
    // Seek once the duration is known; and if it plays from earlier, jump to the segment.
    el.addEventListener("loadedmetadata", () => (el.currentTime = start), { once: true });
    el.addEventListener("play", () => el.currentTime < start - 0.5 && (el.currentTime = start), { once: true });
  }
  const fragment = start ? `#t=${start}${options.end_ms ? `,${options.end_ms / 1000}` : ""}` : "";
  return loadInto(el, load, fragment);
}

/** "0:10.0 – 0:20.0" for a segment. */
export function segmentLabel(segment) {
  if (!segment || segment.start_ms === undefined) return null;
  return `${formatTime(segment.start_ms)} – ${formatTime(segment.end_ms)}`;
}
