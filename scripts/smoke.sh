#!/usr/bin/env bash
# Starts the embedded suite (`herald dev`) on a fresh data directory, and checks it as a
# new user would: every server answers grpcurl list/describe and health, credentials are
# enforced, the README walkthrough works, the generated Python client runs the same
# scenario, SIGTERM drains and exits, a restart keeps the state, and `herald serve`
# refuses another workspace's key on every internal RPC.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(bash scripts/tools.sh)
export PATH="$bin:$PATH"
cargo build --quiet --locked --bin herald
herald=target/debug/herald

work=$(mktemp -d)
data="$work/data"
pid=""
serve_pids=()
cleanup() {
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
  [ ${#serve_pids[@]} -gt 0 ] && kill -KILL "${serve_pids[@]}" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

start() {
  # The default ports sit in Linux's ephemeral range, so a passing outgoing connection
  # can hold one for a moment: retry a start that found its port taken.
  for attempt in 1 2 3 4 5; do
    "$herald" dev --data-dir "$data" > "$work/herald.log" 2>&1 &
    pid=$!
    sleep 1
    if kill -0 "$pid" 2>/dev/null || ! grep -q "Address already in use" "$work/herald.log"; then break; fi
    echo "a default port was taken (attempt $attempt), retrying"
    sleep 2
  done
  for port in 50051 50052 50053 50054 50055; do
    for _ in $(seq 150); do
      grpcurl -plaintext 127.0.0.1:$port grpc.health.v1.Health/Check 2>/dev/null | grep -q SERVING && continue 2
      kill -0 "$pid" 2>/dev/null || { cat "$work/herald.log"; echo "herald dev exited"; exit 1; }
      sleep 0.2
    done
    cat "$work/herald.log"; echo "port $port never became SERVING"; exit 1
  done
}

start
echo "== grpcurl list / describe / health on every server"
for pair in 50051:herald.ingest.v1.IngestService \
            50052:herald.segmentation.v1.SegmentationService 50052:herald.segmentation.v1.SegmentationInternalService \
            50053:herald.trigger.v1.TriggerService 50053:herald.trigger.v1.TriggerInternalService \
            50054:herald.delivery.v1.DeliveryService 50054:herald.delivery.v1.DeliveryInternalService \
            50055:herald.analytics.v1.AnalyticsService 50055:herald.analytics.v1.AnalyticsInternalService; do
  port=${pair%%:*}; service=${pair#*:}
  list=$(grpcurl -plaintext 127.0.0.1:$port list)
  for expected in "$service" grpc.health.v1.Health grpc.reflection.v1alpha.ServerReflection grpc.reflection.v1.ServerReflection; do
    grep -qx "$expected" <<< "$list" || { echo "$port does not list $expected:"; echo "$list"; exit 1; }
  done
  grpcurl -plaintext 127.0.0.1:$port describe "$service" | grep -q '^//' || { echo "$service has no documented contract"; exit 1; }
  echo "ok   127.0.0.1:$port $service"
done

export HERALD_KEY=$(python3 -c "import tomllib;print(tomllib.load(open('$data/dev-credentials.toml','rb'))['server_key'])")
export HERALD_TOKEN=$("$herald" token --user alice --data-dir "$data")

echo "== credentials and errors"
expect_code() {
  local code=$1; shift
  out=$(grpcurl "$@" 2>&1 || true)
  grep -q "Code: $code" <<< "$out" || { echo "expected $code from grpcurl $*:"; echo "$out"; exit 1; }
  echo "ok   $code"
}
event='{"event":{"message_id":"smoke-1","user_id":"u1","name":"x"}}'
expect_code Unauthenticated -plaintext -d "$event" 127.0.0.1:50051 herald.ingest.v1.IngestService/Track
expect_code PermissionDenied -plaintext -H "authorization: Bearer $HERALD_KEY" -d '{"workspace_id":"demo"}' 127.0.0.1:50052 herald.segmentation.v1.SegmentationInternalService/ApplyEvents
expect_code InvalidArgument -plaintext -H "authorization: Bearer $HERALD_KEY" -d '{"event":{"user_id":"u1","name":"x"}}' 127.0.0.1:50051 herald.ingest.v1.IngestService/Track
expect_code Unimplemented -plaintext -H "authorization: Bearer $HERALD_KEY" -d '{"user_id":"u1"}' 127.0.0.1:50051 herald.ingest.v1.IngestService/ExportUser

echo "== segment rules: ParseRule answers the tree, or the error with its position"
out=$(grpcurl -plaintext -H "authorization: Bearer $HERALD_KEY" -d '{"rule_text":"plan == \"pro\" and not performed(\"integration_connected\")"}' 127.0.0.1:50052 herald.segmentation.v1.SegmentationService/ParseRule)
grep -q '"canonicalText": "plan == \\"pro\\" and not performed(\\"integration_connected\\")"' <<< "$out" || { echo "ParseRule did not parse:"; echo "$out"; exit 1; }
out=$(grpcurl -plaintext -H "authorization: Bearer $HERALD_KEY" -d '{"rule_text":"plan == "}' 127.0.0.1:50052 herald.segmentation.v1.SegmentationService/ParseRule)
grep -q '"column": 9' <<< "$out" || { echo "ParseRule gave no error position:"; echo "$out"; exit 1; }
echo "ok   ParseRule"

echo "== gRPC-Web and CORS (what a browser does)"
# An empty HealthCheckRequest in one gRPC-Web frame, over HTTP/1.1.
web=$(printf '\x00\x00\x00\x00\x00' | curl -s --http1.1 -X POST -H 'content-type: application/grpc-web+proto' \
  -H 'x-grpc-web: 1' --data-binary @- http://127.0.0.1:50054/grpc.health.v1.Health/Check | tr -d '\000' | tr -c '[:print:]' ' ')
grep -q 'grpc-status:0' <<< "$web" || { echo "no gRPC-Web answer: $web"; exit 1; }
echo "ok   gRPC-Web call over HTTP/1.1"
preflight=$(curl -s -i -X OPTIONS -H 'Origin: http://localhost:3000' -H 'Access-Control-Request-Method: POST' \
  -H 'Access-Control-Request-Headers: authorization,content-type,x-grpc-web' http://127.0.0.1:50054/herald.delivery.v1.DeliveryService/Subscribe)
grep -qi '^access-control-allow-origin: http://localhost:3000' <<< "$preflight" || { echo "no CORS preflight answer:"; echo "$preflight"; exit 1; }
echo "ok   CORS preflight"

echo "== README walkthrough"
bash scripts/walkthrough.sh

echo "== Python client generated from proto/"
python -c "import grpc_tools" 2>/dev/null || { echo "grpcio-tools missing"; exit 1; }
python tests/python/walkthrough.py --key "$HERALD_KEY" --user bob --token "$("$herald" token --user bob --data-dir "$data")"

echo "== SIGTERM drains and exits"
kill -TERM "$pid"
for _ in $(seq 250); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then echo "herald dev still running 25 s after SIGTERM"; exit 1; fi
wait "$pid" && echo "ok   exited 0" || { code=$?; cat "$work/herald.log"; echo "herald dev exited $code"; exit 1; }
pid=""

echo "== restart keeps state"
start
campaigns=$(grpcurl -plaintext -H "authorization: Bearer $HERALD_KEY" -d '{}' 127.0.0.1:50053 herald.trigger.v1.TriggerService/ListCampaigns)
grep -q '"name": "Welcome"' <<< "$campaigns" || { echo "campaigns lost across a restart:"; echo "$campaigns"; exit 1; }
inbox=$(grpcurl -plaintext -H "authorization: Bearer $HERALD_TOKEN" -d '{}' 127.0.0.1:50054 herald.delivery.v1.DeliveryService/ListInbox)
grep -q '"title": "Welcome, Alice!"' <<< "$inbox" || { echo "inbox lost across a restart:"; echo "$inbox"; exit 1; }
echo "ok   campaigns and inbox survive a restart"
kill -TERM "$pid"; wait "$pid" || true; pid=""

echo "== tenancy: another workspace's key with every scope, through herald serve"
# The internal RPCs name the workspace they act on; a key of workspace "other" may not
# act on "demo" whatever its scopes. Ports below Linux's ephemeral range.
keygen=$("$herald" keygen --workspace other --scopes internal,admin,ingest)
other_key=$(sed -n 2p <<< "$keygen" | sed 's/^# //')
other_sha=$(grep sha256 <<< "$keygen" | cut -d'"' -f2)
serve_pids=()
port=31052
for service in segmentation trigger delivery analytics; do
  HERALD_LISTEN_ADDR=127.0.0.1:$port HERALD_DATA_DIR="$work/serve" HERALD_LOG=warn \
  HERALD_API_KEYS="[{workspace=\"other\", scopes=[\"internal\",\"admin\",\"ingest\"], sha256=\"$other_sha\"}]" \
    "$herald" serve $service > "$work/serve-$service.log" 2>&1 &
  serve_pids+=($!)
  for attempt in $(seq 151); do
    grpcurl -plaintext 127.0.0.1:$port grpc.health.v1.Health/Check 2>/dev/null | grep -q SERVING && break
    [ "$attempt" = 151 ] && { cat "$work/serve-$service.log"; echo "herald serve $service never became SERVING"; exit 1; }
    sleep 0.2
  done
  internal=$(grpcurl -plaintext 127.0.0.1:$port list | grep InternalService)
  for method in $(grpcurl -plaintext 127.0.0.1:$port list "$internal"); do
    expect_code PermissionDenied -plaintext -H "authorization: Bearer $other_key" -d '{"workspace_id":"demo"}' 127.0.0.1:$port "$method"
  done
  port=$((port + 1))
done
kill -TERM "${serve_pids[@]}"; wait "${serve_pids[@]}" || true
echo "smoke: ok"
