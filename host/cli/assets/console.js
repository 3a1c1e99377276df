// Triggerfish console: draws the charts (Chart.js) and keeps the page live.
// Each chart's configuration is JSON in <script id="ID-config"> next to its
// canvas. When /live says the journal changed, the page fetches itself and
// swaps its <main> if it differs, so new runs and events appear without
// reloading.
"use strict";

function drawCharts(root) {
  if (typeof Chart === "undefined") return;
  for (const canvas of root.querySelectorAll("canvas[data-chart]")) {
    const source = document.getElementById(canvas.dataset.chart + "-config");
    if (!source || Chart.getChart(canvas)) continue;
    try {
      new Chart(canvas, JSON.parse(source.textContent));
    } catch (e) {
      console.error("chart " + canvas.dataset.chart + ": " + e);
    }
  }
}

let refreshing = false;
let pending = false;
// <main> as the server last rendered it (before charts were drawn into it).
let shown = null;

async function refreshMain() {
  if (refreshing) { pending = true; return; }
  refreshing = true;
  try {
    const res = await fetch(location.href, { credentials: "same-origin" });
    if (res.ok) {
      const doc = new DOMParser().parseFromString(await res.text(), "text/html");
      const fresh = doc.querySelector("main");
      const current = document.querySelector("main");
      if (fresh && current && fresh.innerHTML !== shown) {
        shown = fresh.innerHTML;
        for (const c of current.querySelectorAll("canvas[data-chart]")) {
          const chart = Chart.getChart(c);
          if (chart) chart.destroy();
        }
        current.replaceWith(fresh);
        drawCharts(fresh);
        document.body.dataset.liveUpdates = String(Number(document.body.dataset.liveUpdates || 0) + 1);
      }
    }
  } finally {
    refreshing = false;
    if (pending) { pending = false; refreshMain(); }
  }
}

// One stream per open page. It is closed when the page is hidden for
// navigation (or kept in the back-forward cache), since browsers allow only
// six connections per host over HTTP/1.1, and opened again if it comes back.
let source = null;

function followLive() {
  const status = document.getElementById("live-status");
  if (!window.EventSource || !status || source || document.querySelector("form.login")) return;
  source = new EventSource("/live");
  // Whatever changed between this page's rendering and the stream's
  // opening (or while it was reconnecting) is fetched once it is open.
  source.onopen = () => { status.classList.add("on"); refreshMain(); };
  source.onerror = () => status.classList.remove("on");
  source.addEventListener("changed", refreshMain);
}

function stopLive() {
  if (source) { source.close(); source = null; }
  const status = document.getElementById("live-status");
  if (status) status.classList.remove("on");
}

window.addEventListener("pagehide", stopLive);
window.addEventListener("pageshow", (e) => { if (e.persisted) { followLive(); refreshMain(); } });

document.addEventListener("DOMContentLoaded", () => {
  const main = document.querySelector("main");
  if (main) shown = main.innerHTML;
  drawCharts(document);
  followLive();
});
