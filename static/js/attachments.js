// Files attached to the message being written: uploaded as they are chosen,
// pasted or dropped on the composer, shown above it, and sent with it (each
// chip carries its file's id). Without JavaScript the file input posts them
// with the form instead.
(function () {
  "use strict";

  function picker() { return document.getElementById("attach-input"); }
  function chips() { return document.getElementById("composer-files"); }
  function csrfHeaders() {
    return { "X-CSRFToken": picker().form.querySelector("[name=csrfmiddlewaretoken]").value };
  }
  function say(text) {
    var notice = document.getElementById("chat-notice");
    if (notice) { notice.textContent = text; }
  }

  function upload(files) {
    var input = picker();
    if (!input || !files || !files.length) { return; }
    var body = new FormData();
    Array.prototype.forEach.call(files, function (file) { body.append("file", file, file.name); });
    var pending = document.createElement("li");
    pending.className = "attachment-chip pending";
    pending.textContent = gettext("Uploading…");
    chips().append(pending);
    fetch(input.dataset.attachUrl, {
      method: "POST", body: body, credentials: "same-origin", headers: csrfHeaders(),
    }).then(function (response) {
      return response.text().then(function (text) {
        if (!response.ok) { throw new Error(response.status === 400 ? text : ""); }
        // The server's escaped HTML (_attachment_chips.html): the chips, before the pending one.
        pending.insertAdjacentHTML("beforebegin", text);
        say("");
        adoptAddress(input);
      });
    }).catch(function (error) {
      say(error.message || gettext("The file could not be attached. Try again."));
    }).finally(function () {
      pending.remove();
    });
  }

  // A new chat's first file created the chat (as its settings do): the
  // address becomes the chat's, so a reload shows it with its files and the
  // text written so far (chat.js keeps it under the chat's address now).
  function adoptAddress(input) {
    var list = document.getElementById("messages");
    if (!list || list.dataset.conversationUrl) { return; }
    var draft = window.localStorage.getItem("draft:new");
    list.dataset.conversationUrl = input.dataset.conversationUrl;
    window.history.replaceState(null, "", input.dataset.conversationUrl);
    if (draft) {
      window.localStorage.setItem("draft:" + input.dataset.conversationUrl, draft);
      window.localStorage.removeItem("draft:new");
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    // Uploaded on their own: the socket's frame must not carry the files themselves.
    var input = picker();
    if (input) { input.removeAttribute("name"); }
  });
  document.addEventListener("change", function (event) {
    if (event.target.id !== "attach-input") { return; }
    upload(event.target.files);
    event.target.value = "";
  });
  document.addEventListener("paste", function (event) {
    var data = event.clipboardData;
    if (event.target.id !== "composer-input" || !data || !data.files.length) { return; }
    if (!data.getData("text/plain")) { event.preventDefault(); }  // a screenshot, not text that has a picture too
    upload(data.files);
  });

  // Dropped on the composer.
  function composerOf(event) { return event.target.closest && event.target.closest("#composer"); }
  function carriesFiles(event) {
    return event.dataTransfer && Array.prototype.indexOf.call(event.dataTransfer.types, "Files") >= 0;
  }
  document.addEventListener("dragover", function (event) {
    var composer = composerOf(event);
    if (!composer || !carriesFiles(event)) { return; }
    event.preventDefault();
    composer.classList.add("dragging");
  });
  document.addEventListener("dragleave", function (event) {
    var composer = composerOf(event);
    if (composer && !composer.contains(event.relatedTarget)) { composer.classList.remove("dragging"); }
  });
  document.addEventListener("drop", function (event) {
    var composer = composerOf(event);
    if (!composer || !carriesFiles(event)) { return; }
    event.preventDefault();
    composer.classList.remove("dragging");
    upload(event.dataTransfer.files);
  });

  document.addEventListener("click", function (event) {
    var remove = event.target.closest && event.target.closest("[data-attachment-remove]");
    if (!remove) { return; }
    var chip = remove.closest(".attachment-chip");
    // Dropped on the server too: a reload must not bring it back.
    fetch(chip.querySelector("[data-attachment-url]").dataset.attachmentUrl, {
      method: "DELETE", credentials: "same-origin", headers: csrfHeaders(),
    });
    chip.remove();
    document.getElementById("composer-input").focus();
  });

  // A picture attached for a model whose catalogue says it takes none: the
  // server would not send it (the answer would say so); say it before.
  function checkModel() {
    var hint = document.getElementById("attach-hint");
    var select = document.getElementById("model-select");
    var option = select && select.selectedOptions[0];
    if (!hint || !chips()) { return; }
    var picture = chips().querySelector(".attachment-chip:not([hidden]) img");
    hint.hidden = !(picture && option && option.hasAttribute("data-text-only"));
  }
  document.addEventListener("change", function (event) {
    if (event.target.id === "model-select") { checkModel(); }
  });
  document.addEventListener("DOMContentLoaded", function () {
    if (!chips()) { return; }
    new MutationObserver(checkModel).observe(chips(), { childList: true, subtree: true, attributes: true });
    checkModel();  // files the page drew: attached before a reload
  });
  document.addEventListener("htmx:oobAfterSwap", checkModel);  // the chat's settings changed its model

  // Sent with the message: the chips go with the text. If the server refuses
  // the message (its notice says why), they come back with it; once it is
  // accepted (the notice emptied), they are gone.
  function sent() { return chips() ? chips().querySelectorAll(".attachment-chip[hidden]") : []; }
  document.body.addEventListener("htmx:wsAfterSend", function (event) {
    if (!event.target.closest || !event.target.closest("#composer")) { return; }
    chips().querySelectorAll(".attachment-chip:not(.pending)").forEach(function (chip) {
      chip.hidden = true;
      chip.querySelector("input").disabled = true;  // not sent again with the next message
    });
  });
  document.addEventListener("chat:answered", function (event) {  // chat.js, from the notice
    sent().forEach(function (chip) {
      if (event.detail.refused) {
        chip.hidden = false;
        chip.querySelector("input").disabled = false;
      } else {
        chip.remove();
      }
    });
  });
})();
