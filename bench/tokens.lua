-- wrk script for bench/run.sh: every request carries `Authorization: Bearer <token>`, the
-- tokens taken in turn from the file named by BENCH_TOKENS_FILE (one a line). With one line
-- that is the "repeated" scenario; with many, the "distinct" one.
--
-- Each wrk thread starts at its own offset (thread i of n at i/n of the list), so the
-- threads do not send the same token at the same time and a token comes back only after the
-- whole list has gone by. Requests are formatted once, in init, to keep the client cheap.
--
--   BENCH_TOKENS_FILE=tokens.txt BENCH_THREADS=2 wrk -t2 -c64 -d10s -s bench/tokens.lua URL

local thread_count = tonumber(os.getenv("BENCH_THREADS") or "1")
local next_id = 0

function setup(thread)
   thread:set("thread_id", next_id)
   next_id = next_id + 1
end

local requests = {}
local index = 0

function init(args)
   local path = os.getenv("BENCH_TOKENS_FILE")
   if not path then
      error("BENCH_TOKENS_FILE is not set")
   end
   local file = assert(io.open(path, "r"))
   for line in file:lines() do
      if #line > 0 then
         requests[#requests + 1] = wrk.format(nil, nil, { ["Authorization"] = "Bearer " .. line })
      end
   end
   file:close()
   if #requests == 0 then
      error("no tokens in " .. path)
   end
   local id = thread_id or 0
   index = math.floor(#requests * id / thread_count) % #requests
end

function request()
   index = index + 1
   if index > #requests then
      index = 1
   end
   return requests[index]
end
