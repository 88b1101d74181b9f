'use strict';
// The fake's own latency: the least a bot can do and pass the harness's
// checks. One long poll at a time, replies by keep-alive POSTs with no
// framework, no storage and no per-user work beyond a step counter, so
// what its p50/p99 show is the fake, the driver and the loopback, the
// floor under every bot of the table (tests/bench/telegram/README.md).
const http = require('http');

const base = new URL(process.env.TELEGRAM_API_BASE);
const token = process.env.TELEGRAM_TOKEN;
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
const steps = new Map(); // chat id -> { step, vin }

function call(method, body, cb) {
  const data = JSON.stringify(body);
  const req = http.request({
    host: base.hostname, port: base.port, method: 'POST', agent,
    path: `/bot${token}/${method}`,
    headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) },
  }, (res) => {
    const parts = [];
    res.on('data', (c) => parts.push(c));
    res.on('end', () => cb && cb(null, Buffer.concat(parts).toString()));
  });
  req.on('error', (e) => cb && cb(e));
  req.end(data);
}

function reply(msg) {
  const chat = msg.chat.id;
  const text = msg.text || '';
  let s = steps.get(chat);
  let out;
  if (text.startsWith('/start') || !s) {
    s = { step: 1, vin: '' };
    steps.set(chat, s);
    out = 'Здравствуйте! Пришлите, пожалуйста, VIN или номер кузова (рамы).';
  } else if (s.step === 1) {
    s.vin = text;
    s.step = 2;
    out = `Спасибо, записал: ${text}. Какие запчасти нужны?`;
  } else if (s.step === 2) {
    s.step = 3;
    out = `Записал: ${text}. Нужно что-нибудь ещё? Напишите, что добавить, или «нет».`;
  } else {
    steps.delete(chat);
    out = `Заявка принята.\nVIN: ${s.vin}\nМенеджер ответит вам в ближайшее время.`;
  }
  call('sendMessage', { chat_id: chat, text: out });
}

let offset = 0;
function poll() {
  call('getUpdates', { offset, timeout: 25, limit: 100 }, (err, body) => {
    if (err) return setTimeout(poll, 500);
    const r = JSON.parse(body);
    for (const u of r.result || []) {
      offset = Math.max(offset, u.update_id + 1);
      if (u.message) reply(u.message);
    }
    poll();
  });
}
process.on('SIGTERM', () => process.exit(0));
poll();
