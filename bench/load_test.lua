-- wrk script of bench/load_test.py: each request is the next line of a pre-drawn URL list
-- ("kind<TAB>path" per line, LOAD_URLS), and every response's kind, status and latency is
-- recorded, so that the figures can be given per kind. wrk itself only reports one latency
-- distribution, so the latency is measured here with clock_gettime (LuaJIT's ffi).
--
-- Run with one connection per thread (-c N -t N): request() and response() of a thread then
-- alternate strictly, which is what pairs a response with its request. At the end, done()
-- writes "kind<TAB>status<TAB>milliseconds" lines to LOAD_RESULTS, plus one "errors" line with
-- wrk's socket error counts.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } load_timespec;
  int clock_gettime(int clock_id, load_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local timespec = ffi.new("load_timespec")

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
  return tonumber(timespec.tv_sec) * 1000 + tonumber(timespec.tv_nsec) / 1e6
end

local kinds, paths = {}, {}
for line in io.lines(os.getenv("LOAD_URLS")) do
  local kind, path = line:match("^([^\t]+)\t(.+)$")
  kinds[#kinds + 1] = kind
  paths[#paths + 1] = path
end

local threads = {}
local thread_count = 0

function setup(thread)
  thread:set("thread_index", thread_count)
  thread_count = thread_count + 1
  threads[#threads + 1] = thread
end

-- Per thread (each its own Lua state).
local position, pending_kind, started = 0, nil, 0
records = {}

function init(args)
  -- Threads start at different places of the list, then walk it in order.
  position = (thread_index * 7919) % #paths
end

function request()
  position = position % #paths + 1
  pending_kind = kinds[position]
  started = now_ms()
  return wrk.format("GET", paths[position])
end

function response(status, headers, body)
  records[#records + 1] = string.format("%s\t%d\t%.3f", pending_kind, status, now_ms() - started)
end

function done(summary, latency, requests)
  local out = assert(io.open(os.getenv("LOAD_RESULTS"), "w"))
  for _, thread in ipairs(threads) do
    for _, line in ipairs(thread:get("records")) do
      out:write(line, "\n")
    end
  end
  local e = summary.errors
  out:write(string.format("errors\tconnect=%d read=%d write=%d timeout=%d\t%.3f\n",
    e.connect, e.read, e.write, e.timeout, summary.duration / 1e6))
  out:close()
end
