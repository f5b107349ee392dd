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

  // What a copy button copies: its code block's code, a whole answer's text, or its own (a shared link).
  function source(button) {
    if (button.dataset.copyText !== undefined) {
      return button.dataset.copyText;
    }
    if (button.dataset.copyMessage !== undefined) {
      var message = document.getElementById(button.dataset.copyMessage);
      return message && message.innerText;
    }
    var block = button.closest(".code-block");
    var code = block && block.querySelector("pre");
    return code && code.textContent;
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-code], [data-copy-message], [data-copy-text]");
    var text = button && source(button);
    if (!text) {
      return;
    }
    copy(text).then(function () {
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
