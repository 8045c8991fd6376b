local add_server = option("Add Server Header", false)   -- a named toggle, off by default

function on_response(s)
  if add_server.on and not s.response.headers:get("Server") then
    s.response.headers:add("Server", "Microsoft-IIS/6.0")
  end
end
