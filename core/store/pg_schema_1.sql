-- pg_schema_1.sql - the message store on PostgreSQL, schema version 1
-- (docs/storage-postgresql.md). Embedded in the binary (core/store/
-- pg_schema.c) and applied by pg_open in one transaction. Every table that
-- grows with messages is keyed by conversation first, so that it can be
-- partitioned or distributed by conversation later; the one exception is
-- the idempotency key, which is the sender's (sender, client message id).
-- Each operation of core/store/messages.h is one SQL function below, called
-- by one prepared statement (core/lua/store_api_pg.c): one round trip, and
-- the same records, in the same field order, as LMDB's (messages.c builds
-- them as text; so do these, never through jsonb, which reorders keys).
-- Names are bytes compared as bytes (COLLATE "C"), as LMDB's keys are.

-- A conversation's last sequence number: the row a send locks, so that
-- concurrent senders, in any process, take the numbers one after another,
-- and a rolled back send leaves no gap.
CREATE TABLE conversations (
	conversation_id text COLLATE "C" PRIMARY KEY,
	last_seq bigint NOT NULL
);

-- Message ids: the send's time in ms << 20 and 20 bits of this sequence,
-- as 16 hex digits: time-ordered as LMDB's, unique across processes.
CREATE SEQUENCE message_ids;

CREATE TABLE messages (
	conversation_id text COLLATE "C" NOT NULL,
	seq bigint NOT NULL,
	message_id text COLLATE "C" NOT NULL UNIQUE,
	sender_id text COLLATE "C" NOT NULL,
	client_message_id text COLLATE "C",
	type text NOT NULL,
	content text NOT NULL,          -- its JSON text, as sent (or edited)
	reply_to text,
	sender text,                    -- the sender's profile, JSON text
	sent_at text NOT NULL,          -- "timestamp"
	edited_at text,
	deleted boolean NOT NULL DEFAULT false,
	recipients text[] COLLATE "C" NOT NULL, -- at send time, in order
	PRIMARY KEY (conversation_id, seq)
);

-- The idempotency key: the sender's, kept for good.
CREATE TABLE idempotency (
	sender_id text COLLATE "C" NOT NULL,
	client_message_id text COLLATE "C" NOT NULL,
	message_id text COLLATE "C" NOT NULL,
	PRIMARY KEY (sender_id, client_message_id)
);

-- A user's status of a message. `counted`: in the message's aggregate (a
-- recipient at send time, or one who joined an open conversation later);
-- `ord`: the place among the recipients at send time (NULL: joined, or a
-- newcomer whose status is kept outside the aggregate).
CREATE TABLE statuses (
	conversation_id text COLLATE "C" NOT NULL,
	seq bigint NOT NULL,
	user_id text COLLATE "C" NOT NULL,
	level smallint NOT NULL,
	updated_at bigint NOT NULL,
	counted boolean NOT NULL,
	ord integer,
	PRIMARY KEY (conversation_id, seq, user_id)
);

-- Plugins' fields of a message (reactions, ...), shown with it.
CREATE TABLE annotations (
	conversation_id text COLLATE "C" NOT NULL,
	seq bigint NOT NULL,
	name text COLLATE "C" NOT NULL,
	value text NOT NULL,
	PRIMARY KEY (conversation_id, seq, name)
);

-- Messages deleted for one user only.
CREATE TABLE hides (
	conversation_id text COLLATE "C" NOT NULL,
	seq bigint NOT NULL,
	user_id text COLLATE "C" NOT NULL,
	PRIMARY KEY (conversation_id, seq, user_id)
);

CREATE TABLE members (
	conversation_id text COLLATE "C" NOT NULL,
	user_id text COLLATE "C" NOT NULL,
	PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX members_by_user ON members (user_id, conversation_id);

CREATE TABLE users (
	user_id text COLLATE "C" PRIMARY KEY,
	profile text,
	last_seen bigint
);

-- Each user's conversations: the activity (a message id read as a number,
-- or the time in ms << 20 the user came to it) orders the inbox; the
-- unread count is the messages the user received there and did not read.
CREATE TABLE inbox (
	user_id text COLLATE "C" NOT NULL,
	conversation_id text COLLATE "C" NOT NULL,
	activity bigint NOT NULL,
	unread bigint NOT NULL,
	PRIMARY KEY (user_id, conversation_id)
);
CREATE INDEX inbox_recent ON inbox (user_id, activity, conversation_id);
CREATE INDEX inbox_participants ON inbox (conversation_id, user_id);

-- Where a user has read a conversation up to (conversation:read).
CREATE TABLE read_cursors (
	conversation_id text COLLATE "C" NOT NULL,
	user_id text COLLATE "C" NOT NULL,
	seq bigint NOT NULL,
	PRIMARY KEY (conversation_id, user_id)
);

-- Plugins' key-value entries (parley.kv); expires in ms, 0: never.
CREATE TABLE kv (
	plugin text COLLATE "C" NOT NULL,
	key bytea NOT NULL,
	value bytea NOT NULL,
	expires bigint NOT NULL,
	PRIMARY KEY (plugin, key)
);
CREATE INDEX kv_expiring ON kv (expires) WHERE expires > 0;

-- ---- helpers ----
-- The SQL functions are STABLE, none IMMUTABLE: their bodies call STABLE
-- functions (to_json, to_char, text || bigint), and PostgreSQL inlines a
-- SQL function into its caller only when it claims no less than its body
-- does; an IMMUTABLE one is planned again at every call (15 us for
-- parley_jstr, half of a send's time). Likewise parley_is_member returns
-- a table, not OUT parameters, so that it inlines.

-- "2026-11-25T23:27:00.123Z" for ms since the epoch (messages_iso_time).
CREATE FUNCTION parley_iso(ms bigint) RETURNS text LANGUAGE sql STABLE AS $$
	SELECT to_char(timestamp '1970-01-01' + ms * interval '1 millisecond',
		       'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

CREATE FUNCTION parley_status_name(level integer) RETURNS text LANGUAGE sql STABLE AS $$
	SELECT CASE level WHEN 2 THEN 'delivered' WHEN 3 THEN 'read' ELSE 'sent' END
$$;

CREATE FUNCTION parley_jstr(s text) RETURNS text LANGUAGE sql STABLE AS $$
	SELECT to_json(s)::text
$$;

-- A message id read as a number (the inbox's activity).
CREATE FUNCTION parley_id_number(id text) RETURNS bigint LANGUAGE sql STABLE AS $$
	SELECT ('x' || lpad(id, 16, '0'))::bit(64)::bigint
$$;

-- The record as messages.c stores it: the fields in the order it writes
-- them; an edit (edits.c) moves content after the others, with editedAt.
CREATE FUNCTION parley_record(m messages) RETURNS text LANGUAGE sql STABLE AS $$
	SELECT '{"messageId":"' || m.message_id || '","conversationId":'
		|| parley_jstr(m.conversation_id) || ',"senderId":' || parley_jstr(m.sender_id)
		|| coalesce(',"clientMessageId":' || parley_jstr(m.client_message_id), '')
		|| ',"type":' || parley_jstr(m.type)
		|| CASE WHEN m.edited_at IS NULL THEN ',"content":' || m.content ELSE '' END
		|| coalesce(',"replyTo":' || parley_jstr(m.reply_to), '')
		|| ',"timestamp":"' || m.sent_at || '","seq":' || m.seq
		|| coalesce(',"sender":' || m.sender, '')
		|| CASE WHEN m.edited_at IS NULL THEN ''
			WHEN m.deleted THEN ',"content":null,"deleted":true,"editedAt":"'
				|| m.edited_at || '"'
			ELSE ',"content":' || m.content || ',"editedAt":"' || m.edited_at || '"' END
		|| '}'
$$;

-- ,"name":value for each annotation of a message, by name.
CREATE FUNCTION parley_annotations(conv text, s bigint) RETURNS text LANGUAGE sql STABLE AS $$
	SELECT coalesce(string_agg(',' || parley_jstr(a.name) || ':' || a.value, ''
				   ORDER BY a.name), '')
	FROM annotations a WHERE a.conversation_id = conv AND a.seq = s
$$;

-- The least status over a message's counted recipients (sent without any).
CREATE FUNCTION parley_aggregate(conv text, s bigint) RETURNS integer LANGUAGE sql STABLE AS $$
	SELECT coalesce(min(st.level), 1)::integer FROM statuses st
	WHERE st.conversation_id = conv AND st.seq = s AND st.counted
$$;

-- The record as clients get it from send and message(): with its
-- annotations and "status".
CREATE FUNCTION parley_client_record(m messages) RETURNS text LANGUAGE sql STABLE AS $$
	SELECT left(parley_record(m), -1) || parley_annotations(m.conversation_id, m.seq)
		|| ',"status":"' || parley_status_name(parley_aggregate(m.conversation_id, m.seq))
		|| '"}'
$$;

-- The record as sync gives it: with annotations, "status" and "statuses"
-- (the recipients at send time in their order, then those who joined).
CREATE FUNCTION parley_sync_record(m messages) RETURNS text LANGUAGE sql STABLE AS $$
	SELECT left(parley_record(m), -1) || parley_annotations(m.conversation_id, m.seq)
		|| ',"status":"' || parley_status_name(parley_aggregate(m.conversation_id, m.seq))
		|| '","statuses":{' || coalesce((
			SELECT string_agg(parley_jstr(st.user_id) || ':"'
					  || parley_status_name(st.level) || '"', ','
					  ORDER BY st.ord NULLS LAST, st.user_id)
			FROM statuses st WHERE st.conversation_id = m.conversation_id
				AND st.seq = m.seq AND st.counted), '') || '}}'
$$;

-- When a conversation was last active, for an inbox entry made without a
-- message: its last message's id as a number, or now.
CREATE FUNCTION parley_conversation_at(conv text, now_ms bigint) RETURNS bigint
LANGUAGE sql STABLE AS $$
	SELECT coalesce((SELECT parley_id_number(m.message_id) FROM messages m
			 WHERE m.conversation_id = conv ORDER BY m.seq DESC LIMIT 1), now_ms << 20)
$$;

-- ---- sending ----

-- Stores a message (messages_send), or, when the sender sent this client
-- message id before, answers that message (created false) and stores
-- nothing. The idempotency key is claimed first: a concurrent send of the
-- same key, in any process, waits for this one's transaction and then
-- finds it taken. The conversation's row is locked next: concurrent sends
-- into one conversation take their numbers in turn.
CREATE FUNCTION parley_send(p_conv text, p_sender text, p_client_id text, p_type text,
			    p_content text, p_reply_to text, p_sender_json text,
			    p_recipients text[], p_now bigint, p_when text)
RETURNS TABLE (record text, created boolean, message_id text, sent_at text, seq bigint)
LANGUAGE plpgsql AS $$
DECLARE
	v_id text := lpad(to_hex((p_now << 20) | (nextval('message_ids') & 1048575)), 16, '0');
	v_seq bigint;
	v_rec text[];
	m messages;
BEGIN
	IF p_client_id IS NOT NULL AND p_client_id <> '' THEN
		INSERT INTO idempotency VALUES (p_sender, p_client_id, v_id) ON CONFLICT DO NOTHING;
		IF NOT FOUND THEN
			SELECT mm.* INTO m FROM messages mm WHERE mm.message_id = (
				SELECT i.message_id FROM idempotency i
				WHERE i.sender_id = p_sender AND i.client_message_id = p_client_id);
			RETURN QUERY SELECT parley_client_record(m), false, m.message_id, m.sent_at,
					    m.seq;
			RETURN;
		END IF;
	END IF;
	-- The recipients, the sender and what is no user id left out, each once.
	SELECT coalesce(array_agg(r.u ORDER BY r.i), '{}') INTO v_rec FROM (
		SELECT u, min(i) AS i FROM unnest(p_recipients) WITH ORDINALITY AS x(u, i)
		WHERE u <> p_sender AND octet_length(u) BETWEEN 1 AND 200 GROUP BY u) r;
	INSERT INTO conversations VALUES (p_conv, 1) ON CONFLICT (conversation_id)
		DO UPDATE SET last_seq = conversations.last_seq + 1
		RETURNING conversations.last_seq INTO v_seq;
	INSERT INTO messages VALUES (p_conv, v_seq, v_id, p_sender, p_client_id, p_type, p_content,
				     p_reply_to, p_sender_json, p_when, NULL, false, v_rec)
		RETURNING * INTO m;
	INSERT INTO statuses SELECT p_conv, v_seq, x.u, 1, p_now, true, x.i::integer
		FROM unnest(v_rec) WITH ORDINALITY AS x(u, i);
	-- The inbox: every participant's entry moves to this message, and each
	-- recipient's unread count grows by one (inbox.c's inbox_message).
	INSERT INTO inbox
		SELECT u.u, p_conv, parley_id_number(v_id), CASE WHEN u.u = ANY (v_rec) THEN 1 ELSE 0 END
		FROM (SELECT i.user_id AS u FROM inbox i WHERE i.conversation_id = p_conv
		      UNION SELECT p_sender UNION SELECT unnest(v_rec)) u
		ORDER BY u.u
		ON CONFLICT (user_id, conversation_id) DO UPDATE
		SET activity = greatest(inbox.activity, excluded.activity),
		    unread = inbox.unread + excluded.unread;
	RETURN QUERY SELECT left(parley_record(m), -1) || ',"status":"sent"}', true, v_id, p_when,
			    v_seq;
END
$$;

-- ---- reading ----

-- store_message: the record with annotations and status, its conversation,
-- sender, seq, and recipients (at send time, then the joined) as JSON.
CREATE FUNCTION parley_message(p_id text)
RETURNS TABLE (record text, conversation_id text, sender_id text, seq bigint, recipients text)
LANGUAGE sql STABLE AS $$
	SELECT parley_client_record(m), m.conversation_id, m.sender_id, m.seq,
	       coalesce((SELECT json_agg(r.u ORDER BY r.o, r.u)::text FROM (
			SELECT x.u, x.o FROM unnest(m.recipients) WITH ORDINALITY AS x(u, o)
			UNION ALL SELECT st.user_id, NULL FROM statuses st
			WHERE st.conversation_id = m.conversation_id AND st.seq = m.seq
			      AND st.counted AND st.ord IS NULL) r), '[]')
	FROM messages m WHERE m.message_id = p_id
$$;

-- messages_sync: the messages after seq `p_after`, oldest first (one more
-- is read to tell whether more follow).
CREATE FUNCTION parley_sync(p_conv text, p_after bigint, p_limit integer, p_viewer text)
RETURNS text LANGUAGE sql STABLE AS $$
	WITH page AS (
		SELECT * FROM messages WHERE conversation_id = p_conv AND seq > p_after
		ORDER BY seq LIMIT greatest(1, least(500, p_limit)) + 1)
	SELECT '{"messages":[' || coalesce((
		SELECT string_agg(parley_sync_record(p), ',' ORDER BY p.seq)
		FROM (SELECT * FROM page ORDER BY seq LIMIT greatest(1, least(500, p_limit))) p
		WHERE p_viewer IS NULL OR NOT EXISTS (
			SELECT 1 FROM hides h WHERE h.conversation_id = p.conversation_id
				AND h.seq = p.seq AND h.user_id = p_viewer)), '')
		|| '],"hasMore":' || CASE WHEN (SELECT count(*) FROM page)
			> greatest(1, least(500, p_limit)) THEN 'true' ELSE 'false' END || '}'
$$;

-- messages_sync_before: the `p_limit` messages just below seq `p_before`
-- (NULL: the newest), answered oldest first; hasMore: older ones exist.
CREATE FUNCTION parley_sync_before(p_conv text, p_before bigint, p_limit integer,
				   p_viewer text)
RETURNS text LANGUAGE sql STABLE AS $$
	WITH back AS (
		SELECT * FROM messages WHERE conversation_id = p_conv
			AND (p_before IS NULL OR seq < p_before)
		ORDER BY seq DESC LIMIT greatest(1, least(500, p_limit)) + 1)
	SELECT '{"messages":[' || coalesce((
		SELECT string_agg(parley_sync_record(p), ',' ORDER BY p.seq)
		FROM (SELECT * FROM back ORDER BY seq DESC LIMIT greatest(1, least(500, p_limit))) p
		WHERE p_viewer IS NULL OR NOT EXISTS (
			SELECT 1 FROM hides h WHERE h.conversation_id = p.conversation_id
				AND h.seq = p.seq AND h.user_id = p_viewer)), '')
		|| '],"hasMore":' || CASE WHEN (SELECT count(*) FROM back)
			> greatest(1, least(500, p_limit)) THEN 'true' ELSE 'false' END || '}'
$$;

-- ---- statuses ----

-- One message's status for one user (messages.c's set_status): rc 1
-- changed, 0 unchanged, -1 no such message (or of another conversation),
-- -2 not a recipient. Without p_write it only checks.
CREATE FUNCTION parley_status_one(p_id text, p_user text, p_level integer, p_open boolean,
				  p_conv text, p_write boolean, p_now bigint,
				  OUT rc integer, OUT conv text, OUT sender text,
				  OUT agg_before integer, OUT agg integer, OUT unread_read boolean)
LANGUAGE plpgsql AS $$
DECLARE
	m messages;
	cur statuses;
	v_original boolean;
	v_recipient boolean;
	v_join boolean := false;
	v_current integer := 0;
BEGIN
	rc := 0;
	agg_before := 0;
	agg := 0;
	unread_read := false;
	SELECT * INTO m FROM messages WHERE message_id = p_id;
	IF NOT FOUND THEN
		rc := -1;
		RETURN;
	END IF;
	conv := m.conversation_id;
	sender := m.sender_id;
	IF p_conv IS NOT NULL AND p_conv <> conv THEN
		rc := -1;
		RETURN;
	END IF;
	IF sender = p_user THEN
		RETURN; -- a sender's own message has no status for them
	END IF;
	v_original := p_user = ANY (m.recipients);
	SELECT * INTO cur FROM statuses st WHERE st.conversation_id = conv AND st.seq = m.seq
		AND st.user_id = p_user;
	IF FOUND THEN
		v_current := cur.level;
	END IF;
	v_recipient := v_original OR coalesce(cur.counted, false);
	agg_before := parley_aggregate(conv, m.seq);
	agg := agg_before;
	IF NOT v_recipient AND NOT p_open THEN
		rc := -2;
		RETURN;
	END IF;
	IF NOT p_write OR p_level <= v_current THEN
		RETURN;
	END IF;
	-- A newcomer to an open conversation becomes a recipient once its
	-- status is at least the message's (see messages.c).
	IF NOT v_recipient AND p_level >= agg_before THEN
		v_join := cardinality(m.recipients) + (SELECT count(*) FROM statuses st
			WHERE st.conversation_id = conv AND st.seq = m.seq AND st.counted
			      AND st.ord IS NULL) < 10000;
	END IF;
	INSERT INTO statuses VALUES (conv, m.seq, p_user, p_level, p_now, v_recipient OR v_join,
		CASE WHEN v_original THEN array_position(m.recipients, p_user) END)
		ON CONFLICT (conversation_id, seq, user_id) DO UPDATE
		SET level = excluded.level, updated_at = excluded.updated_at,
		    counted = excluded.counted;
	unread_read := v_original AND p_level = 3;
	agg := parley_aggregate(conv, m.seq);
	rc := 1;
END
$$;

-- inbox.c's inbox_read: `n` messages the user was counted unread for were
-- read; the conversation is in its inbox from now on.
CREATE FUNCTION parley_inbox_read(p_conv text, p_user text, n bigint, p_now bigint)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	IF n = 0 AND EXISTS (SELECT 1 FROM inbox WHERE user_id = p_user
			     AND conversation_id = p_conv) THEN
		RETURN;
	END IF;
	INSERT INTO inbox VALUES (p_user, p_conv, parley_conversation_at(p_conv, p_now), 0)
		ON CONFLICT (user_id, conversation_id) DO UPDATE
		SET unread = greatest(inbox.unread - n, 0);
END
$$;

-- A change as store_set_status gives it.
CREATE FUNCTION parley_change_json(p_id text, conv text, sender text, agg integer,
				   agg_before integer, p_when text)
RETURNS text LANGUAGE sql STABLE AS $$
	SELECT '{"messageId":' || parley_jstr(p_id) || ',"conversationId":'
		|| coalesce(parley_jstr(conv), '""') || ',"senderId":'
		|| coalesce(parley_jstr(sender), '""') || ',"status":"' || parley_status_name(agg)
		|| '","changed":' || CASE WHEN agg <> agg_before THEN 'true' ELSE 'false' END
		|| ',"updatedAt":"' || p_when || '"}'
$$;

-- messages_set_status: all or nothing. Every id is checked first; a refusal
-- answers (error "not found" | "not a recipient", the id) and writes
-- nothing. Otherwise the changes as a JSON array, one per id.
CREATE FUNCTION parley_set_status(p_ids text[], p_user text, p_level integer, p_open boolean,
				  p_conv text, p_now bigint, p_when text)
RETURNS TABLE (error text, refused text, changes text) LANGUAGE plpgsql AS $$
DECLARE
	r record;
	out text[] := '{}';
	convs text[] := '{}';
	counts bigint[] := '{}';
	k integer;
BEGIN
	FOR i IN 1 .. coalesce(cardinality(p_ids), 0) LOOP
		r := parley_status_one(p_ids[i], p_user, p_level, p_open, p_conv, false, p_now);
		IF r.rc < 0 THEN
			RETURN QUERY SELECT CASE WHEN r.rc = -1 THEN 'not found'
					    ELSE 'not a recipient' END, p_ids[i], NULL::text;
			RETURN;
		END IF;
	END LOOP;
	FOR i IN 1 .. coalesce(cardinality(p_ids), 0) LOOP
		k := array_position(p_ids, p_ids[i]);
		IF k < i THEN
			out := out || out[k]; -- an id named twice: its change again
			CONTINUE;
		END IF;
		r := parley_status_one(p_ids[i], p_user, p_level, p_open, p_conv, true, p_now);
		out := out || parley_change_json(p_ids[i], r.conv, r.sender, r.agg, r.agg_before,
						  p_when);
		k := array_position(convs, r.conv);
		IF k IS NULL THEN
			convs := convs || r.conv;
			counts := counts || 0::bigint;
			k := cardinality(convs);
		END IF;
		IF r.unread_read THEN
			counts[k] := counts[k] + 1;
		END IF;
	END LOOP;
	IF p_level = 3 THEN
		FOR i IN 1 .. cardinality(convs) LOOP
			PERFORM parley_inbox_read(convs[i], p_user, counts[i], p_now);
		END LOOP;
	END IF;
	RETURN QUERY SELECT NULL::text, NULL::text, '[' || array_to_string(out, ',') || ']';
END
$$;

-- messages_read_upto: marks read every message after the user's read
-- cursor up to seq `p_upto` (NULL: all; at most 5000 at a time) and moves
-- the cursor. Answers the changes whose aggregate moved (JSON array) and
-- how many messages became read.
CREATE FUNCTION parley_read_upto(p_conv text, p_user text, p_upto bigint, p_open boolean,
				 p_now bigint, p_when text)
RETURNS TABLE (changes text, count integer) LANGUAGE plpgsql AS $$
DECLARE
	v_from bigint;
	v_last bigint := 0;
	v_count integer := 0;
	v_unread bigint := 0;
	out text[] := '{}';
	m record;
	r record;
BEGIN
	SELECT c.seq INTO v_from FROM read_cursors c WHERE c.conversation_id = p_conv
		AND c.user_id = p_user;
	v_from := coalesce(v_from, 0);
	FOR m IN SELECT mm.message_id, mm.seq FROM messages mm WHERE mm.conversation_id = p_conv
			AND mm.seq > v_from ORDER BY mm.seq LIMIT 5000 LOOP
		EXIT WHEN p_upto IS NOT NULL AND m.seq > p_upto;
		r := parley_status_one(m.message_id, p_user, 3, p_open, NULL, true, p_now);
		v_last := m.seq;
		IF r.rc = 1 THEN
			v_count := v_count + 1;
			IF r.unread_read THEN
				v_unread := v_unread + 1;
			END IF;
			IF r.agg <> r.agg_before THEN
				out := out || parley_change_json(m.message_id, r.conv, r.sender, r.agg,
								  r.agg_before, p_when);
			END IF;
		END IF;
	END LOOP;
	IF v_last > v_from THEN
		INSERT INTO read_cursors VALUES (p_conv, p_user, v_last)
			ON CONFLICT (conversation_id, user_id) DO UPDATE SET seq = excluded.seq;
	END IF;
	PERFORM parley_inbox_read(p_conv, p_user, v_unread, p_now);
	RETURN QUERY SELECT '[' || array_to_string(out, ',') || ']', v_count;
END
$$;

-- ---- membership ----

-- messages_set_members: the list replaces the conversation's members (at
-- most 10000); each member's inbox holds the conversation, and nobody
-- else's does (inbox.c's inbox_members). An empty list opens it again,
-- and the inboxes stay.
CREATE FUNCTION parley_set_members(p_conv text, p_members text[], p_now bigint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	v text[];
BEGIN
	SELECT coalesce(array_agg(u ORDER BY u), '{}') INTO v FROM (
		SELECT DISTINCT u FROM unnest(p_members[1:10000]) AS x(u)) s;
	DELETE FROM members WHERE conversation_id = p_conv AND NOT (user_id = ANY (v));
	INSERT INTO members SELECT p_conv, u FROM unnest(v) AS x(u) ON CONFLICT DO NOTHING;
	IF cardinality(v) = 0 THEN
		RETURN;
	END IF;
	DELETE FROM inbox WHERE conversation_id = p_conv AND NOT (user_id = ANY (v));
	INSERT INTO inbox SELECT u, p_conv, parley_conversation_at(p_conv, p_now), 0
		FROM unnest(v) AS x(u) ON CONFLICT DO NOTHING;
END
$$;

CREATE FUNCTION parley_is_member(p_conv text, p_user text)
RETURNS TABLE (member boolean, registered boolean)
LANGUAGE sql STABLE AS $$
	SELECT EXISTS (SELECT 1 FROM members WHERE conversation_id = p_conv AND user_id = p_user),
	       EXISTS (SELECT 1 FROM members WHERE conversation_id = p_conv)
$$;

-- ---- the inbox ----

-- The text a chat list shows of a message's content (inbox.c's
-- append_preview): a string's first 100 characters, an object's "caption"
-- or "name" alike, "" otherwise.
CREATE FUNCTION parley_preview(content text) RETURNS text LANGUAGE sql STABLE AS $$
	SELECT parley_jstr(CASE WHEN json_typeof(v) = 'string' THEN left(v #>> '{}', 100)
				ELSE '' END)
	FROM (SELECT CASE WHEN json_typeof(c) = 'object' AND c->'caption' IS NOT NULL
			  THEN c->'caption'
			  WHEN json_typeof(c) = 'object' AND c->'name' IS NOT NULL THEN c->'name'
			  ELSE c END AS v
	      FROM (SELECT content::json AS c) x) y
$$;

-- What an inbox item shows of a conversation's last message, or null.
CREATE FUNCTION parley_last_message(p_conv text) RETURNS text LANGUAGE sql STABLE AS $$
	SELECT coalesce((
		SELECT '{"messageId":"' || m.message_id || '","senderId":' || parley_jstr(m.sender_id)
			|| coalesce(',"sender":' || m.sender, '') || ',"type":' || parley_jstr(m.type)
			|| ',"timestamp":"' || m.sent_at || '","seq":' || m.seq
			|| CASE WHEN m.deleted THEN ',"deleted":true' ELSE '' END
			|| ',"preview":' || parley_preview(m.content) || '}'
		FROM messages m WHERE m.conversation_id = p_conv ORDER BY m.seq DESC LIMIT 1),
		'null')
$$;

CREATE FUNCTION parley_item(p_conv text, activity bigint, unread bigint, last text)
RETURNS text LANGUAGE sql STABLE AS $$
	SELECT '{"conversationId":' || parley_jstr(p_conv) || ',"updatedAt":"'
		|| parley_iso(activity >> 20) || '","unreadCount":' || unread
		|| ',"lastMessage":' || last || '}'
$$;

-- messages_inbox: a page of the user's conversations, latest activity
-- first, after `p_before` (NULL: from the latest); NULL when p_before is
-- not in the inbox.
CREATE FUNCTION parley_inbox(p_user text, p_before text, p_limit integer)
RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE
	b inbox;
	lim integer := greatest(1, least(100, p_limit));
	v_items text;
	v_n bigint;
BEGIN
	IF p_before IS NOT NULL THEN
		SELECT * INTO b FROM inbox WHERE user_id = p_user AND conversation_id = p_before;
		IF NOT FOUND THEN
			RETURN NULL;
		END IF;
	END IF;
	WITH page AS (
		SELECT * FROM inbox i WHERE i.user_id = p_user AND (p_before IS NULL
			OR (i.activity, i.conversation_id) < (b.activity, b.conversation_id))
		ORDER BY i.activity DESC, i.conversation_id DESC LIMIT lim + 1),
	     shown AS (SELECT * FROM page ORDER BY activity DESC, conversation_id DESC LIMIT lim)
	SELECT string_agg(parley_item(s.conversation_id, s.activity, s.unread,
				      parley_last_message(s.conversation_id)), ','
			  ORDER BY s.activity DESC, s.conversation_id DESC),
	       (SELECT count(*) FROM page)
	INTO v_items, v_n FROM shown s;
	RETURN '{"conversations":[' || coalesce(v_items, '') || '],"hasMore":'
		|| CASE WHEN v_n > lim THEN 'true' ELSE 'false' END || '}';
END
$$;

CREATE FUNCTION parley_inbox_item(p_user text, p_conv text) RETURNS text
LANGUAGE sql STABLE AS $$
	SELECT parley_item(i.conversation_id, i.activity, i.unread,
			   parley_last_message(i.conversation_id))
	FROM inbox i WHERE i.user_id = p_user AND i.conversation_id = p_conv
$$;

-- messages_inbox_items: the conversation's item for each of the users
-- whose inbox holds it, as rows (item, user), users with the same item
-- next to each other (the last message read once).
CREATE FUNCTION parley_inbox_updates(p_conv text, p_users text[])
RETURNS TABLE (item text, user_id text) LANGUAGE sql STABLE AS $$
	WITH last AS (SELECT parley_last_message(p_conv) AS l),
	     entries AS (
		SELECT i.user_id, i.activity, i.unread, min(x.o) AS o
		FROM unnest(p_users) WITH ORDINALITY AS x(u, o)
		JOIN inbox i ON i.user_id = x.u AND i.conversation_id = p_conv
		GROUP BY i.user_id, i.activity, i.unread)
	SELECT parley_item(p_conv, e.activity, e.unread, last.l), e.user_id
	FROM entries e, last
	ORDER BY min(e.o) OVER (PARTITION BY e.activity, e.unread), e.o
$$;

-- ---- edits ----

-- messages_edit: the new content and editedAt, or with NULL content a
-- tombstone. Answers p_when, or nothing when there is no such message.
CREATE FUNCTION parley_edit(p_id text, p_content text, p_when text) RETURNS text
LANGUAGE sql AS $$
	UPDATE messages SET content = coalesce(p_content, 'null'), deleted = p_content IS NULL,
		edited_at = p_when
	WHERE message_id = p_id RETURNING p_when
$$;

CREATE FUNCTION parley_annotate(p_id text, p_name text, p_value text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	IF p_value IS NULL THEN
		DELETE FROM annotations a USING messages m WHERE m.message_id = p_id
			AND a.conversation_id = m.conversation_id AND a.seq = m.seq AND a.name = p_name;
	ELSE
		INSERT INTO annotations SELECT m.conversation_id, m.seq, p_name, p_value
			FROM messages m WHERE m.message_id = p_id
			ON CONFLICT (conversation_id, seq, name) DO UPDATE SET value = excluded.value;
	END IF;
END
$$;

CREATE FUNCTION parley_hide(p_id text, p_user text) RETURNS void LANGUAGE sql AS $$
	INSERT INTO hides SELECT m.conversation_id, m.seq, p_user FROM messages m
		WHERE m.message_id = p_id ON CONFLICT DO NOTHING
$$;

-- ---- plugins' key-value entries ----

-- kv.incr in one statement: adds p_delta to the number stored (absent or
-- expired: 0) and answers the new value's JSON, or NULL when the value is
-- not a number. p_expires NULL keeps the entry's expiry. The row lock
-- orders concurrent increments, from any process.
CREATE FUNCTION parley_kv_incr(p_plugin text, p_key bytea, p_delta float8, p_expires bigint,
			       p_now bigint)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	cur kv;
	v float8 := 0;
	e bigint := 0;
BEGIN
	SELECT * INTO cur FROM kv WHERE plugin = p_plugin AND key = p_key FOR UPDATE;
	IF FOUND AND (cur.expires = 0 OR cur.expires > p_now) THEN
		IF json_typeof(convert_from(cur.value, 'UTF8')::json) <> 'number' THEN
			RETURN NULL;
		END IF;
		v := convert_from(cur.value, 'UTF8')::float8;
		e := cur.expires;
	END IF;
	v := v + p_delta;
	INSERT INTO kv VALUES (p_plugin, p_key, convert_to(v::text, 'UTF8'), coalesce(p_expires, e))
		ON CONFLICT (plugin, key) DO UPDATE
		SET value = excluded.value, expires = excluded.expires;
	RETURN v::text;
END
$$;
