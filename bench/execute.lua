-- wrk script for bench/execute.sh: POSTs a DEUNA order (~600 B of JSON),
-- the body of a dynamic webhook's execute, to whatever path is given, with
-- the merchant's credential.
--
--   wrk -s bench/execute.lua <url> -- <bearer token>
--
-- done() prints one line, latencies in microseconds:
--   RESULT <requests> <duration us> <status errors> <socket errors> <p50> <p90> <p99>

function init(args)
  headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. args[1] }
  body = '{"order":{"order_id":"A1","store_code":"kfc-001","currency":"USD","total":"10.10",' ..
    '"sub_total":"9.00","tax_amount":"1.10","payment_method":"CARD","status":"pending",' ..
    '"items":[{"id":"1","name":"Bucket 8","quantity":1,"unit_price":"7.50","total":"7.50"},' ..
    '{"id":"2","name":"Pepsi","quantity":1,"unit_price":"1.50","total":"1.50"}],' ..
    '"shipping_address":{"address1":"Av. Amazonas 123","city":"Quito","country":"EC"},' ..
    '"customer":{"first_name":"Ana","last_name":"Paz","email":"ana@example.com"},' ..
    '"custom_fields":{"channel":"web"}}}'
end

function request()
  return wrk.format("POST", nil, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d %d\n", summary.requests, summary.duration, e.status,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
