// Copy buttons: on code blocks rendered by chatapp/rendering.py, under each finished answer, and of a shared link.
// One delegated listener, so buttons swapped in later by htmx work too.
(function () {
  "use strict";
  var RESET_AFTER_MS = 1500;

  // gettext comes from Django's JavaScript catalogue (/jsi18n/), loaded
  // before this file; literal calls are what makemessages extracts.

  // navigator.clipboard needs a secure context (HTTPS or localhost); a plain
  // HTTP deployment falls back to selecting the text and execCommand.
  function copyBySelection(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    var copied = false;
    try {
      copied = document.execCommand("copy");
    } catch (error) {
      copied = false;
    }
    document.body.removeChild(area);
    return copied ? Promise.resolve() : Promise.reject(new Error("copy failed"));
  }

  function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () {
        return copyBySelection(text);
      });
    }
    return copyBySelection(text);
  }

  // What a copy button copies, being copied: a whole answer, its own text (a shared link), or its code block's
  // code; null if there is nothing to copy.
  function copied(button) {
    if (button.dataset.copyMessage !== undefined) {
      return copyAnswer(button);
    }
    var block = button.closest(".code-block");
    var code = block && block.querySelector("pre");
    var text = button.dataset.copyText !== undefined ? button.dataset.copyText : code && code.textContent;
    return text ? copy(text) : null;
  }

  // A whole answer, as the chat apps copy one: its Markdown as the text, which the page has only rendered (the
  // server sends it: data-copy-source), and as it looks for an editor that takes HTML. Its text on the page if
  // the server cannot be asked.
  function copyAnswer(button) {
    var content = document.getElementById(button.dataset.copyMessage);
    if (!content) {
      return Promise.reject(new Error("no answer"));
    }
    var markdown = fetch(button.dataset.copySource, { credentials: "same-origin" })
      .then(function (response) {
        return response.ok ? response.text() : Promise.reject(new Error(String(response.status)));
      })
      .catch(function () {
        return content.innerText;
      });
    if (!(window.ClipboardItem && navigator.clipboard && navigator.clipboard.write && window.isSecureContext)) {
      return markdown.then(copy);
    }
    // Written as the click happens, the text to come: browsers allow a write only while a click is fresh.
    var item = new ClipboardItem({
      "text/plain": markdown.then(function (text) {
        return new Blob([text], { type: "text/plain" });
      }),
      "text/html": new Blob([asDocument(content)], { type: "text/html" }),
    });
    return navigator.clipboard.write([item]).catch(function () {
      return markdown.then(copy);
    });
  }

  // The answer's HTML without what is only for the page: its buttons, and KaTeX's drawing of each formula (the
  // MathML beside it is what a word processor takes).
  function asDocument(content) {
    var clone = content.cloneNode(true);
    var extras = clone.querySelectorAll("button, .katex-html");
    for (var i = 0; i < extras.length; i++) {
      extras[i].remove();
    }
    return clone.innerHTML;
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-code], [data-copy-message], [data-copy-text]");
    var copying = button && copied(button);
    if (!copying) {
      return;
    }
    copying.then(function () {
      if (!button.dataset.label) {
        button.dataset.label = button.textContent;
      }
      button.textContent = gettext("Copied");
      button.classList.add("copied");
      window.clearTimeout(Number(button.dataset.resetTimer));
      button.dataset.resetTimer = String(window.setTimeout(function () {
        button.textContent = button.dataset.label;
        button.classList.remove("copied");
      }, RESET_AFTER_MS));
    }, function () {
      // Leave the label alone: the text is still there to select by hand.
    });
  });

  // The rendered HTML is cached once for every reader, so the button's label
  // comes from the reader's catalogue here, not from the server.
  function label(root) {
    var buttons = (root || document).querySelectorAll("[data-copy-code]:empty");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].textContent = gettext("Copy");
    }
  }
  document.addEventListener("DOMContentLoaded", function () { label(document); });
  document.addEventListener("htmx:load", function (event) { label(event.target); });
  document.addEventListener("htmx:oobAfterSwap", function () { label(document); });
})();
