// Saved prompts in the message box (chatapp/library.py). A "/" and the start of a command, alone in the box,
// opens a list of the user's prompts whose command starts so; Up and Down move in it, Enter or Tab (or a click)
// puts the prompt's text in the box in place of what was typed, to edit before sending, and Esc closes it.
// The page carries the prompts as JSON (chat.html); without JavaScript the box is a plain box.
// Variables in the text are filled in as it is put there, as Open WebUI does (chatapp/variables.py names them):
// the time from this browser's clock, {{CLIPBOARD}} from the clipboard if the browser lets the page read it,
// the user's name and language from the page. Any other {{NAME}}, or one the browser would not tell, stays.
(function () {
  "use strict";

  var SHOWN = 8;
  var TYPED = /^\/([\p{L}\p{N}_-]*)$/u;  // what a command may be (a slug, Unicode letters too)
  var prompts = [];
  var menu = null;
  var offered = [];
  var active = 0;

  function isBox(element) { return element && element.id === "composer-input"; }

  function open() { return menu !== null && !menu.hidden; }

  function close(box) {
    if (menu) { menu.hidden = true; }
    if (box) { box.removeAttribute("aria-activedescendant"); }
  }

  function firstLine(text) {
    var line = text.split("\n", 1)[0];
    return line.length > 80 ? line.slice(0, 79) + "…" : line;
  }

  function draw(box) {
    if (!menu || !box.form.contains(menu)) {
      menu = document.createElement("ul");
      menu.id = "prompt-menu";
      menu.className = "prompt-menu";
      menu.setAttribute("role", "listbox");
      menu.setAttribute("aria-label", gettext("Prompts"));
      box.form.appendChild(menu);
      box.setAttribute("aria-controls", menu.id);
      box.setAttribute("aria-autocomplete", "list");
      // Chosen with the mouse: the box keeps the focus, and the list its items until the choice is made.
      menu.addEventListener("mousedown", function (event) { event.preventDefault(); });
      menu.addEventListener("click", function (event) {
        var item = event.target.closest("[role=option]");
        if (item) { choose(box, offered[Number(item.dataset.index)]); }
      });
    }
    menu.replaceChildren();
    offered.forEach(function (prompt, index) {
      var item = document.createElement("li");
      item.id = "prompt-option-" + index;
      item.setAttribute("role", "option");
      item.dataset.index = String(index);
      item.setAttribute("aria-selected", index === active ? "true" : "false");
      var command = document.createElement("code");
      command.textContent = "/" + prompt.command;
      var text = document.createElement("span");
      text.className = "prompt-menu-text";
      text.textContent = firstLine(prompt.text);
      item.append(command, " ", text);
      menu.appendChild(item);
    });
    menu.hidden = false;
    box.setAttribute("aria-activedescendant", "prompt-option-" + active);
    menu.children[active].scrollIntoView({ block: "nearest" });
  }

  function offer(box) {
    var typed = TYPED.exec(box.value);
    if (!typed) { close(box); return; }
    var start = typed[1].toLowerCase();
    offered = prompts.filter(function (prompt) {
      return prompt.command.toLowerCase().startsWith(start);
    }).slice(0, SHOWN);
    active = 0;
    if (offered.length) { draw(box); } else { close(box); }
  }

  var WEEKDAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
  var pageValues = {};

  function twoDigits(number) { return String(number).padStart(2, "0"); }

  function filledIn(text, clipboard) {
    var now = new Date();
    var date = now.getFullYear() + "-" + twoDigits(now.getMonth() + 1) + "-" + twoDigits(now.getDate());
    var time = [now.getHours(), now.getMinutes(), now.getSeconds()].map(twoDigits).join(":");
    var values = Object.assign({
      CURRENT_DATE: date,
      CURRENT_TIME: time,
      CURRENT_DATETIME: date + " " + time,
      CURRENT_WEEKDAY: WEEKDAYS[now.getDay()],
      CURRENT_TIMEZONE: Intl.DateTimeFormat().resolvedOptions().timeZone,
      CLIPBOARD: clipboard
    }, pageValues);
    return text.replace(/\{\{([A-Z_]+)\}\}/g, function (found, name) {
      return typeof values[name] === "string" ? values[name] : found;
    });
  }

  function readClipboard(text) {
    // Asked only when the prompt wants it: the browser may ask the reader first.
    if (text.indexOf("{{CLIPBOARD}}") < 0 || !navigator.clipboard || !navigator.clipboard.readText) {
      return Promise.resolve(undefined);
    }
    return navigator.clipboard.readText().catch(function () { return undefined; });
  }

  function choose(box, prompt) {
    close(box);
    readClipboard(prompt.text).then(function (clipboard) { put(box, filledIn(prompt.text, clipboard)); });
  }

  function put(box, text) {
    box.value = text;
    box.setSelectionRange(box.value.length, box.value.length);
    box.focus();
    // The box grows and keeps the draft, as when typed (chat.js); the text is not a command to offer again.
    box.dispatchEvent(new CustomEvent("input", { bubbles: true, detail: { prompt: true } }));
  }

  document.addEventListener("input", function (event) {
    if (isBox(event.target) && !(event.detail && event.detail.prompt)) { offer(event.target); }
  });

  // Before chat.js's keys (Enter sends, Esc stops): while the list is open, these keys are the list's.
  document.addEventListener("keydown", function (event) {
    var box = event.target;
    if (!isBox(box) || !open() || event.isComposing) { return; }
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      active = (active + (event.key === "ArrowDown" ? 1 : offered.length - 1)) % offered.length;
      draw(box);
    } else if ((event.key === "Enter" && !event.shiftKey) || event.key === "Tab") {
      choose(box, offered[active]);
    } else if (event.key === "Escape") {
      close(box);
    } else {
      return;
    }
    event.preventDefault();
    event.stopPropagation();
  }, true);

  document.addEventListener("focusout", function (event) {
    if (isBox(event.target)) { close(event.target); }
  });

  document.addEventListener("DOMContentLoaded", function () {
    var data = document.getElementById("composer-prompts");
    prompts = data ? JSON.parse(data.textContent) : [];
    var values = document.getElementById("composer-prompt-values");
    pageValues = values ? JSON.parse(values.textContent) : {};
  });
})();
