// Small behaviours for every page. No inline scripts: the CSP forbids them.
(function () {
  "use strict";
  var root = document.documentElement;
  var THEMES = ["auto", "light", "dark"];

  var stored = window.localStorage.getItem("theme");
  if (stored && THEMES.indexOf(stored) >= 0) {
    root.dataset.theme = stored;
  }

  // The reader's time zone, for the variables of a system prompt ({{CURRENT_TIME}}: chatapp/variables.py).
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone) { document.cookie = "tz=" + zone + "; path=/; max-age=31536000; SameSite=Lax"; }
  } catch (error) { /* without Intl: the server's time zone */ }

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
      showSidebar(!sidebarIsOpen());
    } else if (sidebarIsOpen() && !event.target.closest("#sidebar")) {
      showSidebar(false);  // a tap beside the open sidebar (on a phone) closes it
    }
  });

  // Signing out forgets the messages being written (chat.js keeps them): the next person at this browser
  // must not find them.
  document.addEventListener("submit", function (event) {
    if (!event.target.matches("[data-sign-out]")) { return; }
    Object.keys(window.localStorage).forEach(function (key) {
      if (key.indexOf("draft:") === 0) { window.localStorage.removeItem(key); }
    });
  });

  // The conversation list slides over the page on narrow screens.
  function sidebarIsOpen() {
    var sidebar = document.getElementById("sidebar");
    return Boolean(sidebar && sidebar.classList.contains("open"));
  }
  function showSidebar(open) {
    var sidebar = document.getElementById("sidebar");
    var toggle = document.querySelector("[data-sidebar-toggle]");
    if (!sidebar || !toggle) { return; }
    sidebar.classList.toggle("open", open);
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
  }
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && sidebarIsOpen()) {
      event.preventDefault();  // this Escape closes the list; it does not also stop an answer
      showSidebar(false);
      document.querySelector("[data-sidebar-toggle]").focus();
    }
  });

  // Forms marked data-autosubmit submit when a select changes (language switcher).
  document.addEventListener("change", function (event) {
    if (event.target.matches("select[data-autosubmit]")) {
      event.target.form.submit();
    }
  });
})();
