-- One transaction with one recipient, asserted.
-- -D DIR SOCK QID RCPT MAILER HOST WANT_RCPT WANT_HDR
--   MAILER empty: no {rcpt_mailer}/{rcpt_host} macros (non-SMTP submission)
--   WANT_HDR: "none", or a Lua pattern the MTA-STS header value must match
dofile(DIR .. "/common.lua")
local conn = open(SOCK)
mail(conn, QID)
local got = rcpt(conn, RCPT, MAILER, HOST)
check(got == WANT_RCPT, "RCPT " .. RCPT .. ": got " .. got .. ", want " .. WANT_RCPT)
local hdr = eom(conn)
if WANT_HDR == "none" then
  check(hdr == "none", "unexpected MTA-STS header: " .. hdr)
else
  check(string.match(hdr, "^" .. WANT_HDR .. "$") ~= nil, "MTA-STS header '" .. hdr .. "' does not match " .. WANT_HDR)
end
mt.disconnect(conn)
print("rcpt=" .. got .. " header=" .. hdr)
