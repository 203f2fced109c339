-- wrk script for bench/login.sh: POST /api/v1/auth/login with one account's credentials, and a
-- count of every response that is not 200 (a run with any is not a valid result).
--
--   BENCH_EMAIL=… BENCH_PASSWORD=… wrk -s bench/login.lua http://127.0.0.1:PORT/api/v1/auth/login

local email = os.getenv("BENCH_EMAIL") or "bench@example.org"
local password = os.getenv("BENCH_PASSWORD")
if not password or password == "" then
  error("set BENCH_PASSWORD")
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = string.format('{"email":"%s","password":"%s"}', email, password)

-- Each wrk thread has its own Lua state: keep the counters per thread, add them up in done().
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  ok = 0
  non200 = 0
  unauthorized = 0
  throttled = 0
  last_other = 0
end

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
  else
    non200 = non200 + 1
    if status == 401 then
      unauthorized = unauthorized + 1
    elseif status == 429 then
      throttled = throttled + 1
    else
      last_other = status
    end
  end
end

function done(summary, latency, requests)
  local t_ok, t_non200, t_401, t_429, other = 0, 0, 0, 0, 0
  for _, thread in ipairs(threads) do
    t_ok = t_ok + thread:get("ok")
    t_non200 = t_non200 + thread:get("non200")
    t_401 = t_401 + thread:get("unauthorized")
    t_429 = t_429 + thread:get("throttled")
    if thread:get("last_other") ~= 0 then other = thread:get("last_other") end
  end
  io.write(string.format("200 responses: %d\n", t_ok))
  io.write(string.format("non-200 responses: %d (401: %d, 429: %d, other status seen: %d)\n",
    t_non200, t_401, t_429, other))
  local e = summary.errors
  io.write(string.format("socket errors: connect %d, read %d, write %d, timeout %d\n",
    e.connect, e.read, e.write, e.timeout))
end
