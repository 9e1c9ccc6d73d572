// receiver.js - a webhook for parley's push plugin (plugins/push): checks
// the signature, drops repeats by delivery id, and hands each push to
// send() - where a real backend calls FCM or APNs (docs/push.md).
//
//   PUSH_SECRET=... PORT=8080 node examples/push-receiver/receiver.js
//   PARLEY_PLUGINS=push PARLEY_PUSH_URL=http://127.0.0.1:8080/push \
//     PARLEY_PUSH_SECRET=... ./build/parley
//
// Answer 2xx only once the push is handed on: any other answer (or none)
// makes parley try again later with the same X-Parley-Delivery.
'use strict';
const http = require('node:http');
const crypto = require('node:crypto');

const SECRET = process.env.PUSH_SECRET;
const PORT = Number(process.env.PORT || 8080);
const MAX_BODY = 64 * 1024;
if (!SECRET) {
  console.error('receiver: set PUSH_SECRET (the same as PARLEY_PUSH_SECRET)');
  process.exit(2);
}

// Deliveries already handed on, so that a retry after a lost answer is
// not a second notification (a real receiver keeps these in its database).
const seen = new Map(); // delivery id -> when
const SEEN_MS = 24 * 3600 * 1000;

function verified(raw, header) {
  const want = 'sha256=' + crypto.createHmac('sha256', SECRET).update(raw).digest('hex');
  const got = Buffer.from(String(header || ''));
  const expected = Buffer.from(want);
  // Constant time, and only on equal lengths (timingSafeEqual requires it).
  return got.length === expected.length && crypto.timingSafeEqual(got, expected);
}

// Where the device tokens of `push.userId` are looked up and FCM (HTTP v1:
// POST https://fcm.googleapis.com/v1/projects/PROJECT/messages:send) or
// APNs (HTTP/2 POST https://api.push.apple.com/3/device/TOKEN) is called.
// Throwing (or rejecting) makes the receiver answer 503: parley retries.
async function send(push) {
  const title = push.kind === 'call' ? `${push.sender} is calling (${push.type})` : push.sender;
  const text = push.count > 1 ? `${push.count} new messages` : push.preview;
  console.log(`notify ${push.userId}: ${title}: ${text}`);
}

const server = http.createServer((req, res) => {
  if (req.method !== 'POST') {
    res.writeHead(405).end();
    return;
  }
  const chunks = [];
  let size = 0;
  req.on('data', (c) => {
    size += c.length;
    if (size > MAX_BODY) req.destroy();
    else chunks.push(c);
  });
  req.on('end', async () => {
    const raw = Buffer.concat(chunks);
    // Check the signature over the raw bytes, before parsing anything.
    if (!verified(raw, req.headers['x-parley-signature'])) {
      res.writeHead(401).end('bad signature');
      return;
    }
    const id = req.headers['x-parley-delivery'];
    if (seen.has(id)) {
      res.writeHead(200).end('already done');
      return;
    }
    try {
      await send(JSON.parse(raw));
      seen.set(id, Date.now());
      res.writeHead(200).end('ok');
    } catch (e) {
      console.error(`receiver: ${id}: ${e.message}`);
      res.writeHead(503).end('try again');
    }
  });
});

setInterval(() => {
  const old = Date.now() - SEEN_MS;
  for (const [id, at] of seen) if (at < old) seen.delete(id);
}, 60000).unref();

server.listen(PORT, '127.0.0.1', () => console.log(`receiver: listening on 127.0.0.1:${PORT}`));
