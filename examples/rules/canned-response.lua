-- Fiddler's AutoResponder in Lua: while "Serve Maintenance Page" is on, every request for a
-- path under /api/ gets a 503 from shunt itself; the server is never asked (no connection is
-- opened to it). Other requests go through as usual.
local maintenance = option("Serve Maintenance Page", false)

function on_request(s)
  if maintenance.on and s.request.url:match("^https?://[^/]+/api/") then
    s:respond(503, {["Content-Type"] = "application/json", ["Retry-After"] = "120"},
              '{"error": "down for maintenance"}\n')
    s:flag("answered by canned-response.lua")
  end
end
