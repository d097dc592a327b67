-- wrk script for bench/api_load.py: paced requests (delay per connection) over a
-- mix of GET /v1/themes (filters, sorts) and GET /v1/search (the query set).
-- Env: PL_TOKEN, PL_MODE (mixed|themes|search), PL_DELAY_MS, PL_QUERIES (file).
local token = os.getenv("PL_TOKEN")
local mode = os.getenv("PL_MODE") or "mixed"
local delay_ms = tonumber(os.getenv("PL_DELAY_MS") or "200")
local queries = {}
for line in io.lines(os.getenv("PL_QUERIES")) do
  if #line > 0 then table.insert(queries, line) end
end
local themes = {
  "/v1/themes", "/v1/themes?sort=size&limit=20", "/v1/themes?language=sv",
  "/v1/themes?programme=prog-1-0&sort=recency", "/v1/themes?min_cycles=2",
  "/v1/themes?kind=recommendation&since=2024-03-01",
}
local function urlencode(s)
  return (s:gsub("[^%w%-_%.~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end
local n = 0
request = function()
  n = n + 1
  local path
  local use_search = (mode == "search") or (mode == "mixed" and n % 2 == 0)
  if use_search then
    path = "/v1/search?q=" .. urlencode(queries[(n % #queries) + 1])
  else
    path = themes[(n % #themes) + 1]
  end
  return wrk.format("GET", path, {["Authorization"] = "Bearer " .. token})
end
delay = function() return delay_ms end
done = function(summary, latency, requests)
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  io.write(string.format(
    "RESULT mode=%s requests=%d rps=%.1f p50_ms=%.1f p95_ms=%.1f p99_ms=%.1f max_ms=%.1f errors=%d\n",
    mode, summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, errors))
end
