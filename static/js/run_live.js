// Live run page: polls the run's progress JSON and updates the bar, counts, ETA and job rows.
(function () {
  "use strict";
  var box = document.getElementById("run-progress");
  if (!box || box.dataset.live !== "1") { return; }
  var delay = parseInt(box.dataset.pollMs || "3000", 10);

  function chip(key, label, symbol) {
    var span = document.createElement("span");
    span.className = "verdict v-" + key;
    span.title = label;
    var mark = document.createElement("span");
    mark.setAttribute("aria-hidden", "true");
    mark.textContent = symbol;
    span.appendChild(mark);
    span.appendChild(document.createTextNode(" " + label));
    return span;
  }

  function render(data) {
    var bar = box.querySelector(".progress");
    bar.setAttribute("aria-valuenow", data.done);
    bar.setAttribute("aria-valuemax", data.total);
    bar.innerHTML = "";
    var list = box.querySelector(".progress-counts");
    list.innerHTML = "";
    data.segments.forEach(function (segment) {
      var part = document.createElement("span");
      part.className = "segment v-" + segment.key;
      part.style.width = segment.percent + "%";
      part.title = segment.count + " " + segment.label;
      bar.appendChild(part);
      var item = document.createElement("li");
      item.appendChild(chip(segment.key, segment.label, segment.symbol));
      var count = document.createElement("strong");
      count.textContent = segment.count;
      item.appendChild(document.createTextNode(" "));
      item.appendChild(count);
      list.appendChild(item);
    });
    box.querySelector(".done-count").textContent = data.done;
    box.querySelector(".total-count").textContent = data.total;
    box.querySelector(".percent").textContent = data.percent_done;
    box.querySelector(".eta").textContent = data.remaining_text
      ? "about " + data.remaining_text + " left, estimated from observed durations"
      : (data.running || data.queued ? "time left unknown until a job finishes" : "nothing left to run");
    Object.keys(data.jobs).forEach(function (id) {
      var row = document.querySelector('tr[data-job="' + id + '"]');
      if (!row) { return; }
      var job = data.jobs[id];
      var cell = row.querySelector(".job-state");
      cell.innerHTML = "";
      cell.appendChild(chip(job.key, job.label, job.symbol));
      if (job.duration) { row.querySelector(".job-duration").textContent = job.duration; }
    });
    var state = document.getElementById("run-state");
    if (state && data.state) { state.textContent = data.state.charAt(0).toUpperCase() + data.state.slice(1); }
  }

  function visibleJobIds() {
    return Array.prototype.map.call(document.querySelectorAll("tr[data-job]"), function (row) {
      return row.dataset.job;
    }).join(",");
  }

  function poll() {
    fetch(box.dataset.url + "?jobs=" + visibleJobIds(), {headers: {"Accept": "application/json"}})
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (data) {
        render(data);
        if (data.live) { window.setTimeout(poll, delay); }
      })
      .catch(function () { window.setTimeout(poll, delay * 2); });
  }
  window.setTimeout(poll, delay);
})();
