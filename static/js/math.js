// Typesets the math chatapp/rendering.py leaves as TeX in `.math` elements,
// with KaTeX (static/vendor/katex, loaded before this file).
// Messages arrive later too (htmx swaps, the stream's final render), so an
// observer typesets whatever is added. KaTeX builds its nodes through the
// DOM, which the page's CSP (no inline style attributes) allows; it keeps the
// TeX as an annotation in its MathML, for screen readers and copying.
(function () {
  "use strict";
  var PENDING = ".math:not([data-typeset])";
  var OPTIONS = {
    throwOnError: false, // a formula KaTeX cannot parse is shown as its TeX, in the error colour
    trust: false, // no \href, \url, \includegraphics or \html*: model output is untrusted
    maxSize: 20, // em: no sizing command may blow up the page
    maxExpand: 500,
    strict: "ignore",
  };

  function typesetOne(element) {
    element.setAttribute("data-typeset", "");
    var tex = element.textContent;
    var options = Object.assign({ displayMode: element.classList.contains("math-display") }, OPTIONS);
    try {
      window.katex.render(tex, element, options);
    } catch (error) {
      element.textContent = tex; // leave the TeX readable
    }
  }

  function typeset(root) {
    if (!window.katex) {
      return;
    }
    if (root.matches && root.matches(PENDING)) {
      typesetOne(root);
      return;
    }
    root.querySelectorAll(PENDING).forEach(typesetOne);
  }

  typeset(document);
  new MutationObserver(function (records) {
    records.forEach(function (record) {
      record.addedNodes.forEach(function (node) {
        if (node.nodeType === Node.ELEMENT_NODE) {
          typeset(node);
        }
      });
    });
  }).observe(document.body, { childList: true, subtree: true });
})();
