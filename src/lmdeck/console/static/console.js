// lmdeck console: the CSRF header on every htmx request, the theme toggle and the uPlot charts.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRF-Token"] = csrfToken();
  });

  // A request from inside [data-swap-errors] shows a 4xx answer (a refusal naming the fix) where the
  // result goes; detail.elt is the swap's target, requestConfig.elt the element that sent the request.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr.status;
    var source = event.detail.requestConfig && event.detail.requestConfig.elt;
    if (status >= 400 && status < 500 && source && source.closest("[data-swap-errors]")) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  function currentTheme() {
    var set = document.documentElement.dataset.theme;
    if (set) return set;
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }

  function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  // Charts: every [data-chart] element is drawn from the JSON in the nearest script#...-series.
  var SERIES = {
    traffic: [
      { label: "requests", key: "requests", color: "--chart-1" },
      { label: "errors", key: "errors", color: "--chart-err" },
    ],
    latency: [
      { label: "p50 ms", key: "p50", color: "--chart-1" },
      { label: "p95 ms", key: "p95", color: "--chart-2" },
    ],
    cost: [{ label: "cost $", key: "cost_usd", color: "--chart-1" }],
    variants: [
      { label: "metric mean", key: "metric_mean", color: "--chart-1" },
      { label: "error rate", key: "error_rate", color: "--chart-err" },
    ],
    burndown: [
      { label: "spent $ (cumulative)", key: "spent_usd", color: "--chart-1" },
      { label: "limit $", key: "limit_usd", color: "--chart-err" },
    ],
    "release-metric": [
      { label: "baseline", key: "baseline", color: "--chart-2" },
      { label: "candidate", key: "candidate", color: "--chart-1" },
    ],
  };

  // uPlot draws a line only between two values: a value with none beside it (one busy bucket) gets a marker.
  function isolatedPoints(u, seriesIdx, show) {
    if (show) return null;
    var values = u.data[seriesIdx], found = [];
    for (var i = 0; i < values.length; i++) {
      if (values[i] != null && (i === 0 || values[i - 1] == null) && (i === values.length - 1 || values[i + 1] == null)) {
        found.push(i);
      }
    }
    return found.length ? found : null;
  }

  var GROUP_COLORS = ["--chart-1", "--chart-2", "--chart-3", "--chart-4", "--chart-5", "--chart-6"];

  function drawCharts(root) {
    if (typeof uPlot === "undefined") return;
    var charts = (root || document).querySelectorAll("[data-chart]");
    charts.forEach(function (el) {
      var holder = el.closest("section, .panel, main");
      var source = holder && holder.querySelector('script[type="application/json"]');
      if (!source) return;
      var data = JSON.parse(source.textContent);
      // A chart whose groups are known only at run time (spend per team, key or model) names its series.
      var kinds = SERIES[el.dataset.chart] || (data.series || []).map(function (s, i) {
        return { label: s.label, key: s.key, color: GROUP_COLORS[i % GROUP_COLORS.length] };
      });
      var columns = [data.x];
      var series = [{}];
      kinds.forEach(function (s) {
        columns.push(data[s.key] || []);
        series.push({
          label: s.label, stroke: css(s.color), width: 2, spanGaps: true,
          points: { size: 7, fill: css(s.color), filter: isolatedPoints },
        });
      });
      if (el._uplot) el._uplot.destroy();
      el.innerHTML = "";
      var width = Math.max(el.clientWidth || 300, 240);
      var axis = { stroke: css("--fg-muted"), grid: { stroke: css("--border") }, ticks: { stroke: css("--border") } };
      // A chart whose x is a position among named things (variants) says so with "names": no time axis.
      var names = data.names;
      var xAxis = names ? Object.assign({}, axis, {
        values: function (u, splits) {
          return splits.map(function (i) { return Number.isInteger(i) && names[i] !== undefined ? names[i] : ""; });
        },
      }) : axis;
      if (names) series[0] = { label: "variant", value: function (u, i) { return i == null ? "--" : names[i]; } };
      el._uplot = new uPlot(
        {
          width: width, height: 220, series: series, axes: [xAxis, axis], legend: { show: true },
          scales: { x: { time: !names } },
        },
        columns,
        el
      );
    });
  }
  window.lmdeckDrawCharts = drawCharts;

  document.addEventListener("DOMContentLoaded", function () {
    var toggle = document.getElementById("theme-toggle");
    if (toggle) {
      toggle.addEventListener("click", function () {
        var next = currentTheme() === "dark" ? "light" : "dark";
        document.documentElement.dataset.theme = next;
        try { localStorage.setItem("lmdeck-theme", next); } catch (e) { /* not kept */ }
        drawCharts(document);
      });
    }
    drawCharts(document);
  });
  document.addEventListener("htmx:afterSwap", function (event) { drawCharts(event.target); });
  var resizeTimer = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () { drawCharts(document); }, 200);
  });
})();
