// The overview's fleet trend chart (Chart.js, vendored), with a 30 / 90 days switch.
// The data comes from the page (json_script "trend-data"); the same numbers are in a table on
// the page, so the chart adds nothing a screen reader would miss.
(function () {
  "use strict";
  var canvas = document.getElementById("trend-chart");
  var data = document.getElementById("trend-data");
  if (!canvas || !data || !window.Chart) return;
  var days = JSON.parse(data.textContent);

  // Besides its colour, each line has its own dash pattern and point shape, so the series
  // can be told apart without colour.
  var SERIES = [
    { key: "compliant", label: "Compliant", colour: "#1a7f37", dash: [], point: "circle" },
    { key: "non_compliant", label: "Non-compliant", colour: "#cf222e", dash: [6, 3], point: "crossRot" },
    { key: "excepted", label: "Excepted", colour: "#0969da", dash: [8, 2, 2, 2], point: "rectRot" },
    { key: "unknown", label: "Unknown", colour: "#bf8700", dash: [2, 2], point: "triangle" },
    { key: "new", label: "New", colour: "#57606a", dash: [10, 4], point: "rect" },
    { key: "paused", label: "Paused", colour: "#8c959f", dash: [1, 4], point: "dash" }
  ];

  function lastDays(count) {
    return days.slice(Math.max(0, days.length - count));
  }

  function datasets(rows) {
    return SERIES.map(function (series) {
      return {
        label: series.label,
        data: rows.map(function (row) { return row[series.key]; }),
        borderColor: series.colour,
        backgroundColor: series.colour,
        borderDash: series.dash,
        pointStyle: series.point,
        pointRadius: rows.length > 40 ? 0 : 3,
        borderWidth: 2,
        tension: 0
      };
    });
  }

  function render(count) {
    var rows = lastDays(count);
    chart.data.labels = rows.map(function (row) { return row.day; });
    chart.data.datasets = datasets(rows);
    chart.update();
  }

  var chart = new window.Chart(canvas, {
    type: "line",
    data: { labels: [], datasets: [] },
    options: {
      animation: false,
      maintainAspectRatio: false,
      interaction: { mode: "index", intersect: false },
      scales: { y: { beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "servers" } } },
      plugins: { legend: { labels: { usePointStyle: true } } }
    }
  });

  var buttons = document.querySelectorAll(".segmented button[data-days]");
  buttons.forEach(function (button) {
    button.addEventListener("click", function () {
      buttons.forEach(function (other) { other.setAttribute("aria-pressed", String(other === button)); });
      render(Number(button.dataset.days));
    });
  });
  render(30);
})();
