-- Helpers shared by the milter_protocol scenarios (loaded with dofile).
-- miltertest passes parameters with -D NAME=VALUE; every one is a string.

-- miltertest does not show a script's error message: print it first.
function check(cond, what)
  if not cond then
    print("FAILED: " .. what)
    io.stdout:flush()
    error(what, 0)
  end
end

-- Connects and negotiates; the milter declines every stage it does not use.
function open(sock)
  local conn = mt.connect(sock, 50, 0.1)
  check(conn ~= nil, "connect to " .. sock)
  check(mt.negotiate(conn, nil, nil, nil) == nil, "negotiate")
  return conn
end

-- MAIL FROM with the queue id macro ("i") when qid is given.
function mail(conn, qid)
  if qid ~= nil and qid ~= "" then mt.macro(conn, SMFIC_MAIL, "i", qid) end
  check(mt.mailfrom(conn, "<sender@origin.example>") == nil, "mailfrom")
  check(mt.getreply(conn) == SMFIR_CONTINUE, "MAIL not continued")
end

-- RCPT TO with {rcpt_mailer}/{rcpt_host} when mailer is non-empty (a
-- later RCPT of the same transaction keeps miltertest's earlier macros, so
-- send macro-less recipients first or alone); returns
-- "continue", "tempfail" (SMFIR_TEMPFAIL or a reply code) or the reply byte.
function rcpt(conn, addr, mailer, host)
  if mailer ~= nil and mailer ~= "" then
    mt.macro(conn, SMFIC_RCPT, "{rcpt_mailer}", mailer, "{rcpt_host}", host)
  end  -- else no macros at all, as Postfix's non_smtpd_milters
  check(mt.rcptto(conn, "<" .. addr .. ">") == nil, "rcptto " .. addr)
  local r = mt.getreply(conn)
  if r == SMFIR_CONTINUE then return "continue" end
  if r == SMFIR_TEMPFAIL or r == SMFIR_REPLYCODE then return "tempfail" end
  return "reply-" .. string.char(r)
end

-- End of message; returns the MTA-STS header value added, or "none".
function eom(conn)
  check(mt.eom(conn) == nil, "eom")
  check(mt.getreply(conn) == SMFIR_CONTINUE, "EOM not continued")
  if not mt.eom_check(conn, MT_HDRADD, "MTA-STS") then return "none" end
  return mt.getheader(conn, "MTA-STS", 0) or "none"
end

-- Waits up to `seconds` for a file to exist (used to step with the shell).
function wait_file(path, seconds)
  for _ = 1, seconds * 10 do
    local f = io.open(path, "r")
    if f then f:close() return true end
    mt.sleep(0.1)
  end
  return false
end

function touch(path)
  local f = io.open(path, "w")
  check(f ~= nil, "create " .. path)
  f:close()
end
