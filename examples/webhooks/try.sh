#!/bin/sh
# Registers a webhook for tenant acme with an OAuth authorization (the
# seed's shape), sends one Aveonline event to the hub route, and lists the
# tenant's webhooks. Run it while examples/webhooks/Caddyfile runs; the
# demo receiver's log line shows the delivery.
set -eu
TOKEN=${ACME_API_TOKEN:-acme-demo-token}
API=http://localhost:8080

curl -sS -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  --data '{
    "webhook": {
      "topic": "shipments/tracking",
      "address": "http://127.0.0.1:8083/hooks",
      "authorization": {
        "headers": [{"Content-Type": "application/json"}],
        "params": [],
        "addressLogin": "http://127.0.0.1:8083/oauth/token",
        "body": {"grant_type": "client_credentials", "client_id": "acme-erp", "client_secret": "demo-secret", "account": 42},
        "tokenKey": "auth_token",
        "expiresKey": "expires_in",
        "tokenType": "Bearer",
        "authType": "oauth"
      }
    }
  }' "$API/api/webhooks/create"
echo

curl -sS -H "Ave-Hub-signature: $(${CADDY:-go run ./cmd/caddy} hookrelay token)" \
  --data @examples/ave-tracking.json "$API/webhooks/ave"
echo

curl -sS -H "Authorization: Bearer $TOKEN" "$API/api/webhooks/list"
echo
