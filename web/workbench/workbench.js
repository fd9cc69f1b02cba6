/* 商家助手 · 知识库工作台: FAQs, synonyms, hot questions. Plain JS, no build step; text goes in through textContent,
   the answer preview is HTML the API rendered and sanitised (the same the merchant's widget shows).

   window.Workbench, for the other tabs' scripts (inbox.js, tuning.js):
     api(method, path, body) → Promise of the JSON (bearer token added; rejects with Error(Chinese detail))
     toast(text)             a short message at the bottom of the page
     onTab(name, fn)         fn(sectionElement) each time tab name ("inbox" | "tuning") is shown
     openFaq(id)             the FAQ tab with that FAQ open in the editor
     newFaq(prefill)         the editor on a new draft, prefilled with {question, similar: [], category, answer}
     tryIt(text, faqId?)     the 试一试 panel with that text, against the draft of faqId when given
     role()                  the signed-in account's role ("kb_editor" | "admin")
   Sign-in, the token and the HTTP wrapper are web/shared/staff.js (window.SjzsStaff). */
(function () {
  "use strict";

  var STATUS = { draft: "草稿", published: "已发布", archived: "已下线" };
  var PAGE = 50;

  var state = {
    me: null, tab: "faq", page: 0, total: 0, rows: [],
    faq: null,          // the FAQ open in the editor (null: a new one)
    similar: [],        // the editor's similar questions
    kept: {},           // similar questions whose conflict the editor chose to keep (text → true)
    tabHandlers: {}, synonyms: [], hot: [], synTimer: null, previewTimer: null, searchTimer: null
  };

  var $ = SjzsDom.$, el = SjzsDom.el, clear = SjzsDom.clear;  // web/shared/dom.js
  function fmtTime(iso) {
    if (!iso) return "";
    var d = new Date(iso);
    function p(n) { return (n < 10 ? "0" : "") + n; }
    return d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + " " + p(d.getHours()) + ":" + p(d.getMinutes());
  }
  function isoDate(d) { return d.toISOString().slice(0, 10); }
  function score(x) { return (Math.round(x * 1000) / 1000).toFixed(3); }
  function cleanLine(t) { return String(t || "").replace(/\s+/g, " ").trim(); }
  // the same key the server dedupes by, roughly: width, case, punctuation and spaces do not make a new phrasing
  function lineKey(t) {
    var s = cleanLine(t);
    try { s = s.normalize("NFKC"); } catch (e) { /* old browser */ }
    return s.toLowerCase().replace(/[\s\u3000-\u303f\uff00-\uff0f\uff1a-\uff20!-\/:-@\[-`{-~]/g, "");
  }

  // ------------------------------------------------------------------ HTTP and sign-in (web/shared/staff.js)

  var Staff = window.SjzsStaff;
  var api = Staff.api;

  function toast(text) {
    var t = $("toast");
    t.textContent = text;
    t.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(function () { t.hidden = true; }, 3500);
  }

  function download(path, fallbackName) {
    return Staff.fetch("GET", path).then(function (resp) {
      var m = /filename="([^"]+)"/.exec(resp.headers.get("Content-Disposition") || "");
      return resp.blob().then(function (blob) {
        var a = el("a");
        a.href = URL.createObjectURL(blob);
        a.download = m ? m[1] : fallbackName;
        document.body.appendChild(a);
        a.click();
        setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
      });
    }).catch(function (err) { toast(err.message); });
  }

  // ------------------------------------------------------------------ start

  function start(me) {
    state.me = me;
    $("me").textContent = me.display_name;
    var end = new Date(), begin = new Date(end.getTime() - 29 * 86400000);
    if (!$("f-end").value) $("f-end").value = isoDate(end);
    if (!$("f-start").value) $("f-start").value = isoDate(begin);
    showTab(state.tab);
    loadList();
    var m = /faq=(\d+)/.exec(location.hash);  // /workbench#faq=<id>: 「查看该 FAQ」 opens it in a new tab
    if (m) openFaq(parseInt(m[1], 10)).catch(function () {});
  }

  // ------------------------------------------------------------------ tabs

  function showTab(name) {
    state.tab = name;
    Array.prototype.forEach.call(document.querySelectorAll(".wb-tabs button"), function (b) {
      b.classList.toggle("on", b.dataset.tab === name);
      b.setAttribute("aria-selected", b.dataset.tab === name ? "true" : "false");
    });
    Array.prototype.forEach.call(document.querySelectorAll("section.tab"), function (s) {
      s.hidden = s.id !== "tab-" + name;
    });
    if (name === "synonyms") loadSynonyms();
    if (name === "hot") loadHot();
    (state.tabHandlers[name] || []).forEach(function (fn) {
      try { fn($("tab-" + name)); } catch (e) { console.error(e); }
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll(".wb-tabs button"), function (b) {
    b.onclick = function () { showTab(b.dataset.tab); };
  });

  function onTab(name, fn) {
    (state.tabHandlers[name] = state.tabHandlers[name] || []).push(fn);
    if (state.tab === name && state.me) fn($("tab-" + name));
  }

  // ------------------------------------------------------------------ the list

  function listQuery() {
    var p = new URLSearchParams();
    [["q", "f-q"], ["category", "f-category"], ["status", "f-status"], ["tag", "f-tag"], ["start", "f-start"],
     ["end", "f-end"], ["sort", "f-sort"]].forEach(function (pair) {
      var v = $(pair[1]).value.trim();
      if (v) p.set(pair[0], v);
    });
    p.set("offset", String(state.page * PAGE));
    p.set("limit", String(PAGE));
    return p.toString();
  }

  function fillSelect(select, values, allLabel) {
    var keep = select.value;
    clear(select);
    select.appendChild(el("option", "", allLabel)).value = "";
    values.forEach(function (v) { select.appendChild(el("option", "", v)).value = v; });
    select.value = values.indexOf(keep) >= 0 ? keep : "";
  }

  function loadList() {
    return api("GET", "/api/kb/workbench/faqs?" + listQuery()).then(function (page) {
      state.total = page.total; state.rows = page.items;
      fillSelect($("f-category"), page.categories, "全部分类");
      fillSelect($("f-tag"), page.tags, "全部标签");
      var dl = $("category-list");
      clear(dl);
      page.categories.forEach(function (c) { dl.appendChild(el("option")).value = c; });
      drawList();
    }).catch(function (err) { toast(err.message); });
  }

  function drawList() {
    var body = $("faq-rows");
    clear(body);
    state.rows.forEach(function (f) {
      var tr = el("tr");
      tr.dataset.id = f.id;
      if (state.faq && state.faq.id === f.id) tr.className = "on";
      var q = el("td", "q");
      q.appendChild(el("div", "", f.question));
      var sub = el("div", "hint", f.similar_count + " 个相似问法" + (f.tags.length ? " · " + f.tags.join("、") : ""));
      q.appendChild(sub);
      tr.appendChild(q);
      tr.appendChild(el("td", "", f.category));
      var st = el("td");
      st.appendChild(el("span", "pill " + f.status, STATUS[f.status] || f.status));
      tr.appendChild(st);
      tr.appendChild(el("td", "num hits", String(f.hits)));
      var fb = el("td", "num fb");
      fb.appendChild(el("span", "up", String(f.useful)));
      fb.appendChild(document.createTextNode(" / "));
      fb.appendChild(el("span", f.useless ? "down" : "", String(f.useless)));
      tr.appendChild(fb);
      tr.appendChild(el("td", "num np", f.not_picked + " / " + f.offered));
      tr.onclick = function () { openFaq(f.id); };
      body.appendChild(tr);
    });
    $("faq-empty").hidden = state.rows.length > 0;
    var pages = Math.max(1, Math.ceil(state.total / PAGE));
    $("pg-info").textContent = "共 " + state.total + " 条 · 第 " + (state.page + 1) + "/" + pages + " 页";
    $("pg-prev").disabled = state.page === 0;
    $("pg-next").disabled = state.page + 1 >= pages;
  }

  function reloadFromFirst() { state.page = 0; loadList(); }
  $("f-q").addEventListener("input", function () {
    clearTimeout(state.searchTimer);
    state.searchTimer = setTimeout(reloadFromFirst, 250);
  });
  ["f-category", "f-status", "f-tag", "f-start", "f-end", "f-sort"].forEach(function (id) {
    $(id).addEventListener("change", reloadFromFirst);
  });
  $("pg-prev").onclick = function () { state.page = Math.max(0, state.page - 1); loadList(); };
  $("pg-next").onclick = function () { state.page += 1; loadList(); };

  // ------------------------------------------------------------------ the editor

  function showEditor() {
    $("editor-placeholder").hidden = true;
    $("editor").hidden = false;
    $("ed-error").textContent = "";
    $("conflicts").hidden = true;
    $("versions").hidden = true;
    state.kept = {};
  }

  function fillEditor(faq) {
    state.faq = faq && faq.id ? faq : null;
    showEditor();
    $("ed-title").textContent = state.faq ? "FAQ " + state.faq.id + " · " + state.faq.key : "新建 FAQ";
    var status = state.faq ? state.faq.status : "draft";
    $("ed-status").textContent = STATUS[status] + (state.faq ? "" : "（未保存）");
    $("ed-status").className = "pill " + status;
    $("ed-meta").textContent = state.faq ? "版本 " + state.faq.version + " · " + state.faq.updated_by + " 于 " +
      fmtTime(state.faq.updated_at) : "";
    $("ed-question").value = (faq && faq.question) || "";
    $("ed-answer").value = (faq && faq.answer) || "";
    $("ed-category").value = (faq && faq.category) || "";
    $("ed-tags").value = ((faq && faq.tags) || []).join("、");
    $("ed-action").value = (faq && faq.action) || "";
    state.similar = [];
    addSimilar(((faq && faq.similar) || []).join("\n"), true);
    // a published FAQ has no separate draft: its changes are published (试一试 first), or it is taken offline
    $("ed-save").hidden = status === "published";
    $("ed-save").textContent = status === "archived" ? "保存（保持下线）" : "保存草稿";
    $("ed-publish").textContent = status === "published" ? "发布修改（立即生效）" : status === "archived" ? "重新发布" : "发布";
    $("ed-archive").hidden = !state.faq || status === "archived";
    $("ed-versions").disabled = !state.faq;
    preview();
    Array.prototype.forEach.call(document.querySelectorAll("#faq-rows tr"), function (tr) {
      tr.classList.toggle("on", !!state.faq && String(state.faq.id) === tr.dataset.id);
    });
  }

  function openFaq(id) {
    if (state.tab !== "faq") showTab("faq");
    return api("GET", "/api/kb/faqs/" + id).then(function (faq) { fillEditor(faq); return faq; })
      .catch(function (err) { toast(err.message); throw err; });
  }

  function newFaq(prefill) {
    if (state.tab !== "faq") showTab("faq");
    prefill = prefill || {};
    fillEditor({ question: prefill.question || "", similar: prefill.similar || [], category: prefill.category || "",
                 answer: prefill.answer || "", tags: prefill.tags || [], action: prefill.action || null });
    $("try").hidden = true;
    $("ed-question").focus();
  }
  $("btn-new").onclick = function () { newFaq({}); };

  // similar questions: add (one or many lines), remove; blank and repeated lines are dropped
  function addSimilar(text, quiet) {
    var have = {}, added = 0, repeated = 0;
    have[lineKey($("ed-question").value)] = true;
    state.similar.forEach(function (t) { have[lineKey(t)] = true; });
    String(text || "").split(/\r?\n/).forEach(function (line) {
      var t = cleanLine(line);
      if (!t) return;
      var k = lineKey(t);
      if (!k || have[k]) { repeated += 1; return; }
      if (t.length > 200) { repeated += 1; return; }
      have[k] = true;
      state.similar.push(t);
      added += 1;
    });
    drawSimilar();
    if (!quiet) $("ed-similar-msg").textContent = "添加了 " + added + " 条" + (repeated ? "，跳过重复或无效的 " + repeated + " 条" : "");
    return added;
  }

  function drawSimilar() {
    var ul = $("ed-similar");
    clear(ul);
    state.similar.forEach(function (t, i) {
      var li = el("li");
      li.appendChild(el("span", "t", t));
      var x = el("button", "link x", "删除");
      x.type = "button";
      x.title = "删除这个相似问法";
      x.onclick = function () { state.similar.splice(i, 1); drawSimilar(); };
      li.appendChild(x);
      ul.appendChild(li);
    });
    $("ed-similar-count").textContent = "（" + state.similar.length + " 条）";
  }

  $("ed-similar-btn").onclick = function () {
    addSimilar($("ed-similar-add").value);
    $("ed-similar-add").value = "";
  };
  $("ed-similar-add").addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); $("ed-similar-btn").click(); }
  });

  function preview() {
    clearTimeout(state.previewTimer);
    state.previewTimer = setTimeout(function () {
      var text = $("ed-answer").value;
      if (!text.trim()) { clear($("ed-preview")); $("ed-preview").appendChild(el("span", "hint", "答案预览")); return; }
      api("POST", "/api/kb/workbench/render", { markdown: text }).then(function (r) {
        // HTML the API rendered and sanitised with an allow-list (nh3): the same the widget shows
        $("ed-preview").innerHTML = r.html;
      }).catch(function () { /* the preview catches up on the next keystroke */ });
    }, 200);
  }
  $("ed-answer").addEventListener("input", preview);

  function editorBody(status) {
    return {
      question: cleanLine($("ed-question").value), answer: $("ed-answer").value.trim(),
      category: $("ed-category").value.trim(), similar: state.similar.slice(),
      tags: $("ed-tags").value.split(/[、,，;；]+/).map(function (t) { return t.trim(); }).filter(Boolean),
      action: $("ed-action").value || null, status: status,
      version: state.faq ? state.faq.version : null
    };
  }

  function checkEditor(body) {
    var missing = [];
    if (!body.question) missing.push("标准问题");
    if (!body.answer) missing.push("答案");
    if (!body.category) missing.push("分类");
    if (missing.length) throw new Error("请填写" + missing.join("、"));
  }

  // Saving: first the conflict check on what the editor holds; flagged similar questions are moved or kept by
  // the editor before anything is written, so a misplaced phrasing never reaches the bot.
  function save(status) {
    var body = editorBody(status);
    $("ed-error").textContent = "";
    try { checkEditor(body); } catch (err) { $("ed-error").textContent = err.message; return Promise.resolve(); }
    return api("POST", "/api/kb/workbench/conflicts", {
      faq_id: state.faq ? state.faq.id : null, question: body.question, similar: body.similar
    }).then(function (found) {
      found = found.filter(function (c) { return !state.kept[c.text]; });
      if (found.length) { showConflicts(found, status); return null; }
      $("conflicts").hidden = true;
      var req = state.faq ? api("PUT", "/api/kb/faqs/" + state.faq.id, body) : api("POST", "/api/kb/faqs", body);
      return req.then(function (faq) {
        fillEditor(faq);
        toast(status === "published" ? "已发布，机器人立即按新内容回答" : status === "archived" ? "已下线" : "已保存");
        loadList();
        return faq;
      });
    }).catch(function (err) { $("ed-error").textContent = err.message; });
  }

  function showConflicts(found, status) {
    var box = $("conflicts");
    clear(box);
    box.hidden = false;
    box.appendChild(el("b", "", "冲突检查：以下相似问法离另一条 FAQ 比离本条更近"));
    var ul = el("ul", "conflict-list");
    found.forEach(function (c) {
      var li = el("li");
      li.dataset.text = c.text;
      li.appendChild(el("div", "t", "「" + c.text + "」"));
      li.appendChild(el("div", "hint", "本条得分 " + score(c.own_score) + "，FAQ " + c.other_faq_id + "「" +
        c.other_question + "」得分 " + score(c.other_score)));
      var move = el("button", "", "移到该 FAQ");
      move.type = "button";
      move.onclick = function () {
        move.disabled = true;
        api("POST", "/api/kb/workbench/move-similar", {
          text: c.text, from_faq_id: state.faq ? state.faq.id : null, to_faq_id: c.other_faq_id
        }).then(function (r) {
          state.similar = state.similar.filter(function (t) { return t !== c.text; });
          if (r.source && state.faq) { state.faq.version = r.source.version; }
          drawSimilar();
          li.remove();
          toast("已移到 FAQ " + c.other_faq_id);
          if (!ul.children.length) box.hidden = true;
        }).catch(function (err) { move.disabled = false; $("ed-error").textContent = err.message; });
      };
      var keep = el("button", "", "保留");
      keep.type = "button";
      keep.onclick = function () {
        state.kept[c.text] = true;
        li.remove();
        if (!ul.children.length) box.hidden = true;
      };
      var open = el("button", "link", "查看该 FAQ");
      open.type = "button";
      open.onclick = function () { window.open("/workbench#faq=" + c.other_faq_id, "_blank", "noopener"); };
      var acts = el("div", "acts");
      acts.appendChild(move); acts.appendChild(keep); acts.appendChild(open);
      li.appendChild(acts);
      ul.appendChild(li);
    });
    box.appendChild(ul);
    var go = el("button", "primary", "处理完毕，继续" + (status === "published" ? "发布" : "保存"));
    go.type = "button";
    go.id = "conflicts-continue";
    go.onclick = function () {
      Array.prototype.forEach.call(ul.querySelectorAll("li"), function (li) { state.kept[li.dataset.text] = true; });
      save(status);
    };
    box.appendChild(go);
    box.scrollIntoView({ block: "nearest" });
  }

  $("ed-save").onclick = function () { save(state.faq && state.faq.status === "archived" ? "archived" : "draft"); };
  $("ed-publish").onclick = function () { save("published"); };
  $("ed-archive").onclick = function () {
    if (!state.faq) return;
    api("POST", "/api/kb/faqs/" + state.faq.id + "/archive").then(function (faq) {
      fillEditor(faq); toast("已下线，机器人不再用它回答"); loadList();
    }).catch(function (err) { $("ed-error").textContent = err.message; });
  };

  // ------------------------------------------------------------------ 试一试

  function tryIt(text, faqId) {
    var ready = faqId ? openFaq(faqId) : Promise.resolve();
    return ready.then(function () {
      if (state.tab !== "faq") showTab("faq");
      $("try").hidden = false;
      $("try-text").value = text || "";
      if (text) return runTry();
      $("try-text").focus();
    });
  }

  function drawSide(box, side) {
    clear(box);
    if (!side) { box.appendChild(el("p", "hint", "（没有打开的草稿）")); return; }
    var d = el("div", "decision " + side.decision, side.decision_label);
    box.appendChild(d);
    var ul = el("ol", "hits");
    side.hits.forEach(function (h) {
      var li = el("li", h.draft ? "draft" : "");
      var who = h.faq_id === null ? "（新 FAQ）" : "FAQ " + h.faq_id;
      li.appendChild(el("span", "s", score(h.score)));
      li.appendChild(el("span", "q", (h.question || h.phrasing) + (h.draft ? "（草稿）" : "")));
      li.appendChild(el("span", "hint", " " + who + " · 最近的问法：" + h.phrasing));
      ul.appendChild(li);
    });
    box.appendChild(ul);
    if (!side.hits.length) box.appendChild(el("p", "hint", "没有匹配的 FAQ"));
  }

  function runTry() {
    var text = $("try-text").value.trim();
    if (!text) return Promise.resolve();
    var editing = !$("editor").hidden;
    var body = { text: text, faq_id: state.faq ? state.faq.id : null };
    if (editing) body.draft = { question: cleanLine($("ed-question").value), similar: state.similar.slice() };
    $("try-note").textContent = "检索中…";
    return api("POST", "/api/kb/workbench/try", body).then(function (r) {
      $("try-note").textContent = "阈值：直接回答 ≥ " + score(r.thresholds.answer) + " 且领先 ≥ " + score(r.thresholds.margin) +
        "；您是想问 ≥ " + score(r.thresholds.clarify) + "。草稿只在这里试算，不影响机器人。";
      drawSide($("try-live"), r.published);
      drawSide($("try-draft"), r.with_draft);
    }).catch(function (err) { $("try-note").textContent = err.message; });
  }
  $("ed-try").onclick = function () { $("try").hidden = false; $("try-text").focus(); if ($("try-text").value) runTry(); };
  $("try-form").addEventListener("submit", function (ev) { ev.preventDefault(); runTry(); });
  $("try-close").onclick = function () { $("try").hidden = true; };

  // ------------------------------------------------------------------ versions

  function loadVersions() {
    if (!state.faq) return;
    $("versions").hidden = false;
    clear($("diff"));
    api("GET", "/api/kb/faqs/" + state.faq.id + "/versions").then(function (versions) {
      var body = $("version-rows");
      clear(body);
      versions.slice().reverse().forEach(function (v, i) {
        var tr = el("tr");
        var pick = el("td"), box = el("input");
        box.type = "checkbox"; box.value = v.version; box.className = "vpick";
        box.checked = i < 2;
        pick.appendChild(box);
        tr.appendChild(pick);
        tr.appendChild(el("td", "", "v" + v.version + (v.version === state.faq.version ? "（当前）" : "")));
        tr.appendChild(el("td", "", v.editor));
        tr.appendChild(el("td", "", fmtTime(v.at)));
        tr.appendChild(el("td", "", v.snapshot.note || STATUS[v.snapshot.status] || ""));
        var act = el("td");
        if (v.version !== state.faq.version) {
          var restore = el("button", "link", "恢复");
          restore.type = "button";
          restore.onclick = function () {
            api("POST", "/api/kb/faqs/" + state.faq.id + "/versions/" + v.version + "/restore").then(function (faq) {
              fillEditor(faq); toast("已恢复版本 " + v.version + "（生成新版本 " + faq.version + "）"); loadList(); loadVersions();
            }).catch(function (err) { toast(err.message); });
          };
          act.appendChild(restore);
        }
        tr.appendChild(act);
        body.appendChild(tr);
      });
    }).catch(function (err) { toast(err.message); });
  }
  $("ed-versions").onclick = loadVersions;
  $("versions-close").onclick = function () { $("versions").hidden = true; };

  $("versions-compare").onclick = function () {
    var picked = Array.prototype.filter.call(document.querySelectorAll(".vpick"), function (b) { return b.checked; })
      .map(function (b) { return parseInt(b.value, 10); }).sort(function (a, b) { return a - b; });
    if (picked.length !== 2) { toast("请勾选两个版本"); return; }
    api("GET", "/api/kb/faqs/" + state.faq.id + "/versions/" + picked[0] + "/diff/" + picked[1]).then(drawDiff)
      .catch(function (err) { toast(err.message); });
  };

  function drawDiff(d) {
    var box = $("diff");
    clear(box);
    box.appendChild(el("h4", "", "v" + d.old + " → v" + d.new));
    d.fields.forEach(function (f) {
      var p = el("p", "field-diff");
      p.appendChild(el("b", "", f.label + "："));
      p.appendChild(el("del", "", Array.isArray(f.old) ? f.old.join("、") : STATUS[f.old] || String(f.old || "（空）")));
      p.appendChild(document.createTextNode(" → "));
      p.appendChild(el("ins", "", Array.isArray(f.new) ? f.new.join("、") : STATUS[f.new] || String(f.new || "（空）")));
      box.appendChild(p);
    });
    var sim = el("div", "sim-diff");
    sim.appendChild(el("b", "", "相似问法：" + d.similar_kept + " 条未变"));
    d.similar_added.forEach(function (t) { sim.appendChild(el("div", "add", "+ " + t)); });
    d.similar_removed.forEach(function (t) { sim.appendChild(el("div", "rem", "− " + t)); });
    box.appendChild(sim);
    var ans = el("div", "ans-diff");
    ans.appendChild(el("b", "", d.answer_changed ? "答案：" : "答案：未变"));
    if (d.answer_changed) {
      d.answer.forEach(function (line) {
        ans.appendChild(el("div", line.op === "+" ? "add" : line.op === "-" ? "rem" : "same", line.op + " " + line.text));
      });
    }
    box.appendChild(ans);
    if (!d.fields.length && !d.similar_added.length && !d.similar_removed.length && !d.answer_changed) {
      box.appendChild(el("p", "hint", "这两个版本的内容相同（可能只改了状态以外的记录）"));
    }
  }

  // ------------------------------------------------------------------ import and export

  $("btn-export-xlsx").onclick = function () { download("/api/kb/workbench/export?format=xlsx", "faqs.xlsx"); };
  $("btn-export-csv").onclick = function () { download("/api/kb/workbench/export?format=csv", "faqs.csv"); };
  $("btn-template").onclick = function () { download("/api/kb/workbench/template?format=xlsx", "faq-template.xlsx"); };
  $("btn-import").onclick = function () { $("import-file").value = ""; $("import-file").click(); };
  $("import-file").addEventListener("change", function () {
    var file = this.files && this.files[0];
    if (file) dryRun(file);
  });

  function upload(file, dry) {
    var form = new FormData();
    form.append("file", file, file.name);
    return api("POST", "/api/kb/workbench/import?dry_run=" + (dry ? "true" : "false"), form);
  }

  function dryRun(file) {
    var box = $("import-report");
    clear(box);
    box.hidden = false;
    box.appendChild(el("p", "hint", "正在检查 " + file.name + " …"));
    upload(file, true).then(function (r) { drawReport(file, r); }).catch(function (err) {
      clear(box);
      box.appendChild(el("p", "error", "无法导入 " + file.name + "：" + err.message));
      box.appendChild(closeButton(box));
    });
  }

  function closeButton(box) {
    var b = el("button", "link", "关闭");
    b.type = "button";
    b.onclick = function () { box.hidden = true; };
    return b;
  }

  function drawReport(file, r) {
    var box = $("import-report");
    clear(box);
    var head = el("div", "panel-head");
    head.appendChild(el("b", "", (r.applied ? "已导入 " : "导入检查：") + file.name));
    head.appendChild(closeButton(box));
    box.appendChild(head);
    var sum = el("p", "import-summary");
    [["新增", r.new, "new"], ["修改", r.changed, "changed"], ["未变", r.unchanged, "same"], ["有问题", r.bad, "bad"]]
      .forEach(function (x) { var s = el("span", "cnt " + x[2], x[0] + " " + x[1]); s.dataset.kind = x[2]; sum.appendChild(s); });
    box.appendChild(sum);
    if (r.ignored_columns.length) box.appendChild(el("p", "hint", "忽略的列：" + r.ignored_columns.join("、")));
    var bad = r.rows.filter(function (x) { return x.kind === "bad"; });
    var other = r.rows.filter(function (x) { return x.kind !== "bad"; });
    if (bad.length) {
      var t = el("table", "wb-table small bad-rows");
      var hd = el("tr");
      ["行号", "标准问题", "原因"].forEach(function (h) { hd.appendChild(el("th", "", h)); });
      t.appendChild(hd);
      bad.forEach(function (x) {
        var tr = el("tr");
        tr.appendChild(el("td", "", "第 " + x.line + " 行"));
        tr.appendChild(el("td", "", x.question || "（空）"));
        tr.appendChild(el("td", "reason", x.reason));
        t.appendChild(tr);
      });
      box.appendChild(t);
      box.appendChild(el("p", "error", "有问题的行改正后再导入：要么全部导入，要么一条都不导入。"));
    }
    if (other.length) {
      var ul = el("ul", "import-rows");
      other.slice(0, 200).forEach(function (x) {
        ul.appendChild(el("li", x.kind, "第 " + x.line + " 行 · " + (x.kind === "new" ? "新增" : "修改（" + x.changes.join("、") + "）") +
          " · " + x.question));
      });
      if (other.length > 200) ul.appendChild(el("li", "hint", "……共 " + other.length + " 行"));
      box.appendChild(ul);
    }
    if (!r.applied && !bad.length && r.new + r.changed > 0) {
      var go = el("button", "primary", "确认导入（" + (r.new + r.changed) + " 条）");
      go.type = "button";
      go.id = "import-apply";
      go.onclick = function () {
        go.disabled = true;
        upload(file, false).then(function (done) {
          drawReport(file, done); toast("导入完成：新增 " + done.new + " 条，修改 " + done.changed + " 条"); loadList();
          if (done.index_job) followImportIndex(done.message);
        }).catch(function (err) { go.disabled = false; box.appendChild(el("p", "error", err.message)); });
      };
      box.appendChild(go);
    } else if (!r.applied && !bad.length) {
      box.appendChild(el("p", "hint", "文件与知识库一致，没有需要导入的内容。"));
    }
  }

  // The FAQs are saved at once; the search index takes them in afterwards, in the background: show its progress.
  function followImportIndex(message) {
    var box = $("import-report");
    var line = el("p", "hint import-index", message);
    var bar = el("progress");
    bar.max = 1; bar.value = 0;
    box.appendChild(line);
    box.appendChild(bar);
    (function poll() {
      api("GET", "/api/kb/workbench/import/job").then(function (job) {
        bar.max = Math.max(job.total, 1); bar.value = job.done;
        line.textContent = job.message + (job.total ? "（" + job.done + " / " + job.total + "）" : "");
        if (job.state === "queued" || job.state === "running") setTimeout(poll, 1000);
        else if (job.state === "done") bar.remove();
      }).catch(function (err) { line.textContent = err.message; });
    })();
  }

  // ------------------------------------------------------------------ synonyms

  function loadSynonyms() {
    api("GET", "/api/kb/synonyms").then(function (rows) { state.synonyms = rows; drawSynonyms(); }).catch(function (err) {
      $("syn-error").textContent = err.message;
    });
    pollJob();
  }

  function drawSynonyms() {
    var body = $("syn-rows");
    clear(body);
    state.synonyms.forEach(function (s, i) {
      var tr = el("tr");
      tr.appendChild(el("td", "", s.term));
      tr.appendChild(el("td", "", s.canonical));
      var td = el("td"), x = el("button", "link", "删除");
      x.onclick = function () { state.synonyms.splice(i, 1); drawSynonyms(); };
      td.appendChild(x);
      tr.appendChild(td);
      body.appendChild(tr);
    });
  }

  $("syn-add").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var term = $("syn-term").value.trim(), canonical = $("syn-canonical").value.trim();
    if (!term || !canonical) { $("syn-error").textContent = "两边都要填写"; return; }
    state.synonyms = state.synonyms.filter(function (s) { return s.term !== term; });
    state.synonyms.push({ term: term, canonical: canonical });
    $("syn-term").value = ""; $("syn-canonical").value = ""; $("syn-error").textContent = "";
    drawSynonyms();
  });

  $("syn-save").onclick = function () {
    $("syn-error").textContent = "";
    api("PUT", "/api/kb/synonyms", state.synonyms).then(function (r) {
      state.synonyms = r.synonyms; drawSynonyms(); drawJob(r.job); toast("同义词表已保存，正在后台生效"); pollJob();
    }).catch(function (err) { $("syn-error").textContent = err.message; });
  };

  function drawJob(job) {
    var box = $("syn-job");
    box.hidden = job.state === "idle";
    box.className = "job " + job.state;
    var pct = job.state === "done" ? 100 : job.total ? Math.round(100 * job.done / job.total) : 0;
    $("syn-bar").style.width = pct + "%";
    $("syn-msg").textContent = job.message + (job.state === "running" && job.total ? "（" + pct + "%）" : "");
  }

  function pollJob() {
    clearTimeout(state.synTimer);
    api("GET", "/api/kb/synonyms/job").then(function (job) {
      drawJob(job);
      if ((job.state === "queued" || job.state === "running") && state.tab === "synonyms") {
        state.synTimer = setTimeout(pollJob, 1000);
      }
    }).catch(function () { /* shown again on the next visit */ });
  }

  // ------------------------------------------------------------------ hot questions

  function loadHot() {
    api("GET", "/api/kb/hot-questions").then(function (rows) { state.hot = rows; drawHot(); })
      .catch(function (err) { $("hot-error").textContent = err.message; });
  }

  function drawHot() {
    var ol = $("hot-rows");
    clear(ol);
    state.hot.forEach(function (h, i) {
      var li = el("li");
      li.appendChild(el("span", "q", h.question));
      li.appendChild(el("span", "hint", " " + h.category));
      function btn(label, fn, disabled) {
        var b = el("button", "link", label); b.disabled = !!disabled; b.onclick = fn; li.appendChild(b);
      }
      btn("上移", function () { state.hot.splice(i - 1, 0, state.hot.splice(i, 1)[0]); drawHot(); }, i === 0);
      btn("下移", function () { state.hot.splice(i + 1, 0, state.hot.splice(i, 1)[0]); drawHot(); }, i === state.hot.length - 1);
      btn("移除", function () { state.hot.splice(i, 1); drawHot(); });
      ol.appendChild(li);
    });
    if (!state.hot.length) ol.appendChild(el("li", "hint", "还没有热点问题"));
  }

  $("hot-search").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var q = $("hot-q").value.trim();
    api("GET", "/api/kb/workbench/faqs?status=published&limit=20&q=" + encodeURIComponent(q)).then(function (page) {
      var ul = $("hot-results");
      clear(ul);
      page.items.forEach(function (f) {
        var li = el("li");
        li.appendChild(el("div", "q", f.question));
        var add = el("button", "", "加入热点");
        add.disabled = state.hot.some(function (h) { return h.faq_id === f.id; });
        add.onclick = function () {
          if (state.hot.length >= 20) { $("hot-error").textContent = "最多 20 条"; return; }
          state.hot.push({ faq_id: f.id, question: f.question, category: f.category }); add.disabled = true; drawHot();
        };
        li.appendChild(add);
        ul.appendChild(li);
      });
      if (!page.items.length) ul.appendChild(el("li", "hint", "没有找到已发布的 FAQ"));
    }).catch(function (err) { $("hot-error").textContent = err.message; });
  });

  $("hot-save").onclick = function () {
    $("hot-error").textContent = "";
    api("PUT", "/api/kb/hot-questions", state.hot.map(function (h) { return h.faq_id; })).then(function (rows) {
      state.hot = rows; drawHot(); toast("热点问题已保存，商家下次打开聊天窗口即可看到");
    }).catch(function (err) { $("hot-error").textContent = err.message; });
  };

  // ------------------------------------------------------------------ the contract, and off we go

  window.Workbench = { api: api, toast: toast, onTab: onTab, openFaq: openFaq, newFaq: newFaq, tryIt: tryIt,
                       role: function () { return state.me ? state.me.role : ""; } };

  Staff.page({ roles: ["kb_editor", "admin"], denied: "该账号没有知识库编辑权限", onSignIn: start,
               onSignOut: function () { state.me = null; } });
})();
