-- pg_schema_2.sql - schema version 2 (docs/storage-postgresql.md): a
-- message:send in one statement. scripts/messages.lua's send asked the
-- store five times on PostgreSQL (is the sender a member, the sender's
-- profile, the send, is the sender a member now, the participants), each
-- a round trip and a statement of its own, and PostgreSQL's CPU per send
-- was what limited durable sends. parley_send_as does all of it in the
-- send's own statement; parley_send (version 1) becomes parley_send_as
-- without the checks, so that the send is written once.

DROP FUNCTION parley_send(text, text, text, text, text, text, text, text[], bigint, text);

-- Stores a message (messages_send), or, when the sender sent this client
-- message id before, answers that message (created false) and stores
-- nothing. The idempotency key is claimed first: a concurrent send of the
-- same key, in any process, waits for this one's transaction and then
-- finds it taken. The conversation's row is locked next: concurrent sends
-- into one conversation take their numbers in turn.
--
-- With p_check (a script's send, store.send_as), first what messages.lua
-- checks before a send: a conversation with registered members is theirs
-- only (refused true, nothing written, when the sender is not one of them)
-- and its recipients are its members (p_recipients, the users in its room,
-- are for an open one); the sender's profile is the given fields (JSON
-- texts, NULL when not given) completed by the stored profile, in the
-- order id, name, avatar, phoneNumber. It answers besides the members
-- (JSON array; NULL: open) and the participants after the send (JSON
-- array, the users whose inbox holds the conversation): what the
-- announcement after the commit needs.
CREATE FUNCTION parley_send_as(p_conv text, p_sender text, p_client_id text, p_type text,
			       p_content text, p_reply_to text, p_sender_json text,
			       p_name text, p_avatar text, p_phone text, p_check boolean,
			       p_recipients text[], p_now bigint, p_when text)
RETURNS TABLE (refused boolean, record_json text, created boolean, message_id text, sent_at text,
	       seq bigint, sender text, members text, participants text)
LANGUAGE plpgsql AS $$
DECLARE
	v_id text;
	v_seq bigint;
	v_rec text[];
	v_members text[];
	v_parts text[] := '{}';
	v_prof json;
	v_user text;
	m messages;
BEGIN
	-- Most of a send's cost in PostgreSQL is starting each statement's
	-- plan, so a send runs as few as it can: what needs no table is a
	-- plpgsql expression, and the common cases skip the general queries.
	refused := false;
	IF p_check THEN
		PERFORM FROM members mb WHERE mb.conversation_id = p_conv LIMIT 1;
		IF FOUND THEN
			SELECT array_agg(x.user_id ORDER BY x.user_id) INTO v_members FROM (
				SELECT mb.user_id FROM members mb WHERE mb.conversation_id = p_conv
				ORDER BY mb.user_id LIMIT 10000) x;
			IF NOT p_sender = ANY (v_members) THEN
				refused := true;
				created := false;
				RETURN NEXT;
				RETURN;
			END IF;
		END IF;
		IF p_name IS NULL OR p_avatar IS NULL OR p_phone IS NULL THEN
			SELECT u.profile::json INTO v_prof FROM users u
			WHERE u.user_id = p_sender AND u.profile IS NOT NULL;
			IF json_typeof(v_prof) = 'object' THEN
				p_name := coalesce(p_name, (v_prof -> 'name')::text);
				p_avatar := coalesce(p_avatar, (v_prof -> 'avatar')::text);
				p_phone := coalesce(p_phone, (v_prof -> 'phoneNumber')::text);
			END IF;
		END IF;
		p_sender_json := '{"id":' || parley_jstr(p_sender)
			|| coalesce(',"name":' || p_name, '') || coalesce(',"avatar":' || p_avatar, '')
			|| coalesce(',"phoneNumber":' || p_phone, '') || '}';
	END IF;
	v_id := lpad(to_hex((p_now << 20) | (nextval('message_ids') & 1048575)), 16, '0');
	IF p_client_id IS NOT NULL AND p_client_id <> '' THEN
		INSERT INTO idempotency VALUES (p_sender, p_client_id, v_id) ON CONFLICT DO NOTHING;
		IF NOT FOUND THEN
			SELECT mm.* INTO m FROM messages mm WHERE mm.message_id = (
				SELECT i.message_id FROM idempotency i
				WHERE i.sender_id = p_sender AND i.client_message_id = p_client_id);
			record_json := parley_client_record(m);
			created := false;
			message_id := m.message_id;
			sent_at := m.sent_at;
			seq := m.seq;
			sender := m.sender;
			RETURN NEXT;
			RETURN;
		END IF;
	END IF;
	-- The recipients, the sender and what is no user id left out, each once
	-- (registered members are that already, but for the sender; a checked
	-- send's room users of up to 64 are too: store_api_pg.c's l_send_as).
	IF v_members IS NOT NULL THEN
		v_rec := array_remove(v_members, p_sender);
	ELSIF p_check AND cardinality(p_recipients) <= 64 THEN
		v_rec := p_recipients;
	ELSE
		SELECT coalesce(array_agg(r.u ORDER BY r.i), '{}') INTO v_rec FROM (
			SELECT u, min(i) AS i FROM unnest(p_recipients) WITH ORDINALITY AS x(u, i)
			WHERE u <> p_sender AND octet_length(u) BETWEEN 1 AND 200 GROUP BY u) r;
	END IF;
	UPDATE conversations c SET last_seq = c.last_seq + 1 WHERE c.conversation_id = p_conv
		RETURNING c.last_seq INTO v_seq;
	IF NOT FOUND THEN
		INSERT INTO conversations VALUES (p_conv, 1) ON CONFLICT (conversation_id)
			DO UPDATE SET last_seq = conversations.last_seq + 1
			RETURNING conversations.last_seq INTO v_seq;
	END IF;
	INSERT INTO messages VALUES (p_conv, v_seq, v_id, p_sender, p_client_id, p_type, p_content,
				     p_reply_to, p_sender_json, p_when, NULL, false, v_rec)
		RETURNING * INTO m;
	IF cardinality(v_rec) > 0 THEN
		INSERT INTO statuses SELECT p_conv, v_seq, x.u, 1, p_now, true, x.i::integer
			FROM unnest(v_rec) WITH ORDINALITY AS x(u, i);
	END IF;
	-- The inbox: every participant's entry moves to this message, and each
	-- recipient's unread count grows by one (inbox.c's inbox_message). The
	-- entries there are moved in place; the sender's and recipients' that
	-- are not there yet are made (usually none: one update).
	FOR v_user IN UPDATE inbox i SET activity = greatest(i.activity, parley_id_number(v_id)),
			unread = i.unread + CASE WHEN i.user_id = ANY (v_rec) THEN 1 ELSE 0 END
		WHERE i.conversation_id = p_conv RETURNING i.user_id LOOP
		v_parts := v_parts || v_user;
	END LOOP;
	IF NOT (p_sender = ANY (v_parts) AND v_rec <@ v_parts) THEN
		INSERT INTO inbox
			SELECT u.u, p_conv, parley_id_number(v_id),
			       CASE WHEN u.u = ANY (v_rec) THEN 1 ELSE 0 END
			FROM (SELECT p_sender AS u UNION SELECT unnest(v_rec)) u
			WHERE NOT u.u = ANY (v_parts)
			ORDER BY u.u
			ON CONFLICT (user_id, conversation_id) DO UPDATE
			SET activity = greatest(inbox.activity, excluded.activity),
			    unread = inbox.unread + excluded.unread;
		v_parts := ARRAY(SELECT i.user_id FROM inbox i WHERE i.conversation_id = p_conv
				 ORDER BY i.user_id LIMIT 10000);
	END IF;
	record_json := left(parley_record(m), -1) || ',"status":"sent"}';
	created := true;
	message_id := v_id;
	sent_at := p_when;
	seq := v_seq;
	sender := p_sender_json;
	members := to_json(v_members)::text;
	participants := to_json(v_parts[1:10000])::text;
	RETURN NEXT;
END
$$;
