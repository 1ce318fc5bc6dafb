-- wrk's script for benchmarks/load.py:
--     wrk ... --script load.lua URL -- MODE COOKIES SEED [ROUTE=PERCENT ...]
-- MODE: one route (healthz, home, checkin, aftercare, flags), or "mixed": the routes drawn at the
-- ROUTE=PERCENT weights. COOKIES: a file of signed-in cookies, one a line, "client<TAB>cookie" or
-- "practitioner<TAB>cookie", taken in turn. Check-ins get a new UUID v4 each and scores as clients
-- in their first weeks report them. Every status >= 300 counts as an error; at the end it prints
-- one RESULT line that load.py reads.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  mode, mix, total = args[1], {}, 0
  cookies = { client = {}, practitioner = {} }
  for line in io.lines(args[2]) do
    local kind, cookie = line:match("^(%a+)\t(.*)$")
    table.insert(cookies[kind], cookie)
  end
  math.randomseed(tonumber(args[3]) + tid * 7919)
  for i = 4, #args do
    local route, percent = args[i]:match("^(%a+)=(%d+)$")
    table.insert(mix, { route, tonumber(percent) })
    total = total + tonumber(percent)
  end
  -- each thread starts at its own place in the cookies
  turn = { client = (tid - 1) * 7717, practitioner = tid - 1 }
  errors, codes = 0, ""
end

local function cookie(kind)
  turn[kind] = turn[kind] % #cookies[kind] + 1
  return cookies[kind][turn[kind]]
end

local function uuid4()
  return (string.gsub("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx", "[xy]", function (c)
    return string.format("%x", c == "x" and math.random(0, 15) or math.random(8, 11))
  end))
end

local function pick(weights)  -- percent for 0, 1, 2
  local r = math.random(1, 100)
  for i, w in ipairs(weights) do if r <= w then return i - 1 end; r = r - w end
  return 0
end

local function build(route)
  if route == "healthz" then return wrk.format("GET", "/healthz") end
  if route == "home" then return wrk.format("GET", "/", { Cookie = cookie("client") }) end
  if route == "aftercare" then
    return wrk.format("GET", "/api/aftercare", { Cookie = cookie("client") })
  end
  if route == "flags" then
    return wrk.format("GET", "/api/flags", { Cookie = cookie("practitioner") })
  end
  local body = string.format('{"id":"%s","taken_at":"%s","redness":%d,"swelling":%d,"pain":%d}',
    uuid4(), os.date("!%Y-%m-%dT%H:%M:%SZ"), pick({70, 25, 5}), pick({80, 18, 2}), pick({60, 30, 10}))
  local headers = { Cookie = cookie("client"), ["Content-Type"] = "application/json" }
  return wrk.format("POST", "/api/checkins", headers, body)
end

function request()
  if mode ~= "mixed" then return build(mode) end
  local r = math.random(1, total)
  for _, m in ipairs(mix) do if r <= m[2] then return build(m[1]) end; r = r - m[2] end
end

function response(status, headers, body)
  if status >= 300 then
    errors = errors + 1
    if #codes < 200 then codes = codes .. status .. "," end
  end
end

function done(summary, latency, requests)
  local e, c, s = 0, "", summary.errors
  for _, t in ipairs(threads) do e, c = e + t:get("errors"), c .. t:get("codes") end
  io.write(string.format("RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d"
    .. " errors=%d codes=%s\n", summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(99), latency.max, e + s.connect + s.read + s.write + s.timeout, c))
end
