-- Dovecot passdb of the 2024.06 front (core/nginx/dovecot/login.lua): every
-- login is asked to admin over HTTP; anything but Auth-Status OK is a
-- password mismatch, so a Mailu rate limit looks like a bad password here.
function script_init()
  return 0
end

function script_deinit()
end

local client = dovecot.http.client {
  request_timeout = "2s";
  request_max_attempts = 3;
}

-- admin unquotes every header value
local function escape(s)
  return (s:gsub("[^%w_.-~]", function(c)
    return string.format("%%%02X", string.byte(c))
  end))
end

local function header(r, name, value)
  r:add_header(name, value and tostring(value) or "")
end

function auth_passdb_lookup(req)
  local r = client:request {
    url = "http://{{ ADMIN_ADDRESS }}:8080/internal/auth/email";
  }
  header(r, "Auth-Port", req.local_port)
  header(r, "Auth-User", escape(req.user))
  header(r, "Auth-Pass", req.password and escape(req.password))
  -- Dovecot 2.3 names these service and mech; 2.4 protocol and mechanism.
  header(r, "Auth-Protocol", req.protocol or req.service)
  header(r, "Client-Ip", req.remote_ip and escape(req.remote_ip))
  header(r, "Client-Port", req.remote_port)
  header(r, "Auth-SSL", req.secured)
  header(r, "Auth-Method", req.mechanism or req.mech)
  local resp = r:submit()
  if resp:status() ~= 200 then
    return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, ""
  end
  if resp:header("Auth-Status") ~= "OK" then
    return dovecot.auth.PASSDB_RESULT_PASSWORD_MISMATCH, ""
  end
  return dovecot.auth.PASSDB_RESULT_OK, {
    proxy = "y",
    host = resp:header("Auth-Server"),
    port = resp:header("Auth-Port"),
    nopassword = "Y",
  }
end
