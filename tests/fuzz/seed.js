// seed.js - writes the starting inputs of each fuzz corpus
// (tests/fuzz/corpus/<target>/seed-*): well-formed and near-miss examples
// of what clients send. Inputs the fuzzer found worth keeping sit beside
// them under their hash names. Run: node tests/fuzz/seed.js
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const corpus = path.join(__dirname, 'corpus');

function put(target, name, data) {
	const dir = path.join(corpus, target);
	fs.mkdirSync(dir, { recursive: true });
	fs.writeFileSync(path.join(dir, `seed-${name}`), data);
}

const sioPackets = {
	connect: '0',
	'connect-auth': '0{"userId":"alice","token":"x"}',
	'connect-nsp': '0/messages,{"userId":"bob"}',
	event: '2["message:send",{"roomId":"r1","content":"hi","clientMsgId":"c1"}]',
	'event-ack': '217["room:join",{"roomId":"r1"}]',
	'event-nsp-ack': '2/messages,5["typing:start",{"roomId":"r1"}]',
	ack: '35[{"ok":true}]',
	binary: '451-["upload",{"_placeholder":true,"num":0}]',
	'binary-nsp': '52-/messages,9[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
	disconnect: '1/messages,',
	'connect-error': '4{"message":"unauthorized"}',
	'huge-ack': '29007199254740993["x"]',
	'bad-type': '9["x"]',
	'no-close': '2/messages["x"]',
};
for (const [name, text] of Object.entries(sioPackets)) put('sio', name, text);

const eioPackets = {
	open: '0{"sid":"abc","upgrades":["websocket"],"pingInterval":25000}',
	ping: '2', pong: '3', probe: '2probe', upgrade: '5', noop: '6', close: '1',
	message: '42["message:send",{"content":"x"}]',
	binary: 'bAQIDBA==',
	'bad-base64': 'b@@@',
	payload: '42["a"]\x1e42["b",1]\x1e3\x1ebaGVsbG8=',
	'payload-empty': '\x1e\x1e4',
};
for (const [name, text] of Object.entries(eioPackets)) put('eio', name, text);

const jsonDocs = {
	object: '{"roomId":"r1","content":"hello","n":42,"ok":true,"none":null}',
	nested: '{"a":[1,2,{"b":[[],{}]}],"c":{"d":{"e":-1.5e-3}}}',
	escapes: '"quote \\" backslash \\\\ \\/ \\b\\f\\n\\r\\t \\u00e9 \\ud83d\\ude00"',
	'lone-surrogate': '"\\ud800"',
	utf8: '"h\u00e9llo \u4e16\u754c \ud83d\ude00"',
	numbers: '[0,-0,1e400,-1e-400,12345678901234567890,9007199254740993,0.1,1E+2]',
	deep: '['.repeat(40) + ']'.repeat(40),
	'dup-keys': '{"a":1,"a":2,"1":3}',
	'bad-leading-zero': '[01]',
	'trailing-comma': '[1,]',
	'bad-utf8': Buffer.from([0x22, 0xc3, 0x28, 0x22]),
	'nul-in-string': '"a\\u0000b"',
	whitespace: ' \t\n{ "a" : [ 1 , 2 ] } \r\n',
};
for (const [name, text] of Object.entries(jsonDocs)) {
	put('json', name, text);
	put('jsonlua', name, text);
}

const envelopes = {
	event: '{"event":"message:send","data":{"roomId":"r1","content":"hi"}}',
	'event-ack': '{"event":"room:join","data":{"roomId":"r1"},"ack":7}',
	reply: '{"ack":3,"data":{"ok":true}}',
	'no-event': '{"data":1}',
	'event-not-string': '{"event":5}',
	'event-empty': '{"event":""}',
	'ack-negative': '{"event":"x","ack":-1}',
	'ack-float': '{"event":"x","ack":1.5}',
	'ack-huge': '{"event":"x","ack":9007199254740993}',
	'event-escaped': '{"event":"typing\\u003astart"}',
	'long-name': `{"event":"${'x'.repeat(300)}"}`,
	array: '["message:send",{}]',
	args: '{"event":"x","args":[1,"2",{"3":[true]}],"ack":4}',
	'args-empty': '{"event":"x","args":[]}',
	'args-reply': '{"ack":2,"args":[null,5]}',
	'args-not-array': '{"event":"x","args":{"0":1},"ack":9}',
	'args-with-data': '{"event":"x","data":1,"args":[2]}',
};
for (const [name, text] of Object.entries(envelopes)) put('envelope', name, text);

const base64s = {
	hello: 'aGVsbG8=', short: 'YQ', pad: 'YQ==', url: '-_8', std: '+/8=',
	'non-canonical': 'YR==', 'bad-char': 'aGV*bG8=', empty: '',
};
for (const [name, text] of Object.entries(base64s)) put('base64', name, text);

// JWTs: the driver (fuzz_jwt.c) treats the first byte as where the token
// goes (0 auth.token, 1 query, 2 bearer header, 3 the raw header) and
// accepts only the three genuine claim texts it lists.
const secret = 'fuzz-secret';
const b64url = (s) => Buffer.from(s).toString('base64url');
function sign(header, claims, key = secret) {
	const signed = `${b64url(header)}.${b64url(claims)}`;
	const sig = crypto.createHmac('sha256', key).update(signed).digest('base64url');
	return `${signed}.${sig}`;
}
const hs256 = '{"alg":"HS256","typ":"JWT"}';
const tokens = {
	alice: [0, sign(hs256, '{"sub":"alice"}')],
	bob: [1, sign(hs256, '{"sub":"bob","exp":1800000100,"name":"Bob"}')],
	carol: [2, sign(hs256, '{"userId":"carol","nbf":1700000000}')],
	'alice-raw-header': [3, 'bearer ' + sign(hs256, '{"sub":"alice"}')],
	expired: [0, sign(hs256, '{"sub":"dave","exp":1700000000}')],
	early: [0, sign(hs256, '{"sub":"erin","nbf":1900000000}')],
	'exp-string': [0, sign(hs256, '{"sub":"frank","exp":"never"}')],
	'no-sub': [0, sign(hs256, '{"name":"nobody"}')],
	'sub-number': [0, sign(hs256, '{"sub":12}')],
	'alg-none': [0, `${b64url('{"alg":"none"}')}.${b64url('{"sub":"alice"}')}.`],
	'alg-hs512': [0, sign('{"alg":"HS512"}', '{"sub":"alice"}')],
	'wrong-key': [0, sign(hs256, '{"sub":"alice"}', 'other-secret')],
	'claims-array': [0, sign(hs256, '[1,2]')],
	'header-not-json': [0, sign('alg', '{"sub":"alice"}')],
	'two-parts': [0, `${b64url(hs256)}.${b64url('{"sub":"alice"}')}`],
};
for (const [name, [where, token]] of Object.entries(tokens))
	put('jwt', name, Buffer.concat([Buffer.from([where]), Buffer.from(token)]));

// HTTP API requests for fuzz_api.c: a method byte (0 GET, 1 POST, 2 PUT,
// 3 PATCH, 4 DELETE), the path below /api/, a newline, the body.
const GET = 0, POST = 1, PUT = 2, PATCH = 3, DELETE = 4;
const requests = {
	'send': [POST, 'conversations/c1/messages', '{"senderId":"ann","clientMessageId":"m1","type":"text","content":"hi"}'],
	'send-bad-type': [POST, 'conversations/c1/messages', '{"senderId":"ann","clientMessageId":"m2","type":5,"content":"hi"}'],
	'send-array': [POST, 'conversations/c1/messages', '[1,2,3]'],
	'send-reply': [POST, 'conversations/c1/messages', '{"senderId":"ann","clientMessageId":"m3","type":"text","content":{"text":"x"},"replyTo":"0000000000000001"}'],
	'list': [GET, 'conversations/c1/messages?limit=5', ''],
	'list-after': [GET, 'conversations/c1/messages?after=0000000000000001&limit=abc', ''],
	'status': [PATCH, 'messages/0000000000000001/status', '{"userId":"bob","status":"read"}'],
	'read': [POST, 'conversations/c1/read', '{"userId":"bob","upTo":"0000000000000001"}'],
	'members': [PUT, 'conversations/c1/members', '{"members":["ann","bob"]}'],
	'members-get': [GET, 'conversations/c1/members', ''],
	'online': [GET, 'users/online', ''],
	'presence': [GET, 'users/ann/presence', ''],
	'profile': [PUT, 'users/ann', '{"name":"Ann","phoneNumber":"+1","avatar":"a.png"}'],
	'no-route': [GET, 'no/such/route', ''],
	'wrong-method': [DELETE, 'conversations/c1/messages', ''],
	'encoded': [GET, 'conversations/%2e%2e%2fx/messages', ''],
	'deep-body': [POST, 'conversations/c1/messages', '['.repeat(100) + ']'.repeat(100)],
};
for (const [name, [method, p, body]] of Object.entries(requests))
	put('api', name, Buffer.concat([Buffer.from([method]), Buffer.from(`${p}\n${body}`)]));

// Pattern matching (fuzz_pattern.c): [call | init << 3, pattern length],
// the pattern, the subject. Calls: 0 find, 1 plain find, 2 find from init,
// 3 match, 4 gsub with a template, 5 with a function, 6 with a table,
// 7 gmatch; init is the byte's high bits minus 8.
const patterns = {
	'find-class': [0, '%d+', 'abc 123 def'],
	'find-plain': [1 | (9 << 3), 'a.b', 'xxa.bxxa.b'],
	'find-init': [2 | (4 << 3), '[^/]+', '/api/rooms/lobby'],
	'match-captures': [3 | (8 << 3), '^(%w+)=(%w*)$', 'key=value'],
	'match-position': [3 | (8 << 3), '()a()', 'xxaxx'],
	'match-backref': [3 | (8 << 3), '(["\'])(.-)%1', 'say "hi" now'],
	'gsub-template': [4 | (10 << 3), '(%w+) (%w+)', 'hello world from parley'],
	'gsub-function': [5, '%a', 'abc(ab'],
	'gsub-table': [6, '.', 'abxab'],
	'gmatch-empty': [7, 'a*', 'baaac'],
	'balance-frontier': [3 | (8 << 3), '%f[%a]%b()', 'x (a(b)c) y'],
	'malformed': [0, '[a%', 'abc'],
	'nul-in-pattern': [0, '.\0x', 'a\0b'],
	'backtracking': [0, '.-.-.-.-.-x', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaa'],
};
for (const [name, [op, p, s]] of Object.entries(patterns))
	put('pattern', name, Buffer.concat([Buffer.from([op, Buffer.byteLength(p)]), Buffer.from(p), Buffer.from(s)]));
// Binary packets for fuzz_binary.c: a connection's messages separated by
// 0x1e, a binary one (an attachment) marked by a leading 'b', then the
// bytes; any other is a text Socket.IO packet.
const RS = '\x1e';
const att = (...bytes) => 'b' + Buffer.from(bytes).toString('latin1');
const ph = (num) => `{"_placeholder":true,"num":${num}}`;
const binaries = {
	'event-one': ['51-["upload",' + ph(0) + ']', att(1, 2, 3)],
	'event-two-nsp': ['52-/messages,9["files",{"a":' + ph(0) + ',"b":[' + ph(1) + ']}]',
		att(0, 255), att(0xde, 0xad)],
	'event-no-args': ['51-["ping"]', att(7)],
	'event-args-each': ['53-["message",' + ph(0) + ',null,"x",{"b":' + ph(1) + '},[' + ph(2) + ']]',
		att(1), att(2, 3), att()],
	'event-spaces': ['51- [ "x" , ' + ph(0) + ' ] ', att(9)],
	ack: ['61-7[' + ph(0) + ']', att(0x41)],
	'ack-nsp-two': ['62-/messages,12[{"ok":true,"file":' + ph(1) + '},' + ph(0) + ']', att(1), att(2)],
	'ack-no-id': ['61-[' + ph(0) + ']', att(1)],
	'attachment-empty': ['51-["x",' + ph(0) + ']', 'b'],
	'num-out-of-range': ['51-["x",' + ph(3) + ']', att(1)],
	'num-negative': ['51-["x",' + ph(-1) + ']', att(1)],
	'num-negative-zero': ['51-["x",' + ph('-0') + ']', att(1)],
	'num-fraction': ['52-["x",' + ph(0.5) + ']', att(1), att(2)],
	'num-exponent': ['52-["x",' + ph('1e0') + ']', att(1), att(2)],
	'num-string': ['51-["x",' + ph('"0"') + ']', att(1)],
	'num-missing': ['51-["x",{"_placeholder":true}]', att(1)],
	'num-huge': ['51-["x",' + ph('9007199254740993') + ']', att(1)],
	'placeholder-false': ['51-["x",{"_placeholder":false,"num":0}]', att(1)],
	'placeholder-string': ['51-["x",{"_placeholder":"true","num":0}]', att(1)],
	duplicate: ['51-["x",[' + ph(0) + ',' + ph(0) + ']]', att(5)],
	unused: ['52-["x",' + ph(1) + ']', att(1), att(2)],
	'nested-in-placeholder': ['51-["x",{"_placeholder":true,"num":0,"more":' + ph(4) + '}]', att(1)],
	'nested-deep': ['51-["x",' + '['.repeat(29) + ph(0) + ']'.repeat(29) + ']', att(1)],
	'too-deep': ['51-["x",' + '['.repeat(31) + ph(0) + ']'.repeat(31) + ']', att(1)],
	'dup-keys': ['51-["x",{"_placeholder":true,"num":5,"num":0}]', att(1)],
	'too-few': ['52-["x",' + ph(0) + ',' + ph(1) + ']', att(1), '2["next"]'],
	'too-many': ['51-["x",' + ph(0) + ']', att(1), att(2)],
	stray: [att(1, 2), '51-["x",' + ph(0) + ']', att(1)],
	'zero-attachments': ['50-["x",' + ph(0) + ']', '2["after"]'],
	'no-dash': ['51["x",' + ph(0) + ']', att(1)],
	'over-cap': ['565-["x"]', att(1)],
	'name-not-string': ['51-[' + ph(0) + ']', att(1)],
	'two-packets': ['51-["a",' + ph(0) + ']', att(1), '61-3[' + ph(0) + ']', att(2)],
	'event-between': ['2["plain",1]', '51-["a",' + ph(0) + ']', att(3)],
	'max-attachments': ['564-["many",[' + Array.from({ length: 64 }, (_, i) => ph(63 - i)).join(',') + ']]',
		...Array.from({ length: 64 }, (_, i) => att(i))],
};
for (const [name, msgs] of Object.entries(binaries)) put('binary', name, Buffer.from(msgs.join(RS), 'latin1'));

// socket.io-msgpack-parser packets, as socket.io-client with that parser
// writes them (notepack.io), and near misses (fuzz_msgpack.c).
const notepack = require('notepack.io');
let deepData = 1;
for (let i = 0; i < 33; i++) deepData = [deepData];
const msgpacks = {
	connect: { type: 0, nsp: '/messages', data: { userId: 'alice', token: 'x' } },
	'connect-plain': { type: 0, nsp: '/' },
	event: { type: 2, nsp: '/messages', data: ['message:send', { conversationId: 'c1', content: 'hi ✓' }], options: { compress: true } },
	'event-ack': { type: 2, nsp: '/messages', id: 17, data: ['x', 1, -2, 2.5, null, true, false] },
	'event-binary': { type: 2, nsp: '/', data: ['upload', { name: 'a', file: Buffer.from([1, 2, 3]) }, Buffer.alloc(0)] },
	'event-arraybuffer': { type: 2, nsp: '/', data: ['upload', new Uint8Array([9, 8]).buffer] },
	'event-undefined': { type: 2, nsp: '/', data: ['x', undefined, { a: undefined }] },
	'event-date': { type: 2, nsp: '/', data: ['x', new Date(0)] },
	ack: { type: 3, nsp: '/messages', id: 5, data: [{ ok: true }, Buffer.from('bin')] },
	disconnect: { type: 1, nsp: '/messages' },
	'connect-error': { type: 4, nsp: '/', data: 'nope' },
	'placeholder-literal': { type: 2, nsp: '/', data: ['x', { _placeholder: true, num: 0 }, Buffer.from([1])] },
	'bad-type-string': { type: '2', nsp: '/', data: ['x'] },
	'bad-type-7': { type: 7, nsp: '/', data: ['x'] },
	'bad-nsp': { type: 2, nsp: 'messages', data: ['x'] },
	'bad-data': { type: 2, nsp: '/', data: 'x' },
	'bad-id': { type: 2, nsp: '/', id: -1, data: ['x'] },
	'too-deep': { type: 2, nsp: '/', data: ['x', deepData] },
	'big-numbers': { type: 2, nsp: '/', data: ['x', 9007199254740991, -2147483649, 1.5e-7, 1e300] },
};
for (const [name, value] of Object.entries(msgpacks)) put('msgpack', name, notepack.encode(value));
put('msgpack', 'huge-array-count', Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff]));
put('msgpack', 'huge-str-len', Buffer.from([0x81, 0xa4, 0x74, 0x79, 0x70, 0x65, 0xdb, 0xff, 0xff, 0xff, 0xff]));
put('msgpack', 'truncated', notepack.encode(msgpacks.event).subarray(0, 20));
put('msgpack', 'reserved-c1', Buffer.from([0x81, 0xc1, 0x00]));
put('msgpack', 'float32', Buffer.from([0x83, 0xa4, 0x74, 0x79, 0x70, 0x65, 0x02, 0xa3, 0x6e, 0x73, 0x70, 0xa1, 0x2f,
	0xa4, 0x64, 0x61, 0x74, 0x61, 0x92, 0xa1, 0x78, 0xca, 0x3d, 0xcc, 0xcc, 0xcd]));
