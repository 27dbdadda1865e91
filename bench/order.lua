-- wrk script for bench/fanout.sh: POSTs Ventiapp-like order events (~500 B
-- of JSON), each with an order id of its own (so that no two requests make
-- the same event id and the queue's dedupe drops nothing).
--
--   wrk -s bench/order.lua <url> -- <run tag>
--
-- done() prints one line:
--   RESULT <requests> <duration us> <status errors> <socket errors>

local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  tag = args[1] .. "-t" .. tid
  headers = { ["Content-Type"] = "application/json" }
end

function request()
  counter = counter + 1
  local body = '{"orderId":"' .. tag .. '-' .. counter .. '","channel":"meli",' ..
    '"dateCreated":"2018-10-29T00:00:00","externalId":"111444123","total":660.0,"currency":"MXN",' ..
    '"tax":0.16,"comments":"Send it before tuesday","itemsQuantity":2,"title":"Order Title",' ..
    '"internalStatus":1,"cartId":"00000101110002","externalNumber":"12314512",' ..
    '"items":[{"sku":"A-1","quantity":1,"price":330.0},{"sku":"B-2","quantity":1,"price":330.0}],' ..
    '"customer":{"name":"Ana","email":"ana@example.com"}}'
  return wrk.format("POST", nil, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d\n", summary.requests, summary.duration, e.status,
    e.connect + e.read + e.write + e.timeout))
end
