// Proposal form: "Add another maintainer" clones the formset's empty row (the form works
// without this script too: it always renders a few blank rows).
(function () {
  "use strict";
  const button = document.getElementById("add-maintainer");
  const template = document.getElementById("maintainer-row-template");
  const rows = document.getElementById("maintainer-rows");
  const total = document.querySelector('input[name="maintainers-TOTAL_FORMS"]');
  const max = document.querySelector('input[name="maintainers-MAX_NUM_FORMS"]');
  if (!button || !template || !rows || !total) {
    return;
  }
  function refresh() {
    button.hidden = max && Number(total.value) >= Number(max.value);
  }
  button.addEventListener("click", function () {
    const index = Number(total.value);
    const html = template.innerHTML.replace(/__prefix__/g, String(index));
    rows.insertAdjacentHTML("beforeend", html);
    total.value = String(index + 1);
    const first = rows.lastElementChild.querySelector("input");
    if (first) {
      first.focus();
    }
    refresh();
  });
  refresh();
})();
