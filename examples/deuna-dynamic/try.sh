#!/bin/sh
# Registers the three dynamic webhooks of the example, each by its
# merchant, and executes each over a sample order, printing the signed
# answers. Run it from the repository root while
# examples/deuna-dynamic/Caddyfile runs.
set -eu
API=http://localhost:8080/api/v1/merchants
DIR=examples/deuna-dynamic
KFC_WEB_TOKEN=${KFC_WEB_TOKEN:-kfc-web-demo-token}
KFC_VE_TOKEN=${KFC_VE_TOKEN:-kfc-ve-demo-token}
WOW_TOKEN=${WOW_TOKEN:-wow-demo-token}

# KFC Web: a tip added to the total. The first registration answers 201
# with the webhook's signing secret, shown once; registering the same
# event_name again replaces it (200) and keeps the secret.
curl -sS -H "merchant_token: $KFC_WEB_TOKEN" -H 'Content-Type: application/json' \
  --data @$DIR/kfc-web-tip.json "$API/kfc-web/webhooks"
echo
curl -sS -i -H "merchant_token: $KFC_WEB_TOKEN" -H 'Content-Type: application/json' \
  --data @$DIR/order-kfc-web.json "$API/kfc-web/webhooks/set_tip/execute"
echo

# KFC Venezuela: 3% tax on orders paid in CASH; other orders unchanged.
curl -sS -H "merchant_token: $KFC_VE_TOKEN" -H 'Content-Type: application/json' \
  --data @$DIR/kfc-venezuela-tax.json "$API/kfc-ve/webhooks"
echo
curl -sS -H "merchant_token: $KFC_VE_TOKEN" -H 'Content-Type: application/json' \
  --data @$DIR/order-kfc-venezuela-cash.json "$API/kfc-ve/webhooks/cash_tax/execute"
echo
curl -sS -H "merchant_token: $KFC_VE_TOKEN" -H 'Content-Type: application/json' \
  --data @$DIR/order-kfc-venezuela-card.json "$API/kfc-ve/webhooks/cash_tax/execute"
echo

# Wow+: part of the total paid with the customer's points.
curl -sS -H "merchant_token: $WOW_TOKEN" -H 'Content-Type: application/json' \
  --data @$DIR/wow-points.json "$API/wow/webhooks"
echo
curl -sS -H "merchant_token: $WOW_TOKEN" -H 'Content-Type: application/json' \
  --data @$DIR/order-wow.json "$API/wow/webhooks/pay_with_points/execute"
echo

# What each merchant registered: never its credentials nor its secret.
curl -sS -H "merchant_token: $WOW_TOKEN" "$API/wow/webhooks"
echo
