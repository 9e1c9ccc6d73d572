-- pg_schema_3.sql - schema version 3 (docs/storage-postgresql.md): many
-- sends in one statement. With a send in one statement (version 2)
-- PostgreSQL still spent about 100 us of CPU a send, most of it starting
-- the plans of the function's eight statements and moving each
-- participant's inbox entry (a new version of the row and of its three
-- index entries: activity is in inbox_recent) at every message. core/
-- store/pg.c now sends a run of sends of one group commit as one call of
-- parley_send_many, each parameter an array with one element a send: a
-- handful of statements for the whole run, and each inbox entry moved once
-- a run rather than once a message. No table changes.

-- The sends p_conv[i], p_sender[i], ... in order, each as parley_send_as
-- (version 2) would make it, called once each in that order: one row a
-- send, in their order (i). p_check is the whole run's (the runs are of
-- one statement); p_recipients[i] is a text[] literal; p_sender_json (when
-- not p_check) and p_name, p_avatar, p_phone (when p_check) may be NULL.
--
-- What differs from calling parley_send_as n times is only when things
-- happen inside the transaction, none of it seen outside it: every key is
-- claimed, then every conversation's numbers taken at once (the rows
-- locked in conversation order), every message written, then the inbox
-- entries moved, once each. An entry's activity is the latest message of
-- the run in its conversation (ids grow with i) and its unread count grows
-- by the run's messages it is a recipient of: what n updates leave.
CREATE FUNCTION parley_send_many(p_conv text[], p_sender text[], p_client_id text[],
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
	m messages;
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
		FROM unnest(p_conv, p_sender, p_recipients, p_sender_json, p_name, p_avatar, p_phone)
			WITH ORDINALITY AS s(c, u, r, sj, nm, av, ph, i)
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
	INTO v_id FROM unnest(v_refused, p_now) WITH ORDINALITY AS s(r, t, i);
	-- The idempotency keys, claimed in order: a key taken before (by an
	-- earlier send of this run too) makes its send answer that message.
	WITH claimed AS (
		INSERT INTO idempotency
		SELECT s.u, s.k, s.id FROM unnest(p_sender, p_client_id, v_id, v_refused)
			WITH ORDINALITY AS s(u, k, id, r, i)
		WHERE NOT s.r AND s.k <> '' ORDER BY s.i
		ON CONFLICT DO NOTHING RETURNING idempotency.message_id)
	SELECT array_agg(NOT s.r AND (coalesce(s.k, '') = '' OR c.message_id IS NOT NULL) ORDER BY s.i)
	INTO v_created
	FROM unnest(v_refused, p_client_id, v_id) WITH ORDINALITY AS s(r, k, id, i)
	LEFT JOIN claimed c ON c.message_id = s.id;
	-- Each conversation's numbers: its row locked once (in conversation
	-- order, as any process's run locks them), the run's sends numbered in
	-- their order after its last.
	WITH runs AS (
		SELECT s.c, count(*) AS k FROM unnest(p_conv, v_created) AS s(c, ok)
		WHERE s.ok GROUP BY s.c),
	taken AS (
		INSERT INTO conversations SELECT r.c, r.k FROM runs r ORDER BY r.c
		ON CONFLICT (conversation_id) DO UPDATE SET last_seq = conversations.last_seq + excluded.last_seq
		RETURNING conversations.conversation_id, conversations.last_seq)
	SELECT array_agg(y.q ORDER BY y.i) INTO v_seq FROM (
		SELECT s.i, CASE WHEN s.ok THEN t.last_seq - r.k
			+ row_number() OVER (PARTITION BY s.c, s.ok ORDER BY s.i) END AS q
		FROM unnest(p_conv, v_created) WITH ORDINALITY AS s(c, ok, i)
		LEFT JOIN taken t ON t.conversation_id = s.c
		LEFT JOIN runs r ON r.c = s.c) y;
	INSERT INTO messages
	SELECT s.c, s.q, s.id, s.u, s.k, s.t, s.ct, s.rt, s.sj, s.w, NULL, false, s.rec::text[]
	FROM unnest(p_conv, v_seq, v_id, p_sender, p_client_id, p_type, p_content, p_reply_to, v_sj,
		    p_when, v_rec, v_created) AS s(c, q, id, u, k, t, ct, rt, sj, w, rec, ok)
	WHERE s.ok;
	INSERT INTO statuses
	SELECT s.c, s.q, x.u, 1, s.t, true, x.o::integer
	FROM unnest(p_conv, v_seq, v_rec, p_now, v_created) AS s(c, q, rec, t, ok),
	     unnest(s.rec::text[]) WITH ORDINALITY AS x(u, o)
	WHERE s.ok;
	-- The inbox: every participant's entry of a conversation the run wrote
	-- moves to its latest message, once, and each recipient's unread count
	-- grows by the messages it received; the entries missing (the sender's
	-- and recipients' not there yet, usually none) are made.
	WITH latest AS (
		SELECT s.c, max(parley_id_number(s.id)) AS act
		FROM unnest(p_conv, v_id, v_created) AS s(c, id, ok) WHERE s.ok GROUP BY s.c),
	got AS (
		SELECT s.c, x.u, count(*) AS k
		FROM unnest(p_conv, v_rec, v_created) AS s(c, rec, ok), unnest(s.rec::text[]) AS x(u)
		WHERE s.ok GROUP BY s.c, x.u),
	moved AS (
		UPDATE inbox i SET activity = greatest(i.activity, d.act), unread = i.unread + d.k
		FROM (SELECT b.conversation_id AS c, b.user_id AS u, l.act, coalesce(g.k, 0) AS k
		      FROM latest l JOIN inbox b ON b.conversation_id = l.c
		      LEFT JOIN got g ON g.c = b.conversation_id AND g.u = b.user_id) d
		WHERE i.conversation_id = d.c AND i.user_id = d.u
		RETURNING i.conversation_id, i.user_id),
	wanted AS (
		SELECT DISTINCT s.c, s.u FROM unnest(p_conv, p_sender, v_created) AS s(c, u, ok) WHERE s.ok
		UNION SELECT g.c, g.u FROM got g),
	made AS (
		INSERT INTO inbox
		SELECT w.u, w.c, l.act, coalesce(g.k, 0)
		FROM wanted w JOIN latest l ON l.c = w.c LEFT JOIN got g ON g.c = w.c AND g.u = w.u
		WHERE NOT EXISTS (SELECT FROM moved mv WHERE mv.conversation_id = w.c AND mv.user_id = w.u)
		ORDER BY w.u, w.c
		ON CONFLICT (user_id, conversation_id) DO UPDATE
		SET activity = greatest(inbox.activity, excluded.activity),
		    unread = inbox.unread + excluded.unread
		RETURNING inbox.conversation_id),
	parts AS (
		SELECT mv.conversation_id AS c, to_json((array_agg(mv.user_id ORDER BY mv.user_id))[1:10000])::text AS js
		FROM moved mv GROUP BY mv.conversation_id)
	SELECT array_agg(CASE WHEN s.ok THEN coalesce(p.js, '[]') END ORDER BY s.i),
	       (SELECT array_agg(DISTINCT md.conversation_id) FROM made md)
	INTO v_parts, v_new
	FROM unnest(p_conv, v_created) WITH ORDINALITY AS s(c, ok, i) LEFT JOIN parts p ON p.c = s.c;
	-- Where the run made entries, a send's participants are those there
	-- before the run and the senders and recipients of the run's sends up
	-- to it (rare: a conversation's first messages).
	IF v_new IS NOT NULL THEN
		FOR k IN 1..n LOOP
			CONTINUE WHEN NOT v_created[k] OR NOT p_conv[k] = ANY (v_new);
			v_parts[k] := (SELECT to_json((array_agg(z.u ORDER BY z.u))[1:10000])::text FROM (
				SELECT u FROM json_array_elements_text(v_parts[k]::json) AS e(u)
				UNION SELECT s.u FROM unnest(p_conv, p_sender, v_created)
					WITH ORDINALITY AS s(c, u, ok, i)
				WHERE s.i <= k AND s.ok AND s.c = p_conv[k]
				UNION SELECT x.u FROM unnest(p_conv, v_rec, v_created)
					WITH ORDINALITY AS s(c, rec, ok, i), unnest(s.rec::text[]) AS x(u)
				WHERE s.i <= k AND s.ok AND s.c = p_conv[k]) z(u));
		END LOOP;
	END IF;
	-- The answers; a send whose key was taken answers the message it made.
	FOR k IN 1..n LOOP
		refused := v_refused[k];
		record_json := NULL;
		created := v_created[k];
		message_id := NULL;
		sent_at := NULL;
		seq := NULL;
		sender := NULL;
		members := NULL;
		participants := NULL;
		IF v_created[k] THEN
			m := ROW(p_conv[k], v_seq[k], v_id[k], p_sender[k], p_client_id[k], p_type[k],
				 p_content[k], p_reply_to[k], v_sj[k], p_when[k], NULL, false,
				 v_rec[k]::text[]);
			record_json := left(parley_record(m), -1) || ',"status":"sent"}';
			message_id := v_id[k];
			sent_at := p_when[k];
			seq := v_seq[k];
			sender := v_sj[k];
			members := v_members[k];
			participants := v_parts[k];
		ELSIF NOT v_refused[k] THEN
			SELECT mm.* INTO m FROM messages mm WHERE mm.message_id = (
				SELECT i.message_id FROM idempotency i
				WHERE i.sender_id = p_sender[k] AND i.client_message_id = p_client_id[k]);
			record_json := parley_client_record(m);
			message_id := m.message_id;
			sent_at := m.sent_at;
			seq := m.seq;
			sender := m.sender;
		END IF;
		RETURN NEXT;
	END LOOP;
END
$$;
