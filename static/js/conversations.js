// The conversation list in groups, as the reader's calendar has them: Pinned, Today, Yesterday, Previous 7 days,
// Previous 30 days, then by month. Each item carries when it was last written in (data-updated); the headings are
// drawn here, in the browser's time zone, which the server does not know. Without JavaScript the list is one list.
//
// Whatever changes the list (a search, "More", a pin, a new chat put at the top, an item deleted) is followed by a
// MutationObserver, so no other script needs to know about the headings.
(function () {
  "use strict";
  var DAY = 24 * 60 * 60 * 1000;

  function startOfDay(date) {
    return new Date(date.getFullYear(), date.getMonth(), date.getDate()).getTime();
  }

  function groupOf(item, today) {
    if (item.classList.contains("pinned")) { return gettext("Pinned"); }
    var updated = new Date(item.dataset.updated);
    var days = Math.round((today - startOfDay(updated)) / DAY);
    if (days <= 0) { return gettext("Today"); }
    if (days === 1) { return gettext("Yesterday"); }
    if (days <= 7) { return gettext("Previous 7 days"); }
    if (days <= 30) { return gettext("Previous 30 days"); }
    return updated.toLocaleDateString(document.documentElement.lang || undefined, { month: "long", year: "numeric" });
  }

  function heading(text) {
    var li = document.createElement("li");
    li.className = "list-group";
    var title = document.createElement("h2");
    title.textContent = text;
    li.appendChild(title);
    return li;
  }

  // Headings before the first item of each group. Items without a date (one just deleted or archived, with its
  // Undo; "More") stay in the group they were in.
  function regroup(list) {
    list.querySelectorAll(":scope > li.list-group").forEach(function (old) { old.remove(); });
    var today = startOfDay(new Date());
    var current = null;
    list.querySelectorAll(":scope > li[data-updated]").forEach(function (item) {
      var group = groupOf(item, today);
      if (group !== current) {
        item.before(heading(group));
        current = group;
      }
    });
  }

  // Classes too: htmx gives an item swapped in its old attributes until the swap settles (a pin comes then).
  var WATCHED = { childList: true, subtree: true, attributes: true, attributeFilter: ["class", "data-updated"] };

  function watch(container) {
    var observer = new MutationObserver(function () {
      var list = container.querySelector("#conversation-list-items");
      if (!list) { return; }
      observer.disconnect();  // the headings drawn are not a change to follow
      regroup(list);
      observer.observe(container, WATCHED);
    });
    var list = container.querySelector("#conversation-list-items");
    if (list) { regroup(list); }
    observer.observe(container, WATCHED);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var list = document.getElementById("conversation-list");
    if (list) { watch(list.parentElement); }  // the list itself is replaced by a search
  });
})();
