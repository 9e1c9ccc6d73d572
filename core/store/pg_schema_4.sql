-- pg_schema_4.sql - schema version 4 (docs/storage-postgresql.md): less of
-- PostgreSQL's CPU per send. With version 3, pg_stat_statements over the
-- sendpg load showed a quarter of parley_send_many outside its statements:
-- the answer loop, which built every message's record from its fields, one
-- plpgsql iteration and a dozen concatenations a send. core/lua/
-- store_api_pg.c now builds a new message's record itself from what it
-- sent and the id, seq and sender profile answered (it has every field);
-- the function answers record_json only for a send whose key was taken
-- (the earlier message's record, as stored). The answers are one query.
-- Two more: the idempotency keys go in with a plain INSERT, which took
-- 2.2 ms a run of 400 where ON CONFLICT's speculative insertion took 4.9
-- (pg_stat_statements, the same load), and only when a key is
-- taken does the run claim them again the careful way; and the
-- participants of a conversation whose first messages are in the run are
-- found in one query, not one query a send. And the run's arrays are
-- read with unnest in a select list, (SELECT unnest(a) AS x, unnest(b) AS
-- y, ...), where version 3 had unnest(a, b, ...) in FROM: the same rows
-- (arrays of unequal length padded with NULLs alike), but a function in
-- FROM first copies all its rows into a tuplestore: pgbench of one call of
-- 400 sends, 14.7 ms against 15.9 (medians of 5 interleaved runs).
--
-- And a send no longer writes a status row for each recipient, which at
-- "sent" said nothing the message's recipients column does not: in rooms
-- of 10 those nine rows (a row and an index entry each) were a quarter of
-- what PostgreSQL did a send (181 against 139 us an ack, run.sh's
-- sendroompg). A recipient at send time without a row is at
-- "sent"; its row comes with its first move (delivered, read), as a
-- newcomer's always has. Rows at "sent" written before (versions 1 to 3,
-- parley_send_as, parley copy-store) mean the same and stay. What reads
-- statuses reads them so: the aggregate, sync's "statuses", and one
-- user's status (parley_status_one).
--
-- And the inbox no longer moves every participant's entry at every run of
-- messages: an entry's activity, which orders the inbox, is the later of
-- its conversation's (a new column of conversations, moved with last_seq
-- in the row the send locks anyway) and its own (when the user came to
-- the conversation, or its latest message as versions 1 to 3 kept it).
-- A run then updates only its recipients' unread counts, a column no
-- index holds, so PostgreSQL updates those rows in place (HOT) without
-- the three index entries each move cost; inbox_recent goes (the inbox
-- reads all of a user's entries by the primary key and sorts them), and
-- the inbox's pages keep a tenth free for the in-place updates. The
-- readers read the activity so: parley_inbox, parley_inbox_item,
-- parley_inbox_updates. The column's 0 on rows from before is right: the
-- entries hold the activity those conversations had.

ALTER TABLE conversations ADD COLUMN activity bigint NOT NULL DEFAULT 0;
DROP INDEX inbox_recent;
ALTER TABLE inbox SET (fillfactor = 90);

-- messages_inbox: a page of the user's conversations, latest activity
-- first, after `p_before` (NULL: from the latest); NULL when p_before is
-- not in the inbox.
CREATE OR REPLACE FUNCTION parley_inbox(p_user text, p_before text, p_limit integer)
RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE
	b_act bigint;
	lim integer := greatest(1, least(100, p_limit));
	v_items text;
	v_n bigint;
BEGIN
	IF p_before IS NOT NULL THEN
		SELECT greatest(i.activity, c.activity) INTO b_act
		FROM inbox i LEFT JOIN conversations c ON c.conversation_id = i.conversation_id
		WHERE i.user_id = p_user AND i.conversation_id = p_before;
		IF NOT FOUND THEN
			RETURN NULL;
		END IF;
	END IF;
	WITH entries AS (
		SELECT i.conversation_id, greatest(i.activity, c.activity) AS activity, i.unread
		FROM inbox i LEFT JOIN conversations c ON c.conversation_id = i.conversation_id
		WHERE i.user_id = p_user),
	     page AS (
		SELECT * FROM entries e WHERE p_before IS NULL
			OR (e.activity, e.conversation_id) < (b_act, p_before)
		ORDER BY e.activity DESC, e.conversation_id DESC LIMIT lim + 1),
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

CREATE OR REPLACE FUNCTION parley_inbox_item(p_user text, p_conv text) RETURNS text
LANGUAGE sql STABLE AS $$
	SELECT parley_item(i.conversation_id, greatest(i.activity, (
				SELECT c.activity FROM conversations c
				WHERE c.conversation_id = i.conversation_id)),
			   i.unread, parley_last_message(i.conversation_id))
	FROM inbox i WHERE i.user_id = p_user AND i.conversation_id = p_conv
$$;

-- messages_inbox_items: the conversation's item for each of the users
-- whose inbox holds it, as rows (item, user), users with the same item
-- next to each other (the last message read once).
CREATE OR REPLACE FUNCTION parley_inbox_updates(p_conv text, p_users text[])
RETURNS TABLE (item text, user_id text) LANGUAGE sql STABLE AS $$
	WITH last AS (SELECT parley_last_message(p_conv) AS l,
			     (SELECT c.activity FROM conversations c
			      WHERE c.conversation_id = p_conv) AS act),
	     entries AS (
		SELECT i.user_id, greatest(i.activity, last.act) AS activity, i.unread,
		       min(x.o) AS o
		FROM unnest(p_users) WITH ORDINALITY AS x(u, o)
		JOIN inbox i ON i.user_id = x.u AND i.conversation_id = p_conv, last
		GROUP BY i.user_id, greatest(i.activity, last.act), i.unread)
	SELECT parley_item(p_conv, e.activity, e.unread, last.l), e.user_id
	FROM entries e, last
	ORDER BY min(e.o) OVER (PARTITION BY e.activity, e.unread), e.o
$$;

-- The least status over a message's counted recipients: "sent" (1) while
-- one of the `n` recipients at send time has no row.
CREATE FUNCTION parley_aggregate(conv text, s bigint, n integer) RETURNS integer
LANGUAGE sql STABLE AS $$
	SELECT CASE WHEN count(*) FILTER (WHERE st.ord IS NOT NULL) < n THEN 1
		    ELSE coalesce(min(st.level), 1) END::integer
	FROM statuses st WHERE st.conversation_id = conv AND st.seq = s AND st.counted
$$;

-- Version 1's, without the count of recipients, would read a message
-- without rows wrongly; its callers are all replaced below.
DROP FUNCTION parley_aggregate(text, bigint);

CREATE OR REPLACE FUNCTION parley_client_record(m messages) RETURNS text
LANGUAGE sql STABLE AS $$
	SELECT left(parley_record(m), -1) || parley_annotations(m.conversation_id, m.seq)
		|| ',"status":"' || parley_status_name(parley_aggregate(m.conversation_id, m.seq,
			cardinality(m.recipients))) || '"}'
$$;

-- "statuses": the recipients at send time in their order (without a row:
-- "sent"), then those who joined.
CREATE OR REPLACE FUNCTION parley_sync_record(m messages) RETURNS text
LANGUAGE sql STABLE AS $$
	SELECT left(parley_record(m), -1) || parley_annotations(m.conversation_id, m.seq)
		|| ',"status":"' || parley_status_name(parley_aggregate(m.conversation_id, m.seq,
			cardinality(m.recipients)))
		|| '","statuses":{' || coalesce((
			SELECT string_agg(parley_jstr(z.u) || ':"' || parley_status_name(z.l) || '"', ','
					  ORDER BY z.o NULLS LAST, z.u)
			FROM (
				SELECT r.u, r.o, coalesce(st.level, 1) AS l
				FROM unnest(m.recipients) WITH ORDINALITY AS r(u, o)
				LEFT JOIN statuses st ON st.conversation_id = m.conversation_id
					AND st.seq = m.seq AND st.user_id = r.u
				UNION ALL
				SELECT st.user_id, NULL, st.level FROM statuses st
				WHERE st.conversation_id = m.conversation_id AND st.seq = m.seq
					AND st.counted AND st.ord IS NULL) z), '') || '}}'
$$;

-- As version 1's, but for a recipient at send time without a row: at
-- "sent".
CREATE OR REPLACE FUNCTION parley_status_one(p_id text, p_user text, p_level integer,
					     p_open boolean, p_conv text, p_write boolean,
					     p_now bigint, OUT rc integer, OUT conv text,
					     OUT sender text, OUT agg_before integer, OUT agg integer,
					     OUT unread_read boolean)
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
	ELSIF v_original THEN
		v_current := 1;
	END IF;
	v_recipient := v_original OR coalesce(cur.counted, false);
	agg_before := parley_aggregate(conv, m.seq, cardinality(m.recipients));
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
	agg := parley_aggregate(conv, m.seq, cardinality(m.recipients));
	rc := 1;
END
$$;

-- As version 3's, but for record_json (NULL when created), no status rows,
-- the inbox's unread counts only, and how (the header above).
CREATE OR REPLACE FUNCTION parley_send_many(p_conv text[], p_sender text[], p_client_id text[],
				 p_type text[], p_content text[], p_reply_to text[],
				 p_sender_json text[], p_name text[], p_avatar text[],
				 p_phone text[], p_check boolean, p_recipients text[],
				 p_now bigint[], p_when text[])
RETURNS TABLE (refused boolean, record_json text, created boolean, message_id text, sent_at text,
	       seq bigint, sender text, members text, participants text)
LANGUAGE plpgsql AS $$
DECLARE
	n integer := cardinality(p_conv);
	v_refused boolean[];
	v_members text[];  -- a send's conversation's members, JSON (NULL: open)
	v_rec text[];      -- its recipients, a text[] literal
	v_sj text[];       -- its sender's profile, JSON
	v_id text[];
	v_created boolean[];
	v_seq bigint[];
	v_parts text[];    -- its participants after it, JSON
	v_new text[];      -- conversations where the run made inbox entries
	v_taken boolean := false; -- a key of the run was taken before
BEGIN
	IF n IS NULL OR n = 0 THEN
		RETURN;
	END IF;
	-- What messages.lua checks before a send (parley_send_as's p_check),
	-- and each send's recipients, the sender and what is no user id left
	-- out, each once.
	SELECT array_agg(x.refused ORDER BY x.i), array_agg(x.members ORDER BY x.i),
	       array_agg(x.rec ORDER BY x.i), array_agg(x.sj ORDER BY x.i)
	INTO v_refused, v_members, v_rec, v_sj
	FROM (
		SELECT s.i, coalesce(NOT s.u = ANY (mm.arr), false) AS refused,
		       to_json(mm.arr)::text AS members,
		       CASE WHEN mm.arr IS NOT NULL THEN array_remove(mm.arr, s.u)::text
			    WHEN p_check AND cardinality(s.r::text[]) <= 64 THEN s.r
			    ELSE (SELECT coalesce(array_agg(d.u ORDER BY d.o), '{}')::text FROM (
					SELECT x.u, min(x.o) AS o
					FROM unnest(s.r::text[]) WITH ORDINALITY AS x(u, o)
					WHERE x.u <> s.u AND octet_length(x.u) BETWEEN 1 AND 200
					GROUP BY x.u) d)
		       END AS rec,
		       CASE WHEN NOT p_check THEN s.sj
			    ELSE '{"id":' || parley_jstr(s.u)
				|| coalesce(',"name":' || coalesce(s.nm, CASE WHEN json_typeof(pr.pj) = 'object'
					THEN (pr.pj -> 'name')::text END), '')
				|| coalesce(',"avatar":' || coalesce(s.av, CASE WHEN json_typeof(pr.pj) = 'object'
					THEN (pr.pj -> 'avatar')::text END), '')
				|| coalesce(',"phoneNumber":' || coalesce(s.ph, CASE WHEN json_typeof(pr.pj) = 'object'
					THEN (pr.pj -> 'phoneNumber')::text END), '')
				|| '}'
		       END AS sj
		FROM (SELECT unnest(p_conv) AS c, unnest(p_sender) AS u,
				unnest(p_recipients) AS r, unnest(p_sender_json) AS sj,
				unnest(p_name) AS nm, unnest(p_avatar) AS av,
				unnest(p_phone) AS ph, generate_subscripts(p_conv, 1) AS i) AS s
		LEFT JOIN LATERAL (
			SELECT array_agg(y.user_id ORDER BY y.user_id) AS arr FROM (
				SELECT mb.user_id FROM members mb WHERE mb.conversation_id = s.c
				ORDER BY mb.user_id LIMIT 10000) y) mm ON p_check
		LEFT JOIN LATERAL (
			SELECT uu.profile::json AS pj FROM users uu
			WHERE uu.user_id = s.u AND uu.profile IS NOT NULL) pr
			ON p_check AND (s.nm IS NULL OR s.av IS NULL OR s.ph IS NULL)
	) x;
	-- The ids, in the sends' order (a refused send takes none).
	SELECT array_agg(CASE WHEN NOT s.r
			      THEN lpad(to_hex((s.t << 20) | (nextval('message_ids') & 1048575)), 16, '0')
			 END ORDER BY s.i)
	INTO v_id FROM (SELECT unnest(v_refused) AS r, unnest(p_now) AS t,
			generate_subscripts(v_refused, 1) AS i) AS s;
	-- The idempotency keys. Usually none was taken before, and the run's
	-- own are distinct: a plain INSERT, in a subtransaction. Should one be
	-- taken (a client's retry, a key twice in the run, a concurrent send
	-- of one in another transaction, which the INSERT waits for), that
	-- undoes it, and the keys are claimed in order with ON CONFLICT: a key
	-- taken before (by an earlier send of this run too) makes its send
	-- answer that message.
	BEGIN
		INSERT INTO idempotency
		SELECT s.u, s.k, s.id FROM (SELECT unnest(p_sender) AS u,
				unnest(p_client_id) AS k, unnest(v_id) AS id,
				unnest(v_refused) AS r) AS s
		WHERE NOT s.r AND s.k <> '';
		v_created := ARRAY(SELECT NOT r FROM (SELECT unnest(v_refused) AS r) AS s);
	EXCEPTION WHEN unique_violation THEN
		v_taken := true;
		WITH claimed AS (
			INSERT INTO idempotency
			SELECT s.u, s.k, s.id FROM (SELECT unnest(p_sender) AS u,
					unnest(p_client_id) AS k, unnest(v_id) AS id,
					unnest(v_refused) AS r,
					generate_subscripts(p_sender, 1) AS i) AS s
			WHERE NOT s.r AND s.k <> '' ORDER BY s.i
			ON CONFLICT DO NOTHING RETURNING idempotency.message_id)
		SELECT array_agg(NOT s.r AND (coalesce(s.k, '') = '' OR c.message_id IS NOT NULL)
				 ORDER BY s.i)
		INTO v_created
		FROM (SELECT unnest(v_refused) AS r, unnest(p_client_id) AS k,
				unnest(v_id) AS id, generate_subscripts(v_refused, 1) AS i) AS s
		LEFT JOIN claimed c ON c.message_id = s.id;
	END;
	-- Each conversation's numbers: its row locked once (in conversation
	-- order, as any process's run locks them), the run's sends numbered in
	-- their order after its last; and its activity, the run's latest
	-- message.
	WITH runs AS (
		SELECT s.c, count(*) AS k, max(parley_id_number(s.id)) AS act
		FROM (SELECT unnest(p_conv) AS c, unnest(v_id) AS id, unnest(v_created) AS ok) AS s
		WHERE s.ok GROUP BY s.c),
	taken AS (
		INSERT INTO conversations SELECT r.c, r.k, r.act FROM runs r ORDER BY r.c
		ON CONFLICT (conversation_id) DO UPDATE
		SET last_seq = conversations.last_seq + excluded.last_seq,
		    activity = greatest(conversations.activity, excluded.activity)
		RETURNING conversations.conversation_id, conversations.last_seq)
	SELECT array_agg(y.q ORDER BY y.i) INTO v_seq FROM (
		SELECT s.i, CASE WHEN s.ok THEN t.last_seq - r.k
			+ row_number() OVER (PARTITION BY s.c, s.ok ORDER BY s.i) END AS q
		FROM (SELECT unnest(p_conv) AS c, unnest(v_created) AS ok,
				generate_subscripts(p_conv, 1) AS i) AS s
		LEFT JOIN taken t ON t.conversation_id = s.c
		LEFT JOIN runs r ON r.c = s.c) y;
	INSERT INTO messages
	SELECT s.c, s.q, s.id, s.u, s.k, s.t, s.ct, s.rt, s.sj, s.w, NULL, false, s.rec::text[]
	FROM (SELECT unnest(p_conv) AS c, unnest(v_seq) AS q, unnest(v_id) AS id,
			unnest(p_sender) AS u, unnest(p_client_id) AS k, unnest(p_type) AS t,
			unnest(p_content) AS ct, unnest(p_reply_to) AS rt, unnest(v_sj) AS sj,
			unnest(p_when) AS w, unnest(v_rec) AS rec, unnest(v_created) AS ok) AS s
	WHERE s.ok;
	-- No status rows: a recipient without one is at "sent" (below).
	-- The inbox: an entry's activity is the conversation's (above) or when
	-- the user came to it, whichever is later, so the run moves only the
	-- unread counts of its recipients, by the messages each received (an
	-- update of a column no index holds: PostgreSQL's HOT update, the
	-- indexes untouched). The entries missing (the sender's and
	-- recipients' not there yet, usually none) are made. The participants
	-- of each send's conversation are the entries there before the run.
	WITH latest AS (
		SELECT s.c, max(parley_id_number(s.id)) AS act
		FROM (SELECT unnest(p_conv) AS c, unnest(v_id) AS id, unnest(v_created) AS ok
			) AS s WHERE s.ok GROUP BY s.c),
	got AS (
		SELECT s.c, x.u, count(*) AS k
		FROM (SELECT unnest(p_conv) AS c, unnest(v_rec) AS rec, unnest(v_created) AS ok
			) AS s, unnest(s.rec::text[]) AS x(u)
		WHERE s.ok GROUP BY s.c, x.u),
	bumped AS (
		UPDATE inbox i SET unread = i.unread + g.k FROM got g
		WHERE i.conversation_id = g.c AND i.user_id = g.u
		RETURNING i.conversation_id),
	there AS (
		SELECT b.conversation_id, b.user_id FROM latest l
		JOIN inbox b ON b.conversation_id = l.c),
	wanted AS (
		SELECT DISTINCT s.c, s.u FROM (SELECT unnest(p_conv) AS c,
				unnest(p_sender) AS u, unnest(v_created) AS ok) AS s WHERE s.ok
		UNION SELECT g.c, g.u FROM got g),
	made AS (
		INSERT INTO inbox
		SELECT w.u, w.c, l.act, coalesce(g.k, 0)
		FROM wanted w JOIN latest l ON l.c = w.c LEFT JOIN got g ON g.c = w.c AND g.u = w.u
		WHERE NOT EXISTS (SELECT FROM there t WHERE t.conversation_id = w.c AND t.user_id = w.u)
		ORDER BY w.u, w.c
		ON CONFLICT (user_id, conversation_id) DO UPDATE
		SET activity = greatest(inbox.activity, excluded.activity),
		    unread = inbox.unread + excluded.unread
		RETURNING inbox.conversation_id),
	parts AS (
		SELECT t.conversation_id AS c,
		       to_json((array_agg(t.user_id ORDER BY t.user_id))[1:10000])::text AS js
		FROM there t GROUP BY t.conversation_id)
	SELECT array_agg(CASE WHEN s.ok THEN coalesce(p.js, '[]') END ORDER BY s.i),
	       (SELECT array_agg(DISTINCT md.conversation_id) FROM made md)
	INTO v_parts, v_new
	FROM (SELECT unnest(p_conv) AS c, unnest(v_created) AS ok,
			generate_subscripts(p_conv, 1) AS i) AS s LEFT JOIN parts p ON p.c = s.c;
	-- Where the run made entries (rare: a conversation's first messages), a
	-- send's participants are those there before the run and the senders
	-- and recipients of the run's sends up to it: each user is there from
	-- the first send it is in (0: before the run).
	IF v_new IS NOT NULL THEN
		WITH seen AS (
			SELECT s.c, s.u, s.i FROM (SELECT unnest(p_conv) AS c,
					unnest(p_sender) AS u, unnest(v_created) AS ok,
					generate_subscripts(p_conv, 1) AS i) AS s
			WHERE s.ok AND s.c = ANY (v_new)
			UNION ALL
			SELECT s.c, x.u, s.i FROM (SELECT unnest(p_conv) AS c,
					unnest(v_rec) AS rec, unnest(v_created) AS ok,
					generate_subscripts(p_conv, 1) AS i
				) AS s, unnest(s.rec::text[]) AS x(u)
			WHERE s.ok AND s.c = ANY (v_new)
			UNION ALL
			SELECT b.c, e.u, 0 FROM (
				SELECT DISTINCT ON (s.c) s.c, s.p FROM (SELECT unnest(p_conv) AS c,
						unnest(v_parts) AS p, unnest(v_created) AS ok) AS s
				WHERE s.ok AND s.c = ANY (v_new)) b,
				json_array_elements_text(b.p::json) AS e(u)),
		firsts AS (
			SELECT z.c, z.u, min(z.i) AS f FROM seen z GROUP BY z.c, z.u),
		fresh AS (
			SELECT s.i, to_json((array_agg(f.u ORDER BY f.u))[1:10000])::text AS js
			FROM (SELECT unnest(p_conv) AS c, unnest(v_created) AS ok,
					generate_subscripts(p_conv, 1) AS i) AS s
			JOIN firsts f ON f.c = s.c AND f.f <= s.i
			WHERE s.ok AND s.c = ANY (v_new)
			GROUP BY s.i)
		SELECT array_agg(coalesce(fr.js, s.p) ORDER BY s.i) INTO v_parts
		FROM (SELECT unnest(v_parts) AS p, generate_subscripts(v_parts, 1) AS i
			) AS s LEFT JOIN fresh fr ON fr.i = s.i;
	END IF;
	-- The answers, in the sends' order. A new message's record is its
	-- caller's to make (it has every field); a send whose key was taken
	-- answers the message it made, as stored (looked for only when one
	-- was).
	IF NOT v_taken THEN
		RETURN QUERY
		SELECT s.r, NULL::text, s.ok, s.id, s.w, s.q, s.sj, s.mb, s.pt
		FROM (SELECT unnest(v_refused) AS r, unnest(v_created) AS ok,
				unnest(v_id) AS id, unnest(p_when) AS w, unnest(v_seq) AS q,
				unnest(v_sj) AS sj, unnest(v_members) AS mb,
				unnest(v_parts) AS pt, generate_subscripts(v_refused, 1) AS i) AS s
		ORDER BY s.i;
		RETURN;
	END IF;
	RETURN QUERY
	SELECT s.r, d.rj, s.ok,
	       CASE WHEN s.ok THEN s.id ELSE d.mid END,
	       CASE WHEN s.ok THEN s.w ELSE d.sa END,
	       CASE WHEN s.ok THEN s.q ELSE d.sq END,
	       CASE WHEN s.ok THEN s.sj ELSE d.sd END,
	       CASE WHEN s.ok THEN s.mb END,
	       CASE WHEN s.ok THEN s.pt END
	FROM (SELECT unnest(v_refused) AS r, unnest(v_created) AS ok, unnest(v_id) AS id,
			unnest(p_when) AS w, unnest(v_seq) AS q, unnest(v_sj) AS sj,
			unnest(v_members) AS mb, unnest(v_parts) AS pt, unnest(p_sender) AS u,
			unnest(p_client_id) AS k, generate_subscripts(v_refused, 1) AS i) AS s
	LEFT JOIN LATERAL (
		SELECT parley_client_record(mm) AS rj, mm.message_id AS mid, mm.sent_at AS sa,
		       mm.seq AS sq, mm.sender AS sd
		FROM idempotency ik JOIN messages mm ON mm.message_id = ik.message_id
		WHERE NOT s.r AND NOT s.ok AND ik.sender_id = s.u AND ik.client_message_id = s.k) d
		ON true
	ORDER BY s.i;
END
$$;
