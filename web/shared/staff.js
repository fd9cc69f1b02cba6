/* 商家助手 · the staff sign-in every staff page shares (客服工作台, 知识库工作台, 服务数据). Plain JS, no build step.

   One token for all staff pages of this origin, in localStorage under one key, until the token's own expiry
   (`exp`, 8 hours): a link into another staff page, in this tab or a new one, needs no second sign-in. Nothing
   goes into URLs. 退出 in any tab signs every tab out (the storage event); an expired token is dropped unread.

   window.SjzsStaff:
     token()                  the signed-in staff token, or ""
     role()                   its role ("agent" | "kb_editor" | "admin"), or ""
     fetch(method, path, body) → Promise of the Response (2xx only; bearer token added; JSON or FormData body;
                              rejects with Error(the API's Chinese detail); a 401 signs out)
     api(method, path, body)  → Promise of the JSON (null for 204)
     me()                     → Promise of GET /api/me
     page(options)            wires the page's #login / #login-form / #username / #password / #login-error,
                              #app and #logout; options: roles (who may use the page), denied (the message for
                              the others), mePath (who-am-I endpoint, default /api/me), onSignIn(me) (the app is
                              shown), onSignOut() (before the token goes: stop timers and sockets, say goodbye)
     signOut(message)         back to the sign-in form with that message; every tab of this origin signs out */
(function () {
  "use strict";

  var KEY = "sjzs-staff-token";
  var EXPIRED = "登录已过期，请重新登录";
  var options = null;
  var held = "";      // the token this page signed in with
  var farewell = "";  // while signing out: that token, for the page's last calls (going offline)

  var $ = SjzsDom.$;  // web/shared/dom.js

  function claims(tok) {
    try {
      var part = tok.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(part + "===".slice((part.length + 3) % 4)));
    } catch (e) { return {}; }
  }

  function token() {
    var tok = "";
    try { tok = localStorage.getItem(KEY) || ""; } catch (e) { return ""; }
    if (tok && !(claims(tok).exp * 1000 > Date.now())) { localStorage.removeItem(KEY); tok = ""; }
    return tok;
  }
  function role() { var tok = token(); return tok ? String(claims(tok).role || "") : ""; }

  function detailOf(resp) {
    return resp.json().catch(function () { return {}; }).then(function (data) {
      var d = data && data.detail;
      return new Error(typeof d === "string" ? d : "操作失败（" + resp.status + "）");
    });
  }

  function send(method, path, body) {
    var used = token() || farewell;
    var opts = { method: method, headers: { Authorization: "Bearer " + used } };
    if (body instanceof FormData) opts.body = body;
    else if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
    return fetch(path, opts).then(function (resp) {
      if (resp.status === 401) {
        if (used && token() === used) signOut(EXPIRED);
        throw new Error(EXPIRED);
      }
      if (!resp.ok) return detailOf(resp).then(function (err) { throw err; });
      return resp;
    });
  }

  function api(method, path, body) {
    return send(method, path, body).then(function (resp) {
      return resp.status === 204 ? null : resp.json().catch(function () { return {}; });
    });
  }

  function me() { return api("GET", "/api/me"); }

  // ------------------------------------------------------------------ the page's sign-in form

  function showLogin(message) {
    $("app").hidden = true; $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("username").focus();
  }

  function allowed(r) { return options.roles.indexOf(r) >= 0; }

  function enter() {
    return api("GET", options.mePath).then(function (who) {
      if (!allowed(who.role)) throw new Error(options.denied);
      $("login").hidden = true; $("app").hidden = false;
      options.onSignIn(who);
    }).catch(function (err) {
      if (token()) showLogin(err.message === "没有权限执行此操作" ? options.denied : err.message);
    });
  }

  function signOut(message) {
    farewell = held;
    if (options && options.onSignOut) {
      try { options.onSignOut(); } catch (e) { console.error(e); }
    }
    farewell = held = "";
    try { localStorage.removeItem(KEY); } catch (e) { /* storage off: nothing kept */ }
    if (options) showLogin(message);
  }

  function submit(ev) {
    ev.preventDefault();
    $("login-error").textContent = "";
    fetch("/api/auth/login", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: $("username").value.trim(), password: $("password").value }) })
      .then(function (resp) {
        if (!resp.ok) return detailOf(resp).then(function (err) { throw err; });
        return resp.json();
      })
      .then(function (data) {
        if (!allowed(data.role)) throw new Error(options.denied);
        localStorage.setItem(KEY, data.access_token);
        held = data.access_token;
        $("password").value = "";
        return enter();
      })
      .catch(function (err) { $("login-error").textContent = err.message || "登录失败"; });
  }

  function page(opts) {
    options = { roles: opts.roles, denied: opts.denied, mePath: opts.mePath || "/api/me",
                onSignIn: opts.onSignIn, onSignOut: opts.onSignOut };
    $("login-form").addEventListener("submit", submit);
    $("logout").onclick = function () { signOut(""); };
    window.addEventListener("storage", function (ev) {  // another tab of this origin signed in or out
      if (ev.key !== KEY && ev.key !== null) return;
      var lapsed = ev.oldValue && !(claims(ev.oldValue).exp * 1000 > Date.now());
      if (!ev.newValue) { if (!$("app").hidden) signOut(lapsed ? EXPIRED : "已在其他页面退出登录"); }
      else if (ev.newValue !== ev.oldValue) location.reload();
    });
    held = token();
    if (!held) showLogin("");
    else if (!allowed(role())) showLogin(options.denied);
    else enter();
  }

  window.SjzsStaff = { token: token, role: role, fetch: send, api: api, me: me, page: page, signOut: signOut };
})();
