-- wrk's `done` for every script: one machine-readable line for the harness (bench/run.py);
-- latencies in microseconds.
return function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "connect_errors": %d, "read_errors": %d, '
      .. '"write_errors": %d, "timeouts": %d, "non_2xx": %d, "p50_us": %.1f, "p90_us": %.1f, '
      .. '"p99_us": %.1f, "mean_us": %.1f}\n',
    summary.requests, summary.duration, errors.connect, errors.read, errors.write,
    errors.timeout, errors.status, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean))
end
