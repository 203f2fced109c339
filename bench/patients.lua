-- wrk script for bench/patients.sh: GET /api/v1/patients/{id} as one doctor, rotating over the
-- ids in $BENCH_IDS (one per line), with the doctor's bearer token in $BENCH_TOKEN.
--
--   BENCH_IDS=ids.txt BENCH_TOKEN=… wrk -s bench/patients.lua http://127.0.0.1:PORT

local token = os.getenv("BENCH_TOKEN")
if not token or token == "" then
  error("set BENCH_TOKEN")
end
local path = os.getenv("BENCH_IDS")
if not path or path == "" then
  error("set BENCH_IDS")
end
local ids = {}
for line in io.lines(path) do
  ids[#ids + 1] = line
end
local headers = { ["Authorization"] = "Bearer " .. token }
local i = 0

function init(args)
  -- Start each thread at a different place in the list.
  i = math.random(#ids)
end

function request()
  i = i % #ids + 1
  return wrk.format("GET", "/api/v1/patients/" .. ids[i], headers)
end
