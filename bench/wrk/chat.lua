-- POST OpenAI Chat Completions requests with tools, check every answer, print latency percentiles.
--
--   wrk -t1 -c32 -d10s --timeout 30s -s bench/wrk/chat.lua URL -- MODE [BODIES]
--
-- MODE is json (check: status 200 and a "tool_calls" field in the body) or sse (check: status 200 and
-- a body ending in "data: [DONE]"). BODIES is a file with one request body per line, sent in turn (the
-- harness writes bench/overhead_roles.py's 2.8-4.6 KB bodies there); without it, a built-in body with
-- two tools is sent, with "stream": true in sse mode. URL is the full chat-completions URL, e.g.
-- http://127.0.0.1:8787/openai/v1/chat/completions.
--
-- At the end, after wrk's own summary, one line starts with WRK_JSON followed by a JSON object:
-- requests, duration_us, the error counts of wrk (connect, read, write, status, timeout), bad_bodies
-- (answers that failed the check), first_bad (the first of them, cut short), and latency_us with
-- p50, p90, p99, p999, max and mean (microseconds, from request sent to whole response read).

local HEADERS = {
  ["Content-Type"] = "application/json",
  ["Accept"] = "application/json",
  ["Authorization"] = "Bearer sk-bench-0000000000000000000000000000000000000000",
  ["User-Agent"] = "AsyncOpenAI/Python 1.99.0",
  ["X-Stainless-Lang"] = "python",
  ["X-Stainless-Package-Version"] = "1.99.0",
}

local BUILTIN = '{"model":"gpt-4o-mini","messages":['
  .. '{"role":"system","content":"You are a careful operations assistant. Use the tools for fresh data."},'
  .. '{"role":"user","content":"What is the weather in Paris tomorrow?"}],'
  .. '"tools":[{"type":"function","function":{"name":"get_weather","description":"Weather for a city.",'
  .. '"parameters":{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"}},'
  .. '"required":["city"]}}},{"type":"function","function":{"name":"search_docs",'
  .. '"description":"Search the documentation.","parameters":{"type":"object",'
  .. '"properties":{"query":{"type":"string"}},"required":["query"]}}}],"tool_choice":"auto"'

local requests_, count, turn = {}, 0, 0
mode = "json"
bad, first_bad = 0, ""

local function add(body)
  local headers = {}
  for k, v in pairs(HEADERS) do
    headers[k] = v
  end
  count = count + 1
  requests_[count] = wrk.format("POST", nil, headers, body)
end

function init(args)
  mode = args[1] or "json"
  if mode ~= "json" and mode ~= "sse" then
    error("MODE must be json or sse, got " .. mode)
  end
  local path = args[2]
  if path and path ~= "" and path ~= "-" then
    for line in io.lines(path) do
      if line ~= "" then
        add(line)
      end
    end
  elseif mode == "sse" then
    add(BUILTIN .. ',"stream":true,"stream_options":{"include_usage":true}}')
  else
    add(BUILTIN .. "}")
  end
  if count == 0 then
    error("no request bodies in " .. tostring(path))
  end
end

function request()
  turn = turn % count + 1
  return requests_[turn]
end

function response(status, headers, body)
  local ok = status == 200 and body ~= nil
  if ok then
    if mode == "sse" then
      ok = body:sub(-14) == "data: [DONE]\n\n"
    else
      ok = body:find('"tool_calls"', 1, true) ~= nil
    end
  end
  if not ok then
    if bad == 0 then
      first_bad = tostring(status) .. ": " .. tostring(body):sub(1, 160)
    end
    bad = bad + 1
  end
end

local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
end

local function quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return string.format("\\u%04x", c:byte())
  end) .. '"'
end

function done(summary, latency, requests)
  local nbad, sample = 0, ""
  for _, thread in ipairs(threads) do
    nbad = nbad + (thread:get("bad") or 0)
    if sample == "" then
      sample = thread:get("first_bad") or ""
    end
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,'
      .. '"write_errors":%d,"status_errors":%d,"timeouts":%d,"bad_bodies":%d,"first_bad":%s,'
      .. '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    nbad, quote(sample), latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean
  ))
end
