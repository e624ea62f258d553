-- wrk script for the benchmark: one key=value result line, like hs_loadgen's.
--   wrk -t1 -c50 -d5s -s bench/peers/wrk_report.lua http://127.0.0.1:PORT/hello
-- Non-2xx/3xx answers count in errors_status; the driver treats any error as a failed run.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(("wrk requests=%d duration_us=%d bytes=%d req_per_s=%.1f mb_per_s=%.2f "
    .. "p50_us=%d p99_us=%d p999_us=%d max_us=%d errors_connect=%d errors_read=%d "
    .. "errors_write=%d errors_status=%d errors_timeout=%d\n"):format(
    summary.requests, summary.duration, summary.bytes,
    summary.requests / (summary.duration / 1e6), summary.bytes / summary.duration,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
