-- URLscan's RemoveServerHeader=1: responses leave without a Server header.
-- (The mirror image of add-server-header.lua: with it, the story's IE closes its
-- connections after every 200 OK.)

function on_response(s)
  s.response.headers:remove("Server")
end
