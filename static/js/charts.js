// Draws every chart box of the page (testing_app/views/charts.py) from its figure's JSON data block.
// Loaded after plotly.js, both deferred; the pages hold no inline script (the CSP forbids them).
(function () {
  "use strict";
  document.querySelectorAll(".plotly-chart[data-figure]").forEach(function (box) {
    var source = document.getElementById(box.dataset.figure);
    if (!source) { return; }
    var figure = JSON.parse(source.textContent);
    window.Plotly.newPlot(box, figure.data, figure.layout, figure.config);
  });
})();
