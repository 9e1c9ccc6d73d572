// parley-testing - test a parley script or plugin against the real server
// with scripted clients. `bash tests/plugin-test.sh <folder>...` runs the
// test/*.test.js files of each folder with this module on NODE_PATH, so a
// test says `require('parley-testing')`. Nothing here stands in for
// parley: the built binary runs on a loopback port with the default
// scripts, the plugins you name and a fresh data directory.
'use strict';
const path = require('node:path');
const h = require('../integration/harness');

// One scripted Socket.IO client: it keeps every event it receives, so a test
// can ask for "the next message:reaction" before or after it arrived.
class Client {
  constructor(socket) {
    this.socket = socket;
    this.queues = new Map(); // event -> payloads not yet taken
    this.waiters = [];       // { event, resolve }
    socket.onAny((event, ...args) => {
      const payload = args.length > 1 ? args : args[0];
      const w = this.waiters.findIndex((x) => x.event === event);
      if (w >= 0) return this.waiters.splice(w, 1)[0].resolve(payload);
      if (!this.queues.has(event)) this.queues.set(event, []);
      this.queues.get(event).push(payload);
    });
  }

  get id() { return this.socket.id; }

  // Emits and resolves with the server's ack (a handler's return value, or
  // {status: "error", statusCode, message}).
  request(event, data, timeoutMs = 3000) {
    return this.socket.timeout(timeoutMs).emitWithAck(event, data);
  }

  // Emits with every argument after the event and resolves with every
  // value of the ack, as an array (a handler's `return a, b` is [a, b]).
  requestArgs(event, ...args) {
    return new Promise((resolve, reject) => {
      this.socket.timeout(3000).emit(event, ...args, (err, ...vals) => (err ? reject(err) : resolve(vals)));
    });
  }

  emit(event, ...args) { this.socket.emit(event, ...args); }

  // The next payload of `event`, received already or within timeoutMs.
  next(event, timeoutMs = 3000) {
    const q = this.queues.get(event);
    if (q && q.length) return Promise.resolve(q.shift());
    return new Promise((resolve, reject) => {
      const entry = { event, resolve };
      this.waiters.push(entry);
      setTimeout(() => {
        const i = this.waiters.indexOf(entry);
        if (i >= 0) {
          this.waiters.splice(i, 1);
          reject(new Error(`no '${event}' within ${timeoutMs} ms (got: ${[...this.queues.keys()].join(', ') || 'nothing'})`));
        }
      }, timeoutMs);
    });
  }

  // Takes the next `marker` event and resolves true when no `event` came
  // before it. A socket's events arrive in the order the server sent them,
  // so make the server send `marker` after whatever could have sent
  // `event`: no fixed wait decides it.
  async noneBefore(event, marker, timeoutMs = 3000) {
    await this.next(marker, timeoutMs);
    return !(this.queues.get(event) || []).length;
  }

  // Resolves true when no `event` arrives within ms (and none is queued).
  // Prefer noneBefore where the server can send a later event.
  async none(event, ms = 300) {
    const q = this.queues.get(event);
    if (q && q.length) return false;
    await h.sleep(ms);
    return !(this.queues.get(event) || []).length;
  }

  // Joins a conversation through the default chat script.
  join(conversationId) {
    return this.request('conversation:join', { conversationId });
  }

  close() { this.socket.close(); }
}

// Starts parley. Options: plugins (names), pluginPath (folders searched
// before the repository's plugins/), env (more settings), config (a Lua
// table, as text, written to a config file: e.g. `{ plugin_config = {...} }`).
async function start({ plugins = [], pluginPath = [], env = {}, config } = {}) {
  const fs = require('node:fs');
  const os = require('node:os');
  const full = {
    PARLEY_PLUGIN_PATH: [...pluginPath.map((p) => path.resolve(p)), path.join(h.ROOT, 'plugins')].join(';'),
    PARLEY_PLUGINS: plugins.join(','),
    ...env,
  };
  if (config) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-test-conf-'));
    full.PARLEY_CONFIG = path.join(dir, 'parley.conf.lua');
    fs.writeFileSync(full.PARLEY_CONFIG, `return ${config}\n`);
  }
  const srv = await h.startParley({ env: full });
  const clients = [];
  return {
    url: srv.url,
    port: srv.port,
    logs: srv.logs,
    process: srv.proc,
    // A connected client for `userId` (dev auth) on /messages.
    async client(userId, opts = {}) {
      const s = h.sioClient(srv, '/messages', { query: { userId }, transports: ['websocket'], ...opts });
      const c = new Client(s);
      await h.connected(s);
      clients.push(c);
      return c;
    },
    // A plain WebSocket client: send(event, data), request(event, data), next(match).
    async plain(userId) {
      const ws = h.plainClient(srv, `userId=${encodeURIComponent(userId)}`);
      await ws.opened;
      let ack = 0;
      ws.request = (event, data) => {
        const id = ++ack;
        ws.sendJson({ event, data, ack: id });
        return ws.next((f) => f.ack === id && f.event === undefined).then((f) => f.data);
      };
      clients.push(ws);
      return ws;
    },
    // Reloads the scripts (SIGHUP) and resolves once parley has decided:
    // 'ok' (the new version answers from now on) or 'refused' (the old one
    // stays; the log says why).
    reload() {
      return h.reload(srv);
    },
    // Stops parley (SIGTERM) after closing the clients; fails on a crash.
    async stop() {
      for (const c of clients) c.close();
      return srv.stop();
    },
  };
}

// cleanup() kills every parley and closes every client this file started
// and left: call it in your last `after` hook so a failed test cannot keep
// the file running (the harness also sweeps 20 s after the last hook).
module.exports = { start, sleep: h.sleep, cleanup: h.cleanup, Client };
