-- wrk script for bench/cluster.py: record uploads into one patient's chart, each a different
-- 16 KiB "PDF" (the vault refuses a duplicate of a file the chart already holds), multipart as a
-- browser sends it, with the doctor's bearer token in $BENCH_TOKEN and the chart in $BENCH_PATIENT.
local token = os.getenv("BENCH_TOKEN")
local patient = os.getenv("BENCH_PATIENT")
if not token or not patient then
  error("set BENCH_TOKEN and BENCH_PATIENT")
end
local boundary = "careportbench"
local filler = string.rep("0123456789abcdef", 1024)
local n, thread_tag = 0, ""
local threads = 0

-- Runs in the main state once per thread: give each its own number.
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  thread_tag = tostring(tid) .. "-" .. tostring(os.time())
end

function request()
  n = n + 1
  local unique = thread_tag .. "-" .. n
  local body = "--" .. boundary .. "\r\n" ..
    "Content-Disposition: form-data; name=\"record_type\"\r\n\r\nlaboratory-results\r\n" ..
    "--" .. boundary .. "\r\n" ..
    "Content-Disposition: form-data; name=\"title\"\r\n\r\nbench " .. unique .. "\r\n" ..
    "--" .. boundary .. "\r\n" ..
    "Content-Disposition: form-data; name=\"file\"; filename=\"bench.pdf\"\r\n" ..
    "Content-Type: application/pdf\r\n\r\n%PDF-1.7\n% " .. unique .. "\n" .. filler .. "\r\n" ..
    "--" .. boundary .. "--\r\n"
  local headers = {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "multipart/form-data; boundary=" .. boundary,
  }
  return wrk.format("POST", "/api/v1/patients/" .. patient .. "/records", headers, body)
end
