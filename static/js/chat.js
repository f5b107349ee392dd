// The chat page: keyboard shortcuts, composer reset, reasoning fold, scrolling.
(function () {
  "use strict";

  function input() { return document.getElementById("composer-input"); }
  function messages() { return document.getElementById("messages"); }

  function nearBottom(el) {
    return el.scrollHeight - el.scrollTop - el.clientHeight < 120;
  }
  function scroller() { return document.getElementById("main"); }

  // After an out-of-band swap. htmx's event names the element swapped out,
  // already detached for a whole-element swap: `callback` gets the one now
  // in the page, found by its id.
  function onSwappedIn(callback) {
    document.addEventListener("htmx:oobAfterSwap", function (event) {
      var target = event.detail && event.detail.target;
      var swapped = target && target.id && document.getElementById(target.id);
      if (swapped) { callback(swapped); }
    });
  }

  // The socket sends the answers being written to a page that shows the
  // branch's end. One opened above it (a search result, a version flipped
  // far up) says when it comes down to it, or leaves it; the socket's
  // address told it how the page was drawn (?end=0), and it opens with that
  // again after a reconnection.
  var socket = null;
  var told = null;  // what the socket was last told: whether the page shows the end
  function showsEnd() {
    var last = messages() && messages().lastElementChild;
    return !(last && last.matches(".later-messages"));
  }
  function follow() {
    var end = showsEnd();
    if (socket && end !== told) {
      socket.send(JSON.stringify({ action: "follow", end: end }));
      told = end;
    }
  }
  document.addEventListener("htmx:wsOpen", function (event) {
    socket = event.detail.socketWrapper;
    told = !/[?&]end=0/.test(event.target.getAttribute("ws-connect"));
    follow();
  });
  document.addEventListener("htmx:afterSettle", follow);
  document.addEventListener("htmx:wsAfterMessage", follow);

  // "Latest message": the way back down for a reader a screen or more above
  // the latest message, or on a page that stops above it (a search result,
  // a version flipped far up), which opens again at the end.
  function showJump() {
    var button = document.getElementById("jump-to-latest");
    var el = scroller();
    if (!button || !el || !messages()) { return; }
    button.hidden = showsEnd() && el.scrollHeight - el.scrollTop - el.clientHeight < el.clientHeight;
  }
  document.addEventListener("scroll", showJump, true);  // #main scrolls, not the document
  document.addEventListener("htmx:afterSettle", showJump);
  document.addEventListener("htmx:wsAfterMessage", showJump);
  document.addEventListener("click", function (event) {
    if (!event.target.closest("#jump-to-latest")) { return; }
    if (showsEnd()) {
      scroller().scrollTop = scroller().scrollHeight;
    } else {
      window.location.assign(messages().dataset.conversationUrl);
    }
    input().focus({ preventScroll: true });
  });

  // A new answer's frame brings the branch from its first new message on,
  // naming the message it follows: what the page shows after that one (the
  // old answer of a regeneration, the old branch of an edit) goes first.
  // A page that does not show that message is out of date, or opened above
  // the end (a search result, a version flipped far up): one that sent the
  // message goes to the end, where it is; one that only reads stays, and
  // its link to the later messages brings them when the reader comes to it.
  var sentHere = false;
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var fragment = event.detail.fragment;
    var after = fragment && fragment.dataset && fragment.dataset.branchAfter;
    if (!after) { return; }
    var anchor = document.getElementById("m-" + after);
    var list = event.detail.target;
    if (!anchor || anchor.parentElement !== list) {
      event.detail.shouldSwap = false;
      if (sentHere || showsEnd()) {
        // The conversation's own address: a page opened above the end (?keep=) would open there again.
        window.location.replace(list.dataset.conversationUrl || window.location.pathname);
      }
      return;
    }
    while (anchor.nextSibling) { anchor.nextSibling.remove(); }
  });
  document.body.addEventListener("htmx:wsAfterSend", function (event) {
    var form = event.target.closest && event.target.closest("form");
    if (form && form.id !== "stop-form") { sentHere = true; }
  });

  // "Branch in new chat" shares its answer's form with Regenerate, which goes over the socket (ws-send); it goes to
  // its own page instead. Stopped before the form's own listeners (htmx's), the browser posts it to its formaction.
  document.addEventListener("submit", function (event) {
    if (event.submitter && event.submitter.hasAttribute("data-branch")) { event.stopPropagation(); }
  }, true);

  // The header's panels (settings, share) drop down over the messages: Esc, or a click elsewhere, folds the open one.
  function openPanel() { return document.querySelector("#chat-header details[open]"); }
  document.addEventListener("keydown", function (event) {
    var panel = openPanel();
    if (event.key === "Escape" && !event.shiftKey && panel) {
      event.preventDefault();  // folding it is all this Esc does: not a stop too
      panel.open = false;
      panel.querySelector("summary").focus();
    }
  });
  document.addEventListener("click", function (event) {
    var panel = openPanel();
    if (panel && !panel.contains(event.target)) { panel.open = false; }
  });

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && target.matches("textarea[name=message]")) {
      event.preventDefault();
      // Text, or files alone (attachments.js): "what is in this picture?" may go without saying.
      if (target.value.trim() || target.form.querySelector("input[name=attachment]:not(:disabled)")) {
        target.form.requestSubmit();
      }
    } else if (event.key === "Escape" && event.shiftKey) {
      var box = input();  // Shift+Esc: back to the composer, as in Open WebUI and ChatGPT
      if (box) { event.preventDefault(); box.focus(); }
    } else if (event.key === "Escape" && !event.defaultPrevented) {
      var stop = document.getElementById("stop-button");
      if (stop && stop.offsetParent !== null) { stop.click(); }
    } else if ((event.ctrlKey || event.metaKey) && event.shiftKey && event.key.toLowerCase() === "o") {
      var newChat = document.querySelector("a.new-chat");  // Ctrl+Shift+O (Cmd on a Mac): a new chat
      if (newChat) { event.preventDefault(); window.location.assign(newChat.href); }
    }
  });

  // The composer empties as it sends; if the server refuses the message (an
  // answer still being written, too long), its notice brings the text back.
  // An accepted message comes with the notice emptied.
  var unsent = null;
  document.body.addEventListener("htmx:wsAfterSend", function (event) {
    var form = event.target.closest && event.target.closest("form");
    if (form && form.id === "composer") {
      unsent = input().value;
      input().value = "";
      window.localStorage.removeItem(draftKey());  // a new chat's: its address is not the chat's yet
    }
  });
  // Others that hold what was sent (attachments.js) hear it as "chat:answered", detail.refused.
  onSwappedIn(function (notice) {
    if (notice.id !== "chat-notice") { return; }
    sentHere = false;  // the answer to what was sent: refused, or started (its messages came first)
    var refused = Boolean(notice.textContent.trim());
    var box = input();
    if (refused && unsent !== null && box && !box.value) {
      box.value = unsent;
      keepDraft();
    }
    unsent = null;
    document.dispatchEvent(new CustomEvent("chat:answered", { detail: { refused: refused } }));
  });

  // A message being written is kept in the browser (per chat, and one for
  // a new chat) until it is sent: a reload, a click elsewhere or a closed
  // tab does not lose it. Signing out forgets them all (app.js).
  function draftKey() {
    var list = messages();
    return "draft:" + ((list && list.dataset.conversationUrl) || "new");
  }
  function keepDraft() {
    var box = input();
    if (!box) { return; }
    if (box.value.trim()) { window.localStorage.setItem(draftKey(), box.value); }
    else { window.localStorage.removeItem(draftKey()); }
  }
  document.addEventListener("input", function (event) {
    if (event.target.id === "composer-input") { keepDraft(); }
  });

  // While the socket is down (a server restart, a network blip) htmx keeps
  // trying, and holds what is sent until it is back: say so.
  function showConnection(up) {
    var status = document.getElementById("connection-status");
    if (status) { status.textContent = up ? "" : gettext("Connection lost. Reconnecting…"); }
  }
  document.addEventListener("htmx:wsClose", function () { showConnection(false); });
  document.addEventListener("htmx:wsOpen", function () { showConnection(true); });

  var stickToBottom = true;
  document.addEventListener("htmx:wsBeforeMessage", function () {
    var el = scroller();
    stickToBottom = el ? nearBottom(el) : false;
  });
  document.addEventListener("htmx:wsAfterMessage", function () {
    var list = messages();
    // The first message of a new chat created the conversation: show its URL.
    var url = list && list.dataset.conversationUrl;
    if (url && window.location.pathname !== url) {
      window.history.replaceState(null, "", url);
    }
    var el = scroller();
    if (el && stickToBottom) { el.scrollTop = el.scrollHeight; }
  });

  // A new chat's first answer inserts it at the top of the list: below the
  // pinned ones, as the server orders it, and never twice (a page that
  // already lists it, a socket that reconnected).
  onSwappedIn(function (list) {
    if (list.id !== "conversation-list-items") { return; }
    var added = list.firstElementChild;
    if (!added || !added.id) { return; }
    list.querySelectorAll("#" + CSS.escape(added.id)).forEach(function (item) {
      if (item !== added) { item.remove(); }
    });
    var pinned = list.querySelectorAll(".conversation-item.pinned");
    var lastPinned = pinned[pinned.length - 1];
    if (lastPinned && lastPinned !== added && !added.classList.contains("pinned")) { lastPinned.after(added); }
    var empty = list.querySelector("li.empty");
    if (empty) { empty.remove(); }
  });

  // A new title (generated, or renamed from the list) is the tab's too.
  onSwappedIn(function (title) {
    if (title.id === "chat-title") { document.title = title.textContent.trim() + " · Switchboard"; }
  });

  // "Earlier messages were left out here": a frame lists the messages where
  // what the models were sent began, for the branch as it now is. A
  // regenerated answer's mark goes with it; a new answer's comes when it is done.
  onSwappedIn(function (cuts) {
    if (cuts.id !== "context-cuts") { return; }
    var list = messages();
    var mark = cuts.querySelector(".context-cut");
    list.querySelectorAll(".context-cut").forEach(function (old) { old.remove(); });
    cuts.dataset.cuts.split(" ").forEach(function (id) {
      var message = id && document.getElementById("m-" + id);
      if (message && message.parentElement === list) { list.insertBefore(mark.cloneNode(true), message); }
    });
  });

  // Where htmx redraws messages, the reader's place stays. A long
  // conversation's page carries its latest messages, and the earlier ones
  // replace the link above them once it comes into view: what was first below
  // the link stays put. A version flipped takes the old one's place on screen,
  // however many of the messages above it the new page of the branch carries.
  var kept = null;
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    var request = event.detail.requestConfig || {};
    var flipped = request.elt && request.elt.closest && request.elt.closest("article");
    var version = /\/versions\/(\d+)\/$/.exec(request.path || "");
    kept = null;
    if (target && target.classList.contains("earlier-messages") && target.nextElementSibling) {
      var below = target.nextElementSibling;
      kept = { element: below, top: below.getBoundingClientRect().top };
    } else if (flipped && version) {
      kept = { id: "m-" + version[1], top: flipped.getBoundingClientRect().top };
    }
  });
  function keepPlace() {
    var el = scroller();
    var element = kept && (kept.element || document.getElementById(kept.id));
    if (element && el) { el.scrollTop += element.getBoundingClientRect().top - kept.top; }
  }
  document.addEventListener("htmx:afterSwap", keepPlace);
  // Again once the new messages settle (htmx's settling step, their math typeset): then forget it.
  document.addEventListener("htmx:afterSettle", function () { keepPlace(); kept = null; });

  // A window that failed to come (the network dropped, the server restarted)
  // leaves its link; clicking it then asks for that window again, rather than
  // leaving the page.
  var WINDOW_LINKS = ".earlier-messages, .later-messages";
  document.addEventListener("htmx:afterRequest", function (event) {
    var elt = event.detail.elt;
    if (!event.detail.successful && elt.matches && elt.matches(WINDOW_LINKS)) {
      elt.classList.add("failed");
    }
  });
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a");
    var sentinel = link && link.parentElement;
    if (!sentinel || !sentinel.matches(WINDOW_LINKS) || !sentinel.classList.contains("failed")) { return; }
    event.preventDefault();
    sentinel.classList.remove("failed");
    htmx.ajax("GET", sentinel.getAttribute("hx-get"), { source: sentinel, target: sentinel, swap: "outerHTML" });
  });

  // When the answer starts, the reasoning block folds to "Thought for N s".
  onSwappedIn(function (summary) {
    if (summary.matches("summary[data-collapse]")) {
      summary.removeAttribute("data-collapse");
      summary.parentElement.open = false;
    }
  });

  // Editing a question or an answer: a <details> (it opens without
  // JavaScript too; an answer's holds a link to its form, which comes in
  // the link's place as it first opens); here opening focuses the text,
  // Cancel closes it, and sending closes it.
  function focusEdit(edit) {
    var box = edit.querySelector("textarea");
    if (box) { box.focus(); }
  }
  document.addEventListener("toggle", function (event) {
    var edit = event.target;
    if (!(edit.matches && edit.matches("details.edit") && edit.open)) { return; }
    var link = edit.querySelector("a[data-edit-form]");
    if (link) {
      htmx.ajax("GET", link.href, { target: link, swap: "outerHTML" }).then(function () { focusEdit(edit); });
    } else {
      focusEdit(edit);
    }
  }, true);
  document.body.addEventListener("htmx:wsAfterSend", function (event) {
    var edit = event.target.closest && event.target.closest("details.edit");
    if (edit) { edit.open = false; }
  });

  document.addEventListener("click", function (event) {
    var close = event.target.closest("[data-edit-close]");
    if (close) { close.closest("details.edit").open = false; }
  });

  // The model picker shows the icon of the selected model's provider.
  function showProviderIcon() {
    var select = document.getElementById("model-select");
    var icon = document.getElementById("model-provider-icon");
    var option = select && select.selectedOptions[0];
    var group = option && option.parentElement;
    if (icon && group && group.dataset.icon) { icon.src = group.dataset.icon; }
  }
  document.addEventListener("change", function (event) {
    if (event.target.id === "model-select") { showProviderIcon(); }
  });
  onSwappedIn(function (select) {  // the chat's settings changed its model
    if (select.id === "model-select") {
      var filter = document.getElementById("model-filter");
      if (filter) { filter.value = ""; }
      showProviderIcon();
    }
  });

  // The model search: options whose name, id or provider lack a typed word
  // are hidden; if the chosen model is among them, the first match is chosen.
  var SEARCH_FROM = 8;  // options; a short list needs no search
  function filterModels(query) {
    var select = document.getElementById("model-select");
    var words = query.toLowerCase().split(/\s+/).filter(Boolean);
    var first = null;
    Array.prototype.forEach.call(select.options, function (option) {
      if (!option.value) { return; }  // "no longer available", "no models"
      var group = option.parentElement.label || "";
      var text = (option.textContent + " " + option.value + " " + group).toLowerCase();
      option.hidden = !words.every(function (word) { return text.indexOf(word) >= 0; });
      if (!option.hidden && !first) { first = option; }
    });
    Array.prototype.forEach.call(select.querySelectorAll("optgroup"), function (group) {
      group.hidden = !group.querySelector("option:not([hidden])");
    });
    var chosen = select.selectedOptions[0];
    if (first && (!chosen || chosen.hidden || !chosen.value)) {
      select.value = first.value;
      showProviderIcon();
    }
  }
  document.addEventListener("input", function (event) {
    if (event.target.id === "model-filter") { filterModels(event.target.value); }
  });
  document.addEventListener("keydown", function (event) {
    if (event.target.id === "model-filter" && event.key === "Enter") {
      event.preventDefault();  // Enter picks, it does not send the message
      input().focus();
    }
  });

  // The words a search matched, marked in the message it opened at (where
  // the browser has the CSS Custom Highlight API): each word on its own, as
  // PostgreSQL's full-text search matches them.
  function highlightSearch(message, query) {
    if (!query || !window.CSS || !CSS.highlights || typeof Highlight === "undefined") { return; }
    var words = query.toLowerCase().split(/\s+/).filter(Boolean);
    var content = message.querySelector(".content") || message;
    var walker = document.createTreeWalker(content, NodeFilter.SHOW_TEXT);
    var found = new Highlight();
    for (var node = walker.nextNode(); node; node = walker.nextNode()) {
      var text = node.data.toLowerCase();
      if (text.length !== node.data.length) { continue; }  // a letter whose lower case is longer: offsets would not match
      words.forEach(function (word) {
        for (var at = text.indexOf(word); at !== -1; at = text.indexOf(word, at + word.length)) {
          var range = document.createRange();
          range.setStart(node, at);
          range.setEnd(node, at + word.length);
          found.add(range);
        }
      });
    }
    CSS.highlights.set("search-match", found);
  }

  document.addEventListener("DOMContentLoaded", function () {
    showProviderIcon();
    var select = document.getElementById("model-select");
    var filter = document.getElementById("model-filter");
    if (filter && select && select.options.length >= SEARCH_FROM) { filter.hidden = false; }
    var el = scroller();
    // A message the address names (a search result, a version flipped without
    // JavaScript) is where the page opens; otherwise the latest message.
    var named = location.hash && document.getElementById(location.hash.slice(1));
    var list = messages();
    if (named && list && list.contains(named)) {
      named.scrollIntoView({ block: "center" });
      highlightSearch(named, new URLSearchParams(window.location.search).get("q"));
    } else if (el) {
      el.scrollTop = el.scrollHeight;
    }
    var box = input();
    var draft = window.localStorage.getItem(draftKey());
    if (box && draft && !box.value) { box.value = draft; }
    if (box) { box.focus({ preventScroll: true }); }
    showJump();
  });
})();
