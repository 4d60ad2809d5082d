// The Usage page's chart: the series Django put in <script type="application/json"
// id="usage-chart-data"> drawn with the vendored Chart.js, stacked by model, with a metric
// switch (cost, tokens, requests) kept in the URL. The page's tables carry the same figures
// without JavaScript.
(() => {
  "use strict";

  const METRICS = {
    cost: { label: "Cost", unit: "USD" },
    tokens: { label: "Tokens", unit: "tokens" },
    requests: { label: "Requests", unit: "requests" },
  };

  const money = (value, digits) =>
    new Intl.NumberFormat("en-US", {
      style: "currency",
      currency: "USD",
      minimumFractionDigits: digits,
      maximumFractionDigits: digits,
    }).format(value);

  const count = (value) =>
    new Intl.NumberFormat("en-US", { notation: value >= 100000 ? "compact" : "standard" }).format(
      value,
    );

  // Small amounts keep their cents' fractions; an axis tick of $0.004 must not read $0.00.
  const formatValue = (metric, value) => {
    if (metric !== "cost") return count(value);
    if (value !== 0 && Math.abs(value) < 0.01) return money(value, 4);
    return money(value, 2);
  };

  const formatMoment = (iso, hourly, long) => {
    const options = { timeZone: "UTC", day: "numeric", month: "short" };
    if (long) options.year = "numeric";
    if (hourly) Object.assign(options, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
    return new Intl.DateTimeFormat("en-GB", options).format(new Date(iso));
  };

  const total = (values) => values.reduce((sum, value) => sum + value, 0);

  // What a screen reader hears for the canvas: the metric, the period, the total and the
  // busiest bucket (the tables below the chart have every figure).
  const describe = (data, metric) => {
    const hourly = data.granularity === "hour";
    const sums = data.labels.map((_, i) => total(data.series.map((line) => line[metric][i])));
    const busiest = sums.indexOf(Math.max(...sums));
    const first = formatMoment(data.labels[0], false, true);
    const last = formatMoment(data.labels[data.labels.length - 1], false, true);
    const parts = [
      `${hourly ? "Hourly" : "Daily"} ${METRICS[metric].label.toLowerCase()} from ${first} to ${last}, stacked by model.`,
      `Total ${formatValue(metric, total(sums))} across ${data.series.length} ${data.series.length === 1 ? "model" : "models"}.`,
    ];
    if (sums[busiest] > 0) {
      parts.push(
        `Highest: ${formatMoment(data.labels[busiest], hourly, false)}, ${formatValue(metric, sums[busiest])}.`,
      );
    }
    return parts.join(" ");
  };

  const datasets = (data, metric) =>
    data.series.map((line) => ({
      label: line.label,
      data: line[metric],
      backgroundColor: line.color,
      borderColor: line.color,
      borderWidth: 0,
      stack: "models",
    }));

  const draw = (canvas, data, metric) => {
    const hourly = data.granularity === "hour";
    return new window.Chart(canvas, {
      type: "bar",
      data: { labels: data.labels, datasets: datasets(data, metric) },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", intersect: false },
        scales: {
          x: {
            stacked: true,
            grid: { display: false },
            ticks: {
              color: "#4a4f5c",
              maxRotation: 0,
              autoSkip: true,
              autoSkipPadding: 12,
              callback(value) {
                return formatMoment(this.getLabelForValue(value), hourly, false);
              },
            },
          },
          y: {
            stacked: true,
            beginAtZero: true,
            grid: { color: "#e6e8ee" },
            ticks: {
              color: "#4a4f5c",
              maxTicksLimit: 6,
              callback: (value) => formatValue(chart.metric, value),
            },
            title: { display: true, text: METRICS[metric].unit, color: "#4a4f5c" },
          },
        },
        plugins: {
          legend: {
            position: "bottom",
            labels: { color: "#17181c", boxWidth: 14, boxHeight: 14, padding: 14 },
          },
          tooltip: {
            callbacks: {
              title: (items) => formatMoment(data.labels[items[0].dataIndex], hourly, true),
              label: (item) => `${item.dataset.label}: ${formatValue(chart.metric, item.parsed.y)}`,
              footer: (items) =>
                `Total: ${formatValue(chart.metric, total(items.map((item) => item.parsed.y)))}`,
            },
            // Models with nothing in this bucket stay out of the tooltip.
            filter: (item) => item.parsed.y !== 0,
          },
        },
      },
    });
  };

  // The one chart on the page; the metric the axis and tooltips format for.
  const chart = { instance: null, metric: "cost" };

  const show = (canvas, data, metric) => {
    chart.metric = metric;
    canvas.setAttribute("aria-label", describe(data, metric));
    if (chart.instance === null) {
      chart.instance = draw(canvas, data, metric);
      return;
    }
    chart.instance.data.datasets = datasets(data, metric);
    chart.instance.options.scales.y.title.text = METRICS[metric].unit;
    chart.instance.update();
  };

  document.addEventListener("DOMContentLoaded", () => {
    const source = document.getElementById("usage-chart-data");
    const canvas = document.getElementById("usage-chart");
    if (!source || !canvas || !window.Chart) return;
    const data = JSON.parse(source.textContent);
    const url = new URL(window.location.href);
    const wanted = url.searchParams.get("metric");
    const metric = Object.hasOwn(METRICS, wanted) ? wanted : "cost";
    const choices = document.querySelectorAll("input[name='metric']");
    choices.forEach((input) => {
      input.checked = input.value === metric;
      input.addEventListener("change", () => {
        if (!input.checked) return;
        show(canvas, data, input.value);
        // Kept in the URL (and so in bookmarks and the page's own links), without a reload.
        url.searchParams.set("metric", input.value);
        window.history.replaceState(null, "", url);
        document.querySelectorAll("a[data-keeps-filters]").forEach((link) => {
          const target = new URL(link.href);
          target.searchParams.set("metric", input.value);
          link.href = target.toString();
        });
      });
    });
    show(canvas, data, metric);
  });
})();
