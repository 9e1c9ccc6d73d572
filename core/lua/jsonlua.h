/* jsonlua.h - JSON for the Lua side, exact where Debian's lua-cjson 2.1.0 is
 * not (NOTES.md): arrays keep their kind through a metatable (empty ones
 * too), numbers are written with the fewest digits that read back as the
 * same double, and integers beyond 2^53 stay exact as boxed values. It
 * validates with json.h, the scanner the core itself trusts. */
#ifndef PARLEY_JSONLUA_H
#define PARLEY_JSONLUA_H

#include <lua.h>

/* Pushes the module table: decode, encode, null, array (marks a table as
 * an array), array_mt, is_array, number (box a big integer's text).
 * Returns 1, the values pushed (a lua_CFunction). */
int jsonlua_open(lua_State *L);

/* Sets the array metatable on the table at the top of the stack. */
void jsonlua_mark_array(lua_State *L);

/* Encodes the value at `idx` as JSON: a NUL-terminated text in scratch
 * memory (scratch.h), which the caller frees with scratch_free, its length
 * in `*len`; or NULL with `*err` set (a static string: a value with no
 * JSON form, too deep).
 * Leaves the stack as it was. */
char *jsonlua_encode(lua_State *L, int idx, size_t *len, const char **err);

/* Pushes the value of `json`, which json_validate has accepted (at most
 * 64 levels deep): text the transport checked already is not checked
 * again, and no Lua string of it is made. */
void jsonlua_push_validated(lua_State *L, const char *json, size_t len);

/* Pushes a value that encodes as `json` verbatim (the caller vouches that
 * it is one valid JSON value): JSON the core built, passed through. */
void jsonlua_push_raw(lua_State *L, const char *json, size_t len);

/* The JSON of the outgoing arguments (of an emit, a request or an ack) at
 * `idx` up to the top of the stack, comma-separated without brackets as
 * sio_event_write takes them, with their count in `*nargs` and the length
 * in `*len`. Nils after the last value that is not nil are none (a Lua
 * call cannot tell them from absent ones); a nil before it is null. Each
 * value is encoded here, a string as a JSON string, so that no Lua string of
 * the text is made; the text is then scratch memory (scratch.h) in `*owned`,
 * for the caller to free with scratch_free. One raw value alone is given as
 * it is, with no copy (valid while it is on the stack), and `*owned` is
 * NULL; so is the text for no arguments (NULL, 0). Raises as json.encode
 * does for a value with no JSON form. */
const char *jsonlua_args(lua_State *L, int idx, size_t *len, unsigned *nargs, char **owned);

#endif
