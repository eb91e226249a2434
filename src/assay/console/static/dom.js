// Builds the page from data without ever parsing HTML: every value goes in as a text node or
// an attribute set through the DOM, so keys, metadata, file names and OCR text stay text.

const URL_ATTRIBUTES = new Set(["href", "src"]);

/** A safe URL for href/src: a hash route, a path of this origin, or a blob: URL we made. */
function checkedUrl(value) {
  const text = String(value);
  if (text.startsWith("#") || text.startsWith("blob:") || /^\/(?!\/)/.test(text)) return text;
  throw new Error(`refusing URL ${JSON.stringify(text)}`);
}

/**
 * h("a", {href: "#/x", class: "y", onclick: fn}, "text", child, [more])
 * Strings become text nodes; null, undefined and false are skipped; arrays are flattened.
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      el.className = value;
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else if (["value", "checked", "selected", "muted", "disabled"].includes(name)) {
      el[name] = value;
    } else {
      const text = value === true ? "" : String(value);
      el.setAttribute(name, URL_ATTRIBUTES.has(name) ? checkedUrl(text) : text);
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** Replace everything inside `el` with `children`. */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A hash route from path segments, each one encoded. */
export function route(...segments) {
  return "#/" + segments.map((s) => encodeURIComponent(String(s))).join("/");
}

export function formatBytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = Number(n);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 || value >= 10 ? 0 : 1)} ${units[unit]}`;
}

export function formatDate(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

/** Milliseconds as m:ss.s */
export function formatTime(ms) {
  const total = Math.max(0, Number(ms) || 0) / 1000;
  const minutes = Math.floor(total / 60);
  const seconds = (total - minutes * 60).toFixed(1).padStart(4, "0");
  return `${minutes}:${seconds}`;
}

/** A metadata value as one line of text. */
export function show(value) {
  if (value === null || value === undefined) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** `text` with each occurrence of the query's words in <mark>, built as DOM nodes. */
export function highlighted(text, query) {
  const words = String(query ?? "")
    .toLowerCase()
    .split(/\s+/)
    .filter((w) => w.length > 1)
    .map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  if (!words.length) return [text];
  const pattern = new RegExp(`(${words.join("|")})`, "gi");
  return String(text)
    .split(pattern)
    .map((piece, i) => (i % 2 ? h("mark", {}, piece) : piece));
}

export function badge(status) {
  const kind = String(status ?? "").toLowerCase();
  return h("span", { class: `badge badge-${kind.replace(/[^a-z_]/g, "")}` }, status);
}

/** A <form> whose submit runs `handler` (no navigation); its button is off while it runs. */
export function form(props, children, handler) {
  const el = h("form", props, children);
  el.addEventListener("submit", async (event) => {
    event.preventDefault();
    const buttons = el.querySelectorAll("button");
    buttons.forEach((b) => (b.disabled = true));
    try {
      await handler(el);
    } finally {
      buttons.forEach((b) => (b.disabled = false));
    }
  });
  return el;
}

/** A labelled input: label text, then the input element built from `props`. */
export function field(label, props) {
  const input = h(props.tag ?? "input", { ...props, tag: null });
  return h("label", { class: "field" }, h("span", {}, label), input);
}
