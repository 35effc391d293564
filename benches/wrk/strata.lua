-- wrk's side of benches/side_by_side.rs: builds each request of a workload
-- against `strata serve`, counts answers that are not 2xx, and prints one
-- JSON line (latency percentiles in microseconds) from done().
--
-- Environment (set by the bench): WORKLOAD, TOKEN, TENANT, GET_REF,
-- OUTPUT_REF, STREAM_REF, SCRATCH (refs.txt, output.md, batch.json).

local workload = os.getenv("WORKLOAD")
local token = os.getenv("TOKEN")
local tenant = os.getenv("TENANT")
local scratch = os.getenv("SCRATCH")
local base = "/v1/tenants/" .. tenant

local function slurp(name)
  local f = assert(io.open(scratch .. "/" .. name, "rb"))
  local text = f:read("*a")
  f:close()
  return text
end

local refs = {}
for line in slurp("refs.txt"):gmatch("[^\n]+") do
  refs[#refs + 1] = line
end
local markdown = slurp("output.md")

-- A tool-call batch: the bench's body with fresh refs each time (a ref
-- taken twice would be a different, cheaper path: "exists").
local segments = {}
do
  local body = slurp("batch.json")
  local at = 1
  while true do
    local s, e = body:find('"ref":"[0-7][0-9A-HJKMNP-TV-Z]+"', at)
    if not s then break end
    -- up to and including the opening quote of the value
    segments[#segments + 1] = body:sub(at, s - 1) .. '"ref":"'
    at = e + 1
  end
  segments[#segments + 1] = body:sub(at)
end
local crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
local function fresh_ref()
  local t = { string.char(48 + math.random(0, 7)) }
  for i = 2, 26 do
    local k = math.random(1, 32)
    t[i] = crockford:sub(k, k)
  end
  return table.concat(t)
end
local function batch_body()
  local out = { segments[1] }
  for i = 2, #segments do
    out[#out + 1] = fresh_ref()
    out[#out + 1] = '"'
    out[#out + 1] = segments[i]
  end
  return table.concat(out)
end

local auth = "Bearer " .. token
local searched = { "delta", "granite", "meadow", "raven" }
local counter = 0

local function headers(extra)
  local h = { ["Authorization"] = auth }
  if extra then
    for k, v in pairs(extra) do h[k] = v end
  end
  return h
end

local builders = {
  split_write = function()
    -- Threads start at different offsets; a ref repeats only after all others.
    local r = refs[((counter * 2 + (thread_id or 0)) % #refs) + 1]
    return wrk.format("PUT", base .. "/activities/" .. r .. "/output",
      headers({ ["Content-Type"] = "text/markdown" }), markdown)
  end,
  output_url = function()
    return wrk.format("GET", base .. "/activities/" .. os.getenv("OUTPUT_REF") .. "/output/url", headers())
  end,
  stream_1mb = function()
    return wrk.format("GET", base .. "/activities/" .. os.getenv("STREAM_REF") .. "/output", headers())
  end,
  record_create = function()
    return wrk.format("POST", base .. "/activities",
      headers({ ["Content-Type"] = "application/json" }), '{"kind":"bench"}')
  end,
  record_get = function()
    return wrk.format("GET", base .. "/activities/" .. os.getenv("GET_REF"), headers())
  end,
  record_list = function()
    return wrk.format("GET", base .. "/activities?limit=50", headers())
  end,
  tool_call_batch = function()
    return wrk.format("POST", base .. "/tool-calls:batch",
      headers({ ["Content-Type"] = "application/json" }), batch_body())
  end,
  skills_search = function()
    return wrk.format("GET", base .. "/skills:search?limit=20&q=" .. searched[(counter % #searched) + 1], headers())
  end,
  usage_summary = function()
    return wrk.format("GET", base .. "/usage/summary?from=2026-01&to=2026-12", headers())
  end,
}

-- The 32-way mixed load: reads mostly, some writes, a batch now and then.
local mix = {
  "record_get", "record_list", "output_url", "skills_search", "record_get", "split_write",
  "record_create", "stream_1mb", "record_get", "usage_summary", "output_url", "record_list",
  "split_write", "skills_search", "record_get", "tool_call_batch",
}

local threads = {}

function setup(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() * 1000 + (thread_id or 0))
  non2xx = 0
end

function request()
  counter = counter + 1
  local name = workload
  if workload == "mixed" then
    name = mix[(counter % #mix) + 1]
  end
  return builders[name]()
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if non2xx <= 3 then
      io.stderr:write(string.format("wrk %s: %d %s\n", workload, status, (body or ""):sub(1, 300)))
    end
  end
end

function done(summary, latency, requests)
  local non = 0
  for _, t in ipairs(threads) do
    non = non + (t:get("non2xx") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,"non2xx":%d,"socket_errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, non, e.connect + e.read + e.write + e.timeout))
end
