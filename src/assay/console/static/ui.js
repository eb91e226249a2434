// Pieces every page uses: the notice line, tabs, empty and error states.

import { fill, h, route } from "./dom.js";

/** Show a message in the notice line (an error unless kind is "ok"). */
export function notify(message, kind = "error") {
  const box = document.getElementById("notice");
  fill(
    box,
    h("span", {}, message),
    h("button", { type: "button", class: "link", "aria-label": "Dismiss", onclick: clearNotice }, "×"),
  );
  box.className = `notice notice-${kind}`;
  box.hidden = false;
}

export function clearNotice() {
  const box = document.getElementById("notice");
  box.hidden = true;
  box.replaceChildren();
}

/** Run an action, showing its error (if any) in the notice line; answers its result or null. */
export async function attempt(action, success) {
  try {
    const result = await action();
    if (success) notify(success, "ok");
    return result;
  } catch (error) {
    if (error?.name !== "AbortError") notify(error?.message ?? String(error));
    return null;
  }
}

function tabs(items, active) {
  return h(
    "nav",
    { class: "tabs", "aria-label": "Sections" },
    items.map(([label, href, key]) =>
      h("a", { href, class: key === active ? "tab active" : "tab", "aria-current": key === active ? "page" : null }, label),
    ),
  );
}

export function namespaceTabs(ns, active) {
  return tabs(
    [
      ["Buckets", route("ns", ns), "buckets"],
      ["Search", route("ns", ns, "search"), "search"],
      ["Webhooks", route("ns", ns, "webhooks"), "webhooks"],
    ],
    active,
  );
}

export function bucketTabs(ns, bucket, active) {
  return tabs(
    [
      ["Objects", route("ns", ns, "b", bucket), "objects"],
      ["Upload", route("ns", ns, "b", bucket, "upload"), "upload"],
      ["Batches", route("ns", ns, "b", bucket, "batches"), "batches"],
    ],
    active,
  );
}

export function empty(text) {
  return h("p", { class: "empty" }, text);
}

export function failed(error) {
  const message = error?.status === 404 ? `${error.message} (or not visible to this key)` : error?.message;
  return h("p", { class: "error" }, `Could not load this page: ${message ?? error}`);
}

/** A definition list of [term, value] rows (values are text or nodes). */
export function facts(rows) {
  return h(
    "dl",
    { class: "facts" },
    rows.filter(([, v]) => v !== null && v !== undefined && v !== "").map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
  );
}

export function section(title, ...children) {
  return h("section", { class: "panel" }, h("h2", {}, title), children);
}
