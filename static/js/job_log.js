// Live tail of a running job's log: polls the JSON endpoint and appends new lines, no reload.
(function () {
  "use strict";
  var pre = document.getElementById("job-log");
  if (!pre) { return; }
  // The end of a log is where the story ends: start there, finished or not.
  pre.scrollTop = pre.scrollHeight;
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

  function poll() {
    fetch(pre.dataset.url + "?offset=" + offset, {headers: {"Accept": "application/json"}})
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (data) {
        var follow = atBottom();
        if (data.available) {
          if (data.text) { pre.appendChild(document.createTextNode(data.text)); }
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
  pre.scrollTop = pre.scrollHeight;
  window.setTimeout(poll, delay);
})();
