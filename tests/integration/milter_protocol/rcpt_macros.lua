-- Scenario 2: with {rcpt_mailer}=smtp and {rcpt_host}, a recipient of an
-- enforce domain whose MX cannot be verified is tempfailed at RCPT, a
-- recipient of a domain without policy in the same message continues, and
-- the message ends without an MTA-STS header (tempfail is not tag).
-- -D DIR SOCK QID ENFORCE NOPOLICY
dofile(DIR .. "/common.lua")
local conn = open(SOCK)
mail(conn, QID)
local a = rcpt(conn, "user@" .. ENFORCE, "smtp", ENFORCE)
check(a == "tempfail", "RCPT to enforce domain: got " .. a .. ", want tempfail")
local b = rcpt(conn, "user@" .. NOPOLICY, "smtp", NOPOLICY)
check(b == "continue", "RCPT to no-policy domain: got " .. b .. ", want continue")
-- The same enforce domain again (Postfix sends every recipient): same answer.
local c = rcpt(conn, "other@" .. ENFORCE, "smtp", ENFORCE)
check(c == "tempfail", "second RCPT to enforce domain: got " .. c .. ", want tempfail")
local hdr = eom(conn)
check(hdr == "none", "unexpected MTA-STS header: " .. hdr)
mt.disconnect(conn)
print("enforce=" .. a .. " nopolicy=" .. b .. " header=" .. hdr)
