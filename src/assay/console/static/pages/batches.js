// A bucket's batches, and one batch with live progress, its failures and a retry button.

import { all, get, path, post } from "../api.js";
import { badge, fill, formatDate, h, route } from "../dom.js";
import { attempt, bucketTabs, empty, facts, section } from "../ui.js";

const RUNNING = new Set(["QUEUED", "PROCESSING", "IN_PROGRESS", "PENDING"]);
const POLL_MS = 1000;

export async function batchesPage(page, ns, bucket) {
  page.crumbs([["Namespaces", "#/"], [ns, route("ns", ns)], [bucket, route("ns", ns, "b", bucket)], ["Batches"]]);
  const batches = await all(path`/v1/buckets/${bucket}/batches`, { ns, signal: page.signal }, 200);
  const table = batches.length
    ? h(
        "div",
        { class: "scroll" },
        h(
          "table",
          { id: "batches" },
          h("thead", {}, h("tr", {}, ["Batch", "Status", "Created", "Completed"].map((t) => h("th", {}, t)))),
          h(
            "tbody",
            {},
            batches.map((b) =>
              h(
                "tr",
                {},
                h("td", {}, h("a", { class: "mono", href: route("ns", ns, "b", bucket, "batches", b.batch_id) }, b.batch_id)),
                h("td", {}, badge(b.status)),
                h("td", {}, formatDate(b.created_at)),
                h("td", {}, formatDate(b.completed_at)),
              ),
            ),
          ),
        ),
      )
    : empty("No batches yet: uploads start one.");
  fill(page.main, h("h1", {}, bucket), bucketTabs(ns, bucket, "batches"), table);
}

export async function batchPage(page, ns, bucket, batchId) {
  page.crumbs([
    ["Namespaces", "#/"],
    [ns, route("ns", ns)],
    [bucket, route("ns", ns, "b", bucket)],
    ["Batches", route("ns", ns, "b", bucket, "batches")],
    [batchId],
  ]);
  const where = path`/v1/buckets/${bucket}/batches/${batchId}`;
  const panel = h("div", { "aria-live": "polite" });
  const failures = h("div");
  fill(page.main, h("h1", { class: "break" }, batchId), bucketTabs(ns, bucket, "batches"), panel, failures);

  const act = async (verb, message) => {
    const done = await attempt(() => post(`${where}/${verb}`, {}, { ns }), message);
    if (done) poll();
  };
  let shown = null; // the batch state the failures table was drawn for
  async function showFailures(batch) {
    const state = `${batch.status} ${batch.progress.failed} ${batch.completed_at}`;
    if (state === shown) return;
    shown = state;
    if (!batch.progress.failed) {
      failures.replaceChildren();
      return;
    }
    const answer = await get(`${where}/failures`, { ns, signal: page.signal });
    fill(
      failures,
      section(
        `Failures (${answer.total_count})`,
        h(
          "div",
          { class: "scroll" },
          h(
            "table",
            { id: "failures" },
            h("thead", {}, h("tr", {}, ["Object", "Error", "Message", "Attempts"].map((t) => h("th", {}, t)))),
            h(
              "tbody",
              {},
              answer.results.map((f) =>
                h(
                  "tr",
                  {},
                  h("td", {}, h("a", { class: "mono", href: route("ns", ns, "b", bucket, "o", f.object_id) }, f.object_id)),
                  h("td", {}, f.error_type ?? ""),
                  h("td", { class: "break" }, f.message ?? ""),
                  h("td", {}, String(f.attempts)),
                ),
              ),
            ),
          ),
        ),
      ),
    );
  }

  function draw(batch) {
    const p = batch.progress;
    const running = RUNNING.has(batch.status);
    const terminal = !running && batch.status !== "DRAFT";
    fill(
      panel,
      h("p", { class: "status-line" }, badge(batch.status), h("span", { id: "batch-status", class: "visually-hidden", dataset: { completedAt: batch.completed_at ?? "" } }, batch.status), " ", `${p.percent}%`),
      h("progress", { class: "wide", max: "100", value: String(p.percent), "aria-label": "Progress" }),
      h(
        "p",
        { class: "counts" },
        `${p.total} objects · ${p.pending} pending · ${p.processing} processing · ${p.succeeded} succeeded · ${p.failed} failed`,
      ),
      facts([
        ["Created", formatDate(batch.created_at)],
        ["Started", formatDate(batch.started_at)],
        ["Completed", formatDate(batch.completed_at)],
        ["Error", batch.error],
        ["Errors by type", Object.entries(batch.error_summary ?? {}).map(([k, v]) => `${k}: ${v}`).join(", ")],
        ["Collections", (batch.collections ?? []).join(", ")],
      ]),
      h(
        "div",
        { class: "row" },
        batch.status === "DRAFT" ? h("button", { type: "button", class: "primary", onclick: () => act("submit", "Submitted.") }, "Submit") : null,
        running ? h("button", { type: "button", class: "secondary", onclick: () => act("cancel", "Cancel requested.") }, "Cancel") : null,
        terminal && p.failed
          ? h("button", { type: "button", class: "primary", id: "retry", onclick: () => act("retry", "Retrying the failed objects.") }, `Retry ${p.failed} failed`)
          : null,
        h("a", { href: route("ns", ns, "b", bucket) }, "Objects"),
      ),
    );
  }

  let timer = null;
  async function poll() {
    clearTimeout(timer);
    if (page.signal.aborted) return;
    const batch = await get(where, { ns, signal: page.signal });
    draw(batch);
    await showFailures(batch);
    if (RUNNING.has(batch.status)) timer = setTimeout(() => poll().catch(() => {}), POLL_MS);
  }
  page.signal.addEventListener("abort", () => clearTimeout(timer));
  await poll();
}
