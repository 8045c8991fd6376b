-- Latency simulation: while "Slow Network" is on, each request waits 150 ms before it goes
-- to the server and each response 150 ms before it goes back: a 300 ms round trip on top
-- of the real one, as on a slow WAN link. Nothing else changes.
local slow = option("Slow Network", false)

function on_request(s)
  if slow.on then s:delay(150) end
end

function on_response(s)
  if slow.on then s:delay(150) end
end
