-- Every response says "Connection: close": the client must open a new connection for its
-- next request (and authenticate again, with NTLM or Kerberos). Switch it with the option.
local force_close = option("Force Connection: close", true)

function on_response(s)
  if force_close.on then
    s.response.headers:set("Connection", "close")
  end
end
