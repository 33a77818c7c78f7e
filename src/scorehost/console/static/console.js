// The console's own script: confirmations, copying keys, the charts. No inline script anywhere (the CSP).
"use strict";

document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

document.addEventListener("click", function (event) {
  var button = event.target.closest && event.target.closest("button[data-copy-key]");
  if (!button) return;
  fetch(button.getAttribute("data-keys-url"), { credentials: "same-origin" })
    .then(function (answer) {
      if (!answer.ok) throw new Error("HTTP " + answer.status);
      return answer.json();
    })
    .then(function (keys) {
      var key = keys[button.getAttribute("data-copy-key")];
      if (navigator.clipboard && window.isSecureContext) {
        return navigator.clipboard.writeText(key).then(function () { button.textContent = "Copied"; });
      }
      var field = document.createElement("input");  // no clipboard here: show it, selected, to copy by hand
      field.value = key;
      field.readOnly = true;
      field.className = "revealed";
      button.replaceWith(field);
      field.select();
    })
    .catch(function () { button.textContent = "Copy failed"; });
});

document.addEventListener("htmx:beforeSwap", function (event) {
  var log = event.detail.target;
  if (log.id === "log-tail") {
    log.dataset.follow = String(log.scrollTop + log.clientHeight >= log.scrollHeight - 4);
  }
});
document.addEventListener("htmx:afterSwap", function (event) {
  var log = event.detail.target;
  if (log.id === "log-tail" && log.dataset.follow !== "false") {
    log.scrollTop = log.scrollHeight;
  }
});

var CHARTS = [
  { title: "Requests per second", unit: "req/s", series: [["2xx", "#2e7d32"], ["4xx", "#ef6c00"], ["5xx", "#c62828"]] },
  { title: "Latency (ms)", unit: "ms", series: [["p50_ms", "#1565c0"], ["p99_ms", "#6a1b9a"]] },
  { title: "In flight", unit: "requests", series: [["in_flight", "#37474f"]] },
];

function startCharts(holder) {
  var url = holder.getAttribute("data-metrics-url");
  var boxes = CHARTS.map(function () {  // all in the grid before any is measured, so each gets its column
    var box = document.createElement("div");
    box.className = "chart";
    holder.appendChild(box);
    return box;
  });
  var plots = CHARTS.map(function (chart, index) {
    var box = boxes[index];
    var series = [{}].concat(chart.series.map(function (s) {
      return { label: s[0].replace("_ms", ""), stroke: s[1], width: 2, spanGaps: false };
    }));
    var options = {
      title: chart.title,
      width: Math.max(240, box.clientWidth || 320),
      height: 180,
      series: series,
      axes: [{}, { size: 56 }],
      scales: { y: { range: function (u, min, max) { return [0, Math.max(1, max || 0) * 1.1]; } } },
    };
    var empty = [[]].concat(chart.series.map(function () { return []; }));
    return { chart: chart, box: box, plot: new uPlot(options, empty, box) };
  });
  function resize() {
    plots.forEach(function (p) { p.plot.setSize({ width: Math.max(240, p.box.clientWidth), height: 180 }); });
  }
  window.addEventListener("resize", resize);
  function refresh() {
    fetch(url, { credentials: "same-origin" })
      .then(function (answer) { return answer.ok ? answer.json() : null; })
      .then(function (data) {
        if (!data || !data.t) return;
        plots.forEach(function (p) {
          p.plot.setData([data.t].concat(p.chart.series.map(function (s) { return data[s[0]] || []; })));
        });
        var total = 0;
        ["2xx", "4xx", "5xx"].forEach(function (name) {
          (data[name] || []).forEach(function (value) { total += value || 0; });
        });
        holder.setAttribute("data-points", String(data.t.length));
        holder.setAttribute("data-requests", total.toFixed(3));
        window.setTimeout(refresh, Math.max(1, data.interval || 5) * 1000);
      })
      .catch(function () { window.setTimeout(refresh, 5000); });
  }
  refresh();
}

document.addEventListener("DOMContentLoaded", function () {
  var log = document.getElementById("log-tail");
  if (log) log.scrollTop = log.scrollHeight;  // the newest lines first in view
  document.querySelectorAll("[data-metrics-url]").forEach(startCharts);
});
