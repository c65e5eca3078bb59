-- wrk script for bench/serve_load.sh: POSTs the JSON body in $BODY, prints one parseable line.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("BODY"), "r"))
wrk.body = f:read("*a")
f:close()
-- $TOKEN: sent as "Authorization: Bearer $TOKEN" (tenant routes, bench/serve_tenants.sh).
local token = os.getenv("TOKEN")
if token and token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end

-- $DELAY_MS: each connection waits this long after a response before its next request (an
-- open, paced load instead of a closed loop as fast as the server answers).
local delay_ms = tonumber(os.getenv("DELAY_MS") or "")
if delay_ms and delay_ms > 0 then
  function delay() return delay_ms end
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  io.write(string.format("RESULT requests=%d errors=%d rps=%.0f p50_ms=%.3f p99_ms=%.3f\n",
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
