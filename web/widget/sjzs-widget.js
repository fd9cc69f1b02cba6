/*
 * 商家助手 chat widget. Embed on a merchant back-office page with one tag:
 *
 *   <script src="https://<助手地址>/widget/sjzs-widget.js" data-token="<后台为当前商家签发的令牌>" async></script>
 *
 * Options (data-* attributes on the tag): data-token, or data-token-url (the back-office endpoint that returns
 * {"token": "…"} for the logged-in merchant; POSTed with the page's cookies), data-api (default: the script's
 * origin), data-open="true" (open at once). JS: window.SJZSWidget.open() / .close() / .destroy().
 * Everything is drawn inside a shadow root, so the host page's styles and ours never mix.
 */
(function () {
  "use strict";
  if (window.SJZSWidget) return;

  var script = document.currentScript || document.querySelector("script[src*='sjzs-widget']");
  var cfg = {
    token: script && script.dataset.token || "",
    tokenUrl: script && script.dataset.tokenUrl || "",
    api: (script && script.dataset.api) || (script ? new URL(script.src, location.href).origin : location.origin),
    open: script && script.dataset.open === "true",
  };
  var MAX_CHARS = 2000;
  var MAX_FILE_BYTES = 10 * 1024 * 1024;
  var FILE_TYPES = ["image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf"];
  var SUGGEST_DELAY_MS = 250;
  var MODE_LABEL = { bot: "智能助手为您服务", waiting_agent: "正在为您转接人工客服…", agent: "人工客服为您服务", closed: "会话已结束" };

  var CSS = [
    ":host{all:initial;font-family:-apple-system,'PingFang SC','Noto Sans CJK SC','Microsoft YaHei',sans-serif;font-size:14px;color:#1f2329}",
    "*{box-sizing:border-box}",
    ".launcher{position:fixed;right:20px;bottom:20px;width:56px;height:56px;border-radius:50%;border:0;background:#ff5c35;color:#fff;font-size:15px;font-weight:600;box-shadow:0 4px 14px rgba(0,0,0,.25);cursor:pointer;z-index:2147483000}",
    ".launcher .dot{position:absolute;top:2px;right:2px;min-width:18px;height:18px;border-radius:9px;background:#e02020;font-size:11px;line-height:18px;padding:0 4px;display:none}",
    ".panel{position:fixed;right:20px;bottom:88px;width:380px;height:620px;max-height:calc(100vh - 108px);background:#f5f6f7;border-radius:12px;box-shadow:0 8px 30px rgba(0,0,0,.22);display:none;flex-direction:column;overflow:hidden;z-index:2147483000}",
    ".panel.open{display:flex}",
    "@media (max-width:640px){.panel{right:0;bottom:0;width:100vw;height:100vh;max-height:none;border-radius:0}.launcher.hidden{display:none}}",
    ".head{background:#ff5c35;color:#fff;padding:10px 12px;display:flex;align-items:center;gap:8px}",
    ".head .t{flex:1;min-width:0}.head .name{font-weight:600;font-size:15px}.head .mode{font-size:12px;opacity:.9;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}",
    ".head button{background:rgba(255,255,255,.2);color:#fff;border:0;border-radius:14px;padding:5px 10px;font-size:12px;cursor:pointer}",
    ".head button.x{font-size:16px;padding:2px 9px}",
    ".banner{background:#fff4e5;color:#ad5700;font-size:12px;padding:6px 12px;display:none}.banner.show{display:block}",
    ".log{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:10px}",
    ".row{display:flex;flex-direction:column;max-width:86%}",
    ".row.me{align-self:flex-end;align-items:flex-end}.row.bot,.row.agent{align-self:flex-start}",
    ".row.sys{align-self:center;max-width:92%;color:#8a8f99;font-size:12px;text-align:center}",
    ".who{font-size:11px;color:#8a8f99;margin:0 4px 2px}.row.agent .who{color:#0b7a3e;font-weight:600}",
    ".bubble{padding:8px 11px;border-radius:10px;background:#fff;white-space:pre-wrap;word-break:break-word;line-height:1.55}",
    ".bubble.md{white-space:normal}.bubble.md>:first-child{margin-top:0}.bubble.md>:last-child{margin-bottom:0}",
    ".bubble.md p,.bubble.md ul,.bubble.md ol,.bubble.md pre,.bubble.md blockquote,.bubble.md table{margin:0 0 6px}",
    ".bubble.md ul,.bubble.md ol{padding-left:20px}.bubble.md a{color:#2f7cf6}.bubble.md h3,.bubble.md h4,.bubble.md h5,.bubble.md h6{font-size:14px;margin:0 0 4px}",
    ".bubble.md code{background:#f2f3f5;border-radius:3px;padding:0 3px}.bubble.md pre{white-space:pre-wrap}",
    ".bubble.md blockquote{border-left:3px solid #d0d3d9;padding-left:8px;color:#5c6270}.bubble.md table{border-collapse:collapse}",
    ".bubble.md th,.bubble.md td{border:1px solid #e5e6eb;padding:2px 6px}",
    ".row.me .bubble{background:#ffe3d9}.row.agent .bubble{background:#e6f6ec;border:1px solid #b7e4c7}",
    ".row.me.pending .bubble{opacity:.6}.row.me.failed .bubble{border:1px solid #e02020}",
    ".state{font-size:11px;color:#8a8f99;margin-top:2px}.row.failed .state{color:#e02020}",
    ".btns{display:flex;flex-wrap:wrap;gap:6px;margin-top:6px}",
    ".btns button,.chips button{border:1px solid #ff5c35;color:#d9431f;background:#fff;border-radius:14px;padding:5px 10px;font-size:13px;cursor:pointer;text-align:left}",
    ".btns button:disabled{opacity:.5;cursor:default}",
    ".fb{display:flex;gap:6px;margin-top:4px;font-size:12px;color:#8a8f99;align-items:center}",
    ".fb button{border:1px solid #d0d3d9;background:#fff;border-radius:12px;padding:2px 9px;font-size:12px;cursor:pointer}",
    ".fb button.on{border-color:#ff5c35;color:#d9431f;background:#fff1ec}",
    ".card{background:#fff;border-radius:10px;padding:10px 12px;border-left:4px solid #2f7cf6}",
    ".card .ct{font-size:12px;color:#2f7cf6;font-weight:600;margin-bottom:2px}",
    ".chips{display:flex;flex-wrap:wrap;gap:6px;margin-top:6px}",
    ".upload{margin-top:6px;background:#fff;border:1px dashed #ff5c35;border-radius:10px;padding:8px}",
    ".upload .files{display:flex;flex-direction:column;gap:4px;margin-top:6px;font-size:12px}",
    ".upload progress{width:100%;height:6px}.upload .err{color:#e02020}.upload .ok{color:#0b7a3e}",
    ".typing{font-size:12px;color:#8a8f99;padding:0 14px 4px;min-height:18px}",
    ".sugg{background:#fff;border-top:1px solid #e5e6eb;max-height:180px;overflow-y:auto;display:none}",
    ".sugg.show{display:block}.sugg button{display:block;width:100%;text-align:left;border:0;background:#fff;padding:8px 12px;font-size:13px;cursor:pointer}",
    ".sugg button:hover,.sugg button.sel{background:#fff1ec}",
    ".foot{display:flex;gap:8px;padding:8px;background:#fff;border-top:1px solid #e5e6eb;align-items:flex-end}",
    ".foot textarea{flex:1;resize:none;border:1px solid #d0d3d9;border-radius:8px;padding:8px;font:inherit;height:40px;max-height:110px}",
    ".foot button{background:#ff5c35;color:#fff;border:0;border-radius:8px;padding:0 14px;height:40px;font-size:14px;cursor:pointer}",
    ".rate{background:#fff;border-radius:10px;padding:12px;text-align:center}",
    ".row.sys .leave{display:block;margin:6px auto 0;background:#fff;border:1px solid #ff5c35;color:#ff5c35;border-radius:14px;padding:3px 14px;cursor:pointer}",
    ".leave-box textarea{width:100%;margin:6px 0;border:1px solid #d0d3d9;border-radius:8px;padding:6px;font:inherit;height:54px}",
    ".leave-box .go{background:#ff5c35;color:#fff;border:0;border-radius:8px;padding:6px 16px;cursor:pointer}",
    ".stars button{font-size:26px;border:0;background:none;color:#d0d3d9;cursor:pointer;padding:0 2px}.stars button.on{color:#ffb400}",
    ".rate textarea{width:100%;margin:8px 0;border:1px solid #d0d3d9;border-radius:8px;padding:6px;font:inherit;height:54px}",
    ".rate .go{background:#ff5c35;color:#fff;border:0;border-radius:8px;padding:6px 16px;cursor:pointer}",
    ".err-line{color:#e02020;font-size:12px}",
  ].join("\n");

  // ------------------------------------------------------------------ small helpers

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text); // never innerHTML: no injection
    return node;
  }

  // An FAQ answer arrives as HTML the API rendered from markdown and sanitised (nh3). It is rebuilt here from an
  // allow-list too: parsed inert in a <template>, only these tags and attributes are copied, links only to
  // http(s)/mailto and opened in a new tab; anything else becomes its text.
  var RICH_TAGS = { P: 1, BR: 1, STRONG: 1, EM: 1, CODE: 1, PRE: 1, BLOCKQUOTE: 1, UL: 1, OL: 1, LI: 1, A: 1, H3: 1,
                    H4: 1, H5: 1, H6: 1, HR: 1, TABLE: 1, THEAD: 1, TBODY: 1, TR: 1, TH: 1, TD: 1, DEL: 1, S: 1 };
  function safeHtml(html) {
    var tpl = document.createElement("template");
    tpl.innerHTML = html;
    var out = document.createDocumentFragment();
    (function copy(from, to) {
      for (var n = from.firstChild; n; n = n.nextSibling) {
        if (n.nodeType === 3) { to.appendChild(document.createTextNode(n.nodeValue)); continue; }
        if (n.nodeType !== 1) continue;
        if (!RICH_TAGS[n.tagName]) { to.appendChild(document.createTextNode(n.textContent)); continue; }
        var e = document.createElement(n.tagName.toLowerCase());
        if (n.tagName === "A") {
          var href = n.getAttribute("href") || "";
          if (/^(https?:|mailto:)/i.test(href)) { e.setAttribute("href", href); }
          e.setAttribute("target", "_blank"); e.setAttribute("rel", "noopener noreferrer");
        }
        if (n.tagName === "OL" && /^\d+$/.test(n.getAttribute("start") || "")) e.setAttribute("start", n.getAttribute("start"));
        copy(n, e);
        to.appendChild(e);
      }
    })(tpl.content, out);
    return out;
  }

  function uid() {
    return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 10);
  }
  function store(key, value) {
    try { if (value === undefined) return JSON.parse(localStorage.getItem(key) || "null"); localStorage.setItem(key, JSON.stringify(value)); }
    catch (e) { return null; }
  }
  function humanSize(n) { return n >= 1048576 ? (n / 1048576).toFixed(1) + " MB" : Math.ceil(n / 1024) + " KB"; }

  // ------------------------------------------------------------------ the widget

  function Widget() {
    this.token = cfg.token;
    this.merchant = null;
    this.conversation = null;
    this.seen = {};          // message ids already drawn
    this.lastId = 0;
    this.pending = [];       // merchant messages not yet confirmed by the server
    this.ws = null;
    this.retry = 0;
    this.stopped = false;
    this.unread = 0;
    this.build();
  }

  Widget.prototype.build = function () {
    var host = el("div");
    host.id = "sjzs-widget";
    document.body.appendChild(host);
    this.host = host;
    var root = host.attachShadow({ mode: "open" });
    var style = el("style"); style.textContent = CSS; root.appendChild(style);

    this.launcher = el("button", "launcher", "助手");
    this.launcher.setAttribute("aria-label", "打开商家助手");
    this.dot = el("span", "dot");
    this.launcher.appendChild(this.dot);
    root.appendChild(this.launcher);

    var panel = this.panel = el("div", "panel");
    panel.setAttribute("role", "dialog");
    panel.setAttribute("aria-label", "商家助手");
    var head = el("div", "head");
    var t = el("div", "t");
    t.appendChild(el("div", "name", "商家助手"));
    this.modeLine = el("div", "mode", "连接中…");
    t.appendChild(this.modeLine);
    head.appendChild(t);
    this.humanBtn = el("button", "human", "转人工");
    this.endBtn = el("button", "end", "结束");
    var closeBtn = el("button", "x", "×");
    closeBtn.setAttribute("aria-label", "收起");
    head.appendChild(this.humanBtn); head.appendChild(this.endBtn); head.appendChild(closeBtn);
    panel.appendChild(head);
    this.banner = el("div", "banner");
    panel.appendChild(this.banner);
    this.log = el("div", "log");
    this.log.setAttribute("aria-live", "polite");
    panel.appendChild(this.log);
    this.typingLine = el("div", "typing");
    panel.appendChild(this.typingLine);
    this.sugg = el("div", "sugg");
    panel.appendChild(this.sugg);
    var foot = el("div", "foot");
    this.input = el("textarea");
    this.input.placeholder = "请输入您的问题，例如：保证金怎么退";
    this.input.maxLength = MAX_CHARS;
    this.sendBtn = el("button", "send", "发送");
    foot.appendChild(this.input); foot.appendChild(this.sendBtn);
    panel.appendChild(foot);
    root.appendChild(panel);

    var self = this;
    this.launcher.onclick = function () { self.toggle(); };
    closeBtn.onclick = function () { self.close(); };
    this.sendBtn.onclick = function () { self.sendTyped(); };
    this.humanBtn.onclick = function () { self.send("转人工", "/request_human"); };
    this.endBtn.onclick = function () { self.showRating(); };
    this.input.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) { e.preventDefault(); self.sendTyped(); }
      else if (e.key === "ArrowDown" || e.key === "ArrowUp") self.moveSuggestion(e);
      else if (e.key === "Escape") self.hideSuggestions();
    });
    this.input.addEventListener("input", function () { self.onTyping(); });
  };

  Widget.prototype.toggle = function () { this.panel.classList.contains("open") ? this.close() : this.open(); };
  Widget.prototype.open = function () {
    this.panel.classList.add("open");
    this.launcher.classList.add("hidden");
    this.unread = 0; this.dot.style.display = "none";
    this.markNotificationsSeen();
    this.scroll();
    this.input.focus();
  };
  Widget.prototype.close = function () { this.panel.classList.remove("open"); this.launcher.classList.remove("hidden"); };
  Widget.prototype.isOpen = function () { return this.panel.classList.contains("open"); };

  // ------------------------------------------------------------------ identity and connection

  Widget.prototype.start = function () {
    var self = this;
    return this.ensureToken().then(function () {
      return self.api("GET", "/api/me");
    }).then(function (me) {
      self.merchant = me;
      self.pending = store(self.key("pending")) || [];
      self.connect();
      if (cfg.open) self.open();
    }).catch(function (err) {
      self.setBanner("商家助手暂时无法连接：" + (err.message || err) + "，请刷新页面重试。");
      self.modeLine.textContent = "未连接";
    });
  };

  Widget.prototype.key = function (name) { return "sjzs:" + (this.merchant ? this.merchant.merchant_code : "-") + ":" + name; };

  Widget.prototype.ensureToken = function (force) {
    var self = this;
    if (this.token && !force) return Promise.resolve(this.token);
    if (!cfg.tokenUrl) return this.token ? Promise.resolve(this.token) : Promise.reject(new Error("缺少身份凭证"));
    return fetch(cfg.tokenUrl, { method: "POST", credentials: "same-origin" }).then(function (r) {
      if (!r.ok) throw new Error("获取身份凭证失败");
      return r.json();
    }).then(function (body) { self.token = body.token; return self.token; });
  };

  Widget.prototype.api = function (method, path, body) {
    var self = this;
    var opts = { method: method, headers: { Authorization: "Bearer " + this.token } };
    if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
    return fetch(cfg.api + path, opts).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (!r.ok) {
          var err = new Error(typeof data.detail === "string" ? data.detail : "请求失败（" + r.status + "）");
          err.status = r.status; throw err;
        }
        return data;
      });
    }).catch(function (err) {
      if (err.status === 401 && cfg.tokenUrl && !self._refreshing) {
        self._refreshing = true;
        return self.ensureToken(true).then(function () { self._refreshing = false; return self.api(method, path, body); });
      }
      if (!err.status) err.message = "网络连接失败";
      throw err;
    });
  };

  Widget.prototype.connect = function () {
    var self = this;
    if (this.stopped) return;
    var url = cfg.api.replace(/^http/, "ws") + "/ws/chat?token=" + encodeURIComponent(this.token);
    var ws = this.ws = new WebSocket(url);
    ws.onopen = function () {
      self.retry = 0;
      var conv = self.conversation ? self.conversation.id : store(self.key("conversation"));
      ws.send(JSON.stringify({ type: "hello", conversation_id: conv || null, after_id: self.conversation ? self.lastId : 0 }));
    };
    ws.onmessage = function (e) {
      var ev; try { ev = JSON.parse(e.data); } catch (x) { return; }
      self.onEvent(ev);
    };
    ws.onclose = function (e) {
      if (self.ws !== ws || self.stopped) return;
      self.ws = null;
      if (e.code === 4401) {  // the token expired or is wrong: get a new one if we can
        if (cfg.tokenUrl) { self.ensureToken(true).then(function () { self.connect(); }, function () { self.setBanner("身份已失效，请刷新页面"); }); }
        else self.setBanner("身份已失效，请刷新页面");
        return;
      }
      var wait = Math.min(15000, 1000 * Math.pow(2, self.retry++));
      self.setBanner("连接已断开，正在重新连接…");
      self.modeLine.textContent = "重新连接中…";
      setTimeout(function () { self.connect(); }, wait);
    };
  };

  Widget.prototype.wsSend = function (obj) {
    if (this.ws && this.ws.readyState === 1) { this.ws.send(JSON.stringify(obj)); return true; }
    return false;
  };

  Widget.prototype.onEvent = function (ev) {
    var self = this;
    switch (ev.type) {
      case "hello":
        var changed = !this.conversation || this.conversation.id !== ev.conversation.id;
        this.conversation = ev.conversation;
        store(this.key("conversation"), ev.conversation.id);
        if (changed && this.log.querySelector("[data-id]")) {  // the last one was rated and closed: a new one starts
          this.log.appendChild(el("div", "row sys", "—— 新的会话 ——"));
        }
        this.setMode(ev.conversation.mode);
        this.setBanner("");
        break;
      case "history":
        if (ev.conversation_id !== (this.conversation && this.conversation.id)) break;
        if (!this.welcomed) { this.welcomed = true; this.drawWelcome(ev.messages.length === 0); }
        ev.messages.forEach(function (m) { self.drawMessage(m); });
        this.flushPending();
        break;
      case "message":
        if (this.conversation && ev.conversation_id === this.conversation.id) {
          this.drawMessage(ev.message);
          if (ev.message.sender !== "merchant") this.setTyping(null);
          if (!this.isOpen() && ev.message.sender !== "merchant") this.bump();
        }
        break;
      case "typing":
        if (ev.who !== "merchant") this.setTyping(ev.typing ? ev.who : null);
        break;
      case "mode":
        if (this.conversation && ev.conversation_id === this.conversation.id) {
          this.conversation.mode = ev.mode; this.setMode(ev.mode);
          // the agent ended the conversation: ask for the 1–5 rating
          if (ev.mode === "closed" && !this.conversation.rating && !this._leftMessage) this.showRating();
        }
        break;
      case "notification":
        this.drawNotification(ev.notification);
        break;
      case "error":
        this.onError(ev);
        break;
    }
  };

  Widget.prototype.setBanner = function (text) {
    this.banner.textContent = text;
    this.banner.classList.toggle("show", !!text);
  };

  Widget.prototype.setMode = function (mode) {
    this.modeLine.textContent = MODE_LABEL[mode] || mode;
    this.humanBtn.style.display = mode === "bot" ? "" : "none";
    this.endBtn.style.display = mode === "closed" ? "none" : "";
  };

  Widget.prototype.setTyping = function (who) {
    this.typingLine.textContent = who === "agent" ? "客服正在输入…" : who === "bot" ? "商家助手正在输入…" : "";
  };

  Widget.prototype.bump = function () {
    this.unread += 1;
    this.dot.textContent = String(this.unread);
    this.dot.style.display = "block";
  };

  // ------------------------------------------------------------------ sending

  Widget.prototype.sendTyped = function () {
    var text = this.input.value.trim();
    if (!text) return;
    if (text.length > MAX_CHARS) { this.flash("消息太长了，请控制在 " + MAX_CHARS + " 字以内"); return; }
    this.input.value = "";
    this.hideSuggestions();
    this.send(text, null);
  };

  /* Every message gets a client id; it is drawn at once, kept until the server echoes it, and re-sent after a
     reconnect (the server stores a client id once, so nothing is lost or doubled). */
  Widget.prototype.send = function (text, payload) {
    var item = { client_id: uid(), text: text, payload: payload || null };
    this._typedAt = 0;  // the next message's first keystroke shows "正在输入" to the agent at once
    this.pending.push(item);
    store(this.key("pending"), this.pending);
    this.drawPending(item);
    if (!this.wsSend({ type: "message", text: item.text, payload: item.payload, client_id: item.client_id })) {
      this.setBanner("连接已断开，消息将在重新连接后发送…");
    }
    this.scroll();
  };

  Widget.prototype.flushPending = function () {
    var self = this;
    this.pending.forEach(function (item) {
      if (!self.log.querySelector("[data-client='" + item.client_id + "']")) self.drawPending(item);
      self.wsSend({ type: "message", text: item.text, payload: item.payload, client_id: item.client_id });
    });
  };

  Widget.prototype.settle = function (clientId) {
    this.pending = this.pending.filter(function (p) { return p.client_id !== clientId; });
    store(this.key("pending"), this.pending);
  };

  Widget.prototype.onError = function (ev) {
    if (ev.client_id) {
      this.settle(ev.client_id);
      var row = this.log.querySelector("[data-client='" + ev.client_id + "']");
      if (row) { row.classList.remove("pending"); row.classList.add("failed"); row.querySelector(".state").textContent = ev.detail || "发送失败"; }
    } else {
      this.flash(ev.detail || "出错了");
    }
  };

  Widget.prototype.flash = function (text) {
    var line = el("div", "row sys err-line", text);
    this.log.appendChild(line);
    this.scroll();
  };

  Widget.prototype.onTyping = function () {
    var self = this;
    var now = Date.now();
    if (!this._typedAt || now - this._typedAt > 3000) { this._typedAt = now; this.wsSend({ type: "typing" }); }
    clearTimeout(this._suggTimer);
    var q = this.input.value.trim();
    if (q.length < 2 || (this.conversation && this.conversation.mode !== "bot")) { this.hideSuggestions(); return; }
    this._suggTimer = setTimeout(function () {
      var asked = q;
      self.api("GET", "/api/suggest?q=" + encodeURIComponent(q)).then(function (list) {
        if (self.input.value.trim() !== asked) return;  // typed on since: a newer request follows
        self.showSuggestions(list);
      }).catch(function () { self.hideSuggestions(); });
    }, SUGGEST_DELAY_MS);
  };

  Widget.prototype.showSuggestions = function (list) {
    var self = this;
    this.sugg.textContent = "";
    if (!list.length) return this.hideSuggestions();
    list.forEach(function (s) {
      var b = el("button", "", s.question);
      b.onclick = function () { self.input.value = ""; self.hideSuggestions(); self.send(s.question, null); };
      self.sugg.appendChild(b);
    });
    this.sugg.classList.add("show");
  };
  Widget.prototype.hideSuggestions = function () { this.sugg.classList.remove("show"); this.sugg.textContent = ""; };
  Widget.prototype.moveSuggestion = function (e) {
    var items = Array.prototype.slice.call(this.sugg.querySelectorAll("button"));
    if (!items.length) return;
    e.preventDefault();
    var i = items.findIndex(function (b) { return b.classList.contains("sel"); });
    if (i >= 0) items[i].classList.remove("sel");
    i = e.key === "ArrowDown" ? (i + 1) % items.length : (i <= 0 ? items.length - 1 : i - 1);
    items[i].classList.add("sel");
    this.input.value = items[i].textContent;
  };

  // ------------------------------------------------------------------ drawing

  Widget.prototype.scroll = function () { this.log.scrollTop = this.log.scrollHeight; };

  Widget.prototype.drawWelcome = function (fresh) {
    var self = this;
    var row = el("div", "row bot welcome");
    row.appendChild(el("div", "who", "商家助手"));
    var name = this.merchant && this.merchant.merchant_name ? this.merchant.merchant_name : "";
    row.appendChild(el("div", "bubble", "您好" + (name ? "，" + name : "") + "！我是商家助手，保证金、提现、违规申诉、发票等问题都可以问我，也能帮您查询工单和申诉进度。"));
    var chips = el("div", "chips hot");
    row.appendChild(el("div", "who", "热点问题"));
    row.appendChild(chips);
    this.log.insertBefore(row, this.log.firstChild);
    this.api("GET", "/api/kb/hot-questions").then(function (list) {
      list.slice(0, 8).forEach(function (h) {
        var b = el("button", "", h.question);
        b.onclick = function () { self.send(h.question, null); };
        chips.appendChild(b);
      });
    }).catch(function () {});
  };

  Widget.prototype.drawPending = function (item) {
    var row = el("div", "row me pending");
    row.dataset.client = item.client_id;
    row.appendChild(el("div", "bubble", item.text));
    row.appendChild(el("div", "state", "发送中…"));
    this.log.appendChild(row);
  };

  Widget.prototype.drawMessage = function (m) {
    if (this.seen[m.id]) return;
    this.seen[m.id] = true;
    this.lastId = Math.max(this.lastId, m.id);
    if (m.client_id) {
      this.settle(m.client_id);
      var mine = this.log.querySelector("[data-client='" + m.client_id + "']");
      if (mine) { mine.classList.remove("pending", "failed"); mine.dataset.id = m.id; mine.querySelector(".state").textContent = ""; return; }
    }
    var payload = m.payload || {};
    var row;
    if (m.sender === "merchant") {
      row = el("div", "row me");
      row.appendChild(el("div", "bubble", m.text));
    } else if (m.sender === "system") {
      row = el("div", "row sys", m.text);
      if ((payload.custom || {}).type === "queue_overdue") this.drawLeaveMessage(row);
    } else {
      row = el("div", "row " + (m.sender === "agent" ? "agent" : "bot"));
      row.appendChild(el("div", "who", m.sender === "agent" ? "人工客服 · " + (payload.agent_name || "客服") : "商家助手"));
      var custom = payload.custom || {};
      if (m.sender === "bot" && custom.type === "faq_answer" && typeof custom.answer_html === "string" && custom.answer_html) {
        var rich = el("div", "bubble md");
        rich.appendChild(safeHtml(custom.answer_html));
        row.appendChild(rich);
      } else if (m.text) row.appendChild(el("div", "bubble", m.text));
      this.drawButtons(row, payload.buttons || []);
      if (custom.type === "faq_answer" && custom.feedback) this.drawFeedback(row, m);
      if (custom.type === "evidence_upload" && custom.appeal_number) this.drawUpload(row, custom.appeal_number);
    }
    row.dataset.id = m.id;
    this.log.appendChild(row);
    this.scroll();
  };

  // The queue is long: the merchant may leave the question instead of waiting; it becomes a service case.
  Widget.prototype.drawLeaveMessage = function (row) {
    var self = this;
    if (!this.conversation || this.conversation.mode !== "waiting_agent") return;
    var open = el("button", "leave", "留言");
    var box = el("div", "leave-box");
    open.onclick = function () {
      open.style.display = "none";
      var text = el("textarea");
      text.placeholder = "请描述您的问题，客服会通过工单回复您";
      text.maxLength = 2000;
      var go = el("button", "go", "提交留言");
      var msg = el("div", "err-line");
      go.onclick = function () {
        if (!text.value.trim()) { msg.textContent = "请先写下您的问题"; return; }
        go.disabled = true;
        self._leftMessage = true;  // no rating for a conversation no person took part in
        self.api("POST", "/api/conversations/" + self.conversation.id + "/leave-message", { text: text.value })
          .then(function (r) { box.textContent = ""; box.appendChild(el("div", "", "留言已提交，工单号 " + r.case_number)); })
          .catch(function (err) { self._leftMessage = false; go.disabled = false; msg.textContent = err.message; });
      };
      box.appendChild(text); box.appendChild(go); box.appendChild(msg);
    };
    row.appendChild(open);
    row.appendChild(box);
  };

  Widget.prototype.drawButtons = function (row, buttons) {
    var self = this;
    if (!buttons.length) return;
    var box = el("div", "btns");
    buttons.forEach(function (b) {
      var btn = el("button", "", b.title);
      btn.onclick = function () { self.send(b.title, b.payload && b.payload.charAt(0) === "/" ? b.payload : null); };
      box.appendChild(btn);
    });
    row.appendChild(box);
  };

  Widget.prototype.drawFeedback = function (row, m) {
    var self = this;
    var box = el("div", "fb");
    var label = el("span", "", m.feedback ? "感谢您的反馈" : "这个回答对您有帮助吗？");
    var yes = el("button", "useful", "有用");
    var no = el("button", "useless", "没用");
    function mark(v) { yes.classList.toggle("on", v === "useful"); no.classList.toggle("on", v === "useless"); }
    mark(m.feedback);
    function give(v) {
      self.api("POST", "/api/messages/" + m.id + "/feedback", { value: v }).then(function () {
        mark(v); label.textContent = v === "useful" ? "感谢您的反馈" : "抱歉没能帮到您，可以换个说法再问，或点「转人工」";
      }).catch(function (err) { label.textContent = err.message; });
    }
    yes.onclick = function () { give("useful"); };
    no.onclick = function () { give("useless"); };
    box.appendChild(label); box.appendChild(yes); box.appendChild(no);
    row.appendChild(box);
  };

  Widget.prototype.drawUpload = function (row, appealNumber) {
    var self = this;
    var box = el("div", "upload");
    box.appendChild(el("div", "", "上传申诉 " + appealNumber + " 的材料（图片或 PDF，每个不超过 10 MB）"));
    var pick = el("input");
    pick.type = "file"; pick.multiple = true; pick.accept = "image/png,image/jpeg,image/gif,image/webp,application/pdf";
    pick.style.display = "none";
    var choose = el("button", "choose", "选择图片或 PDF");
    choose.onclick = function () { pick.click(); };
    box.appendChild(pick);
    var btns = el("div", "btns");
    btns.appendChild(choose);
    box.appendChild(btns);
    var files = el("div", "files");
    box.appendChild(files);
    pick.onchange = function () {
      Array.prototype.forEach.call(pick.files, function (f) { self.upload(appealNumber, f, files); });
      pick.value = "";
    };
    row.appendChild(box);
  };

  Widget.prototype.upload = function (appealNumber, file, list) {
    var line = el("div");
    var name = el("div", "", file.name + "（" + humanSize(file.size) + "）");
    var bar = el("progress"); bar.max = 100; bar.value = 0;
    var note = el("div");
    line.appendChild(name); line.appendChild(bar); line.appendChild(note);
    list.appendChild(line);
    function fail(text) { bar.remove(); note.className = "err"; note.textContent = text; }
    if (FILE_TYPES.indexOf(file.type) < 0) return fail("不支持的文件类型：只能上传 PNG、JPG、GIF、WEBP 图片或 PDF");
    if (file.size > MAX_FILE_BYTES) return fail("文件超过 10 MB，请压缩后再上传");
    if (file.size === 0) return fail("文件是空的");
    var xhr = new XMLHttpRequest();
    xhr.open("POST", cfg.api + "/api/appeals/" + encodeURIComponent(appealNumber) + "/evidence");
    xhr.setRequestHeader("Authorization", "Bearer " + this.token);
    xhr.upload.onprogress = function (e) { if (e.lengthComputable) bar.value = Math.round(100 * e.loaded / e.total); };
    xhr.onload = function () {
      if (xhr.status >= 200 && xhr.status < 300) { bar.value = 100; note.className = "ok"; note.textContent = "已上传"; return; }
      var detail = "上传失败（" + xhr.status + "）";
      try { var d = JSON.parse(xhr.responseText).detail; if (typeof d === "string") detail = d; } catch (e) { /* keep */ }
      fail(detail);
    };
    xhr.onerror = function () { fail("网络中断，上传失败，请重试"); };
    var form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  };

  Widget.prototype.drawNotification = function (n) {
    var self = this;
    if (this.log.querySelector("[data-notice='" + n.id + "']")) return;
    var row = el("div", "row bot notice");
    row.dataset.notice = n.id;
    var card = el("div", "card");
    card.appendChild(el("div", "ct", "服务进度提醒"));
    card.appendChild(el("div", "", n.title));
    if (n.body) card.appendChild(el("div", "who", n.body));
    var btns = el("div", "btns");
    var look = el("button", "", "查看进度");
    look.onclick = function () { self.send("查询 " + n.number + " 的进度", null); };
    btns.appendChild(look);
    card.appendChild(btns);
    row.appendChild(card);
    if (n.kind === "appeal" && n.status === "need_more") this.drawUpload(row, n.number);  // the reviewer asks for more
    this.log.appendChild(row);
    this.scroll();
    this.notices = (this.notices || []).concat([n.id]);
    if (this.isOpen()) this.markNotificationsSeen(); else this.bump();
  };

  Widget.prototype.markNotificationsSeen = function () {
    if (this.notices && this.notices.length && this.wsSend({ type: "seen", ids: this.notices })) this.notices = [];
  };

  Widget.prototype.showRating = function () {
    var self = this;
    if (!this.conversation || this.log.querySelector(".rate")) return;
    var row = el("div", "row sys");
    var box = el("div", "rate");
    box.appendChild(el("div", "", "结束本次会话？请为这次服务打分"));
    var stars = el("div", "stars");
    var score = 0;
    for (var i = 1; i <= 5; i++) {
      (function (n) {
        var s = el("button", "", "★");
        s.setAttribute("aria-label", n + " 分");
        s.onclick = function () {
          score = n;
          Array.prototype.forEach.call(stars.children, function (c, j) { c.classList.toggle("on", j < n); });
        };
        stars.appendChild(s);
      })(i);
    }
    box.appendChild(stars);
    var comment = el("textarea");
    comment.placeholder = "还有什么想对我们说的？（选填）";
    comment.maxLength = 500;
    box.appendChild(comment);
    var go = el("button", "go", "提交评价");
    var msg = el("div", "err-line");
    go.onclick = function () {
      if (!score) { msg.textContent = "请先选择 1–5 星"; return; }
      self.api("POST", "/api/conversations/" + self.conversation.id + "/rating", { rating: score, comment: comment.value }).then(function () {
        box.textContent = "";
        box.appendChild(el("div", "", "感谢您的评价！本次会话已结束，有新问题可以随时再问我。"));
        self.conversation.mode = "closed"; self.setMode("closed");
      }).catch(function (err) { msg.textContent = err.message; });
    };
    box.appendChild(go); box.appendChild(msg);
    row.appendChild(box);
    this.log.appendChild(row);
    this.scroll();
  };

  Widget.prototype.destroy = function () {
    this.stopped = true;
    if (this.ws) this.ws.close();
    this.host.remove();
  };

  // ------------------------------------------------------------------ boot

  var widget = null;
  function boot() {
    widget = new Widget();
    widget.start();
  }
  window.SJZSWidget = {
    open: function () { widget && widget.open(); },
    close: function () { widget && widget.close(); },
    destroy: function () { if (widget) widget.destroy(); widget = null; delete window.SJZSWidget; },
  };
  if (document.body) boot(); else document.addEventListener("DOMContentLoaded", boot);
})();
