// Dashboard behaviour: auto-refresh of the live panels, market switcher and the indicator
// form (fetch, no page reload).
"use strict";

// Auto-refresh. Every `data-refresh-seconds` (api.dashboard_refresh_seconds) each registered
// refresher runs; none runs while the tab is hidden, and all run at once when it shows again.
// A panel adds itself with `window.dashboard.register(name, async () => {...})`.
window.dashboard = (function () {
  const refreshers = new Map();
  const seconds = Number(document.body.dataset.refreshSeconds) || 30;
  const status = document.getElementById("refresh-status");
  let timer = null;
  let running = false;

  function register(name, refresh) {
    refreshers.set(name, refresh);
  }

  async function refreshNow() {
    if (running) {
      return;
    }
    running = true;
    const results = await Promise.allSettled([...refreshers.values()].map((f) => f()));
    running = false;
    const failed = results
      .map((result, i) => [result, [...refreshers.keys()][i]])
      .filter(([result]) => result.status === "rejected")
      .map(([result, name]) => name + ": " + result.reason.message);
    if (status) {
      const time = new Date().toISOString().slice(11, 19);
      status.textContent = failed.length
        ? "refresh failed at " + time + " UTC (" + failed.join("; ") + "); figures may be stale"
        : "updated " + time + " UTC, every " + seconds + " s";
      status.classList.toggle("bad", failed.length > 0);
    }
  }

  function schedule() {
    clearTimeout(timer);
    timer = document.hidden ? null : setTimeout(tick, seconds * 1000);
  }

  async function tick() {
    await refreshNow();
    schedule();
  }

  document.addEventListener("visibilitychange", () => (document.hidden ? schedule() : tick()));
  schedule();
  return { register, refreshNow, seconds };
})();

// Charts follow their slot's width. A chart drawn while its grid had one visible cell (the
// next slot not parsed yet, or empty) would keep that full width and be clipped to half once
// the grid reflows: every chart slot is watched and its plot resized to the slot.
(function () {
  const observer = new ResizeObserver((entries) => {
    for (const entry of entries) {
      const plot = entry.target.querySelector(".js-plotly-plot");
      if (plot && plot._fullLayout && Math.abs(plot._fullLayout.width - entry.contentRect.width) > 1) {
        Plotly.Plots.resize(plot);
      }
    }
  });
  document.querySelectorAll(".chart").forEach((slot) => observer.observe(slot));
})();

// The page's own live panels: HTML from the page's macros, charts redrawn with Plotly.react.
const shownPanels = new Map();
window.dashboard.register("live", async function () {
  const query = new URLSearchParams({
    symbol: document.body.dataset.symbol,
    timeframe: document.body.dataset.timeframe,
  });
  const response = await fetch("/dashboard/live?" + query.toString(), {
    headers: { Accept: "application/json" },
    cache: "no-store",
  });
  if (!response.ok) {
    throw new Error("HTTP " + response.status);
  }
  const body = await response.json();
  for (const [name, html] of Object.entries(body.panels)) {
    const panel = document.querySelector('[data-panel="' + name + '"]');
    if (panel && shownPanels.get(name) !== html) {
      panel.innerHTML = html; // server-rendered, escaped by Jinja; carries no script
      shownPanels.set(name, html);
    }
  }
  for (const [name, figure] of Object.entries(body.charts)) {
    const slot = document.querySelector('[data-chart="' + name + '"]');
    if (!slot) {
      continue;
    }
    let plot = slot.querySelector(".js-plotly-plot");
    if (!plot) {
      plot = document.createElement("div");
      plot.id = "chart-" + name;
      slot.replaceChildren(plot);
    }
    await Plotly.react(plot, figure.data, figure.layout, figure.config);
  }
});

(function () {
  const select = document.getElementById("pair-select");
  if (select) {
    select.addEventListener("change", () => {
      const [symbol, timeframe] = select.value.split(" ");
      const query = new URLSearchParams({ symbol, timeframe });
      window.location.assign("/?" + query.toString());
    });
  }

  const form = document.getElementById("indicator-form");
  if (!form) {
    return;
  }
  const result = document.getElementById("prediction-result");

  // parts: strings or [text, className] pairs; built as text nodes (no HTML injection)
  function show(parts, kind) {
    result.className = "result " + kind;
    result.replaceChildren(
      ...[].concat(parts).map((part) => {
        if (typeof part === "string") {
          return document.createTextNode(part);
        }
        const span = document.createElement("span");
        span.className = part[1];
        span.textContent = part[0];
        return span;
      }),
    );
  }

  function readFeatures() {
    const features = {};
    const invalid = [];
    for (const input of form.querySelectorAll("input[data-feature]")) {
      const value = Number(input.value);
      const ok = input.value.trim() !== "" && Number.isFinite(value);
      input.setAttribute("aria-invalid", ok ? "false" : "true");
      if (ok) {
        features[input.name] = value;
      } else {
        invalid.push(input.name);
      }
    }
    return { features, invalid };
  }

  function describeError(body) {
    if (body && typeof body.detail === "string") {
      return body.detail;
    }
    if (body && Array.isArray(body.detail)) {
      return body.detail.map((item) => item.msg).join("; ");
    }
    return "the server refused the request";
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const { features, invalid } = readFeatures();
    if (invalid.length) {
      show("Enter a finite number for: " + invalid.join(", "), "error");
      return;
    }
    const query = new URLSearchParams({
      symbol: form.dataset.symbol,
      timeframe: form.dataset.timeframe,
    });
    show("Predicting…", "pending");
    try {
      const response = await fetch("/predict?" + query.toString(), {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ features }),
      });
      const body = await response.json();
      if (!response.ok) {
        show("Error " + response.status + ": " + describeError(body), "error");
        return;
      }
      const arrow = body.direction === "UP" ? "▲" : "▼";
      const probability = (body.proba_up * 100).toFixed(1);
      const size = body.action === "FLAT" ? "" : " " + (body.size * 100).toFixed(0) + "%";
      show(
        [
          [arrow + " " + body.direction, "direction"],
          " P(up) ",
          [probability + "%", "probability"],
          " · policy from flat: ",
          [body.action + size, "action"],
          " ",
          ["threshold " + body.threshold.toFixed(2) + " · " + body.policy.source + " policy · " + body.model_id, "muted"],
        ],
        body.direction === "UP" ? "up" : "down",
      );
    } catch (error) {
      show("Request failed: " + error.message, "error");
    }
  });

  form.addEventListener("reset", () => {
    show([], "");
    for (const input of form.querySelectorAll("input[data-feature]")) {
      input.removeAttribute("aria-invalid");
    }
  });
})();
