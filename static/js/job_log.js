// A job's log on its page: the steps outline and the text, followed live while the job runs.
// Polls the JSON endpoint from the last offset and appends what is new; a step's marker line
// (`##[step <UTC time>] <name>`, written by the worker) becomes an anchor in the text and a
// line of the outline, and the step before it gets its duration.
(function () {
  "use strict";
  var pre = document.getElementById("job-log");
  if (!pre) { return; }
  var STEP = /^##\[step (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)\] ?(.*)$/;
  var END = /^##\[end (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)\]$/;
  var outline = document.getElementById("log-steps");
  var steps = parseInt(pre.dataset.steps || "0", 10);
  // The end of a log is where the story ends: start there, finished or not; unless the address
  // names a step, which the browser has scrolled to.
  if (!window.location.hash) { pre.scrollTop = pre.scrollHeight; }
  if (pre.dataset.live !== "1") { return; }
  var offset = parseInt(pre.dataset.offset || "0", 10);
  var delay = parseInt(pre.dataset.pollMs || "3000", 10);
  var fallback = pre.dataset.fallback === "1";
  var status = document.getElementById("log-live");
  var state = document.getElementById("job-state");

  function atBottom() {
    return pre.scrollHeight - pre.scrollTop - pre.clientHeight < 40;
  }

  function showState(s) {
    if (!state || !s) { return; }
    state.innerHTML = "";
    var chip = document.createElement("span");
    chip.className = "verdict v-" + s.key;
    chip.title = s.label;
    chip.textContent = s.symbol + " " + s.label;
    state.appendChild(chip);
  }

  function duration(seconds) {
    if (seconds < 59.95) { return seconds.toFixed(1) + " s"; }
    var whole = Math.round(seconds);
    var hours = Math.floor(whole / 3600), minutes = Math.floor((whole % 3600) / 60);
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    if (hours) { return hours + " h " + pad(minutes) + " min"; }
    return minutes + " min " + pad(whole % 60) + " s";
  }

  // The step still running ends at `at` (the next step's start, or the log's end).
  function endRunningStep(at) {
    if (!outline) { return; }
    var running = outline.querySelector("li.running");
    if (!running) { return; }
    var seconds = (Date.parse(at) - Date.parse(running.dataset.started)) / 1000;
    running.classList.remove("running");
    running.querySelector(".step-duration").textContent = duration(Math.max(0, seconds));
  }

  function addStep(at, name) {
    endRunningStep(at);
    steps += 1;
    var empty = document.getElementById("no-steps");
    if (empty) { empty.remove(); }
    if (!outline) { return; }
    outline.parentNode.hidden = false;
    var item = document.createElement("li");
    item.className = "running";
    item.dataset.started = at;
    var link = document.createElement("a");
    link.href = "#log-step-" + steps;
    link.textContent = name;
    var times = document.createElement("span");
    times.className = "step-times";
    var time = document.createElement("time");
    time.dateTime = at;
    time.title = at.replace("T", " ").slice(0, 19) + " UTC";
    time.textContent = at.slice(11, 19);
    var length = document.createElement("span");
    length.className = "step-duration";
    length.textContent = "running";
    times.append(time, " · ", length);
    item.append(link, " ", times);
    outline.appendChild(item);
  }

  // New text, line by line: marker lines become anchored spans, the rest plain text.
  function append(text) {
    var fragment = document.createDocumentFragment();
    var plain = "";
    text.split(/(?<=\n)/).forEach(function (line) {
      var bare = line.replace(/\r?\n$/, "");
      var step = STEP.exec(bare);
      var end = END.exec(bare);
      if (end) { endRunningStep(end[1]); }
      if (!step) { plain += line; return; }
      if (plain) { fragment.appendChild(document.createTextNode(plain)); plain = ""; }
      addStep(step[1], step[2]);
      var span = document.createElement("span");
      span.className = "log-step-line";
      span.id = "log-step-" + steps;
      span.textContent = line;
      fragment.appendChild(span);
    });
    if (plain) { fragment.appendChild(document.createTextNode(plain)); }
    pre.appendChild(fragment);
  }

  function poll() {
    fetch(pre.dataset.url + "?offset=" + offset, {headers: {"Accept": "application/json"}})
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (data) {
        var follow = atBottom();
        if (data.available) {
          if (data.text) { append(data.text); }
          offset = data.next_offset;
        } else if (fallback && data.tail) {
          pre.textContent = data.tail;
        }
        if (follow) { pre.scrollTop = pre.scrollHeight; }
        showState(data.state);
        if (data.live || (data.available && data.next_offset < data.size)) {
          window.setTimeout(poll, data.live ? delay : 0);
        } else if (status) {
          status.innerHTML = "The job has finished. <a href=''>Reload</a> for the failure excerpt and every recorded fact.";
        }
      })
      .catch(function (error) {
        if (status) { status.textContent = "Live updates paused (" + error.message + "); retrying."; }
        window.setTimeout(poll, delay * 2);
      });
  }
  window.setTimeout(poll, delay);
})();
