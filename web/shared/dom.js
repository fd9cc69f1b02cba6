/* 商家助手 · the three DOM helpers every staff page uses. Text always goes in with textContent. */
(function () {
  "use strict";
  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  window.SjzsDom = { $: $, el: el, clear: clear };
})();
