-- Scenario 1: a recipient of an enforce domain without next-hop macros
-- (Postfix non_smtpd_milters, sendmail(1)): RCPT is never tempfailed, the
-- end of message carries decision.non_smtp_action = "tag", and the header
-- never names a domain (every recipient, Bcc included, receives it).
-- -D DIR SOCK QID DOMAIN
dofile(DIR .. "/common.lua")
local conn = open(SOCK)
mail(conn, QID)
local got = rcpt(conn, "user@" .. DOMAIN, "", "")
check(got == "continue", "RCPT without macros: got " .. got .. ", want continue")
local hdr = eom(conn)
check(hdr == "unknown" or hdr == "fail", "MTA-STS header '" .. hdr .. "', want unknown or fail")
check(string.find(string.lower(hdr), string.lower(DOMAIN), 1, true) == nil, "header names the domain: " .. hdr)
check(mt.eom_check(conn, MT_HDRADD, "MTA-STS", hdr), "eom_check MT_HDRADD MTA-STS " .. hdr)
check(not mt.eom_check(conn, MT_QUARANTINE), "quarantined although non_smtp_action is tag")
mt.disconnect(conn)
print("rcpt=" .. got .. " header=" .. hdr)
