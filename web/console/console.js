/* 商家助手 · 客服工作台: the agents' console. Plain JS, no build step; every text goes in through textContent. */
(function () {
  "use strict";

  var SOUND_KEY = "sjzs-console-sound";
  var SENDER = { merchant: "商家", bot: "商家助手", agent: "客服", system: "系统" };
  var DECISION = { answer: "直接回答", clarify: "您是想问", no_answer: "未能回答" };
  var AUDIT = { escalate: "转人工", assign: "自动分配", take: "接入", transfer: "转接", close: "结束会话",
                release: "交还机器人", note: "添加备注", "case": "更新工单", review: "审核申诉" };
  var CASE_NEXT = [["processing", "处理中"], ["need_info", "待补充资料"], ["resolved", "已完成"], ["rejected", "未通过"],
                   ["closed", "已关闭"]];
  var APPEAL_NEXT = [["reviewing", "审核中"], ["need_more", "需补充材料"], ["approved", "通过"], ["rejected", "驳回"]];
  var APPEAL_OPEN = ["pending", "reviewing", "need_more"];

  var state = {
    me: null, view: "queue", q: "", lists: {}, current: null,
    detail: null, canned: [], cannedPick: 0, agents: [], ws: null, wsRetry: 0, queueCount: -1, typingTimer: null,
    lastTyped: 0
  };

  var $ = SjzsDom.$, el = SjzsDom.el, clear = SjzsDom.clear;  // web/shared/dom.js

  // ------------------------------------------------------------------ HTTP and sign-in (web/shared/staff.js)

  var Staff = window.SjzsStaff;
  var api = Staff.api;

  function showError(id, err) { $(id).textContent = err ? (err.message || String(err)) : ""; }

  function stop() {  // signing out: offline for the queue, the live feed closed
    if (state.me) api("PUT", "/api/staff/me/availability", { availability: "offline" }).catch(function () {});
    state.me = null;
    if (state.ws) { state.ws.onclose = null; state.ws.close(); state.ws = null; }
  }

  // ------------------------------------------------------------------ start

  function start(me) {
    state.me = me;
    $("me").textContent = me.display_name;
    var wanted = me.availability === "offline" ? "online" : me.availability;  // opening the console = at work
    $("availability").value = wanted;
    setAvailability(wanted).then(function () {
      connect();
      loadCanned();
      refreshLists();
      var id = linkedConversation();
      if (id) openConversation(id);
    }).catch(function (err) { showError("chat-error", err); });
  }

  // /console?conversation=<id> (a link from 服务数据 or the workbench), else #c=<id> (this page, reloaded)
  function linkedConversation() {
    var m = /^\d+$/.exec(new URLSearchParams(location.search).get("conversation") || "") ||
            /c=(\d+)/.exec(location.hash);
    return m ? parseInt(m[m.length - 1], 10) : 0;
  }

  function setAvailability(value) {
    return api("PUT", "/api/staff/me/availability", { availability: value }).then(function (me) {
      state.me.availability = me.availability;
      $("availability").value = me.availability;
    });
  }
  $("availability").onchange = function () { setAvailability(this.value).then(refreshLists); };
  setInterval(function () {  // heartbeat: an agent whose console is gone goes offline after a while
    if (state.me) setAvailability($("availability").value).catch(function () {});
  }, 60000);

  $("sound").checked = localStorage.getItem(SOUND_KEY) === "1";
  $("sound").onchange = function () { localStorage.setItem(SOUND_KEY, this.checked ? "1" : "0"); };

  function beep() {
    if (!$("sound").checked) return;
    try {
      var ctx = new (window.AudioContext || window.webkitAudioContext)();
      var osc = ctx.createOscillator(), gain = ctx.createGain();
      osc.frequency.value = 880; gain.gain.value = 0.08;
      osc.connect(gain); gain.connect(ctx.destination);
      osc.start(); osc.stop(ctx.currentTime + 0.25);
    } catch (e) { /* no audio: the badge and the title still show it */ }
  }

  // ------------------------------------------------------------------ live feed

  function connect() {
    var proto = location.protocol === "https:" ? "wss:" : "ws:";
    var ws = new WebSocket(proto + "//" + location.host + "/ws/agent?token=" + encodeURIComponent(Staff.token()));
    state.ws = ws;
    ws.onopen = function () {
      state.wsRetry = 0;
      $("conn").textContent = "实时连接正常"; $("conn").className = "conn ok";
      refreshLists();  // whatever happened while we were away
      if (state.current) openConversation(state.current, true);
    };
    ws.onmessage = function (msg) {
      var ev; try { ev = JSON.parse(msg.data); } catch (e) { return; }
      onEvent(ev);
    };
    ws.onclose = function (ev) {
      $("conn").textContent = "连接断开，正在重连…"; $("conn").className = "conn";
      if (ev.code === 4401 || ev.code === 4403) { Staff.signOut("登录已失效，请重新登录"); return; }
      state.wsRetry = Math.min(state.wsRetry + 1, 6);
      setTimeout(function () { if (state.me) connect(); }, 500 * Math.pow(2, state.wsRetry));
    };
  }
  setInterval(function () {
    if (state.ws && state.ws.readyState === 1) state.ws.send(JSON.stringify({ type: "ping" }));
  }, 25000);

  function onEvent(ev) {
    if (ev.type === "message") {
      if (ev.conversation_id === state.current) {
        appendMessage(ev.message);
        if (ev.message.sender === "merchant") { setTyping(false); loadSuggestions(); }
      }
      scheduleLists();
    } else if (ev.type === "mode") {
      if (ev.conversation_id === state.current) openConversation(state.current, true);
      scheduleLists();
    } else if (ev.type === "typing" && ev.who === "merchant" && ev.conversation_id === state.current) {
      setTyping(ev.typing !== false);
    }
  }

  function setTyping(on) {
    $("typing").textContent = on ? "商家正在输入…" : "";
    clearTimeout(state.typingTimer);
    if (on) state.typingTimer = setTimeout(function () { $("typing").textContent = ""; }, 5000);
  }

  // ------------------------------------------------------------------ lists

  var listTimer = null;
  function scheduleLists() { clearTimeout(listTimer); listTimer = setTimeout(refreshLists, 250); }

  function refreshLists() {
    var views = ["queue", "mine"];
    if (views.indexOf(state.view) < 0) views.push(state.view);
    return Promise.all(views.map(function (v) {
      var qs = "?view=" + v + (v === state.view && state.q ? "&q=" + encodeURIComponent(state.q) : "");
      return api("GET", "/api/staff/conversations" + qs).then(function (rows) { state.lists[v] = rows; });
    })).then(function () {
      var queue = (state.lists.queue || []).length;
      if (state.queueCount >= 0 && queue > state.queueCount) beep();
      state.queueCount = queue;
      $("badge-queue").textContent = queue;
      $("badge-queue").className = "badge" + (queue ? " hot" : "");
      $("badge-mine").textContent = (state.lists.mine || []).length;
      document.title = (queue ? "(" + queue + ") " : "") + "客服工作台 · 商家助手";
      drawList();
    }).catch(function () {});
  }

  function since(iso) {
    if (!iso) return "";
    var s = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
    if (s < 60) return s + " 秒";
    if (s < 3600) return Math.floor(s / 60) + " 分 " + (s % 60) + " 秒";
    return Math.floor(s / 3600) + " 小时 " + Math.floor((s % 3600) / 60) + " 分";
  }
  function secondsSince(iso) { return iso ? (Date.now() - new Date(iso).getTime()) / 1000 : 0; }

  function drawList() {
    var reason = $("reason-filter").value;
    var rows = (state.lists[state.view] || []).filter(function (c) { return !reason || c.handoff_reason === reason; });
    var list = $("list");
    clear(list);
    $("list-empty").hidden = rows.length > 0;
    rows.forEach(function (c) {
      var li = el("li", c.id === state.current ? "on" : "");
      li.dataset.id = c.id;
      var l1 = el("div", "l1");
      l1.appendChild(el("span", "name", c.merchant_name + "（" + c.merchant_code + "）"));
      var wait = el("span", "wait");
      wait.dataset.since = c.mode === "waiting_agent" ? c.waiting_since || "" : "";
      if (c.mode === "agent" && c.taken_at && !c.first_agent_reply_at) wait.dataset.taken = c.taken_at;
      l1.appendChild(wait);
      li.appendChild(l1);
      var l2 = el("div", "l2");
      if (c.handoff_reason_label) l2.appendChild(el("span", "reason", c.handoff_reason_label));
      if (state.view !== "mine" && c.assigned_agent_name) l2.appendChild(el("span", "", c.assigned_agent_name + " · "));
      l2.appendChild(document.createTextNode(c.last_message || ""));
      li.appendChild(l2);
      li.onclick = function () { openConversation(c.id); };
      list.appendChild(li);
    });
    tick();
  }

  function tick() {  // waiting times and SLA, every second
    var overdue = state.me ? state.me.queue_overdue_seconds : 180;
    var sla = state.me ? state.me.sla_first_response_seconds : 60;
    Array.prototype.forEach.call(document.querySelectorAll(".wait"), function (w) {
      if (w.dataset.taken) {  // taken but not answered yet: against the first-response target
        var late = secondsSince(w.dataset.taken) > sla;
        w.textContent = (late ? "首次响应超时 · " : "待首次回复 · ") + since(w.dataset.taken);
        w.classList.toggle("overdue", late);
        return;
      }
      var s = w.dataset.since;
      w.textContent = s ? "已等待 " + since(s) : "";
      w.classList.toggle("overdue", !!s && secondsSince(s) > overdue);
      if (s && secondsSince(s) > overdue) w.textContent = "超时 · " + w.textContent;
    });
    drawSla();
  }
  setInterval(tick, 1000);

  Array.prototype.forEach.call(document.querySelectorAll(".lists .tabs button"), function (b) {
    b.onclick = function () { setView(b.dataset.view); };
  });
  function setView(view) {
    state.view = view;
    Array.prototype.forEach.call(document.querySelectorAll(".lists .tabs button"), function (b) {
      b.classList.toggle("on", b.dataset.view === view);
    });
    if (state.me) refreshLists();
  }
  setView("queue");
  $("reason-filter").onchange = drawList;
  var searchTimer = null;
  $("search").addEventListener("input", function () {
    clearTimeout(searchTimer);
    var v = this.value.trim();
    searchTimer = setTimeout(function () { state.q = v; refreshLists(); }, 250);
  });

  // ------------------------------------------------------------------ one conversation

  function openConversation(id, keepInput) {
    state.current = id;
    history.replaceState(null, "", location.pathname + "#c=" + id);
    return api("GET", "/api/staff/conversations/" + id).then(function (d) {
      if (state.current !== id) return;
      state.detail = d;
      $("placeholder").hidden = true; $("chat").hidden = false;
      showError("chat-error", null);
      var c = d.conversation;
      $("c-merchant").textContent = c.merchant_name + "（" + c.merchant_code + "）";
      $("c-mode").textContent = c.mode_label + (c.assigned_agent_name ? " · " + c.assigned_agent_name : "");
      $("summary").textContent = d.summary;
      var log = $("log");
      clear(log);
      d.messages.forEach(appendMessage);
      loadUnderstood(id);
      drawButtons();
      drawProfile(d);
      drawNotes(d.notes);
      if (!keepInput) { $("input").value = ""; $("transfer-box").hidden = true; }
      loadSuggestions();
      Array.prototype.forEach.call(document.querySelectorAll(".list li"), function (li) {
        li.classList.toggle("on", parseInt(li.dataset.id, 10) === id);
      });
    }).catch(function (err) { showError("chat-error", err); });
  }

  function loadUnderstood(id) {  // what Rasa made of each merchant message (intent, confidence)
    api("GET", "/api/staff/conversations/" + id + "/understood").then(function (rows) {
      if (id !== state.current) return;
      rows.forEach(function (u) {
        var row = $("log").querySelector('.msg.merchant[data-id="' + u.message_id + '"]');
        if (!row || row.querySelector(".understood") || !u.intent) return;
        row.appendChild(el("div", "understood", "机器人理解：意图 " + u.intent + "（" + Math.round(u.confidence * 100) + "%）"));
      });
    }).catch(function () { /* Rasa away: the transcript is still complete */ });
  }

  function mine() {
    var c = state.detail && state.detail.conversation;
    return !!c && c.mode === "agent" && c.assigned_agent_id === state.me.id;
  }

  function drawButtons() {
    var c = state.detail.conversation, own = mine();
    $("btn-take").hidden = own || c.mode === "closed";
    $("btn-take").disabled = c.mode === "agent" && !own;
    $("btn-transfer").hidden = !own;
    $("btn-close").hidden = !own;
    $("btn-release").hidden = !(own || c.mode === "waiting_agent");
    $("input").disabled = !own; $("send").disabled = !own;
    $("input").placeholder = own ? "输入回复，Enter 发送，Shift+Enter 换行；输入 / 选择常用语"
      : (c.mode === "closed" ? "会话已结束" : "接入后才能回复");
  }

  function drawSla() {
    var d = state.detail, box = $("c-sla");
    if (!d || !state.me) return;
    var c = d.conversation, parts = [], breach = false;
    if (c.mode === "agent" && c.taken_at) {
      if (!c.first_agent_reply_at) {
        var w = secondsSince(c.taken_at);
        breach = breach || w > state.me.sla_first_response_seconds;
        parts.push("首次响应 " + since(c.taken_at) + " / 目标 " + state.me.sla_first_response_seconds + " 秒");
      }
      var r = secondsSince(c.waiting_since || c.taken_at);
      breach = breach || r > state.me.sla_resolution_minutes * 60;
      parts.push("处理时长 " + since(c.waiting_since || c.taken_at) + " / 目标 " + state.me.sla_resolution_minutes + " 分钟");
    }
    box.textContent = parts.join(" · ") + (breach ? " · 已超时" : "");
    box.className = "sla" + (breach ? " breach" : "");
  }

  function appendMessage(m) {
    var log = $("log");
    if (log.querySelector('[data-id="' + m.id + '"]')) return;
    var row = el("div", "msg " + m.sender);
    row.dataset.id = m.id;
    var who = SENDER[m.sender] || m.sender;
    if (m.sender === "agent" && m.payload && m.payload.agent_name) who = "客服 · " + m.payload.agent_name;
    row.appendChild(el("div", "who", who + " · " + new Date(m.created_at).toLocaleTimeString("zh-CN")));
    row.appendChild(el("div", "bubble", m.text));
    var custom = m.payload && m.payload.custom;
    var seen = custom && custom.understood;
    if (m.sender === "bot" && seen) {
      var u = el("div", "understood");
      u.appendChild(el("span", "d " + seen.decision, DECISION[seen.decision] || seen.decision));
      var bits = [];
      if (seen.intent) bits.push("意图 " + seen.intent + " (" + Math.round(seen.confidence * 100) + "%)");
      if (seen.faqs && seen.faqs.length) {
        bits.push((seen.decision === "answer" ? "回答 " : "候选 ") + seen.faqs.map(function (f) {
          return "#" + f.id + " " + f.question + " (" + f.score.toFixed(2) + ")";
        }).join("；"));
      }
      u.appendChild(document.createTextNode(bits.join(" · ")));
      row.appendChild(u);
    } else if (m.sender === "bot" && custom && custom.faq_id) {
      row.appendChild(el("div", "understood", "知识库回答 #" + custom.faq_id));
    }
    if (m.feedback) row.appendChild(el("div", "understood", m.feedback === "useful" ? "商家评价：有用" : "商家评价：没用"));
    log.appendChild(row);
    log.scrollTop = log.scrollHeight;
  }

  function act(method, path, body) {
    showError("chat-error", null);
    return api(method, path, body).then(function (d) {
      if (d && d.conversation) { state.detail = d; openConversation(d.conversation.id, true); }
      refreshLists();
      return d;
    }).catch(function (err) { showError("chat-error", err); openConversation(state.current, true); });
  }

  $("btn-take").onclick = function () { act("POST", "/api/staff/conversations/" + state.current + "/take"); };
  $("btn-close").onclick = function () {
    if (confirm("结束本次会话？商家会收到评价邀请。")) act("POST", "/api/staff/conversations/" + state.current + "/close");
  };
  $("btn-release").onclick = function () {
    act("POST", "/api/staff/conversations/" + state.current + "/release");
  };
  $("btn-transfer").onclick = function () {
    var box = $("transfer-box");
    box.hidden = !box.hidden;
    if (box.hidden) return;
    api("GET", "/api/staff/agents").then(function (agents) {
      var sel = $("transfer-to");
      clear(sel);
      agents.filter(function (a) { return a.id !== state.me.id; }).forEach(function (a) {
        var o = el("option", "", a.display_name + "（" + a.availability_label + "，" + a.active + " 个会话）");
        o.value = a.id;
        sel.appendChild(o);
      });
    });
  };
  $("transfer-go").onclick = function () {
    var to = parseInt($("transfer-to").value, 10);
    if (!to) return;
    act("POST", "/api/staff/conversations/" + state.current + "/transfer", { agent_id: to, note: $("transfer-note").value })
      .then(function () { $("transfer-box").hidden = true; $("transfer-note").value = ""; });
  };

  function send() {
    var text = $("input").value.trim();
    if (!text || !mine()) return;
    $("send").disabled = true;
    api("POST", "/api/staff/conversations/" + state.current + "/reply", { text: text }).then(function (m) {
      $("input").value = "";
      state.lastTyped = 0;  // the next reply's first keystroke shows "客服正在输入" at once
      var c = state.detail && state.detail.conversation;
      if (c && !c.first_agent_reply_at) c.first_agent_reply_at = m.created_at;
      appendMessage(m);
      hideCanned();
    }).catch(function (err) { showError("chat-error", err); }).then(function () { $("send").disabled = !mine(); });
  }
  $("send").onclick = send;

  $("input").addEventListener("keydown", function (ev) {
    var list = $("canned");
    if (!list.hidden) {
      var items = list.querySelectorAll("li");
      if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
        ev.preventDefault();
        state.cannedPick = (state.cannedPick + (ev.key === "ArrowDown" ? 1 : items.length - 1)) % items.length;
        drawCannedPick();
        return;
      }
      if (ev.key === "Enter" && items.length) { ev.preventDefault(); items[state.cannedPick].click(); return; }
      if (ev.key === "Escape") { hideCanned(); return; }
    }
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); send(); }
  });
  $("input").addEventListener("input", function () {
    var v = this.value;
    if (v.charAt(0) === "/") showCanned(v.slice(1).trim()); else hideCanned();
    var now = Date.now();
    if (mine() && v && now - state.lastTyped > 3000) {
      state.lastTyped = now;
      api("POST", "/api/staff/conversations/" + state.current + "/typing").catch(function () {});
    }
  });

  // ------------------------------------------------------------------ canned replies (常用语)

  function loadCanned() {
    api("GET", "/api/staff/canned-replies").then(function (rows) { state.canned = rows; drawCannedAdmin(); })
      .catch(function () {});
  }
  function drawCannedAdmin() {
    var list = $("canned-list");
    clear(list);
    $("canned-shared-label").hidden = !(state.me && state.me.role === "admin");
    state.canned.forEach(function (c) {
      var li = el("li");
      li.appendChild(el("div", "q", c.title + (c.shared ? "（共享）" : "")));
      li.appendChild(el("div", "a", c.text));
      if (!c.shared || state.me.role === "admin") {
        var del = el("button", "", "删除");
        del.onclick = function () {
          api("DELETE", "/api/staff/canned-replies/" + c.id).then(loadCanned)
            .catch(function (err) { $("canned-error").textContent = err.message; });
        };
        li.appendChild(del);
      }
      list.appendChild(li);
    });
    if (!state.canned.length) list.appendChild(el("li", "hint", "还没有常用语；回复时输入 / 可以选用"));
  }
  $("canned-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    $("canned-error").textContent = "";
    api("POST", "/api/staff/canned-replies", { title: $("canned-title").value.trim(), text: $("canned-text").value.trim(),
                                               shared: $("canned-shared").checked })
      .then(function () { $("canned-title").value = ""; $("canned-text").value = ""; loadCanned(); })
      .catch(function (err) { $("canned-error").textContent = err.message; });
  });
  function showCanned(q) {
    var list = $("canned");
    clear(list);
    var rows = state.canned.filter(function (c) { return !q || c.title.indexOf(q) >= 0 || c.text.indexOf(q) >= 0; });
    if (!rows.length) {
      list.appendChild(el("li", "x", state.canned.length ? "没有匹配的常用语" : "还没有常用语"));
    }
    rows.forEach(function (c) {
      var li = el("li");
      li.appendChild(el("span", "t", c.title + (c.shared ? "（共享）" : "")));
      li.appendChild(el("span", "x", c.text));
      li.onclick = function () { $("input").value = c.text; hideCanned(); $("input").focus(); };
      list.appendChild(li);
    });
    state.cannedPick = 0;
    list.hidden = false;
    drawCannedPick();
  }
  function drawCannedPick() {
    Array.prototype.forEach.call($("canned").querySelectorAll("li"), function (li, i) {
      li.classList.toggle("on", i === state.cannedPick);
    });
  }
  function hideCanned() { $("canned").hidden = true; }

  // ------------------------------------------------------------------ side panes

  Array.prototype.forEach.call(document.querySelectorAll(".side .tabs button"), function (b) {
    b.onclick = function () {
      Array.prototype.forEach.call(document.querySelectorAll(".side .tabs button"), function (x) {
        x.classList.toggle("on", x === b);
      });
      Array.prototype.forEach.call(document.querySelectorAll(".side section"), function (s) {
        s.hidden = s.dataset.pane !== b.dataset.pane;
      });
    };
  });

  function drawCards(list, result) {
    clear(list);
    result.suggestions.forEach(function (s) {
      var li = el("li");
      li.appendChild(el("div", "q", s.question));
      li.appendChild(el("div", "a", s.answer));
      var row = el("div", "row");
      row.appendChild(el("span", "", s.category + " · 相似度 " + s.score.toFixed(2)));
      var use = el("button", "", "插入");
      use.onclick = function () {
        if (!mine()) { showError("chat-error", new Error("接入后才能回复")); return; }
        $("input").value = s.answer; $("input").focus();
      };
      row.appendChild(use);
      li.appendChild(row);
      list.appendChild(li);
    });
    if (!result.suggestions.length) list.appendChild(el("li", "hint", "知识库里没有找到相近的问题"));
  }

  function loadSuggestions() {
    if (!state.current) return;
    var id = state.current;
    api("GET", "/api/staff/conversations/" + id + "/suggestions").then(function (r) {
      if (id !== state.current) return;
      $("suggest-for").textContent = r.query ? "针对商家最新的消息：「" + r.query + "」" : "商家还没有发消息";
      drawCards($("suggestions"), r);
    }).catch(function (err) { $("suggest-for").textContent = err.message; });
  }
  $("kb-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var q = $("kb-q").value.trim();
    if (!q) return;
    api("GET", "/api/staff/kb/search?q=" + encodeURIComponent(q)).then(function (r) { drawCards($("kb-results"), r); })
      .catch(function (err) { clear($("kb-results")); $("kb-results").appendChild(el("li", "error", err.message)); });
  });

  function drawProfile(d) {
    var p = d.merchant, box = $("profile");
    clear(box);
    var kv = el("div", "kv");
    [["商家", p.name], ["编号", p.code], ["主营类目", p.main_category || "—"], ["历史会话", p.conversations + " 次"]]
      .forEach(function (pair) { kv.appendChild(el("span", "hint", pair[0])); kv.appendChild(el("span", "", pair[1])); });
    box.appendChild(kv);
    box.appendChild(el("h4", "", "进行中的工单（" + p.open_cases.length + "）"));
    p.open_cases.forEach(function (c) {
      var it = el("div", "item");
      it.dataset.number = c.number;
      it.appendChild(el("div", "", c.number + " · " + c.title + " · " + c.status_label));
      var tl = el("ul", "tl");
      (c.timeline || []).slice(-3).forEach(function (e) { tl.appendChild(el("li", "", e.status_label + " " + (e.note || ""))); });
      it.appendChild(tl);
      it.appendChild(workForm(CASE_NEXT, "更新进度", function (status, note) {
        return api("POST", "/api/staff/cases/" + encodeURIComponent(c.number) + "/events?conversation_id=" + state.current,
                   { status: status, note: note });
      }));
      box.appendChild(it);
    });
    box.appendChild(el("h4", "", "违规判罚（" + p.penalties.length + "）"));
    p.penalties.forEach(function (x) {
      box.appendChild(el("div", "item", x.number + " · " + x.rule + " · " + x.measure +
        (x.points ? "（扣 " + x.points + " 分）" : "") + " · " + (x.can_appeal_now ? "可申诉" : (x.cannot_appeal_reason || "不可申诉"))));
    });
    box.appendChild(el("h4", "", "申诉（" + p.appeals.length + "）"));
    p.appeals.forEach(function (a) {
      var it = el("div", "item");
      it.dataset.number = a.number;
      it.appendChild(el("div", "", a.number + " · " + a.status_label + (a.penalty_number ? " · 判罚 " + a.penalty_number : "")
        + (a.penalty_rule ? "（" + a.penalty_rule + "）" : "")));
      if (a.description) it.appendChild(el("div", "hint", a.description.slice(0, 120)));
      if (APPEAL_OPEN.indexOf(a.status) >= 0) {
        it.appendChild(workForm(APPEAL_NEXT, "提交审核", function (status, note) {
          return api("POST", "/api/staff/appeals/" + encodeURIComponent(a.number) + "/review?conversation_id=" + state.current,
                     { status: status, note: note });
        }));
      }
      box.appendChild(it);
    });
    var audit = $("audit");
    clear(audit);
    d.audit.forEach(function (a) {
      audit.appendChild(el("li", "", new Date(a.at).toLocaleString("zh-CN") + " " + a.actor + " " +
        (AUDIT[a.action] || a.action) + (a.detail ? "：" + a.detail : "")));
    });
  }

  function workForm(choices, label, submit) {  // move a case or an appeal on: a status and a note for the merchant
    var form = el("form", "work");
    var sel = el("select");
    choices.forEach(function (c) { var o = el("option", "", c[1]); o.value = c[0]; sel.appendChild(o); });
    var note = el("input");
    note.placeholder = "说明（商家会在进度里看到）";
    note.maxLength = 2000;
    var go = el("button", "", label);
    var msg = el("span", "hint");
    form.appendChild(sel); form.appendChild(note); form.appendChild(go); form.appendChild(msg);
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      if (!note.value.trim()) { msg.textContent = "请填写说明"; return; }
      go.disabled = true;
      submit(sel.value, note.value.trim()).then(function () {
        msg.textContent = "已更新，商家已收到提醒";
        return openConversation(state.current, true);
      }).catch(function (err) { msg.textContent = err.message; go.disabled = false; });
    });
    return form;
  }

  function drawNotes(notes) {
    var list = $("notes");
    clear(list);
    notes.forEach(function (n) {
      var li = el("li");
      li.appendChild(el("div", "meta", n.author + " · " + new Date(n.created_at).toLocaleString("zh-CN")));
      li.appendChild(document.createTextNode(n.text));
      list.appendChild(li);
    });
    if (!notes.length) list.appendChild(el("li", "hint", "还没有备注"));
  }
  $("note-add").onclick = function () {
    var text = $("note-input").value.trim();
    if (!text || !state.current) return;
    api("POST", "/api/staff/conversations/" + state.current + "/notes", { text: text }).then(function () {
      $("note-input").value = "";
      return api("GET", "/api/staff/conversations/" + state.current + "/notes");
    }).then(drawNotes).catch(function (err) { showError("chat-error", err); });
  };

  Staff.page({ roles: ["agent", "admin"], denied: "该账号没有客服权限", mePath: "/api/staff/me",
               onSignIn: start, onSignOut: stop });
})();
