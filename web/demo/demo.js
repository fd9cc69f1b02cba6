/* The demo back-office: pick a demo merchant, get a widget token the way a real back-office would (from its own
   server), and embed the widget with the one-line snippet. */
(function () {
  "use strict";
  var select = document.getElementById("merchant");
  var KEY = "sjzs-demo:merchant";

  function embed(code) {
    if (window.SJZSWidget) window.SJZSWidget.destroy();
    var old = document.getElementById("sjzs-script");
    if (old) old.remove();
    fetch("/demo/token?merchant=" + encodeURIComponent(code), { method: "POST" })
      .then(function (r) { if (!r.ok) throw new Error("签发令牌失败"); return r.json(); })
      .then(function (body) {
        document.getElementById("shop-name").textContent = body.name + "（" + body.merchant + "）";
        var s = document.createElement("script");
        s.id = "sjzs-script";
        s.src = "/widget/sjzs-widget.js";
        s.dataset.token = body.token;
        document.body.appendChild(s);
      })
      .catch(function (err) { document.getElementById("shop-name").textContent = err.message; });
  }

  document.getElementById("snippet").textContent =
    '<script src="' + location.origin + '/widget/sjzs-widget.js"\n        data-token="<为当前商家签发的令牌>" async></script>';

  fetch("/demo/merchants").then(function (r) { return r.json(); }).then(function (list) {
    list.forEach(function (m) {
      var o = document.createElement("option");
      o.value = m.code; o.textContent = m.name + "（" + m.code + "）";
      select.appendChild(o);
    });
    var wanted = new URLSearchParams(location.search).get("merchant") || localStorage.getItem(KEY);
    if (wanted && list.some(function (m) { return m.code === wanted; })) select.value = wanted;
    embed(select.value);
  });
  select.onchange = function () { localStorage.setItem(KEY, select.value); embed(select.value); };
})();
