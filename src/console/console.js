// The console page: polls /api/network (the cookie set with the page carries the token) and
// draws it. Every text from the network goes in with textContent or setAttribute, never as
// markup: site and service names come from other sites.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const POLL_MS = 2000;
// Sites seen since the page opened, by name: one that disappears is shown as not heard from.
const seenSites = new Map();

function el(tag, attributes, ...children) {
  const node = tag.startsWith("svg:")
    ? document.createElementNS(SVG, tag.slice(4))
    : document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    node.setAttribute(name, String(value));
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}

function duration(seconds) {
  if (seconds == null) return "";
  if (seconds < 60) return seconds.toFixed(1) + " s";
  if (seconds < 3600) return Math.floor(seconds / 60) + " min " + Math.floor(seconds % 60) + " s";
  return Math.floor(seconds / 3600) + " h " + Math.floor((seconds % 3600) / 60) + " min";
}

function badge(text, kind) {
  return el("span", { class: "badge " + kind }, text);
}

function endpoints(list) {
  if (list.length === 0) return el("span", { class: "muted" }, "none");
  return el("ul", {}, ...list.map((e) => {
    const where = [e.host, e.port].filter((x) => x != null).join(":");
    return el("li", { "data-site": e.site }, e.site + (where ? " — " + where : "") +
      (e.name ? " (" + e.name + ")" : ""));
  }));
}

function drawTopology(view, downSites) {
  const svg = document.getElementById("topology");
  const width = 800, height = 360, radius = 34;
  svg.setAttribute("viewBox", "0 0 " + width + " " + height);
  svg.replaceChildren();
  const defs = el("svg:defs");
  for (const state of ["up", "down"]) {
    defs.append(el("svg:marker", { id: "arrow-" + state, viewBox: "0 0 10 10", refX: 10, refY: 5,
      markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
    el("svg:path", { d: "M 0 0 L 10 5 L 0 10 z" })));
  }
  svg.append(defs);

  const names = view.sites.map((s) => s.name).concat(downSites).sort();
  const position = new Map();
  const cx = width / 2, cy = height / 2;
  const ring = names.length > 1 ? Math.min(cx, cy) - radius - 20 : 0;
  names.forEach((name, i) => {
    const angle = -Math.PI / 2 + (2 * Math.PI * i) / names.length;
    position.set(name, [cx + ring * Math.cos(angle), cy + ring * Math.sin(angle)]);
  });

  for (const link of view.links) {
    const from = position.get(link.fromSite);
    if (!from) continue;
    // A link whose other end is not known yet ends short of the dialling site.
    const to = position.get(link.toSite) || [from[0] + 110, from[1] + 60];
    const dx = to[0] - from[0], dy = to[1] - from[1];
    const length = Math.hypot(dx, dy) || 1;
    const ux = dx / length, uy = dy / length;
    const start = [from[0] + ux * radius, from[1] + uy * radius];
    const end = link.toSite && position.has(link.toSite)
      ? [to[0] - ux * (radius + 2), to[1] - uy * (radius + 2)] : to;
    const state = link.state === "up" ? "up" : "down";
    const label = link.name + (link.cost != null ? " (cost " + link.cost + ")" : "") +
      (link.state === "up" ? "" : " — not connected");
    svg.append(el("svg:g", { class: "link " + link.state, "data-link": link.name,
      "data-from": link.fromSite, "data-to": link.toSite || "", "data-state": link.state },
    el("svg:title", {}, link.fromSite + " → " + (link.toSite || "?") + ": " + link.state),
    el("svg:line", { x1: start[0], y1: start[1], x2: end[0], y2: end[1],
      "marker-end": "url(#arrow-" + state + ")" }),
    el("svg:text", { x: (start[0] + end[0]) / 2, y: (start[1] + end[1]) / 2 - 6 }, label)));
  }

  for (const name of names) {
    const [x, y] = position.get(name);
    const site = view.sites.find((s) => s.name === name);
    const classes = ["site"];
    if (!site) classes.push("down");
    if (site && site.here) classes.push("local");
    const detail = site
      ? [site.platform, site.namespace && "namespace " + site.namespace].filter(Boolean).join(", ")
      : "not heard from";
    svg.append(el("svg:g", { class: classes.join(" "), "data-site": name,
      "data-state": site ? "up" : "down" },
    el("svg:title", {}, name + (site && site.version ? " (Skupper " + site.version + ")" : "")),
    el("svg:circle", { cx: x, cy: y, r: radius }),
    el("svg:text", { class: "name", x: x, y: y + 4 }, name),
    el("svg:text", { x: x, y: y + radius + 16 }, detail + (site && site.here ? " — this site" : ""))));
  }
}

function drawServices(view) {
  const body = document.querySelector("#services tbody");
  body.replaceChildren(...view.services.map((s) => el("tr", {
    class: s.reachable ? "reachable" : "unreachable",
    "data-service": s.routingKey, "data-reachable": s.reachable },
  el("td", {}, s.routingKey),
  el("td", {}, s.reachable ? badge("reachable", "ok") : badge("no connector", "bad")),
  el("td", {}, endpoints(s.listeners)),
  el("td", {}, endpoints(s.connectors)),
  el("td", {}, s.openConnections),
  el("td", {}, s.connections),
  el("td", {}, bytes(s.bytesSent)),
  el("td", {}, bytes(s.bytesReceived)))));
  if (view.services.length === 0) {
    body.append(el("tr", {}, el("td", { colspan: 8, class: "muted" }, "No listener or connector in the network yet.")));
  }
}

function drawConnections(view) {
  const body = document.querySelector("#connections tbody");
  body.replaceChildren(...view.connections.map((c) => el("tr", {
    "data-connection": c.id, "data-open": c.open },
  el("td", {}, c.routingKey || "?"),
  el("td", {}, c.fromSite || "?"),
  el("td", {}, c.toSite || "?"),
  el("td", {}, c.client || ""),
  el("td", {}, c.open ? badge("open", "ok") : badge("ended", "wait")),
  el("td", {}, duration(c.durationSeconds)),
  el("td", {}, bytes(c.bytesSent)),
  el("td", {}, bytes(c.bytesReceived)),
  el("td", {}, c.latencyUs == null ? "" : (c.latencyUs / 1000).toFixed(1) + " ms"),
  el("td", { class: "error" }, c.error || ""))));
  if (view.connections.length === 0) {
    body.append(el("tr", {}, el("td", { colspan: 10, class: "muted" }, "No connection yet.")));
  }
}

function drawProblems(view, downSites) {
  const problems = [];
  if (view.router.state !== "connected") {
    problems.push("This console is not connected to the site's router" +
      (view.router.error ? ": " + view.router.error : " yet") + ".");
  }
  for (const name of downSites) problems.push("Site " + name + " is no longer heard from.");
  for (const link of view.links.filter((l) => l.state !== "up")) {
    problems.push("Link " + link.name + " from " + link.fromSite + " is not connected (" + link.state + ").");
  }
  for (const s of view.services.filter((s) => !s.reachable)) {
    problems.push("Service " + s.routingKey + " has no connector: its listeners reach nothing.");
  }
  document.getElementById("problems").replaceChildren(...problems.map((p) => el("li", {}, p)));
  document.getElementById("attention").hidden = problems.length === 0;
}

function draw(view) {
  const now = Date.now();
  for (const site of view.sites) seenSites.set(site.name, now);
  const live = new Set(view.sites.map((s) => s.name));
  const downSites = [...seenSites.keys()].filter((name) => !live.has(name));
  document.getElementById("site").textContent = "site " + view.site;
  const router = document.getElementById("router");
  const connected = view.router.state === "connected";
  router.textContent = connected ? "router connected" : "router " + view.router.state;
  router.className = "badge " + (connected ? "ok" : "bad");
  document.getElementById("updated").textContent = "updated " + new Date(now).toLocaleTimeString();
  drawProblems(view, downSites);
  drawTopology(view, downSites);
  drawServices(view);
  drawConnections(view);
}

async function poll() {
  try {
    const answer = await fetch("/api/network", { cache: "no-store", credentials: "same-origin" });
    if (answer.status === 401) {
      document.getElementById("updated").textContent =
        "not authorized: open the URL that `vansite console --print-url` prints";
      return;
    }
    draw(await answer.json());
  } catch (e) {
    document.getElementById("updated").textContent = "console not answering (" + e + "); retrying";
  }
  setTimeout(poll, POLL_MS);
}

// The token has done its work (the cookie holds it): keep it out of the address bar.
if (new URLSearchParams(location.search).has("token")) {
  history.replaceState(null, "", location.pathname);
}
poll();
