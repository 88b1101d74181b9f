/* chat.js -- the web chat page (plugins/webchat/README.md, "Protocol").
 *
 * Every message the customer writes gets an id and stays "pending" (shown
 * with a clock) until the bot's server acknowledges it; after a drop the
 * socket reconnects and sends the pending ones again in order (the server
 * drops duplicates by id). Every bot message carries the server's id; the
 * page acknowledges each one and shows it once. When the socket opens the
 * server sends the conversation's recent history from the shop's store
 * (both sides, in order), so a reload, a second tab or another browser with
 * the same visitor shows what was said; localStorage only bridges the
 * moment before that and keeps what is not yet taken.
 *
 * Who the visitor is: the cookie, or, in a page framed on another site
 * whose cookies the browser blocks, the token the server put in the page
 * (data-token) and then in its hello. The page keeps the token in its own
 * localStorage (partitioned by the top site) and says it in its hello on
 * every socket, so a reload of the shop's page goes on with the chat. */
(function () {
  'use strict';
  var root = document.getElementById('chat');
  var base = root.getAttribute('data-base') || '/';
  var logEl = document.getElementById('log');
  var statusEl = document.getElementById('status');
  var form = document.getElementById('send');
  var input = document.getElementById('text');
  var fileEl = document.getElementById('file');
  var KEY = 'shopbot.webchat:' + base;
  var KEEP = 300;                 // messages kept in the page
  var pageToken = root.getAttribute('data-token') || null;
  var st = load();
  var ws = null, ready = false, backoff = 500, failures = 0, maxBytes = 4096, connects = 0;

  function fresh(vid, token) {
    return { vid: vid || null, token: token || null, seq: 0,
             prefix: Math.random().toString(36).slice(2, 10), items: [] };
  }
  function token() { return st.token || pageToken; }
  function load() {
    try { var s = JSON.parse(localStorage.getItem(KEY)); if (s && s.items) return s; } catch (e) {}
    return fresh();
  }
  function save() {
    if (st.items.length > KEEP) st.items = st.items.slice(st.items.length - KEEP);
    try { localStorage.setItem(KEY, JSON.stringify(st)); } catch (e) {}
  }

  function status(text, on) {
    statusEl.textContent = text;
    statusEl.className = on ? 'on' : 'off';
  }

  function mediaUrl(item) {
    if (item.file) return base + 'media/' + encodeURIComponent(item.file) +
                          (token() ? '?v=' + encodeURIComponent(token()) : '');
    if (item.media && /^(https?:\/\/|\/)/.test(item.media)) return item.media;
    return null;
  }

  function render() {
    var stick = logEl.scrollTop + logEl.clientHeight >= logEl.scrollHeight - 40;
    logEl.textContent = '';
    st.items.forEach(function (it) {
      var li = document.createElement('li');
      li.className = it.k + (it.k === 'me' ? ' ' + it.state : '');
      if (it.id) li.setAttribute('data-id', it.id);
      var url = mediaUrl(it);
      if (url) {
        var img = document.createElement('img');
        img.src = url;
        img.alt = 'фото';
        li.appendChild(img);
      }
      if (it.text) li.appendChild(document.createTextNode(it.text));
      if (it.why) {
        var why = document.createElement('span');
        why.className = 'why';
        why.textContent = it.why;
        li.appendChild(why);
      }
      if (it.buttons && it.buttons.length) {
        var row = document.createElement('div');
        row.className = 'buttons';
        it.buttons.forEach(function (b) {
          var btn = document.createElement('button');
          btn.type = 'button';
          btn.textContent = b;
          btn.onclick = function () { say(b); };
          row.appendChild(btn);
        });
        li.appendChild(row);
      }
      logEl.appendChild(li);
    });
    if (stick) logEl.scrollTop = logEl.scrollHeight;
  }

  // The store's history replaces what the page shows; the page keeps what
  // the store cannot know yet: its own messages not yet taken (pending or
  // refused) and bot messages newer than the history's (acked a moment ago,
  // marked sent a moment later).
  function history(list) {
    var items = [], mine = {}, lastBot = 0;
    (list || []).forEach(function (h) {
      if (h.k === 'me') {
        items.push({ k: 'me', id: h.id, text: h.text, file: h.file, state: 'sent' });
        if (h.id) mine[h.id] = true;
      } else if (h.k === 'bot') {
        items.push({ k: 'bot', id: h.id, text: h.text, buttons: h.buttons, media: h.media });
        if (h.id > lastBot) lastBot = h.id;
      }
    });
    st.items.forEach(function (x) {
      if (x.k === 'me' && x.id && x.state !== 'sent' && !mine[x.id]) items.push(x);
      else if (x.k === 'bot' && x.id > lastBot) items.push(x);
    });
    st.items = items;
    save();
    render();
  }

  function find(k, id) {
    for (var i = st.items.length - 1; i >= 0; i--)
      if (st.items[i].k === k && st.items[i].id === id) return st.items[i];
    return null;
  }

  function transmit(it) {
    if (!ready || ws.readyState !== 1) return;
    var m = it.file ? { t: 'photo', id: it.id, file: it.file, text: it.text || '' }
                    : { t: 'msg', id: it.id, text: it.text };
    ws.send(JSON.stringify(m));
    if (window.shopbotChatDropAfterSend) {   // tests: a drop before the ack comes
      window.shopbotChatDropAfterSend = false;
      ws.close();
    }
  }

  function add(it) {
    it.k = 'me';
    it.id = st.prefix + '-' + (++st.seq);
    it.state = 'pending';
    st.items.push(it);
    save();
    render();
    transmit(it);
  }

  function say(text) {
    text = text.trim();
    if (!text) return;
    if (new TextEncoder().encode(text).length > maxBytes) {
      st.items.push({ k: 'me', text: text.slice(0, 200) + '…', state: 'failed',
                      why: 'Слишком длинное сообщение: не больше ' + maxBytes + ' байт.' });
      save();
      render();
      return;
    }
    add({ text: text });
  }

  function onFrame(m) {
    var it;
    if (m.t === 'hello') {
      if (st.vid !== m.vid) { st = fresh(m.vid, m.token); save(); render(); }
      else if (m.token && st.token !== m.token) { st.token = m.token; save(); }
      maxBytes = m.max_message_bytes || maxBytes;
      ready = true;
      connects++;
      failures = 0;
      backoff = 500;
      status('в сети', true);
      st.items.forEach(function (x) { if (x.k === 'me' && x.state === 'pending' && x.id) transmit(x); });
    } else if (m.t === 'history') {
      history(m.items);
    } else if (m.t === 'ack') {
      it = find('me', m.id);
      if (it) { it.state = 'sent'; delete it.why; save(); render(); }
    } else if (m.t === 'err' && m.code === 'bad_token') {
      st.token = null;   // the hello that follows brings a new visitor and its token
    } else if (m.t === 'err') {
      it = m.id ? find('me', m.id) : null;
      // a refusal of a resend of what was already taken says nothing new
      if (it && it.state === 'sent') return;
      if (it && (m.code === 'rate' || m.code === 'store')) {
        it.why = m.code === 'rate' ? 'Слишком часто — отправлю через пару секунд.' : 'Отправлю ещё раз…';
        save();
        render();
        setTimeout(function () { if (it.state === 'pending') transmit(it); }, m.retry_ms || 3000);
      } else if (it) {
        it.state = 'failed';
        it.why = 'Не отправлено: ' + m.error;
        save();
        render();
      }
    } else if (m.t === 'msg') {
      if (!find('bot', m.id)) {
        st.items.push({ k: 'bot', id: m.id, text: m.text, buttons: m.buttons, media: m.media });
        save();
        render();
      }
      ws.send(JSON.stringify({ t: 'ack', id: m.id }));
    }
  }

  function connect() {
    var proto = location.protocol === 'https:' ? 'wss://' : 'ws://';
    ws = new WebSocket(proto + location.host + base + 'ws');
    ready = false;
    // With a cookie the server has said hello already and ignores this one.
    ws.onopen = function () { ws.send(JSON.stringify({ t: 'hello', token: token() })); };
    ws.onmessage = function (e) {
      var m;
      try { m = JSON.parse(e.data); } catch (x) { return; }
      onFrame(m);
    };
    ws.onclose = function (e) {
      ready = false;
      status(e.code === 1008 ? 'слишком много сообщений, подождите…' : 'нет связи, переподключаюсь…', false);
      failures++;
      // Refused over and over: the visitor cookie may be gone; the page
      // itself hands out a new one.
      var again = function () { setTimeout(connect, backoff); backoff = Math.min(backoff * 2, 5000); };
      if (failures % 3 === 0) fetch(base, { credentials: 'same-origin' }).then(again, again);
      else again();
    };
  }

  form.addEventListener('submit', function (e) {
    e.preventDefault();
    say(input.value);
    input.value = '';
    input.focus();
  });

  fileEl.addEventListener('change', function () {
    var f = fileEl.files && fileEl.files[0];
    fileEl.value = '';
    if (!f) return;
    var caption = input.value.trim();
    input.value = '';
    fetch(base + 'upload', { method: 'POST', body: f, credentials: 'same-origin',
                             headers: { 'Content-Type': f.type || 'application/octet-stream',
                                        'X-Shopbot-Visitor': token() || '' } })
      .then(function (r) { return r.json().then(function (j) { return { ok: r.ok, j: j }; }); })
      .then(function (r) {
        if (r.ok && r.j.file) add({ file: r.j.file, text: caption });
        else throw new Error(r.j.error || 'ошибка');
      })
      .catch(function (err) {
        st.items.push({ k: 'me', text: f.name, state: 'failed', why: 'Фото не отправлено: ' + err.message });
        save();
        render();
      });
  });

  // For tests and the shop's own scripts: the socket and how often it opened.
  window.shopbotChat = { socket: function () { return ws; } };
  Object.defineProperty(window.shopbotChat, 'connects', { get: function () { return connects; } });
  render();
  connect();
})();
