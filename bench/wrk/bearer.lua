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

-- The report line the harness reads (report.lua, beside this script).
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
done = require("report")
