// The console's service worker: lets <img>, <video> and <audio> load blob bytes from the API,
// which wants the key in a header. It answers only GET requests under /ui/files/<namespace>/
// for a blob's content or a document's thumbnail: it asks the page that made the request for
// the key (kept in that tab, never stored here), then forwards the request to the API with the
// key, the namespace and the player's Range header. Everything else goes to the network as is.

const SCOPE = new URL("./", self.location.href).pathname; // /ui/
const API_ROOT = new URL("../", self.location.href).pathname; // /
const FILES = `${SCOPE}files/`;
const ALLOWED = [
  /^v1\/buckets\/[^/]+\/objects\/[^/]+\/blobs\/[^/]+\/content$/,
  /^v1\/collections\/[^/]+\/documents\/[^/]+\/thumbnail$/,
];

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (url.origin !== self.location.origin || !url.pathname.startsWith(FILES)) return;
  event.respondWith(forward(event, url));
});

async function forward(event, url) {
  if (event.request.method !== "GET") return refuse(405, "only GET");
  const rest = url.pathname.slice(FILES.length);
  const slash = rest.indexOf("/");
  const namespace = decodeURIComponent(rest.slice(0, slash));
  const apiPath = rest.slice(slash + 1);
  if (slash <= 0 || !ALLOWED.some((pattern) => pattern.test(apiPath))) {
    return refuse(404, "not a console file");
  }
  const key = await keyOf(event.clientId || event.resultingClientId);
  if (!key) return refuse(401, "signed out");
  const headers = { Authorization: `Bearer ${key}`, "X-Namespace": namespace };
  const range = event.request.headers.get("Range");
  if (range) headers.Range = range;
  return fetch(API_ROOT + apiPath, { headers, cache: "no-store", signal: event.request.signal });
}

function refuse(status, message) {
  return new Response(message, { status, headers: { "Content-Type": "text/plain" } });
}

/** Ask the tab that made the request for its key (null when it has none). */
async function keyOf(clientId) {
  const client = clientId ? await self.clients.get(clientId) : null;
  if (!client) return null;
  const channel = new MessageChannel();
  const answer = new Promise((resolve) => {
    channel.port1.onmessage = (event) => resolve(typeof event.data === "string" ? event.data : null);
    setTimeout(() => resolve(null), 3000);
  });
  client.postMessage({ type: "assay-key" }, [channel.port2]);
  return answer;
}
