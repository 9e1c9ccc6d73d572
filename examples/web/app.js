// A small chat page for parley: one conversation between two users, with
// ticks for sent / delivered / read, a typing indicator and presence.
// Open it as /app/?me=ann&peer=bob&conversation=demo (and the other way round).
'use strict';
const params = new URLSearchParams(location.search);
const me = params.get('me') || 'ann';
const peer = params.get('peer') || 'bob';
const conversationId = params.get('conversation') || 'demo';

document.getElementById('me').textContent = `you are ${me}`;
document.getElementById('peer').textContent = peer;
const list = document.getElementById('messages');
const typingLine = document.getElementById('typing');
const presence = document.getElementById('presence');
const input = document.getElementById('text');

const socket = io('/messages', { query: { userId: me } });
const ticks = new Map(); // messageId -> the tick element of my message
const TICK = { sent: '✓', delivered: '✓✓', read: '✓✓' };

function setPresence(online) {
  presence.textContent = online ? 'online' : 'offline';
  presence.className = online ? 'online' : 'offline';
}

function show(m) {
  if (document.querySelector(`[data-id="${m.messageId}"]`)) return;
  const li = document.createElement('li');
  li.dataset.id = m.messageId;
  li.className = m.senderId === me ? 'mine' : 'theirs';
  li.textContent = m.content;
  if (m.senderId === me) {
    const t = document.createElement('span');
    t.className = `ticks ${m.status || 'sent'}`;
    t.textContent = TICK[m.status || 'sent'];
    li.appendChild(t);
    ticks.set(m.messageId, t);
  } else {
    // Seen as it arrives while the page is open: delivered and read.
    socket.emit('message:delivered', { conversationId, messageIds: [m.messageId] });
    if (document.visibilityState === 'visible') {
      socket.emit('message:read', { conversationId, messageIds: [m.messageId] });
    }
  }
  list.appendChild(li);
  list.scrollTop = list.scrollHeight;
}

socket.on('connect', async () => {
  await socket.emitWithAck('conversation:join', { conversationId });
  const { messages } = await socket.emitWithAck('messages:sync', { conversationId, limit: 100 });
  messages.forEach(show);
  // Presence is told only about users who share a conversation with me: a
  // peer not yet in this one is left out of the answer, which is "offline".
  const { users } = await socket.emitWithAck('presence:query', { userIds: [peer] });
  setPresence(users.length > 0 && users[0].online);
  document.body.dataset.ready = 'true';
});
socket.on('message:received', show);
socket.on('message:status', ({ messageId, status }) => {
  const t = ticks.get(messageId);
  if (t) {
    t.className = `ticks ${status}`;
    t.textContent = TICK[status];
  }
});
socket.on('typing:start', ({ userId }) => {
  typingLine.textContent = `${userId} is typing…`;
  typingLine.hidden = false;
});
socket.on('typing:stop', () => { typingLine.hidden = true; });
socket.on('user:online', ({ userId }) => { if (userId === peer) setPresence(true); });
socket.on('user:offline', ({ userId }) => { if (userId === peer) setPresence(false); });

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
document.getElementById('composer').addEventListener('submit', async (e) => {
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
