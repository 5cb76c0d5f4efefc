-- POST /auth/token with the password grant for BENCH_EMAIL / BENCH_PASSWORD (URL-safe values).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.body = "grant_type=password&username=" .. os.getenv("BENCH_EMAIL")
  .. "&password=" .. os.getenv("BENCH_PASSWORD")

-- The report line the harness reads (report.lua, beside this script).
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
done = require("report")
