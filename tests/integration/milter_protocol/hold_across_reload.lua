-- Scenario 6: one connection stays open across a SIGUSR1 reload. It does a
-- transaction, tells the shell (READY file), waits for the reload (GO file),
-- then does another transaction on the same connection, which must still be
-- served (with the old or the new action: either is a valid reply).
-- -D DIR SOCK ENFORCE READY GO
dofile(DIR .. "/common.lua")
local conn = open(SOCK)
mail(conn, "HOLD1")
local before = rcpt(conn, "user@" .. ENFORCE, "smtp", ENFORCE)
check(before == "tempfail", "RCPT before reload: got " .. before .. ", want tempfail")
check(mt.abort(conn) == nil, "abort")
touch(READY)
check(wait_file(GO, 30), "the shell never signalled the reload")
mail(conn, "HOLD2")
local after = rcpt(conn, "user@" .. ENFORCE, "smtp", ENFORCE)
check(after == "tempfail" or after == "continue", "RCPT after reload on the held connection: " .. after)
local hdr = eom(conn)
mt.disconnect(conn)
print("held-before=" .. before .. " held-after=" .. after .. " header=" .. hdr)
