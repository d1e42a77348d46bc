-- wrk script for the POST figure: `docker create`'s request, POST /containers/create with a
-- JSON body (bench/fixtures/create-request.json; run.sh exports BENCH_FIXTURES).
local f = assert(io.open(os.getenv("BENCH_FIXTURES") .. "/create-request.json", "r"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
