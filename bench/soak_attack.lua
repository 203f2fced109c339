-- wrk script for bench/soak.sh: the attacker beside the mixed workload. Wrong passwords for one
-- account from one client address (X-Forwarded-For; the soak's server trusts it), every
-- $SOAK_ATTACK_DELAY_MS per connection. Expected answers: 401, then 429 once the throttle
-- locks this client out of the account; anything else is counted apart.
--
--   SOAK_ATTACK=attack.json wrk -s bench/soak_attack.lua URL/api/v1/auth/login

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(os.getenv("SOAK_ATTACK"), "r"))
  local cfg = f:read("*a")
  f:close()
  local email = cfg:match('"email"%s*:%s*"([^"]+)"')
  local xff = cfg:match('"xff"%s*:%s*"([^"]+)"')
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-Forwarded-For"] = xff
  wrk.body = string.format('{"email":"%s","password":"not-the-password-%d"}', email, math.random(1000000))
  unauthorized, throttled, other, last_other = 0, 0, 0, 0
end

function delay()
  return tonumber(os.getenv("SOAK_ATTACK_DELAY_MS") or "100")
end

function response(status, headers, body)
  if status == 401 then
    unauthorized = unauthorized + 1
  elseif status == 429 then
    throttled = throttled + 1
  else
    other = other + 1
    last_other = status
  end
end

function done(summary, latency, requests)
  local t_401, t_429, t_other, last = 0, 0, 0, 0
  for _, thread in ipairs(threads) do
    t_401 = t_401 + thread:get("unauthorized")
    t_429 = t_429 + thread:get("throttled")
    t_other = t_other + thread:get("other")
    if thread:get("last_other") ~= 0 then last = thread:get("last_other") end
  end
  local e = summary.errors
  io.write(string.format("ATTACK requests %d\n", summary.requests))
  io.write(string.format("ATTACK unauthorized_401 %d\n", t_401))
  io.write(string.format("ATTACK throttled_429 %d\n", t_429))
  io.write(string.format("ATTACK other_status %d\n", t_other))
  io.write(string.format("ATTACK last_other_status %d\n", last))
  io.write(string.format("ATTACK socket_errors %d\n", e.connect + e.read + e.write + e.timeout))
end
