-- wrk script for bench/ingress.sh: POSTs signed Aveonline tracking webhooks,
-- one guide per request, each with a shipment id of its own (so that no
-- two requests make the same event id and the queue's dedupe drops
-- nothing). The observaciones field pads the normalized event to ~1 KB.
--
--   wrk -s bench/ave.lua <url> -- <path> <token> <run tag> [<201s per thread>]
--
-- With a count, each thread stops after that many 201 answers (backlog
-- fill); without, it runs for wrk's duration. done() prints one line:
--   RESULT <requests> <duration us> <status errors> <socket errors> <p99 latency us>

local threads = {}
local counter = 0
local created = 0

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

local pad = string.rep("x", 560)

function init(args)
  path = args[1]
  token = args[2]
  tag = args[3] .. "-t" .. tid
  limit = tonumber(args[4] or "0")
  headers = {
    ["Content-Type"] = "application/json",
    ["Ave-Hub-signature"] = token,
  }
  if limit > 0 then
    response = function(status, hdrs, body)
      if status == 201 then
        created = created + 1
        if created >= limit then
          wrk.thread:stop()
        end
      end
    end
  end
end

function request()
  counter = counter + 1
  local body = '{"tipo":"json","body":[{"id_envio":"' .. tag .. '-' .. counter ..
    '","cod_estado":"4","nombre_estado":"EN ENTREGA","fecha_estado":"2022-12-11 11:04:43",' ..
    '"cod_novedad":"NOVEDAD","nombre_novedad":"DIRECCION ERRONEA","fecha_novedad":"2022-12-11 11:31:00",' ..
    '"estado_novedad":"EJECUTADA","guia_reeemplazo":"123-444-222","tipo_guia_reeemplazo":"DEV",' ..
    '"ruta_digitalizada":"https://laruta.com/docs/1.pdf","observaciones":"' .. pad .. '"}]}'
  return wrk.format("POST", path, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d\n", summary.requests, summary.duration, e.status,
    e.connect + e.read + e.write + e.timeout, latency:percentile(99)))
end
