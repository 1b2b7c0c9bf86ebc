-- chat.lua at a fixed request rate (an open loop, as far as the connections allow).
--
--   wrk -t1 -c32 -d600s --timeout 30s -s bench/wrk/paced.lua URL -- MODE BODIES RATE
--
-- RATE is requests per second for each wrk thread (use -t1 to make it the total). Every request claims
-- the next slot of a fixed schedule and waits for it; a schedule that fell behind catches up by at most
-- 50 ms of requests, so a stall is not followed by a burst. There must be enough connections for the
-- rate: connections / latency > RATE. BODIES may be "-" for the built-in body.

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "chat.lua")

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } toolwatch_timespec;
int clock_gettime(int clk_id, toolwatch_timespec *tp);
]])
local CLOCK_MONOTONIC = 1
local ts = ffi.new("toolwatch_timespec")

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local chat_init = init
local interval, next_slot = 0, nil

function init(args)
  chat_init(args)
  local rate = tonumber(args[3])
  if not rate or rate <= 0 then
    error("paced.lua needs RATE (requests per second per thread) as its third argument")
  end
  interval = 1000 / rate
end

function delay()
  local t = now_ms()
  local slot = next_slot or t
  if slot < t - 50 then
    slot = t - 50
  end
  next_slot = slot + interval
  if slot <= t then
    return 0
  end
  return slot - t
end
