// While a proposal's pre-checks are pending, reload its page now and then (at most 20 times),
// so the proposer and reviewers see the results without pressing reload.
(function () {
  "use strict";
  const key = "precheck-reloads:" + location.pathname;
  const reloads = Number(sessionStorage.getItem(key) || "0");
  if (!document.querySelector("[data-prechecks-pending]") || reloads >= 20) {
    sessionStorage.removeItem(key);
    return;
  }
  setTimeout(function () {
    sessionStorage.setItem(key, String(reloads + 1));
    location.reload();
  }, 5000);
})();
