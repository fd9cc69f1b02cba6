/* 商家助手 · 知识库工作台: the「未解决问题」tab.
   What the bot could not answer, what merchants marked 没用 and 都不是 picks, grouped into needs (GET /api/kb/inbox),
   largest first; on a need or on some of its questions: add to an existing FAQ as similar questions (the FAQ the
   retriever suggests is preselected), make a new draft FAQ of them, or ignore them.
   Uses only window.Workbench (api, toast, onTab, openFaq, newFaq, tryIt). No inline script or style attributes. */
(function () {
  "use strict";
  var WB = window.Workbench;
  if (!WB) return;

  (function linkCss() {  // index.html is the shell's: our stylesheet is linked from here
    if (document.getElementById("ib-css")) return;
    var link = document.createElement("link");
    link.id = "ib-css"; link.rel = "stylesheet"; link.href = "/workbench/static/inbox.css";
    document.head.appendChild(link);
  })();

  var SOURCE = { no_answer: "答不了", useless: "没用", none_matched: "都不是" };
  var state = { root: null, data: null, open: {}, busy: false };

  var el = SjzsDom.el, clear = SjzsDom.clear;  // web/shared/dom.js
  function btn(text, cls, fn) {
    var b = el("button", cls || "", text);
    b.type = "button";
    b.onclick = fn;
    return b;
  }
  function pct(x) { return (x * 100).toFixed(1) + "%"; }
  function when(iso) {
    var d = new Date(iso);
    return isNaN(d) ? "" : d.toLocaleString("zh-CN", { hour12: false });
  }

  function skeleton(root) {
    clear(root);
    var head = el("div", "ib-head");
    head.appendChild(el("h2", "ib-title", "未解决问题"));
    var summary = el("span", "ib-summary"); summary.id = "ib-summary";
    head.appendChild(summary);
    var grow = el("span", "ib-grow"); head.appendChild(grow);
    var label = el("label", "ib-threshold", "相似度 ");
    var select = el("select"); select.id = "ib-threshold"; select.setAttribute("aria-label", "聚类相似度");
    [["0.86", "宽松"], ["0.88", "较宽"], ["", "默认"], ["0.92", "较严"], ["0.94", "严格"]].forEach(function (o) {
      var opt = el("option", "", o[1] + (o[0] ? "（" + o[0] + "）" : "")); opt.value = o[0]; select.appendChild(opt);
    });
    select.value = "";
    select.onchange = load;
    label.appendChild(select);
    head.appendChild(label);
    head.appendChild(btn("刷新", "ib-refresh", load));
    root.appendChild(head);
    root.appendChild(el("p", "ib-hint",
      "机器人答不了的问题、商家点了「没用」的回答和在「您是想问」里选了「都不是」的问题，按同一需求聚在一起，最大的在前。" +
      "处理后的问题离开收件箱；以后再有人问，会重新出现。"));
    var list = el("div", "ib-list"); list.id = "ib-list"; root.appendChild(list);
  }

  function load() {
    var root = state.root;
    if (!root) return Promise.resolve();
    var t = document.getElementById("ib-threshold");
    var q = t && t.value ? "?threshold=" + encodeURIComponent(t.value) : "";
    var list = document.getElementById("ib-list");
    list.setAttribute("aria-busy", "true");
    return WB.api("GET", "/api/kb/inbox" + q).then(function (data) {
      state.data = data;
      draw();
    }).catch(function (err) { WB.toast(err.message); })
      .then(function () { list.removeAttribute("aria-busy"); });
  }

  function draw() {
    var data = state.data, list = document.getElementById("ib-list");
    clear(list);
    document.getElementById("ib-summary").textContent = data.questions
      ? "待处理 " + data.questions + " 条问题，" + data.total_clusters + " 个需求" +
        (data.total_clusters > data.clusters.length ? "（显示最大的 " + data.clusters.length + " 个）" : "")
      : "";
    if (!data.clusters.length) { list.appendChild(el("p", "ib-empty", "收件箱是空的：没有待处理的问题")); return; }
    data.clusters.forEach(function (c) { list.appendChild(card(c)); });
  }

  function card(c) {
    var box = el("article", "ib-cluster" + (state.open[c.key] ? " ib-open" : ""));
    box.dataset.key = c.key;
    var head = el("button", "ib-cluster-head");
    head.type = "button";
    head.setAttribute("aria-expanded", state.open[c.key] ? "true" : "false");
    head.appendChild(el("span", "ib-count", c.count));
    head.appendChild(el("span", "ib-name", c.name));
    var tags = el("span", "ib-sources");
    Object.keys(c.sources).forEach(function (s) {
      tags.appendChild(el("span", "ib-src ib-src-" + s, (SOURCE[s] || s) + " " + c.sources[s]));
    });
    head.appendChild(tags);
    head.appendChild(el("span", "ib-when", "最近 " + when(c.last_at)));
    head.onclick = function () { state.open[c.key] = !state.open[c.key]; draw(); };
    box.appendChild(head);
    if (state.open[c.key]) box.appendChild(body(c));
    return box;
  }

  function body(c) {
    var wrap = el("div", "ib-body");
    // examples: each one can be picked for acting on it alone
    var ex = el("ul", "ib-examples");
    var picks = [];
    c.examples.forEach(function (e) {
      var li = el("li");
      var cb = el("input"); cb.type = "checkbox"; cb.checked = true; cb.value = e.text;
      cb.dataset.ids = e.question_ids.join(",");
      cb.setAttribute("aria-label", "选择：" + e.text);
      picks.push(cb);
      var label = el("label", "ib-ex");
      label.appendChild(cb);
      label.appendChild(el("span", "ib-ex-text", e.text));
      if (e.count > 1) label.appendChild(el("span", "ib-ex-count", "×" + e.count));
      li.appendChild(label);
      li.appendChild(btn("试一试", "ib-link", function () { WB.tryIt(e.text, selectedFaq(wrap)); }));
      ex.appendChild(li);
    });
    wrap.appendChild(ex);
    if (c.distinct > c.examples.length) {
      wrap.appendChild(el("p", "ib-hint", "另有 " + (c.distinct - c.examples.length) + " 种问法未列出；整组处理时一并处理。"));
    }
    // conversations
    if (c.conversations.length) {
      // an admin can also open it in the 客服工作台 (a new tab, signed in already); an editor reads it here
      var conv = el("div", "ib-convs", "会话：");
      var toConsole = WB.role() === "admin";
      c.conversations.forEach(function (id) {
        if (toConsole) {
          var a = el("a", "ib-conv", "#" + id);
          a.href = "/console?conversation=" + id; a.target = "_blank"; a.rel = "noopener";
          a.title = "在客服工作台打开";
          conv.appendChild(a);
          conv.appendChild(btn("查看", "ib-link", function () { showConversation(wrap, id); }));
        } else {
          var b = btn("#" + id, "ib-link ib-conv", function () { showConversation(wrap, id); });
          b.title = "在这里查看会话记录";
          conv.appendChild(b);
        }
      });
      wrap.appendChild(conv);
    }
    var convBox = el("div", "ib-conv-view"); convBox.hidden = true; wrap.appendChild(convBox);

    // add to an existing FAQ: the retriever's suggestions, the first preselected
    var attach = el("fieldset", "ib-attach");
    attach.appendChild(el("legend", "", "加为已有 FAQ 的相似问法"));
    c.suggestions.forEach(function (s, i) {
      var label = el("label", "ib-faq");
      var r = el("input"); r.type = "radio"; r.name = "ib-faq-" + c.key; r.value = s.faq_id; r.checked = i === 0;
      label.appendChild(r);
      label.appendChild(el("span", "ib-faq-q", s.question));
      label.appendChild(el("span", "ib-faq-meta", "FAQ " + s.faq_id + " · " + s.category + " · 相似度 " + pct(s.score) +
        (s.status !== "published" ? " · " + (s.status === "draft" ? "草稿" : "已下线") : "") + (i === 0 ? " · 推荐" : "")));
      attach.appendChild(label);
    });
    var other = el("label", "ib-faq");
    var ro = el("input"); ro.type = "radio"; ro.name = "ib-faq-" + c.key; ro.value = "other";
    ro.checked = !c.suggestions.length;
    var oid = el("input", "ib-faq-id"); oid.type = "number"; oid.min = "1"; oid.placeholder = "FAQ 编号";
    oid.setAttribute("aria-label", "其他 FAQ 编号");
    oid.oninput = function () { ro.checked = true; };
    other.appendChild(ro); other.appendChild(el("span", "", "其他 FAQ：")); other.appendChild(oid);
    attach.appendChild(other);
    var acts = el("div", "ib-actions");
    acts.appendChild(btn("试一试", "ib-try", function () {
      var id = selectedFaq(wrap);
      if (!id) { WB.toast("请选择一条 FAQ"); return; }
      WB.tryIt(c.name, id);
    }));
    acts.appendChild(btn("加入并发布", "primary ib-attach-publish", function () { doAttach(c, wrap, picks, true); }));
    acts.appendChild(btn("只加入", "ib-attach-only", function () { doAttach(c, wrap, picks, false); }));
    attach.appendChild(acts);
    wrap.appendChild(attach);

    var more = el("div", "ib-actions ib-other-actions");
    more.appendChild(btn("新建 FAQ（草稿）", "ib-create", function () { doCreate(c, picks); }));
    more.appendChild(btn("忽略", "danger ib-ignore", function () { doIgnore(c, picks); }));
    wrap.appendChild(more);
    var result = el("div", "ib-result"); result.hidden = true; wrap.appendChild(result);
    return wrap;
  }

  function selectedFaq(wrap) {
    var r = wrap.querySelector(".ib-attach input[type=radio]:checked");
    if (!r) return null;
    if (r.value === "other") {
      var n = parseInt(wrap.querySelector(".ib-faq-id").value, 10);
      return n > 0 ? n : null;
    }
    return parseInt(r.value, 10);
  }

  // The questions acted on: the whole cluster when every example is ticked, else the ticked texts' questions.
  function chosen(c, picks) {
    var on = picks.filter(function (p) { return p.checked; });
    if (!on.length) throw new Error("请至少勾选一个问题");
    var all = on.length === picks.length;
    var ids = all ? c.question_ids : [].concat.apply([], on.map(function (p) {
      return p.dataset.ids.split(",").map(Number);
    }));
    return { ids: ids, texts: all ? null : on.map(function (p) { return p.value; }), all: all };
  }

  function guard(fn) {
    if (state.busy) return;
    state.busy = true;
    Promise.resolve().then(fn).catch(function (err) { WB.toast(err.message); })
      .then(function () { state.busy = false; });
  }

  function doAttach(c, wrap, picks, publish) {
    guard(function () {
      var faqId = selectedFaq(wrap);
      if (!faqId) throw new Error("请选择一条 FAQ");
      var pick = chosen(c, picks);
      var body = { question_ids: pick.ids, faq_id: faqId, publish: publish };
      if (pick.texts) body.texts = pick.texts;
      return WB.api("POST", "/api/kb/inbox/attach", body).then(function (r) {
        var msg = "已加入「" + r.faq_question + "」" + r.added.length + " 条相似问法" +
          (r.status === "published" ? "，已发布：机器人立即可以回答" : "（FAQ 未发布）");
        WB.toast(msg);
        done(c, msg, [["试一试", function () { WB.tryIt(c.name, r.faq_id); }],
                      ["打开 FAQ", function () { WB.openFaq(r.faq_id); }]], !pick.all);
      });
    });
  }

  function doCreate(c, picks) {
    guard(function () {
      var pick = chosen(c, picks);
      var body = { question_ids: pick.ids };
      if (!pick.all) body.question = pick.texts[0];
      var suggestion = c.suggestions[0];
      if (suggestion) body.category = suggestion.category;
      return WB.api("POST", "/api/kb/inbox/create-faq", body).then(function (r) {
        WB.toast("已新建草稿 FAQ " + r.faq_id + "：请填写答案后发布");
        done(c, "已新建草稿 FAQ " + r.faq_id, [], !pick.all);
        WB.openFaq(r.faq_id);
      });
    });
  }

  function doIgnore(c, picks) {
    guard(function () {
      var pick = chosen(c, picks);
      return WB.api("POST", "/api/kb/inbox/ignore", { question_ids: pick.ids }).then(function (r) {
        WB.toast("已忽略 " + r.resolved + " 条问题");
        done(c, "已忽略 " + r.resolved + " 条问题", [], !pick.all);
      });
    });
  }

  // A handled cluster leaves the list; a note with follow-ups stays on top until the next refresh.
  function done(c, message, followUps, partial) {
    if (partial) { load().then(function () { note(message, followUps); }); return; }
    state.data.clusters = state.data.clusters.filter(function (x) { return x.key !== c.key; });
    state.data.questions -= c.count;
    state.data.total_clusters -= 1;
    draw();
    note(message, followUps);
  }

  function note(message, followUps) {
    var box = el("div", "ib-done", message);
    box.setAttribute("role", "status");
    followUps.forEach(function (f) { box.appendChild(btn(f[0], "ib-link", f[1])); });
    var list = document.getElementById("ib-list");
    list.insertBefore(box, list.firstChild);
  }

  function showConversation(wrap, id) {
    var box = wrap.querySelector(".ib-conv-view");
    WB.api("GET", "/api/kb/inbox/conversation?conversation_id=" + id).then(function (msgs) {
      clear(box);
      box.hidden = false;
      box.appendChild(el("div", "ib-conv-title", "会话 #" + id));
      msgs.forEach(function (m) {
        var row = el("div", "ib-msg ib-msg-" + m.sender);
        row.appendChild(el("span", "ib-msg-who", { merchant: "商家", bot: "助手", agent: "客服", system: "系统" }[m.sender] || m.sender));
        row.appendChild(el("span", "ib-msg-text", m.text));
        box.appendChild(row);
      });
      box.appendChild(btn("收起", "ib-link", function () { box.hidden = true; }));
    }).catch(function (err) { WB.toast(err.message); });
  }

  WB.onTab("inbox", function (section) {
    if (state.root !== section) { state.root = section; skeleton(section); }
    load();
  });
})();
