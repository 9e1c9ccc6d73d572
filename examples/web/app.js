// A small chat page for parley: the user's conversations (conversations:list,
// which subscribes this socket to conversation:updated: each connection
// lists again, a new socket starts without it) beside one conversation,
// opened at its newest messages with older ones loaded on scroll
// (messages:sync latest / before); names, times and ticks (✓ sent, grey ✓✓
// delivered, blue ✓✓ read); read marking when the tab is visible; typing;
// the peer's presence or last seen; the connection's state.
// Open it as /app/?me=ann&peer=bob&conversation=demo (and the other way round).
'use strict';
const params = new URLSearchParams(location.search);
const me = params.get('me') || 'ann';
let peer = params.get('peer') || 'bob';
let conversationId = params.get('conversation') || 'demo';
const PAGE = Math.min(Number(params.get('page')) || 30, 500);

const $ = (id) => document.getElementById(id);
const list = $('messages');
const inbox = $('inbox');
const typingLine = $('typing');
const presence = $('presence');
const conn = $('conn');
const input = $('text');
$('me').textContent = me;

const socket = io('/messages', { query: { userId: me } });
const ticks = new Map(); // messageId -> the tick element of my message
const TICK = { sent: '✓', delivered: '✓✓', read: '✓✓' };
let oldest = null;       // the oldest message shown: where older ones start
let hasOlder = false;
let loadingOlder = false;
let readPending = false; // a message arrived while the tab was hidden

function clock(iso) {
  return iso ? new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : '';
}

// The connection's state, shown and on <body data-conn> for tests.
function setConn(state, label) {
  conn.className = state;
  conn.textContent = label;
  document.body.dataset.conn = state;
}
setConn('connecting', 'connecting…');

function setPresence(user) {
  const online = Boolean(user && user.online);
  presence.className = online ? 'online' : 'offline';
  presence.textContent = online ? 'online'
    : user && user.lastSeen ? `last seen ${clock(user.lastSeen)}` : 'offline';
}

async function queryPresence() {
  // Presence is told only about users who share a conversation with me: a
  // peer not yet in this one is left out of the answer, which is "offline".
  const { users } = await socket.emitWithAck('presence:query', { userIds: [peer] });
  setPresence(users && users[0]);
}

function setTick(t, status) {
  t.className = `ticks ${status}`;
  t.textContent = TICK[status];
  t.title = status;
  t.setAttribute('aria-label', status);
}

function render(m) {
  const li = document.createElement('li');
  li.dataset.id = m.messageId;
  li.className = m.senderId === me ? 'mine' : 'theirs';
  const who = document.createElement('span');
  who.className = 'who';
  who.textContent = (m.sender && m.sender.name) || m.senderId;
  const text = document.createElement('span');
  text.className = 'text';
  text.textContent = typeof m.content === 'string' ? m.content : `[${m.type}]`;
  const meta = document.createElement('span');
  meta.className = 'meta';
  const time = document.createElement('time');
  time.dateTime = m.timestamp;
  time.textContent = clock(m.timestamp);
  meta.appendChild(time);
  if (m.senderId === me) {
    const t = document.createElement('span');
    setTick(t, m.status || 'sent');
    meta.appendChild(t);
    ticks.set(m.messageId, t);
  }
  li.append(who, text, meta);
  return li;
}

// Marks the open conversation read, if someone can see it.
function readIfVisible() {
  if (document.visibilityState !== 'visible') {
    readPending = true;
    return;
  }
  readPending = false;
  socket.emit('conversation:read', { conversationId });
}
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && readPending) readIfVisible();
});

function receive(m) {
  if (m.conversationId !== conversationId || list.querySelector(`[data-id="${m.messageId}"]`)) return;
  list.appendChild(render(m));
  list.scrollTop = list.scrollHeight;
  if (m.senderId !== me) {
    // Delivered as it arrives; read only once the tab is seen.
    socket.emit('message:delivered', { conversationId, messageIds: [m.messageId] });
    readIfVisible();
  }
}

// ---- the conversation: newest first, older on scroll ----

async function loadOlder() {
  if (!hasOlder || loadingOlder) return;
  loadingOlder = true;
  const height = list.scrollHeight;
  const page = await socket.emitWithAck('messages:sync', { conversationId, before: oldest, limit: PAGE });
  const frag = document.createDocumentFragment();
  page.messages.forEach((m) => frag.appendChild(render(m)));
  list.insertBefore(frag, list.firstChild);
  // Where the reader was stays where it was.
  list.scrollTop += list.scrollHeight - height;
  if (page.messages.length) oldest = page.messages[0].messageId;
  hasOlder = page.hasMore;
  document.body.dataset.older = hasOlder ? 'more' : 'all';
  loadingOlder = false;
}
list.addEventListener('scroll', () => { if (list.scrollTop < 40) loadOlder(); });

async function openConversation(id, peerId) {
  if (id !== conversationId) {
    socket.emit('conversation:leave', { conversationId });
    conversationId = id;
    if (peerId) peer = peerId;
  }
  $('peer').textContent = peer;
  list.replaceChildren();
  ticks.clear();
  typingLine.hidden = true;
  for (const li of inbox.children) li.classList.toggle('active', li.dataset.conversation === id);
  await socket.emitWithAck('conversation:join', { conversationId });
  const page = await socket.emitWithAck('messages:sync', { conversationId, latest: true, limit: PAGE });
  page.messages.forEach((m) => list.appendChild(render(m)));
  oldest = page.messages.length ? page.messages[0].messageId : null;
  hasOlder = page.hasMore;
  document.body.dataset.older = hasOlder ? 'more' : 'all';
  list.scrollTop = list.scrollHeight;
  // A page that does not fill the pane cannot be scrolled: fill it.
  while (hasOlder && list.scrollHeight <= list.clientHeight) await loadOlder();
  const fresh = page.messages.filter((m) => m.senderId !== me && m.statuses && m.statuses[me] === 'sent');
  if (fresh.length) socket.emit('message:delivered', { conversationId, messageIds: fresh.map((m) => m.messageId) });
  readIfVisible();
  await queryPresence();
}

// ---- the inbox ----

function inboxItem(c) {
  const li = document.createElement('li');
  li.dataset.conversation = c.conversationId;
  li.dataset.updated = c.updatedAt;
  const name = document.createElement('span');
  name.className = 'name';
  name.textContent = c.conversationId;
  const time = document.createElement('span');
  time.className = 'time';
  time.textContent = clock(c.lastMessage ? c.lastMessage.timestamp : c.updatedAt);
  const preview = document.createElement('span');
  preview.className = 'preview';
  const last = c.lastMessage;
  if (last) {
    const who = last.senderId === me ? 'you' : (last.sender && last.sender.name) || last.senderId;
    preview.textContent = `${who}: ${last.preview || `[${last.type}]`}`;
  } else {
    preview.textContent = 'no messages yet';
  }
  const unread = document.createElement('span');
  unread.className = 'unread';
  unread.textContent = String(c.unreadCount);
  unread.hidden = c.unreadCount === 0;
  li.append(name, time, preview, unread);
  li.classList.toggle('active', c.conversationId === conversationId);
  li.addEventListener('click', () => {
    const other = last && last.senderId !== me ? last.senderId : null;
    openConversation(c.conversationId, other);
  });
  return li;
}

// Puts a conversation's item in its place: latest activity first.
function upsert(c) {
  const old = inbox.querySelector(`[data-conversation="${CSS.escape(c.conversationId)}"]`);
  if (old) old.remove();
  const li = inboxItem(c);
  const after = [...inbox.children].find((x) => x.dataset.updated < c.updatedAt);
  inbox.insertBefore(li, after || null);
}

// Lists the conversations; from then on this socket gets conversation:updated.
async function loadInbox() {
  const { conversations } = await socket.emitWithAck('conversations:list', { limit: 50 });
  inbox.replaceChildren(...conversations.map(inboxItem));
}

// ---- events ----

socket.on('connect', async () => {
  setConn('online', 'online');
  await loadInbox();
  await openConversation(conversationId);
  document.body.dataset.ready = 'true';
});
socket.on('disconnect', () => setConn('offline', 'offline'));
socket.io.on('reconnect_attempt', () => setConn('connecting', 'reconnecting…'));
socket.on('message:received', receive);
socket.on('conversation:updated', upsert);
socket.on('message:status', ({ messageId, status }) => {
  const t = ticks.get(messageId);
  if (t) setTick(t, status);
});
socket.on('typing:start', ({ conversationId: c, userId }) => {
  if (c !== conversationId) return;
  typingLine.textContent = `${userId} is typing…`;
  typingLine.hidden = false;
});
socket.on('typing:stop', ({ conversationId: c }) => { if (c === conversationId) typingLine.hidden = true; });
socket.on('user:online', ({ userId }) => { if (userId === peer) setPresence({ online: true }); });
socket.on('user:offline', ({ userId }) => { if (userId === peer) queryPresence(); });

let typing = null;
input.addEventListener('input', () => {
  if (!typing) socket.emit('typing:start', { conversationId, isTyping: true });
  clearTimeout(typing);
  typing = setTimeout(() => {
    typing = null;
    socket.emit('typing:stop', { conversationId, isTyping: false });
  }, 1500);
});

let sent = 0;
$('composer').addEventListener('submit', async (e) => {
  e.preventDefault();
  const content = input.value.trim();
  if (!content) return;
  input.value = '';
  clearTimeout(typing);
  typing = null;
  socket.emit('typing:stop', { conversationId, isTyping: false });
  const clientMessageId = `${me}-${Date.now()}-${sent++}`;
  const ack = await socket.emitWithAck('message:send', { conversationId, clientMessageId, type: 'text', content });
  if (ack.status === 'error') alert(ack.message);
});
