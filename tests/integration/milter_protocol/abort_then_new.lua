-- Scenario 3: a transaction aborted after RCPT (RSET, or every recipient
-- refused), then a new transaction on the same connection.
-- -D DIR SOCK QID_A QID_B ENFORCE NOPOLICY
dofile(DIR .. "/common.lua")
local conn = open(SOCK)
mail(conn, QID_A)
local a = rcpt(conn, "user@" .. ENFORCE, "smtp", ENFORCE)
check(a == "tempfail", "RCPT before abort: got " .. a .. ", want tempfail")
check(mt.abort(conn) == nil, "abort")
mail(conn, QID_B)
local b = rcpt(conn, "user@" .. NOPOLICY, "smtp", NOPOLICY)
check(b == "continue", "RCPT after abort: got " .. b .. ", want continue")
local hdr = eom(conn)
check(hdr == "none", "unexpected MTA-STS header after abort: " .. hdr)
-- A third transaction: the enforce domain is decided afresh, not remembered
-- from the aborted one.
mail(conn, QID_B .. "x")
local c = rcpt(conn, "user@" .. ENFORCE, "smtp", ENFORCE)
check(c == "tempfail", "RCPT in third transaction: got " .. c .. ", want tempfail")
check(mt.abort(conn) == nil, "second abort")
mt.disconnect(conn)
print("before-abort=" .. a .. " after-abort=" .. b .. " third=" .. c)
