// URLs an <img>, <video> or <audio> can load blob bytes from. The API wants the key in a
// header, which media elements cannot send; the console's service worker (sw.js) adds it to
// requests under /ui/files/, so players stream with HTTP Range requests and seek at will.
// Without a service worker (a page served over plain HTTP from another host is not a secure
// context) the bytes are fetched whole with the key and shown from a blob: URL.

import { authHeaders, currentKey, path, ROOT } from "./api.js";

const BASE = new URL("../", import.meta.url); // …/ui/
const WORKER = new URL("sw.js", BASE).href;
let viaWorker = false;
const made = new Set(); // blob: URLs to free when the page changes

/** Register the service worker and answer its requests for the key. */
export async function startMedia() {
  const container = navigator.serviceWorker;
  if (!container || !window.isSecureContext) return;
  container.addEventListener("message", (event) => {
    if (event.data?.type === "assay-key" && event.ports[0]) {
      event.ports[0].postMessage(currentKey());
    }
  });
  container.startMessages();
  try {
    await container.register(trustedWorkerUrl(), { scope: BASE.pathname });
    if (!container.controller) {
      // The first visit: wait (a little) for the new worker to take this page over.
      await new Promise((resolve) => {
        container.addEventListener("controllerchange", resolve, { once: true });
        setTimeout(resolve, 3000);
      });
    }
    viaWorker = Boolean(container.controller);
  } catch {
    viaWorker = false;
  }
}

/** The worker's URL, through the console's one Trusted Types policy where the browser has them. */
function trustedWorkerUrl() {
  if (!window.trustedTypes) return WORKER;
  const policy = window.trustedTypes.createPolicy("assay-console", {
    createScriptURL: (url) => {
      if (url !== WORKER) throw new Error("only the console's service worker");
      return url;
    },
  });
  return policy.createScriptURL(WORKER);
}

function workerUrl(ns, apiPath) {
  return `${BASE.pathname}files/${encodeURIComponent(ns)}${apiPath}`;
}

async function wholeBlobUrl(ns, apiPath) {
  const response = await fetch(ROOT + apiPath.replace(/^\//, ""), { headers: authHeaders(ns) });
  if (!response.ok) throw new Error(`${response.status} loading media`);
  const url = URL.createObjectURL(await response.blob());
  made.add(url);
  return url;
}

async function mediaUrl(ns, apiPath) {
  return viaWorker ? workerUrl(ns, apiPath) : wholeBlobUrl(ns, apiPath);
}

function blobPath(bucket, objectId, blobId) {
  return path`/v1/buckets/${bucket}/objects/${objectId}/blobs/${blobId}/content`;
}

function thumbnailPath(collectionId, documentId) {
  return path`/v1/collections/${collectionId}/documents/${documentId}/thumbnail`;
}

/** A URL for one blob's bytes. */
export function blobUrl(ns, bucket, objectId, blobId) {
  return mediaUrl(ns, blobPath(bucket, objectId, blobId));
}

/** A URL for a video segment document's keyframe. */
export function thumbnailUrl(ns, collectionId, documentId) {
  return mediaUrl(ns, thumbnailPath(collectionId, documentId));
}

/** The first `bytes` bytes of a blob, as text (a Range request). */
export async function textExcerpt(ns, bucket, objectId, blobId, bytes = 600) {
  const response = await fetch(ROOT + blobPath(bucket, objectId, blobId).slice(1), {
    headers: { ...authHeaders(ns), Range: `bytes=0-${bytes - 1}` },
  });
  if (!response.ok) throw new Error(`${response.status} loading text`);
  const text = new TextDecoder("utf-8").decode(await response.arrayBuffer());
  const cut = response.status === 206 && Number(response.headers.get("Content-Range")?.split("/")[1]) > bytes;
  return cut ? `${text.replace(/\uFFFD+$/, "")}…` : text;
}

/** Free the blob: URLs the previous page made. */
export function releaseMedia() {
  for (const url of made) URL.revokeObjectURL(url);
  made.clear();
}

/** What a blob is to a person: image, video, audio, text or file. */
export function modality(blob) {
  const type = String(blob?.content_type ?? "");
  const declared = String(blob?.type ?? "");
  for (const kind of ["image", "video", "audio"]) {
    if (declared === kind || type.startsWith(`${kind}/`)) return kind;
  }
  if (declared === "text" || declared === "json" || type.startsWith("text/") || type === "application/json") {
    return "text";
  }
  return "file";
}
