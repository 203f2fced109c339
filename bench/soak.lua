-- wrk script for bench/soak.sh: the mixed workload. Each thread walks the plan that
-- bench/soak_prepare.py wrote (logins, patient reads, lists, searches, record lists, reads,
-- downloads, uploads, knowledge searches, appointment lists), from its own starting point, with
-- the pre-fetched bearer tokens. Uploads are the PDF in $SOAK_PDF with a unique comment after
-- its end, so that none is a duplicate (and OCR reads its text layer).
--
--   SOAK_PLAN=plan.tsv SOAK_TOKENS=tokens.txt SOAK_PDF=file.pdf wrk -s bench/soak.lua URL
--
-- Counted per thread and added up in done(): responses by status class, 429s apart (allowed:
-- deliberate throttling), every other status by code. Printed as `SOAK key value` lines.

local function env(name)
  local v = os.getenv(name)
  if not v or v == "" then error("set " .. name) end
  return v
end

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

local function split(line)
  local out = {}
  for field in (line .. "\t"):gmatch("([^\t]*)\t") do out[#out + 1] = field end
  return out
end

function init(args)
  tokens = {}
  for line in io.lines(env("SOAK_TOKENS")) do tokens[#tokens + 1] = line end
  plan = {}
  for line in io.lines(env("SOAK_PLAN")) do plan[#plan + 1] = split(line) end
  local f = assert(io.open(env("SOAK_PDF"), "rb"))
  pdf = f:read("*a")
  f:close()
  math.randomseed(id * 7919)
  i = math.random(#plan)
  n = 0
  ok, throttled, other, sent = 0, 0, 0, 0
  statuses = {}
  kinds = {}
end

function request()
  i = i % #plan + 1
  local p = plan[i]
  local kind, method, path, ti, xff, body = p[1], p[2], p[3], tonumber(p[4]), p[5], p[6]
  local headers = {}
  if ti > 0 then headers["Authorization"] = "Bearer " .. tokens[ti] end
  if xff ~= "-" then headers["X-Forwarded-For"] = xff end
  local data = nil
  if body == "@upload" then
    n = n + 1
    data = pdf .. "\n%soak-" .. id .. "-" .. n .. "\n"
    headers["Content-Type"] = "application/pdf"
  elseif body ~= "-" then
    data = body
    headers["Content-Type"] = "application/json"
  end
  sent = sent + 1
  kinds[kind] = (kinds[kind] or 0) + 1
  return wrk.format(method, path, headers, data)
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    ok = ok + 1
  elseif status == 429 then
    throttled = throttled + 1
  else
    other = other + 1
    statuses[status] = (statuses[status] or 0) + 1
  end
end

function done(summary, latency, requests)
  local t_ok, t_429, t_other, t_sent = 0, 0, 0, 0
  local by_status, by_kind = {}, {}
  for _, thread in ipairs(threads) do
    t_ok = t_ok + thread:get("ok")
    t_429 = t_429 + thread:get("throttled")
    t_other = t_other + thread:get("other")
    t_sent = t_sent + thread:get("sent")
    for s, c in pairs(thread:get("statuses")) do by_status[s] = (by_status[s] or 0) + c end
    for k, c in pairs(thread:get("kinds")) do by_kind[k] = (by_kind[k] or 0) + c end
  end
  local e = summary.errors
  io.write(string.format("SOAK requests %d\n", summary.requests))
  io.write(string.format("SOAK duration_s %.3f\n", summary.duration / 1e6))
  io.write(string.format("SOAK ok %d\n", t_ok))
  io.write(string.format("SOAK throttled_429 %d\n", t_429))
  io.write(string.format("SOAK other_status %d\n", t_other))
  for s, c in pairs(by_status) do io.write(string.format("SOAK status_%d %d\n", s, c)) end
  io.write(string.format("SOAK socket_errors %d\n", e.connect + e.read + e.write + e.timeout))
  io.write(string.format("SOAK socket_detail connect=%d,read=%d,write=%d,timeout=%d,status=%d\n",
    e.connect, e.read, e.write, e.timeout, e.status))
  io.write(string.format("SOAK latency_p50_ms %.1f\n", latency:percentile(50) / 1000))
  io.write(string.format("SOAK latency_p99_ms %.1f\n", latency:percentile(99) / 1000))
  local parts = {}
  for k, c in pairs(by_kind) do parts[#parts + 1] = k .. "=" .. c end
  table.sort(parts)
  io.write("SOAK sent_by_kind " .. table.concat(parts, ",") .. "\n")
end
