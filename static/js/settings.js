// The settings pages: copy a new token, filter the model table, keep the
// theme preference in step with the theme toggle. No inline scripts (CSP).
(function () {
  "use strict";

  function copyText(input) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(input.value);
    }
    // Plain http: no Clipboard API. Select the text and try the old way.
    input.focus();
    input.select();
    return document.execCommand && document.execCommand("copy") ? Promise.resolve() : Promise.reject();
  }

  function showCopyButtons(root) {
    root.querySelectorAll("button[data-copy][hidden]").forEach(function (button) {
      button.hidden = false;
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy]");
    if (!button) {
      return;
    }
    var input = document.querySelector(button.dataset.copy);
    if (!input) {
      return;
    }
    var label = button.dataset.label || button.textContent;
    button.dataset.label = label;
    copyText(input).then(
      function () { button.textContent = button.dataset.copied || label; },
      function () { input.select(); button.textContent = button.dataset.copyFailed || label; }
    ).then(function () {
      window.setTimeout(function () { button.textContent = label; }, 2500);
    });
  });

  // A readonly token field selects all of itself, for copying by hand.
  document.addEventListener("focusin", function (event) {
    if (event.target.matches("input[data-select-all]")) {
      event.target.select();
    }
  });

  // The model table filter: rows carry their lower-cased text in data-search.
  function filterRows(input) {
    var body = document.querySelector(input.dataset.filterRows);
    if (!body) {
      return;
    }
    var needle = input.value.trim().toLowerCase();
    var rows = body.rows;
    var shown = 0;
    for (var i = 0; i < rows.length; i++) {
      var text = rows[i].dataset.search;
      if (text === undefined) {
        continue;
      }
      var match = !needle || text.indexOf(needle) !== -1;
      rows[i].hidden = !match;
      if (match) {
        shown++;
      }
    }
    var count = input.dataset.filterCount && document.querySelector(input.dataset.filterCount);
    if (count && count.dataset.template) {
      var total = body.querySelectorAll("tr[data-search]").length;
      count.textContent = count.dataset.template.replace("{shown}", shown).replace("{total}", total);
    }
  }

  var pending = null;
  document.addEventListener("input", function (event) {
    var input = event.target;
    if (!input.matches("input[data-filter-rows]")) {
      return;
    }
    window.clearTimeout(pending);
    pending = window.setTimeout(function () { filterRows(input); }, 80);
  });

  // The theme toggle keeps its choice in localStorage, which wins over the
  // server's; saving the preference must update it too.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches("form[data-preferences-form]")) {
      return;
    }
    var theme = form.querySelector("[name=theme]");
    if (theme) {
      window.localStorage.setItem("theme", theme.value);
    }
  });

  document.addEventListener("DOMContentLoaded", function () { showCopyButtons(document); });
  // Content swapped in by htmx (a new token panel) gets the same treatment.
  document.addEventListener("htmx:load", function (event) { showCopyButtons(event.detail.elt); });
})();
