/* embed.js -- the web chat on the shop's own site, as one script tag
 * (plugins/webchat/README.md, "Embedding on the shop's site"):
 *
 *   <script src="https://chat.shop.ru/embed.js" async></script>
 *
 * adds a chat button at the bottom right of the shop's page; it opens the
 * chat page (the same server's <path>) in a frame, so the chat keeps its
 * own origin, its own storage and its own socket. data-label="..." on the
 * tag changes the button's word. The shop's site must be listed in
 * channels.webchat.allowed_origins: the chat page may only be framed by
 * the sites listed there. */
(function () {
  'use strict';
  var me = document.currentScript;
  var src = me && me.src ? me.src.replace(/embed\.js(\?.*)?$/, '') : '/';
  var label = (me && me.getAttribute('data-label')) || 'Чат';
  var frame = null;

  function open() {
    if (frame) { frame.style.display = frame.style.display === 'none' ? '' : 'none'; return; }
    frame = document.createElement('iframe');
    frame.id = 'shopbot-chat-frame';
    frame.title = label;
    frame.src = src;
    frame.setAttribute('style', 'position:fixed;right:16px;bottom:76px;z-index:2147483000;' +
      'width:min(380px,calc(100vw - 32px));height:min(560px,calc(100vh - 96px));' +
      'border:1px solid #c8d2dc;border-radius:12px;background:#fff;' +
      'box-shadow:0 4px 24px rgba(0,0,0,.18)');
    document.body.appendChild(frame);
  }

  function add() {
    var b = document.createElement('button');
    b.type = 'button';
    b.id = 'shopbot-chat-button';
    b.textContent = label;
    b.setAttribute('style', 'position:fixed;right:16px;bottom:16px;z-index:2147483000;' +
      'padding:12px 20px;border:0;border-radius:24px;background:#24527a;color:#fff;' +
      'font:16px/1.2 sans-serif;cursor:pointer;box-shadow:0 2px 10px rgba(0,0,0,.2)');
    b.onclick = open;
    document.body.appendChild(b);
  }

  if (document.body) add();
  else document.addEventListener('DOMContentLoaded', add);
})();
