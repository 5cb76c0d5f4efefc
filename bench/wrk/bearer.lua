-- GET the seeded profiles in turn with the access token from BENCH_TOKEN.
-- BENCH_PATHS: the request paths, separated by spaces.
local token = os.getenv("BENCH_TOKEN")
local paths = {}
for path in string.gmatch(os.getenv("BENCH_PATHS") or "/users/me", "%S+") do
  paths[#paths + 1] = path
end
local counter = 0

wrk.headers["Authorization"] = "Bearer " .. token

request = function()
  counter = counter + 1
  return wrk.format("GET", paths[(counter % #paths) + 1])
end

-- One machine-readable line for the harness; latencies in microseconds.
done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "connect_errors": %d, "read_errors": %d, '
      .. '"write_errors": %d, "timeouts": %d, "non_2xx": %d, "p50_us": %.1f, "p90_us": %.1f, '
      .. '"p99_us": %.1f, "mean_us": %.1f}\n',
    summary.requests, summary.duration, errors.connect, errors.read, errors.write,
    errors.timeout, errors.status, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean))
end
