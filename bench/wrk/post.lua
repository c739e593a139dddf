-- wrk script: single POSTs of the 550 real traces in testdata/dev-reasoning-v2.jsonl, in turn.
-- A lighter client than tunix-bench (C, one thread), for a second opinion on the ingest rate:
--   wrk -t1 -c512 -d20s -s bench/wrk/post.lua http://127.0.0.1:8080
-- Run from the repository root (or set TRACES to the .jsonl path). Prints the status-error
-- count and p50/p99/p99.9 at the end; wrk's own summary has the rate.
local path = os.getenv("TRACES") or "testdata/dev-reasoning-v2.jsonl"
local bodies = {}
for line in io.lines(path) do
  if #line > 0 then bodies[#bodies + 1] = line end
end
assert(#bodies > 0, "no traces in " .. path)

local counter = 0
request = function()
  counter = counter + 1
  return wrk.format("POST", "/api/traces", { ["Content-Type"] = "application/json" },
    bodies[(counter % #bodies) + 1])
end

done = function(summary, latency, requests)
  io.write(string.format("non-2xx/3xx=%d connect_errors=%d read_errors=%d timeouts=%d\n",
    summary.errors.status, summary.errors.connect, summary.errors.read, summary.errors.timeout))
  for _, p in ipairs({ 50, 99, 99.9 }) do
    io.write(string.format("p%s=%.2fms\n", p, latency:percentile(p) / 1000))
  end
end
