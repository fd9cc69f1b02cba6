/* 商家助手 · 服务数据: the dashboard. Plain JS, no build step; charts by Chart.js (served by the API from the
   npm package set-up fetched). Every figure comes from /api/analytics/*; text goes in with textContent. */
(function () {
  "use strict";

  var Staff = window.SjzsStaff;  // sign-in, the token and the HTTP wrapper: web/shared/staff.js
  var CONSOLE_ROLES = ["agent", "admin"];  // who can follow a conversation into the 客服工作台
  var METRIC_TITLE = { self_service: "自助解决率", one_contact: "一次解决率", satisfaction: "满意度",
                       escalation: "转人工" };
  var DRILL_TITLE = {
    self_service: { miss: "未自助解决的会话", hit: "自助解决的会话", all: "全部会话（自助解决）" },
    one_contact: { miss: "7 天内再次咨询的问题", hit: "一次解决的问题", all: "全部问题（一次解决）" },
    satisfaction: { miss: "不满意的会话（1–3 星）", hit: "满意的会话（4–5 星）", all: "全部有评价的会话" },
    escalation: { miss: "转人工的会话", hit: "未转人工的会话", all: "全部会话（转人工）" }
  };
  var DEF_TITLE = { self_service: "自助解决率", one_contact: "一次解决率", satisfaction: "满意度",
                    escalation: "转人工率", kb_decisions: "知识库决定", feedback: "有用 / 没用", queue: "排队时长",
                    agents: "客服", appeals: "申诉审核", range: "时间范围" };
  var COLORS = { brand: "#ff5000", blue: "#165dff", green: "#00b42a", red: "#f53f3f", grey: "#86909c",
                 amber: "#ff9a2e", teal: "#14c9c9" };

  var state = { me: null, options: null, data: null, query: null, charts: {}, drill: null };
  window.SJZSAnalytics = state;  // read by the browser tests (the page and the JSON agree)

  var $ = SjzsDom.$, el = SjzsDom.el, clear = SjzsDom.clear;  // web/shared/dom.js
  function pct(x, digits) { return x === null || x === undefined ? "—" : (x * 100).toFixed(digits === undefined ? 1 : digits) + "%"; }
  function num(x, unit) { return x === null || x === undefined ? "—" : (Math.round(x * 10) / 10) + (unit || ""); }
  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    if (seconds < 90) return Math.round(seconds) + " 秒";
    if (seconds < 5400) return (seconds / 60).toFixed(1) + " 分钟";
    return (seconds / 3600).toFixed(1) + " 小时";
  }

  // ------------------------------------------------------------------ HTTP

  function getJSON(path) { return Staff.api("GET", path); }

  function qs(extra) {
    var q = state.query, params = new URLSearchParams();
    Object.keys(q).forEach(function (k) { if (q[k]) params.set(k, q[k]); });
    Object.keys(extra || {}).forEach(function (k) { params.set(k, extra[k]); });
    return params.toString();
  }

  // ------------------------------------------------------------------ start

  function start(me) {
    state.me = me;
    $("me").textContent = me.display_name || me.username || "";
    getJSON("/api/analytics/options").then(function (opts) {
      state.options = opts;
      fillOptions(opts);
      var fromUrl = new URLSearchParams(location.search);
      var end = fromUrl.get("end") || opts.today;
      $("f-end").value = end;
      $("f-start").value = fromUrl.get("start") || shift(end, -(opts.default_days - 1));
      ["category", "merchant", "agent"].forEach(function (k) { if (fromUrl.get(k)) $("f-" + k).value = fromUrl.get(k); });
      load();
    }).catch(function (err) { $("error").textContent = err.message; });
  }

  function fillOptions(opts) {
    [$("f-category"), $("f-agent")].forEach(function (sel) { while (sel.options.length > 1) sel.remove(1); });
    var cat = $("f-category");
    opts.categories.forEach(function (c) { var o = el("option", null, c); o.value = c; cat.appendChild(o); });
    var ag = $("f-agent");
    opts.agents.forEach(function (a) { var o = el("option", null, a.name + "（" + a.username + "）"); o.value = a.username; ag.appendChild(o); });
    var defs = $("definitions");
    clear(defs);
    Object.keys(opts.definitions).forEach(function (k) {
      defs.appendChild(el("dt", null, DEF_TITLE[k] || k));
      defs.appendChild(el("dd", null, opts.definitions[k]));
    });
  }

  function shift(day, days) {
    var d = new Date(day + "T00:00:00Z");
    d.setUTCDate(d.getUTCDate() + days);
    return d.toISOString().slice(0, 10);
  }

  // ------------------------------------------------------------------ filters

  $("filters").addEventListener("submit", function (ev) { ev.preventDefault(); load(); });
  Array.prototype.forEach.call(document.querySelectorAll(".quick button"), function (b) {
    b.onclick = function () {
      var end = state.options ? state.options.today : $("f-end").value;
      $("f-end").value = end;
      $("f-start").value = shift(end, -(Number(b.dataset.days) - 1));
      load();
    };
  });

  function load() {
    state.query = { start: $("f-start").value, end: $("f-end").value, category: $("f-category").value,
                    merchant: $("f-merchant").value.trim(), agent: $("f-agent").value };
    $("error").textContent = "";
    $("status").textContent = "计算中…";
    $("apply").disabled = true;
    history.replaceState(null, "", "?" + qs());
    return getJSON("/api/analytics/summary?" + qs()).then(function (data) {
      state.data = data;
      render(data);
      $("status").textContent = data.range.start + " 至 " + data.range.end + "（" + data.range.days + " 天）：" +
        data.totals.with_merchant_message + " 个会话";
      if (state.drill) openDrill(state.drill.metric, state.drill.outcome);
    }).catch(function (err) {
      $("status").textContent = "";
      $("error").textContent = err.message;
    }).then(function () { $("apply").disabled = false; });
  }

  // ------------------------------------------------------------------ drawing

  function render(d) {
    tiles(d.headline);
    charts(d);
    tables(d);
    ops(d);
  }

  function tiles(h) {
    ["self_service", "one_contact", "satisfaction"].forEach(function (key) {
      var t = $("tile-" + key), f = h[key];
      t.classList.toggle("met", f.met === true);
      t.classList.toggle("missed", f.met === false);
      var value = t.querySelector(".value");
      value.textContent = pct(f.value);
      value.dataset.value = f.value === null ? "" : String(f.value);
      t.querySelector(".fill").style.width = f.value === null ? "0" : (f.value * 100) + "%";
      var target = t.querySelector(".target");
      target.style.left = (f.target * 100) + "%";
      target.title = "目标 " + pct(f.target, 0);
      var meta = t.querySelector(".meta");
      clear(meta);
      meta.appendChild(el("div", null, "目标 ≥ " + pct(f.target, 0) + (f.met === null ? "（暂无数据）" : f.met ? "，已达成" : "，未达成")));
      var detail = key === "self_service" ? f.numerator + " / " + f.denominator + " 个会话自助解决"
        : key === "one_contact" ? f.numerator + " / " + f.denominator + " 个问题 7 天内没有再次咨询"
        : f.numerator + " / " + f.denominator + " 个评价为 4–5 星；评价回复率 " + pct(f.response_rate) +
          "（" + f.rated + " / " + f.closed + " 个已结束的会话）";
      meta.appendChild(el("div", null, detail));
    });
  }

  function draw(id, config) {
    if (state.charts[id]) state.charts[id].destroy();
    config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false,
      plugins: { legend: { labels: { boxWidth: 12 } } } }, config.options || {});
    state.charts[id] = new Chart($(id), config);
  }

  function percentAxis(max) {
    return { min: 0, max: max || 1, ticks: { callback: function (v) { return Math.round(v * 100) + "%"; } } };
  }

  function charts(d) {
    var days = d.daily.map(function (r) { return r.date.slice(5); });
    draw("chart-daily", {
      data: { labels: days, datasets: [
        { type: "bar", label: "会话数", data: d.daily.map(function (r) { return r.conversations; }),
          backgroundColor: "rgba(22,93,255,.35)", yAxisID: "y", order: 3 },
        { type: "line", label: "自助解决率", data: d.daily.map(function (r) { return r.self_service_rate; }),
          borderColor: COLORS.brand, backgroundColor: COLORS.brand, yAxisID: "rate", spanGaps: true, tension: 0,
          pointRadius: 2, order: 1 },
        { type: "line", label: "目标 " + pct(d.headline.self_service.target, 0),
          data: d.daily.map(function () { return d.headline.self_service.target; }), borderColor: COLORS.green,
          borderDash: [6, 4], pointRadius: 0, yAxisID: "rate", order: 2 }
      ] },
      options: { scales: { y: { beginAtZero: true, position: "left", ticks: { precision: 0 }, title: { display: true, text: "会话数" } },
                           rate: Object.assign(percentAxis(), { position: "right", grid: { drawOnChartArea: false } }) } }
    });
    draw("chart-hourly", {
      type: "bar",
      data: { labels: d.hourly.map(function (r) { return r.hour + "时"; }),
              datasets: [{ label: "会话数", data: d.hourly.map(function (r) { return r.conversations; }),
                           backgroundColor: COLORS.blue }] },
      options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } }
    });
    draw("chart-escalations", {
      type: "bar",
      data: { labels: d.escalations.map(function (r) { return r.label; }),
              datasets: [{ label: "会话数", data: d.escalations.map(function (r) { return r.conversations; }),
                           backgroundColor: [COLORS.brand, COLORS.amber, COLORS.red, COLORS.grey] }] },
      options: { indexAxis: "y", plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } }
    });
    draw("chart-decisions", {
      type: "bar",
      data: { labels: d.kb_decisions.map(function (r) { return r.label; }),
              datasets: [{ label: "占比", data: d.kb_decisions.map(function (r) { return r.share; }),
                           backgroundColor: [COLORS.green, COLORS.amber, COLORS.red] }] },
      options: { plugins: { legend: { display: false } }, scales: { y: percentAxis() } }
    });
    var cats = d.categories.slice(0, 10);
    draw("chart-feedback", {
      type: "bar",
      data: { labels: cats.map(function (r) { return r.category; }), datasets: [
        { label: "有用", data: cats.map(function (r) { return r.useful; }), backgroundColor: COLORS.green },
        { label: "没用", data: cats.map(function (r) { return r.useless; }), backgroundColor: COLORS.red }] },
      options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } }
    });
    draw("chart-ratings", {
      type: "bar",
      data: { labels: d.ratings.map(function (r) { return r.stars + " 星"; }),
              datasets: [{ label: "会话数", data: d.ratings.map(function (r) { return r.conversations; }),
                           backgroundColor: [COLORS.red, COLORS.red, COLORS.amber, COLORS.green, COLORS.green] }] },
      options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } }
    });
    $("escalation-rate").textContent = "转人工率 " + pct(d.escalation_rate);
    $("response-rate").textContent = "评价回复率 " + pct(d.headline.satisfaction.response_rate);
  }

  function table(id, columns, rows, empty) {
    var t = $(id);
    clear(t);
    var head = el("tr");
    columns.forEach(function (c) { head.appendChild(el("th", c.num ? "num" : null, c.title)); });
    var thead = el("thead"); thead.appendChild(head); t.appendChild(thead);
    var body = el("tbody");
    if (!rows.length) {
      var tr = el("tr", "empty"), td = el("td", null, empty || "暂无数据");
      td.colSpan = columns.length; tr.appendChild(td); body.appendChild(tr);
    }
    rows.forEach(function (r) {
      var tr = el("tr");
      columns.forEach(function (c) {
        var v = c.format ? c.format(r[c.key], r) : r[c.key];
        var td = el("td", c.num ? "num" : c.text ? "text" : null, v === null || v === undefined ? "—" : String(v));
        var href = c.link && c.link(r);
        if (href) {
          var a = el("a", null, td.textContent);
          a.href = href; a.target = "_blank"; a.rel = "noopener";
          td.textContent = ""; td.appendChild(a);
        }
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    t.appendChild(body);
  }

  function tables(d) {
    table("t-agents", [
      { key: "name", title: "客服" }, { key: "conversations", title: "会话数", num: true },
      { key: "first_response_p50_seconds", title: "首次响应（中位数）", num: true, format: duration },
      { key: "first_response_mean_seconds", title: "首次响应（平均）", num: true, format: duration },
      { key: "resolution_p50_minutes", title: "处理时长（中位数）", num: true, format: function (m) { return m === null ? null : duration(m * 60); } },
      { key: "resolution_mean_minutes", title: "处理时长（平均）", num: true, format: function (m) { return m === null ? null : duration(m * 60); } },
      { key: "rated", title: "有评价", num: true }, { key: "satisfaction", title: "满意度", num: true, format: function (v) { return pct(v); } }
    ], d.agents, "范围内没有客服接待的会话");
    table("t-faqs", [
      { key: "question", title: "问题", text: true }, { key: "category", title: "分类" },
      { key: "answered", title: "回答次数", num: true }, { key: "useful", title: "有用", num: true },
      { key: "useless", title: "没用", num: true }, { key: "useless_rate", title: "没用占比", num: true, format: function (v) { return pct(v); } }
    ], d.faqs.slice(0, 20));
    table("t-categories", [
      { key: "category", title: "分类" }, { key: "conversations", title: "会话数", num: true },
      { key: "answered", title: "回答次数", num: true }, { key: "useful", title: "有用", num: true },
      { key: "useless", title: "没用", num: true }, { key: "useless_rate", title: "没用占比", num: true, format: function (v) { return pct(v); } }
    ], d.categories);
    table("t-unanswered", [{ key: "question", title: "商家的问题", text: true }, { key: "times", title: "次数", num: true }],
          d.unanswered, "范围内没有未能回答的问题");
  }

  function ops(d) {
    var box = $("ops");
    clear(box);
    var q = d.queue, a = d.appeals;
    [["转人工会话", q.escalated + " 个（已接入 " + q.taken + " 个）"],
     ["排队时长 p50", duration(q.wait_p50_seconds)], ["排队时长 p90", duration(q.wait_p90_seconds)],
     ["申诉", a.filed + " 个提交，" + a.decided + " 个已审结"],
     ["审核时长（平均）", a.review_mean_hours === null ? "—" : num(a.review_mean_hours, " 小时")],
     ["审核时长 p50 / p90", a.review_p50_hours === null ? "—" : num(a.review_p50_hours, " 小时") + " / " + num(a.review_p90_hours, " 小时")]
    ].forEach(function (p) { box.appendChild(el("dt", null, p[0])); box.appendChild(el("dd", null, p[1])); });
    box.querySelectorAll("dd")[1].id = "queue-p50";
    box.querySelectorAll("dd")[2].id = "queue-p90";
  }

  // ------------------------------------------------------------------ drill-down

  Array.prototype.forEach.call(document.querySelectorAll(".tile .drill"), function (b) {
    b.onclick = function () { openDrill(b.closest(".tile").dataset.metric, "miss"); };
  });
  document.querySelector(".drill-escalation").onclick = function () { openDrill("escalation", "miss"); };
  $("drill-outcome").onchange = function () { openDrill(state.drill.metric, $("drill-outcome").value); };
  $("drill-close").onclick = function () { state.drill = null; $("drill").hidden = true; };
  $("drill-more").onclick = function () { fetchDrill(true); };

  function openDrill(metric, outcome) {
    state.drill = { metric: metric, outcome: outcome, rows: [], total: 0 };
    $("drill-outcome").value = outcome;
    $("drill-title").textContent = METRIC_TITLE[metric] + "：" + DRILL_TITLE[metric][outcome];
    $("drill").hidden = false;
    fetchDrill(false).then(function () { $("drill").scrollIntoView({ block: "start" }); });
  }

  function fetchDrill(more) {
    var dr = state.drill;
    var path = "/api/analytics/conversations?" + qs({ metric: dr.metric, outcome: dr.outcome, limit: 100,
                                                       offset: more ? dr.rows.length : 0 });
    return getJSON(path).then(function (page) {
      if (state.drill !== dr) return;
      dr.rows = (more ? dr.rows : []).concat(page.rows);
      dr.total = page.total;
      $("drill-total").textContent = "共 " + page.total + " 条，显示 " + dr.rows.length + " 条";
      var cols = [{ key: "conversation_id", title: "会话", num: true, link: conversationLink }, { key: "merchant", title: "商家" },
                  { key: "started_at", title: "开始时间" }];
      if (dr.metric === "one_contact") cols.push({ key: "topic", title: "主题" });
      cols.push({ key: "agent", title: "客服" }, { key: "result", title: "结果" }, { key: "why", title: "原因", text: true },
                { key: "rating", title: "评价", num: true });
      table("t-drill", cols, dr.rows, "没有符合条件的会话");
      $("drill-more").hidden = dr.rows.length >= page.total;
    }).catch(function (err) { $("error").textContent = err.message; });
  }

  // an agent or an admin opens the conversation in the 客服工作台 (a new tab, signed in already); editors cannot
  function conversationLink(row) {
    var role = state.me ? state.me.role : "";
    if (CONSOLE_ROLES.indexOf(role) < 0) return null;
    return "/console?conversation=" + encodeURIComponent(row.conversation_id);
  }

  // ------------------------------------------------------------------ CSV

  Array.prototype.forEach.call(document.querySelectorAll("button.csv"), function (b) {
    b.onclick = function () {
      var extra = { table: b.dataset.table };
      if (b.dataset.table === "conversations" && state.drill) {
        extra.metric = state.drill.metric; extra.outcome = state.drill.outcome;
      }
      b.disabled = true;
      Staff.fetch("GET", "/api/analytics/export?" + qs(extra)).then(function (resp) {
        var disp = resp.headers.get("Content-Disposition") || "", m = /filename\*=UTF-8''([^;]+)/.exec(disp);
        var name = m ? decodeURIComponent(m[1]) : "export.csv";
        return resp.blob().then(function (blob) {
          var a = el("a"); a.href = URL.createObjectURL(blob); a.download = name;
          document.body.appendChild(a); a.click(); a.remove();
          setTimeout(function () { URL.revokeObjectURL(a.href); }, 1000);
        });
      }).catch(function (err) { $("error").textContent = err.message; })
        .then(function () { b.disabled = false; });
    };
  });

  if (typeof Chart === "undefined") {
    document.body.insertBefore(el("p", "error banner", "图表库没有加载：请运行 make run 或 make setup 下载（npm 仓库）。"), document.body.firstChild);
  }
  Staff.page({ roles: ["agent", "kb_editor", "admin"], denied: "该账号没有查看服务数据的权限", onSignIn: start,
               onSignOut: function () { state.me = null; } });
})();
