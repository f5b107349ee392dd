// Small behaviours for every page. No inline scripts: the CSP forbids them.
(function () {
  "use strict";
  var root = document.documentElement;
  var THEMES = ["auto", "light", "dark"];

  var stored = window.localStorage.getItem("theme");
  if (stored && THEMES.indexOf(stored) >= 0) {
    root.dataset.theme = stored;
  }

  document.addEventListener("click", function (event) {
    var toggle = event.target.closest("[data-theme-toggle]");
    if (toggle) {
      var next = THEMES[(THEMES.indexOf(root.dataset.theme || "auto") + 1) % THEMES.length];
      root.dataset.theme = next;
      window.localStorage.setItem("theme", next);
      return;
    }
    var sidebarToggle = event.target.closest("[data-sidebar-toggle]");
    if (sidebarToggle) {
      var sidebar = document.getElementById("sidebar");
      if (sidebar) {
        var open = sidebar.classList.toggle("open");
        sidebarToggle.setAttribute("aria-expanded", open ? "true" : "false");
      }
    }
  });

  // Forms marked data-autosubmit submit when a select changes (language switcher).
  document.addEventListener("change", function (event) {
    if (event.target.matches("select[data-autosubmit]")) {
      event.target.form.submit();
    }
  });
})();
