// The console's entry point: hash routes to pages, the top bar, sign-in state.

import { currentKey, onUnauthorized, storeKey } from "./api.js";
import { fill, h } from "./dom.js";
import { releaseMedia, startMedia } from "./media.js";
import { batchesPage, batchPage } from "./pages/batches.js";
import { bucketsPage } from "./pages/buckets.js";
import { namespacesPage } from "./pages/namespaces.js";
import { objectPage } from "./pages/object.js";
import { objectsPage } from "./pages/objects.js";
import { searchPage } from "./pages/search.js";
import { signinPage } from "./pages/signin.js";
import { uploadPage } from "./pages/upload.js";
import { webhookPage, webhooksPage } from "./pages/webhooks.js";
import { clearNotice, failed, notify } from "./ui.js";

const SEG = "([^/]+)";
const ROUTES = [
  [/^$/, namespacesPage],
  [new RegExp(`^ns/${SEG}$`), bucketsPage],
  [new RegExp(`^ns/${SEG}/b/${SEG}$`), objectsPage],
  [new RegExp(`^ns/${SEG}/b/${SEG}/upload$`), uploadPage],
  [new RegExp(`^ns/${SEG}/b/${SEG}/batches$`), batchesPage],
  [new RegExp(`^ns/${SEG}/b/${SEG}/batches/${SEG}$`), batchPage],
  [new RegExp(`^ns/${SEG}/b/${SEG}/o/${SEG}$`), objectPage],
  [new RegExp(`^ns/${SEG}/search$`), searchPage],
  [new RegExp(`^ns/${SEG}/webhooks$`), webhooksPage],
  [new RegExp(`^ns/${SEG}/webhooks/${SEG}$`), webhookPage],
];

let current = null; // the AbortController of the page on screen

function crumbs(items) {
  const nav = document.getElementById("crumbs");
  fill(
    nav,
    items.map(([label, href], i) => {
      const last = i === items.length - 1;
      return [
        i ? h("span", { class: "sep", "aria-hidden": "true" }, "/") : null,
        last || !href ? h("span", { "aria-current": last ? "page" : null }, label) : h("a", { href }, label),
      ];
    }),
  );
  document.title = [...items.map(([label]) => label).reverse(), "Assay console"].join(" · ");
}

function stopPage() {
  current?.abort();
  for (const player of document.querySelectorAll("video, audio")) player.pause();
  releaseMedia();
}

async function render() {
  stopPage();
  clearNotice();
  const controller = new AbortController();
  current = controller;
  // Each page draws into its own element: one still loading after the reader moved on
  // writes into a detached element, never over the page that replaced it.
  const main = h("div", { class: "view" }, h("p", { class: "muted" }, "Loading…"));
  fill(document.getElementById("main"), main);
  const signedIn = Boolean(currentKey());
  document.getElementById("signout").hidden = !signedIn;
  const page = { main, signal: controller.signal, crumbs };
  try {
    if (!signedIn) {
      await signinPage(page, render);
      return;
    }
    const raw = location.hash.replace(/^#\/?/, "").replace(/\/$/, "");
    for (const [pattern, show] of ROUTES) {
      const match = pattern.exec(raw);
      if (match) {
        await show(page, ...match.slice(1).map(decodeURIComponent));
        return;
      }
    }
    crumbs([["Not found"]]);
    fill(main, h("p", { class: "error" }, "There is no such page."), h("a", { href: "#/" }, "Namespaces"));
  } catch (error) {
    if (controller.signal.aborted) return;
    fill(main, failed(error));
  }
}

function signOut(message) {
  storeKey(null);
  render();
  if (message) notify(message);
}

document.getElementById("signout").addEventListener("click", () => signOut());
onUnauthorized(() => signOut("The key was refused (invalid or revoked): sign in again."));
window.addEventListener("hashchange", render);
startMedia().finally(render);
