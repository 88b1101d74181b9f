// studio.js -- the studio's page: renders the state the studio pushes over
// its websocket (or returns from an API call) and sends what the marketer
// does to the JSON API (docs/studio.md). No framework, no build step.
"use strict";
(function () {
  var S = null;            // the last state
  var cur = null;          // the selected chat's key
  var reloadSeq = 0;
  var $ = function (id) { return document.getElementById(id); };

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); return e; }

  function showError(msg) {
    var e = $("error");
    e.textContent = msg || "";
    e.hidden = !msg;
  }

  function toast(msg) {
    var t = $("toast");
    t.textContent = msg;
    t.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(function () { t.hidden = true; }, 4000);
  }

  // POST JSON; the answer's state (if any) is rendered at once.
  function api(path, body) {
    return fetch(path, {method: "POST", headers: {"Content-Type": "application/json"},
                        body: JSON.stringify(body || {})})
      .then(function (r) { return r.json().then(function (j) { return {status: r.status, body: j}; }); })
      .then(function (r) {
        if (r.status >= 400) { showError(r.body.error || ("ошибка " + r.status)); return r; }
        showError("");
        if (r.body && r.body.state) render(r.body.state);
        return r;
      }, function (e) { showError("студия не отвечает: " + e); return {status: 0, body: {}}; });
  }

  // ---- rendering ----

  var modeText = {bot: "бот", handoff: "ждёт менеджера", manager: "у менеджера"};

  function chatTitle(c) { return c.channel === "test" ? c.chat : c.key; }

  function render(st) {
    S = st;
    $("shop").textContent = st.shop;
    $("clock").textContent = st.clock_text;
    document.querySelectorAll("[data-by], #clock-go").forEach(function (b) { b.disabled = st.moving; });
    renderBanner(st);
    var list = clear($("chat-list"));
    if (!cur && st.chats.length) cur = st.chats[0].key;
    st.chats.forEach(function (c) {
      var li = el("li", {"data-key": c.key});
      li.appendChild(el("span", {}, chatTitle(c)));
      li.appendChild(el("span", {"class": "badge " + c.mode}, modeText[c.mode] || c.mode));
      if (c.key === cur) li.className = "on";
      li.onclick = function () { cur = c.key; render(S); };
      list.appendChild(li);
    });
    var sel = $("checkin-phone"), keep = sel.value;
    if (sel.options.length !== st.customers.length) {
      clear(sel);
      st.customers.forEach(function (c) {
        sel.appendChild(el("option", {value: c.phone}, (c.name || "без имени") + " " + c.phone));
      });
      if (keep) sel.value = keep;
    }
    $("imported").textContent = st.imported ? (st.imported.error ? "customers.csv: " + st.imported.error
      : "из customers.csv: " + st.imported.customers + " клиентов") : "нет customers.csv";
    $("of-shop-label").hidden = !st.shop_store;
    renderChat(st);
    renderManagers(st);
    renderTests(st.tests);
  }

  function renderBanner(st) {
    var b = $("banner"), e = st.flows.error;
    if (e) {
      clear(b);
      b.appendChild(el("b", {}, "Сценарии не обновлены — работают прежние. "));
      if (e.file) {
        b.appendChild(el("span", {}, "Файл "));
        // Lua names a flow file "flows/NAME.lua" whatever folder the flows
        // are in (the example's are in scripts/vitaly): the real path
        b.appendChild(el("code", {"id": "banner-file", "title": e.file},
                         e.file.indexOf("flows/") === 0 && st.flows.dir ? st.flows.dir + e.file.slice(5) : e.file));
        b.appendChild(el("span", {}, ", строка "));
        b.appendChild(el("code", {"id": "banner-line"}, e.line));
        b.appendChild(el("span", {}, ": "));
        b.appendChild(el("span", {"id": "banner-msg"}, e.message));
      } else {
        b.appendChild(el("span", {"id": "banner-msg"}, e.text));
      }
      b.hidden = false;
    } else {
      b.hidden = true;
    }
    var r = st.reload;
    if (r && r.seq > reloadSeq) {
      if (r.ok) toast("Сценарии обновлены (" + r.at + ")");
      reloadSeq = r.seq;
    }
  }

  function find(key) {
    for (var i = 0; S && i < S.chats.length; i++) if (S.chats[i].key === key) return S.chats[i];
    return null;
  }

  function renderChat(st) {
    var c = find(cur), box = $("messages");
    var atEnd = box.scrollTop + box.clientHeight >= box.scrollHeight - 20;
    clear(box);
    $("chat-title").textContent = c ? chatTitle(c) : "—  напишите слева имя нового покупателя";
    $("chat-mode").textContent = c ? (modeText[c.mode] || c.mode) : "";
    $("chat-mode").className = "badge " + (c ? c.mode : "");
    (c ? c.messages : []).forEach(function (m) {
      var note = m.dir === "manager" && (m.text === "take" || m.text === "release");
      var d = el("div", {"class": "msg " + (note ? "note" : m.dir)});
      if (note) d.appendChild(document.createTextNode(m.text === "take" ? "— менеджер взял чат —"
                                                                         : "— менеджер вернул чат боту —"));
      else {
        if (m.dir === "manager") d.appendChild(el("b", {}, "Менеджер: "));
        d.appendChild(document.createTextNode(m.text));
      }
      if (m.buttons) {
        var bs = el("div", {"class": "btns"});
        m.buttons.forEach(function (t) {
          var b = el("button", {}, t);
          b.onclick = function () { say(t); };
          bs.appendChild(b);
        });
        d.appendChild(bs);
      }
      d.appendChild(el("span", {"class": "at"}, m.at));
      box.appendChild(d);
    });
    if (atEnd) box.scrollTop = box.scrollHeight;
    var conv = clear($("conv"));
    function row(k, v) { conv.appendChild(el("dt", {}, k)); conv.appendChild(el("dd", {}, v)); }
    if (c) {
      row("чат", c.key);
      row("сценарий", c.flow || "—");
      row("шаг", c.step || "—");
      row("режим", modeText[c.mode] || c.mode);
      row("заявок", c.leads);
      if (c.error) row("ошибка", c.error);
    }
    var slots = clear($("slots"));
    Object.keys(c ? c.slots : {}).forEach(function (k) {
      var v = c.slots[k], tr = el("tr");
      tr.appendChild(el("td", {}, k));
      tr.appendChild(el("td", {}, typeof v === "string" ? v : JSON.stringify(v)));
      slots.appendChild(tr);
    });
    var timers = clear($("timers"));
    (c ? c.timers : []).forEach(function (t) { timers.appendChild(el("li", {}, t.due + " — " + t.name)); });
    if (c && !c.timers.length) timers.appendChild(el("li", {"class": "muted"}, "нет"));
    var events = clear($("events"));
    (c ? c.events : []).forEach(function (e) {
      var extra = e.data && (e.data.outcome || e.data.reason) ? " (" + (e.data.outcome || e.data.reason) + ")" : "";
      events.appendChild(el("li", {}, e.at + " " + e.kind + extra));
    });
    $("save").disabled = !(c && c.savable);
    if (c && !$("save-name").value) $("save-name").placeholder = c.chat.replace(/[^A-Za-z0-9_-]/g, "_");
  }

  function renderManagers(st) {
    var m = clear($("managers"));
    st.managers.slice(-6).forEach(function (n) {
      m.appendChild(el("div", {"class": "note"}, n.at + "\n" + n.text));
    });
  }

  function renderTests(t) {
    var s = $("tests-status"), ul = clear($("tests-result"));
    $("run-tests").disabled = !!(t && t.running);
    if (!t || (!t.running && !t.files && !t.error)) { s.textContent = "ещё не запускались"; return; }
    if (t.running) { s.textContent = "идут…"; return; }
    s.textContent = t.error ? t.error : ("прошли " + t.passed + ", упали " + t.failed +
      " (" + Math.round(t.ms) + " мс)");
    s.className = t.failed || t.error ? "fail" : "pass";
    (t.files || []).forEach(function (f) {
      var li = el("li", {"class": f.ok ? "pass" : "fail"});
      var file = S && f.file.indexOf(S.shop_dir + "/") === 0 ? f.file.slice(S.shop_dir.length + 1) : f.file;
      li.appendChild(el("b", {}, (f.ok ? "PASS " : "FAIL ") + file + (f.line ? ":" + f.line : "")));
      if (!f.ok) {
        if (f.expected) { li.appendChild(el("div", {}, "ждали:")); li.appendChild(el("pre", {}, f.expected)); }
        else li.appendChild(el("pre", {}, f.message));
        if (f.got) { li.appendChild(el("div", {}, "пришло:")); li.appendChild(el("pre", {}, f.got)); }
      }
      ul.appendChild(li);
    });
  }

  // ---- statistics as SVG ----

  var NS = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, text) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = String(text);
    return e;
  }

  // Horizontal bars: rows [{label, value}], values formatted by fmt.
  function bars(title, rows, color, fmt) {
    var w = 420, lh = 22, left = 150, h = rows.length * lh + 10;
    var max = Math.max.apply(null, rows.map(function (r) { return r.value; }).concat([1]));
    var box = el("div", {"class": "plot"});
    box.appendChild(el("h3", {}, title));
    var s = svg("svg", {width: w, height: h, viewBox: "0 0 " + w + " " + h, "class": "bars"});
    rows.forEach(function (r, i) {
      var y = 5 + i * lh, bw = Math.round((w - left - 50) * r.value / max);
      s.appendChild(svg("text", {x: left - 6, y: y + 14, "text-anchor": "end"}, r.label));
      s.appendChild(svg("rect", {x: left, y: y + 2, width: Math.max(bw, 1), height: lh - 6, fill: color, rx: 2}));
      s.appendChild(svg("text", {x: left + bw + 4, y: y + 14}, fmt ? fmt(r.value) : r.value));
    });
    box.appendChild(s);
    return box;
  }

  // Columns over days: [{day, leads}].
  function columns(title, days) {
    var w = 460, h = 180, pad = 30, n = Math.max(days.length, 1);
    var max = Math.max.apply(null, days.map(function (d) { return d.leads; }).concat([1]));
    var bw = Math.min(40, (w - pad * 2) / n - 4);
    var box = el("div", {"class": "plot"});
    box.appendChild(el("h3", {}, title));
    var s = svg("svg", {width: w, height: h, viewBox: "0 0 " + w + " " + h, "class": "columns"});
    s.appendChild(svg("line", {x1: pad, y1: h - pad, x2: w - 5, y2: h - pad, stroke: "#90a4ae"}));
    days.forEach(function (d, i) {
      var bh = Math.round((h - pad * 2) * d.leads / max), x = pad + 4 + i * (bw + 4);
      s.appendChild(svg("rect", {x: x, y: h - pad - bh, width: bw, height: bh, fill: "#42a5f5", rx: 2}));
      s.appendChild(svg("text", {x: x + bw / 2, y: h - pad - bh - 4, "text-anchor": "middle"}, d.leads));
      s.appendChild(svg("text", {x: x + bw / 2, y: h - pad + 14, "text-anchor": "middle"}, d.day.slice(5)));
    });
    if (!days.length) s.appendChild(svg("text", {x: w / 2, y: h / 2, "text-anchor": "middle"}, "заявок пока нет"));
    box.appendChild(s);
    return box;
  }

  var outcomeText = {silent: "молчат", need: "нужно", later: "позже", declined: "отказ", optout: "отписка",
                     ok: "всё хорошо", problem: "проблема"};

  function loadStats() {
    var of = document.querySelector("input[name=of]:checked").value;
    fetch("/api/stats?of=" + of).then(function (r) { return r.json().then(function (j) { return [r.status, j]; }); })
      .then(function (a) {
        var box = clear($("stats"));
        if (a[0] >= 400) { box.appendChild(el("p", {"class": "fail"}, a[1].error)); return; }
        var st = a[1];
        Object.keys(st.campaigns).forEach(function (name) {
          var c = st.campaigns[name];
          var rows = [{label: "написали", value: c.contacted}];
          Object.keys(c.outcomes).forEach(function (o) {
            rows.push({label: outcomeText[o] || o, value: c.outcomes[o].count});
          });
          rows.push({label: "заявки", value: c.leads});
          box.appendChild(bars("Рассылка " + name, rows, "#66bb6a"));
        });
        var flows = Object.keys(st.flows).map(function (f) { return {label: f, value: st.flows[f].leads}; });
        if (flows.length) box.appendChild(bars("Заявки по сценариям", flows, "#42a5f5"));
        box.appendChild(columns("Заявки по дням", st.leads_per_day || []));
        if (st.llm && st.llm.calls > 0) {
          box.appendChild(bars("LLM", [{label: "вызовы", value: st.llm.calls},
            {label: "токены", value: st.llm.tokens}, {label: "стоимость", value: st.llm.cost}],
            "#ab47bc", function (v) { return Math.round(v * 100) / 100; }));
        }
        var ev = st.events || {};
        box.appendChild(bars("События", [{label: "передано менеджеру", value: ev.handoff || 0},
          {label: "ошибки шагов", value: ev.step_error || 0}], "#ffa726"));
      });
  }

  // ---- actions ----

  function say(text) {
    if (!cur) { showError("сначала выберите или создайте покупателя"); return; }
    var c = find(cur);
    return api("/api/say", {chat: c ? c.key : cur, text: text});
  }

  $("say").onsubmit = function (e) {
    e.preventDefault();
    var t = $("text").value.trim();
    if (!t) return;
    $("text").value = "";
    say(t);
  };
  $("new-chat").onsubmit = function (e) {
    e.preventDefault();
    var id = $("new-id").value.trim();
    if (!/^[A-Za-z0-9._+@-]{1,64}$/.test(id)) { showError("имя: латиница, цифры, . _ - + @"); return; }
    cur = "test:" + id;
    $("new-id").value = "";
    render(S);
    $("chat-title").textContent = id + " (новый: напишите первое сообщение)";
    $("text").focus();
  };
  document.querySelectorAll("[data-by]").forEach(function (b) {
    b.onclick = function () { api("/api/clock", {by: b.getAttribute("data-by")}); };
  });
  $("clock-go").onclick = function () { api("/api/clock", {to: $("clock-to").value.trim()}); };
  $("checkin").onclick = function () {
    var phone = $("checkin-phone").value;
    if (!phone) return;
    api("/api/checkin", {campaign: $("checkin-campaign").value, phone: phone}).then(function (r) {
      if (r.status === 200) { cur = "test:" + phone; render(S); }
    });
  };
  function manager(action) {
    if (!cur) return;
    var body = {chat: cur, action: action};
    if (action === "reply") { body.text = $("m-text").value.trim(); $("m-text").value = ""; }
    api("/api/manager", body);
  }
  $("m-take").onclick = function () { manager("take"); };
  $("m-reply").onclick = function () { manager("reply"); };
  $("m-release").onclick = function () { manager("release"); };
  $("save").onclick = function () {
    var name = $("save-name").value.trim() || $("save-name").placeholder;
    api("/api/save", {chat: cur, name: name, overwrite: $("save-over").checked}).then(function (r) {
      // the whole path: tests/ is the shop's folder, not the repository's
      $("save-result").textContent = r.status === 200 ? "записано: " + r.body.path : "";
      $("save-result").className = r.status === 200 ? "pass" : "fail";
    });
  };
  $("run-tests").onclick = function () { api("/api/tests", {}); };
  $("stats-refresh").onclick = loadStats;
  document.querySelectorAll("input[name=of]").forEach(function (r) { r.onchange = loadStats; });
  document.querySelectorAll(".tab").forEach(function (t) {
    t.onclick = function () {
      document.querySelectorAll(".tab").forEach(function (x) { x.classList.toggle("on", x === t); });
      ["chats", "tests", "stats"].forEach(function (v) { $("view-" + v).hidden = v !== t.getAttribute("data-tab"); });
      if (t.getAttribute("data-tab") === "stats") loadStats();
    };
  });

  // ---- live state ----

  function connect() {
    var ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
    ws.onmessage = function (e) {
      var m = JSON.parse(e.data);
      if (m.t === "state") render(m.state);
    };
    ws.onclose = function () { setTimeout(connect, 1000); };
  }
  fetch("/api/state").then(function (r) { return r.json(); }).then(function (st) {
    reloadSeq = st.reload ? st.reload.seq : 0;
    render(st);
    connect();
  });
})();
