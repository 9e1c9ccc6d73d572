// server.js - the reference parley is measured against: a Node server on
// socket.io 4.8.1 (npm) serving, in memory, the same events as parley's
// default scripts plus the bench plugin, on namespace /messages:
//   conversation:join   join room conversation:{id}, emit conversation:joined, ack
//   typing:start        relay to the room except the sender, with `user`; the
//                       typing expires (typing:stop) when not refreshed, as in
//                       scripts/chat.lua; ack {success:true}
//   bench:send          relay as bench:recv to the room except the sender, ack true
//   message:send        in memory: ack {messageId, status:'sent', timestamp} and
//                       emit message:received to the room (sender included);
//                       a repeated clientMessageId is acked with the first result
// Every socket joins user:{userId}, as parley does. Identity: `userId` from the
// Socket.IO auth payload or the handshake query.
// REF_PRESENCE=1 also broadcasts user:online / user:offline to the whole
// namespace on a user's first / last socket, as parley's scripts/chat.lua does
// today (off by default: the benchmark compares connection costs without it).
// REF_PARSER=msgpack speaks socket.io-msgpack-parser instead of JSON.
// REF_DEFLATE=1 turns permessage-deflate on.
// PORT from the environment (default 3000), listening on 127.0.0.1.
'use strict';

const http = require('http');
const path = require('path');
const fs = require('fs');
const { Server } = require('socket.io');

const PORT = Number(process.env.PORT || 3000);
const PRESENCE = process.env.REF_PRESENCE === '1';
const TYPING_TTL_MS = 8000;
const MAX_ID = 128;

function socketIoVersion() {
  const main = require.resolve('socket.io');
  let dir = path.dirname(main);
  while (dir !== path.dirname(dir)) {
    const pj = path.join(dir, 'package.json');
    if (fs.existsSync(pj)) {
      const p = JSON.parse(fs.readFileSync(pj, 'utf8'));
      if (p.name === 'socket.io') return p.version;
    }
    dir = path.dirname(dir);
  }
  return 'unknown';
}

const httpServer = http.createServer((req, res) => {
  res.writeHead(404).end();
});
// REF_PARSER=msgpack: socket.io-msgpack-parser, as the msgpack rounds'
// clients speak (tests/bench/run.sh --only mpfanout,mplatency).
const parser = process.env.REF_PARSER === 'msgpack' ? { parser: require('socket.io-msgpack-parser') } : {};
// REF_DEFLATE=1: permessage-deflate on (socket.io's perMessageDeflate, off by
// default: messages of 1 KB or more compressed), as parley with
// PARLEY_WS_COMPRESSION=1 (run.sh --only deflate).
const deflate = process.env.REF_DEFLATE === '1' ? { perMessageDeflate: { threshold: 1024 } } : {};
const io = new Server(httpServer, { serveClient: false, cors: { origin: true }, ...parser, ...deflate });
const nsp = io.of('/messages');

const userSockets = new Map(); // userId -> number of sockets
const typing = new Map(); // "conversationId\0userId" -> timeout
const sent = new Map(); // "userId\0clientMessageId" -> ack result
let nextMessageId = 1;

function roomOf(id) {
  return 'conversation:' + id;
}

function fail(socket, ack, statusCode, message) {
  const body = { status: 'error', message, statusCode };
  socket.emit('error', body);
  if (typeof ack === 'function') ack(body);
}

function checkConversation(socket, data, ack) {
  if (data === null || typeof data !== 'object') {
    fail(socket, ack, 400, 'payload must be an object');
    return false;
  }
  const id = data.conversationId;
  if (typeof id !== 'string' || id === '' || id.length > MAX_ID) {
    fail(socket, ack, 400, 'conversationId is required and must be a non-empty string');
    return false;
  }
  if (data.userId !== undefined && data.userId !== socket.data.userId) {
    fail(socket, ack, 403, 'userId does not match the authenticated user');
    return false;
  }
  return true;
}

nsp.use((socket, next) => {
  const hs = socket.handshake;
  const userId = (hs.auth && hs.auth.userId) || hs.query.userId;
  if (typeof userId !== 'string' || userId === '' || userId.length > MAX_ID) {
    const err = new Error('unauthorized: a userId is required');
    err.data = { statusCode: 401 };
    return next(err);
  }
  socket.data.userId = userId;
  socket.data.user = {
    id: userId,
    name: (hs.auth && hs.auth.name) || hs.query.name || userId,
    avatar: (hs.auth && hs.auth.avatar) || hs.query.avatar,
  };
  next();
});

nsp.on('connection', (socket) => {
  const userId = socket.data.userId;
  socket.join('user:' + userId);
  const count = (userSockets.get(userId) || 0) + 1;
  userSockets.set(userId, count);
  if (PRESENCE && count === 1) nsp.emit('user:online', { userId });

  socket.on('disconnect', () => {
    const left = userSockets.get(userId) - 1;
    if (left > 0) {
      userSockets.set(userId, left);
      return;
    }
    userSockets.delete(userId);
    for (const [key, t] of typing) {
      const sep = key.indexOf('\0');
      if (key.slice(sep + 1) === userId) {
        clearTimeout(t);
        typing.delete(key);
        nsp.to(roomOf(key.slice(0, sep))).emit('typing:stop', {
          conversationId: key.slice(0, sep), userId, isTyping: false,
        });
      }
    }
    if (PRESENCE) nsp.emit('user:offline', { userId });
  });

  socket.on('conversation:join', (data, ack) => {
    if (!checkConversation(socket, data, ack)) return;
    socket.join(roomOf(data.conversationId));
    const reply = { conversationId: data.conversationId, success: true };
    socket.emit('conversation:joined', reply);
    if (typeof ack === 'function') ack(reply);
  });

  socket.on('conversation:leave', (data, ack) => {
    if (!checkConversation(socket, data, ack)) return;
    socket.leave(roomOf(data.conversationId));
    const reply = { conversationId: data.conversationId, success: true };
    socket.emit('conversation:left', reply);
    if (typeof ack === 'function') ack(reply);
  });

  socket.on('typing:start', (data, ack) => {
    if (!checkConversation(socket, data, ack)) return;
    if (data.isTyping !== undefined && typeof data.isTyping !== 'boolean') {
      return fail(socket, ack, 400, 'isTyping must be a boolean');
    }
    const conv = data.conversationId;
    const key = conv + '\0' + userId;
    clearTimeout(typing.get(key));
    typing.set(key, setTimeout(() => {
      typing.delete(key);
      socket.to(roomOf(conv)).emit('typing:stop', { conversationId: conv, userId, isTyping: false });
    }, TYPING_TTL_MS));
    const u = socket.data.user;
    socket.to(roomOf(conv)).emit('typing:start', {
      conversationId: conv, userId, isTyping: true,
      user: { id: u.id, name: u.name, avatar: u.avatar },
    });
    if (typeof ack === 'function') ack({ success: true });
  });

  socket.on('typing:stop', (data, ack) => {
    if (!checkConversation(socket, data, ack)) return;
    const conv = data.conversationId;
    const key = conv + '\0' + userId;
    clearTimeout(typing.get(key));
    typing.delete(key);
    socket.to(roomOf(conv)).emit('typing:stop', { conversationId: conv, userId, isTyping: false });
    if (typeof ack === 'function') ack({ success: true });
  });

  socket.on('bench:send', (data, ack) => {
    if (data === null || typeof data !== 'object' || typeof data.conversationId !== 'string') {
      return fail(socket, ack, 400, 'conversationId is required');
    }
    socket.to(roomOf(data.conversationId)).emit('bench:recv', data);
    if (typeof ack === 'function') ack(true);
  });

  socket.on('message:send', (data, ack) => {
    if (!checkConversation(socket, data, ack)) return;
    if (typeof data.clientMessageId !== 'string' || data.clientMessageId === '') {
      return fail(socket, ack, 400, 'clientMessageId is required and must be a non-empty string');
    }
    if (typeof data.content !== 'string') {
      return fail(socket, ack, 400, 'content is required');
    }
    const key = userId + '\0' + data.clientMessageId;
    const again = sent.get(key);
    if (again) {
      if (typeof ack === 'function') ack(again);
      return;
    }
    const timestamp = Date.now();
    const result = { messageId: 'm' + nextMessageId++, status: 'sent', timestamp };
    sent.set(key, result);
    nsp.to(roomOf(data.conversationId)).emit('message:received', {
      id: result.messageId,
      conversationId: data.conversationId,
      senderId: userId,
      type: data.type || 'text',
      content: data.content,
      replyTo: data.replyTo,
      status: 'sent',
      createdAt: new Date(timestamp).toISOString(),
    });
    if (typeof ack === 'function') ack(result);
  });
});

httpServer.listen(PORT, '127.0.0.1', () => {
  console.log(`reference: socket.io ${socketIoVersion()} on node ${process.version}, ` +
    `127.0.0.1:${PORT}${PRESENCE ? ' (presence broadcast on)' : ''}`);
});

process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
