#!/usr/bin/env bash
# Tutorial step 1 client (the seed's 01_place_order.py as curl): log in as
# user1 and place a buy, log in as user2 and place the crossing sell, then
# show the book and the balances. Start the service first:
#
#   bin/step1-centralized            (or: go run ./tutorial/step1-centralized)
#   scripts/01_place_order.sh [URL]  (default http://localhost:5001)
set -euo pipefail

URL="${1:-${URL:-http://localhost:5001}}"
jar1="$(mktemp)"; jar2="$(mktemp)"
trap 'rm -f "$jar1" "$jar2"' EXIT

# post PATH JAR BODY: POST a JSON body with a cookie jar, print status and body.
post() {
  curl -sS -X POST "$URL$1" -H "Content-Type: application/json" -b "$2" -c "$2" -d "$3" -w '  [HTTP %{http_code}]\n'
}

echo "== user1 logs in (session cookie kept in a cookie jar)"
post /login "$jar1" '{"username": "user1", "password": "pass1"}'

echo "== user1 places: buy 1 ETH at 200 USDT"
post /order "$jar1" '{"order_type": "buy", "base_token": "ETH", "quote_token": "USDT", "quantity": 1, "price": 200}'

echo "== user2 logs in"
post /login "$jar2" '{"username": "user2", "password": "pass2"}'

echo "== user2 places: sell 1 ETH at 200 USDT (crosses user1's buy)"
post /order "$jar2" '{"order_type": "sell", "base_token": "ETH", "quote_token": "USDT", "quantity": 1, "price": 200}'

echo "== open orders"
curl -sS "$URL/orders"; echo

echo "== balances"
for q in "user1 USDT" "user1 ETH" "user2 ETH" "user2 USDT"; do
  set -- $q
  printf '%s %s: ' "$1" "$2"; curl -sS "$URL/balance?username=$1&token=$2"; echo
done
