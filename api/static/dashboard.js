// Dashboard behaviour: market switcher and the indicator form (fetch, no page reload).
"use strict";

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
