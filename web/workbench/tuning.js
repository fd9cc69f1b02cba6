/* 商家助手 · 知识库工作台: the「优化模型」tab.
   One button starts the tuning job (the same as `python -m kb_training.tune`) in the background; the page polls
   GET /api/kb/tuning for its progress while the tab is shown; the report compares the model served before and
   the candidate; one click goes back to the previous model. Uses only window.Workbench. */
(function () {
  "use strict";
  var WB = window.Workbench;
  if (!WB) return;

  (function linkCss() {
    if (document.getElementById("ib-css")) return;
    var link = document.createElement("link");
    link.id = "ib-css"; link.rel = "stylesheet"; link.href = "/workbench/static/inbox.css";
    document.head.appendChild(link);
  })();

  var state = { root: null, timer: null, last: null };
  var ROWS = [
    ["top1", "留出问法：第一条就对", true], ["top3", "留出问法：前三条里有对的", true],
    ["real_style_top1", "真实风格问题：第一条就对", true], ["right_answer", "直接答对", true],
    ["wrong_answer", "答错（越低越好）", false], ["oos_answer", "范围外问题被回答（越低越好）", false],
    ["utility", "综合效用", true]
  ];

  var $ = SjzsDom.$, el = SjzsDom.el, clear = SjzsDom.clear;  // web/shared/dom.js
  function fmt(key, v) {
    if (v === null || v === undefined) return "—";
    return key === "utility" ? Number(v).toFixed(3) : (v * 100).toFixed(1) + "%";
  }
  function when(iso) {
    var d = new Date(iso);
    return iso && !isNaN(d) ? d.toLocaleString("zh-CN", { hour12: false }) : "";
  }
  function minutes(s) { return s >= 60 ? Math.round(s / 60) + " 分钟" : s + " 秒"; }

  function skeleton(root) {
    clear(root);
    root.appendChild(el("h2", "tn-title", "优化模型"));
    root.appendChild(el("p", "tn-hint",
      "用知识库里的相似问法微调向量模型，然后在留出的相似问法和范围外问题上比较新旧模型，重新校准阈值；" +
      "只有新模型更好才启用。任务在后台以最低优先级运行（2 核上约 20 分钟），期间机器人照常用当前模型回答，" +
      "新模型和它的索引准备好后自动切换，无需重启。"));
    var current = el("div", "tn-current"); current.id = "tn-current"; root.appendChild(current);
    var actions = el("div", "tn-actions");
    var start = el("button", "primary tn-start", "开始优化"); start.type = "button"; start.id = "tn-start";
    start.onclick = startJob;
    var back = el("button", "tn-rollback", "回滚到上一个模型"); back.type = "button"; back.id = "tn-rollback";
    back.onclick = rollback;
    actions.appendChild(start); actions.appendChild(back);
    root.appendChild(actions);
    var job = el("div", "tn-job"); job.id = "tn-job";
    var bar = el("div", "tn-bar"); bar.setAttribute("role", "progressbar");
    bar.setAttribute("aria-valuemin", "0"); bar.setAttribute("aria-valuemax", "100"); bar.id = "tn-bar";
    bar.appendChild(el("i", "tn-fill"));
    job.appendChild(bar);
    var msg = el("p", "tn-stage"); msg.id = "tn-stage"; job.appendChild(msg);
    root.appendChild(job);
    var report = el("div", "tn-report"); report.id = "tn-report"; root.appendChild(report);
  }

  function draw(s) {
    state.last = s;
    var cur = $("tn-current");
    clear(cur);
    cur.appendChild(el("span", "", "正在使用：")); cur.appendChild(el("b", "tn-model", s.serving.label));
    if (s.serving.promoted_at) cur.appendChild(el("span", "tn-meta", "（" + when(s.serving.promoted_at) + " 启用）"));
    if (s.previous) cur.appendChild(el("span", "tn-meta", " · 上一个：" + s.previous.label));
    if (s.fixed) cur.appendChild(el("p", "tn-warn", "模型已由 SJZS_EMBEDDING_MODEL 固定：不能在这里优化或回滚。"));

    $("tn-start").disabled = s.running || s.fixed;
    $("tn-rollback").disabled = !s.can_rollback;
    var bar = $("tn-bar"), pctv = Math.round(s.progress * 100);
    bar.setAttribute("aria-valuenow", String(pctv));
    bar.querySelector(".tn-fill").style.width = pctv + "%";
    bar.className = "tn-bar tn-" + s.state;
    $("tn-job").hidden = s.state === "idle";
    var text = s.stage;
    if (s.state === "training" && s.total) {
      text += "：第 " + s.step + " / " + s.total + " 步" + (s.eta_seconds ? "，约剩 " + minutes(s.eta_seconds) : "");
    }
    if (s.reason && !s.running) text += " — " + s.reason;
    if (s.detail && s.state === "failed") text += "：" + s.detail;
    $("tn-stage").textContent = text;
    drawReport(s.report);
  }

  function drawReport(r) {
    var box = $("tn-report");
    clear(box);
    if (!r || !r.before) return;
    box.appendChild(el("h3", "", "最近一次的报告" + (r.finished_at ? "（" + when(r.finished_at) + "）" : "")));
    box.appendChild(el("p", r.promoted ? "tn-verdict tn-yes" : "tn-verdict tn-no",
      (r.promoted ? "已启用新模型。" : "没有启用新模型。") + (r.reason || "")));
    box.appendChild(el("p", "tn-meta", r.faqs + " 条 FAQ；评估用留出的 " + r.held_back + " 个相似问法、" + r.real_style +
      " 个真实风格问题和 " + r.out_of_scope + " 个范围外问题（都没有参加训练）；训练用时 " + minutes(Math.round(r.train_seconds || 0)) + "。"));
    var t = el("table", "tn-table");
    var head = el("tr");
    ["指标", "之前（" + r.before.model + "）", "之后（候选 " + (r.after ? r.after.model : "") + "）", "变化"].forEach(function (h) {
      head.appendChild(el("th", "", h));
    });
    t.appendChild(head);
    ROWS.forEach(function (row) {
      var key = row[0], b = r.before[key], a = r.after ? r.after[key] : null;
      var tr = el("tr");
      tr.appendChild(el("td", "", row[1]));
      tr.appendChild(el("td", "", fmt(key, b)));
      tr.appendChild(el("td", "", fmt(key, a)));
      var diff = a === null || b === null || a === undefined || b === undefined ? null : a - b;
      var better = diff === null || Math.abs(diff) < 1e-9 ? "" : ((diff > 0) === row[2] ? "tn-up" : "tn-down");
      tr.appendChild(el("td", better, diff === null ? "—" :
        (diff > 0 ? "+" : "") + (key === "utility" ? diff.toFixed(3) : (diff * 100).toFixed(1) + " 个百分点")));
      t.appendChild(tr);
    });
    box.appendChild(t);
  }

  function refresh() {
    return WB.api("GET", "/api/kb/tuning").then(function (s) {
      draw(s);
      schedule(s.running ? 1500 : 0);
    }).catch(function (err) { WB.toast(err.message); schedule(5000); });
  }

  function schedule(ms) {
    clearTimeout(state.timer);
    state.timer = null;
    if (!ms) return;
    state.timer = setTimeout(function () {
      if (state.root && !state.root.hidden) refresh();  // only while the tab is shown
    }, ms);
  }

  function startJob() {
    $("tn-start").disabled = true;
    WB.api("POST", "/api/kb/tuning/start").then(function (s) {
      WB.toast("已开始优化模型：在后台运行，机器人照常回答");
      draw(s); schedule(1000);
    }).catch(function (err) { WB.toast(err.message); refresh(); });
  }

  function rollback() {
    var s = state.last;
    if (!s || !s.previous) return;
    if (!window.confirm("回滚到上一个模型「" + s.previous.label + "」？机器人几秒内换用它，无需重启。")) return;
    WB.api("POST", "/api/kb/tuning/rollback").then(function (r) {
      WB.toast("已回滚到 " + r.serving.label + "，机器人几秒内换用它");
      draw(r);
    }).catch(function (err) { WB.toast(err.message); refresh(); });
  }

  WB.onTab("tuning", function (section) {
    if (state.root !== section) { state.root = section; skeleton(section); }
    refresh();
  });
})();
