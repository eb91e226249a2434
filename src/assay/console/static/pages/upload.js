// Upload by drag and drop: for each file, a presigned URL from the uploads API, the bytes PUT
// straight to it (progress from XMLHttpRequest), a confirm; then one batch, created and
// submitted, whose page shows it being processed.

import { get, path, post } from "../api.js";
import { fill, formatBytes, h, route } from "../dom.js";
import { bucketTabs, empty, notify } from "../ui.js";

const MULTIPART_ABOVE = 64 * 1024 * 1024;
const PART_BYTES = 16 * 1024 * 1024;
const AT_ONCE = 3;
// Which content types a blob property of each type takes (as the uploads API decides).
const FITS = {
  image: (t) => t.startsWith("image/"),
  video: (t) => t.startsWith("video/"),
  audio: (t) => t.startsWith("audio/"),
  text: (t) => t.startsWith("text/"),
  json: (t) => t === "application/json",
  pdf: (t) => t === "application/pdf",
  excel: (t) => t.startsWith("application/vnd."),
  binary: () => true,
};
const BY_SUFFIX = {
  md: "text/markdown", txt: "text/plain", csv: "text/csv", json: "application/json", jsonl: "application/jsonl",
  webp: "image/webp", png: "image/png", jpg: "image/jpeg", jpeg: "image/jpeg", gif: "image/gif",
  mp4: "video/mp4", webm: "video/webm", mkv: "video/x-matroska", mov: "video/quicktime",
  mp3: "audio/mpeg", wav: "audio/wav", m4a: "audio/mp4", flac: "audio/flac", ogg: "audio/ogg", opus: "audio/ogg",
  pdf: "application/pdf",
};

function contentType(file) {
  if (file.type) return file.type;
  const suffix = file.name.includes(".") ? file.name.split(".").pop().toLowerCase() : "";
  return BY_SUFFIX[suffix] ?? "application/octet-stream";
}

/** The bucket's file properties a file may fill, the likeliest first. */
function candidates(properties, file) {
  const type = contentType(file);
  const fits = Object.entries(properties).filter(([, spec]) => FITS[spec.type]?.(type));
  const specific = fits.filter(([, spec]) => spec.type !== "binary");
  return (specific.length ? specific : fits).map(([name]) => name);
}

/** PUT `data` to a presigned URL, reporting bytes sent; resolves to the response's ETag. */
function put(url, data, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    xhr.upload.addEventListener("progress", (event) => onProgress(event.loaded));
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(data.size);
        resolve(xhr.getResponseHeader("ETag"));
        return;
      }
      let message = `upload answered ${xhr.status}`;
      try {
        message = JSON.parse(xhr.responseText).error.message ?? message;
      } catch {
        // not the API's envelope (an S3 error document): the status says enough
      }
      reject(new Error(message));
    });
    xhr.addEventListener("error", () => reject(new Error("the upload connection failed")));
    xhr.addEventListener("abort", () => reject(new Error("upload canceled")));
    xhr.send(data);
  });
}

export async function uploadPage(page, ns, bucket) {
  page.crumbs([["Namespaces", "#/"], [ns, route("ns", ns)], [bucket, route("ns", ns, "b", bucket)], ["Upload"]]);
  const info = await get(path`/v1/buckets/${bucket}`, { ns, signal: page.signal });
  const properties = Object.fromEntries(
    Object.entries(info.bucket_schema?.properties ?? {}).filter(([, spec]) => spec.type in FITS),
  );
  if (!Object.keys(properties).length) {
    fill(page.main, h("h1", {}, bucket), bucketTabs(ns, bucket, "upload"), empty("This bucket's schema has no file property to upload into."));
    return;
  }
  const queue = []; // {file, select, bar, status}
  const list = h("ul", { class: "queue", id: "queue" });
  const start = h("button", { type: "button", class: "primary", id: "start-upload", disabled: true }, "Upload");
  const prefix = h("input", { name: "key_prefix", placeholder: "optional, e.g. /products" });
  const process = h("input", { type: "checkbox", name: "process", checked: true });
  const picker = h("input", { type: "file", multiple: true, class: "visually-hidden", id: "file-picker" });
  const zone = h(
    "div",
    { class: "dropzone", id: "dropzone", tabindex: "0", role: "button", "aria-label": "Drop files to upload, or press Enter to choose them" },
    h("p", {}, "Drop files here"),
    h("p", { class: "muted small" }, "or ", h("label", { for: "file-picker", class: "link" }, "choose files"), ` — into ${Object.keys(properties).join(", ")}`),
  );

  function add(files) {
    for (const file of files) {
      const names = candidates(properties, file);
      const select = h(
        "select",
        { "aria-label": `Property for ${file.name}`, disabled: !names.length },
        names.map((n) => h("option", { value: n }, `${n} (${properties[n].type})`)),
      );
      const bar = h("progress", { max: String(file.size || 1), value: "0" });
      const status = h("span", { class: "small muted status" }, names.length ? "ready" : "no property of this bucket takes this type");
      const row = h(
        "li",
        { class: "queue-item", dataset: { name: file.name } },
        h("span", { class: "name break" }, file.name),
        h("span", { class: "small muted" }, `${contentType(file)} · ${formatBytes(file.size)}`),
        select,
        bar,
        status,
      );
      list.append(row);
      if (names.length) queue.push({ file, select, bar, status, row });
    }
    start.disabled = !queue.some((item) => !item.done);
  }

  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    add(event.dataTransfer?.files ?? []);
  });
  zone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") picker.click();
  });
  picker.addEventListener("change", () => {
    add(picker.files);
    picker.value = "";
  });

  async function send(item) {
    const { file } = item;
    const report = (sent) => {
      item.bar.value = sent;
      item.status.textContent = `${Math.floor((100 * sent) / (file.size || 1))}%`;
    };
    const body = {
      filename: file.name,
      content_type: contentType(file),
      file_size_bytes: file.size,
      blob_property: item.select.value,
    };
    if (prefix.value.trim()) body.key_prefix = prefix.value.trim();
    if (file.size > MULTIPART_ABOVE) Object.assign(body, { multipart: true, part_size_bytes: PART_BYTES });
    item.status.textContent = "starting";
    const upload = await post(path`/v1/buckets/${bucket}/uploads`, body, { ns });
    if (upload.parts?.length) {
      let done = 0;
      for (const part of upload.parts) {
        const offset = (part.part_number - 1) * PART_BYTES;
        const piece = file.slice(offset, offset + PART_BYTES);
        await put(part.presigned_url, piece, (sent) => report(done + sent));
        done += piece.size;
      }
    } else {
      await put(upload.presigned_url, file, report);
    }
    item.status.textContent = "confirming";
    const confirmed = await post(path`/v1/buckets/${bucket}/uploads/${upload.upload_id}/confirm`, {}, { ns });
    item.status.textContent = confirmed.duplicate ? "already stored" : "uploaded";
    return confirmed.object_id;
  }

  start.addEventListener("click", async () => {
    start.disabled = true;
    const todo = queue.filter((item) => !item.done);
    const objectIds = [];
    let failures = 0;
    const next = async () => {
      while (todo.length) {
        const item = todo.shift();
        item.select.disabled = true;
        try {
          const id = await send(item);
          item.done = true;
          item.row.classList.add("ok");
          if (id) objectIds.push(id);
        } catch (error) {
          failures += 1;
          item.row.classList.add("failed");
          item.status.textContent = error.message;
          item.select.disabled = false;
        }
      }
    };
    await Promise.all(Array.from({ length: AT_ONCE }, next));
    start.disabled = !queue.some((item) => !item.done);
    if (!objectIds.length) return;
    if (!process.checked) {
      notify(`${objectIds.length} uploaded.`, "ok");
      return;
    }
    try {
      const batch = await post(path`/v1/buckets/${bucket}/batches`, { object_ids: objectIds }, { ns });
      await post(path`/v1/buckets/${bucket}/batches/${batch.batch_id}/submit`, {}, { ns });
      const href = route("ns", ns, "b", bucket, "batches", batch.batch_id);
      if (failures) notify(`${failures} file(s) failed; the others are processing in ${batch.batch_id}.`);
      else location.hash = href;
    } catch (error) {
      notify(`Uploaded, but the batch could not start: ${error.message}`);
    }
  });

  fill(
    page.main,
    h("h1", {}, bucket),
    bucketTabs(ns, bucket, "upload"),
    zone,
    picker,
    list,
    h(
      "div",
      { class: "row" },
      h("label", { class: "field" }, h("span", {}, "Key prefix"), prefix),
      h("label", { class: "check" }, process, h("span", {}, "Process after upload (create and submit a batch)")),
      start,
    ),
  );
}
