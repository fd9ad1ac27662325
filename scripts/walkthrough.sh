#!/usr/bin/env bash
# The README walkthrough, command for command, with checks: a campaign, a live stream, an
# event that becomes a message on it within a second, a click, the stats counting it, a
# segment alice is in until the event that takes her out, and a segment-entry campaign
# that carol enters once, with ExplainDecision saying why it fired and then did not.
# Needs a running suite (`herald dev`), grpcurl on PATH, HERALD_KEY and HERALD_TOKEN (alice).
set -euo pipefail
: "${HERALD_KEY:?export HERALD_KEY (printed by herald dev)}"
: "${HERALD_TOKEN:?export HERALD_TOKEN (printed by herald dev)}"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# 1. Create an active campaign that welcomes users when they sign up.
grpcurl -plaintext -H "authorization: Bearer $HERALD_KEY" -d '{
  "campaign": {
    "name": "Welcome",
    "status": "CAMPAIGN_STATUS_ACTIVE",
    "trigger": {"event": {"event_name": "signed_up"}},
    "variants": [{"id": "a", "name": "A", "weight": 1, "contents": [{"in_app": {
      "format": "IN_APP_FORMAT_MODAL",
      "title": "Welcome, {{ user.first_name }}!",
      "body": "Your {{ event.properties.plan }} plan is ready.",
      "actions": [{"id": "tour", "label": "Take the tour", "kind": "ACTION_KIND_URL", "url": "https://example.com/tour"}]
    }}]}]
  }
}' 127.0.0.1:50053 herald.trigger.v1.TriggerService/CreateCampaign > "$work/campaign.json"
campaign=$(json 'd["campaign"]["id"]' < "$work/campaign.json")
echo "campaign $campaign created"

# 2. Open alice's live stream (a second terminal, in the README).
grpcurl -plaintext -H "authorization: Bearer $HERALD_TOKEN" -d '{}' \
  127.0.0.1:50054 herald.delivery.v1.DeliveryService/Subscribe > "$work/stream.json" 2>&1 &
sleep 1

# 3. Tell Herald who alice is, and that she just signed up.
grpcurl -plaintext -H "authorization: Bearer $HERALD_KEY" -d '{
  "identity": {"message_id": "walkthrough-identify-1", "user_id": "alice", "traits": {"first_name": "Alice", "plan": "pro", "signed_up_at": "2026-01-05T09:00:00Z"}}
}' 127.0.0.1:50051 herald.ingest.v1.IngestService/Identify
sent=$(date +%s%N)
grpcurl -plaintext -H "authorization: Bearer $HERALD_KEY" -d '{
  "event": {"message_id": "walkthrough-signup-1", "user_id": "alice", "name": "signed_up", "properties": {"plan": "pro"}}
}' 127.0.0.1:50051 herald.ingest.v1.IngestService/Track

for _ in $(seq 50); do
  grep -q '"title"' "$work/stream.json" && break
  sleep 0.1
done
arrived=$(date +%s%N)
grep -q '"title": "Welcome, Alice!"' "$work/stream.json" || { echo "no message on the stream:"; cat "$work/stream.json"; exit 1; }
echo "message on the stream $(( (arrived - sent) / 1000000 )) ms after Track (polled every 100 ms)"
message=$(python3 -c "
import json,re,sys
text=open('$work/stream.json').read()
print(re.search(r'\"id\": \"(msg_[^\"]+)\"', text).group(1))")

# 4. Alice sees the message and clicks its button.
grpcurl -plaintext -H "authorization: Bearer $HERALD_TOKEN" -d "{\"message_id\": \"$message\", \"state\": \"MESSAGE_STATE_DISPLAYED\"}" \
  127.0.0.1:50054 herald.delivery.v1.DeliveryService/UpdateMessageState > /dev/null
grpcurl -plaintext -H "authorization: Bearer $HERALD_TOKEN" -d "{\"message_id\": \"$message\", \"state\": \"MESSAGE_STATE_CLICKED\", \"action_id\": \"tour\"}" \
  127.0.0.1:50054 herald.delivery.v1.DeliveryService/UpdateMessageState > /dev/null

# 5. Her inbox, and the campaign's numbers.
grpcurl -plaintext -H "authorization: Bearer $HERALD_TOKEN" -d '{}' \
  127.0.0.1:50054 herald.delivery.v1.DeliveryService/ListInbox > "$work/inbox.json"
grep -q "$message" "$work/inbox.json"
for _ in $(seq 50); do
  grpcurl -plaintext -H "authorization: Bearer $HERALD_KEY" -d "{\"campaign_id\": \"$campaign\"}" \
    127.0.0.1:50055 herald.analytics.v1.AnalyticsService/GetCampaignStats > "$work/stats.json"
  [ "$(json 'd["stats"]["total"].get("clicks", "0")' < "$work/stats.json")" = "1" ] && break
  sleep 0.1
done
cat "$work/stats.json"
[ "$(json 'd["stats"]["total"].get("clicks", "0")' < "$work/stats.json")" = "1" ] || { echo "the click was not counted"; exit 1; }

# 6. A segment: pro users who signed up 5+ days ago and never connected an integration.
rule='plan == \"pro\" and days_since(signed_up_at) >= 5 and not performed(\"integration_connected\")'
grpcurl -plaintext -H "authorization: Bearer $HERALD_KEY" -d "{\"rule_text\": \"$rule\"}" \
  127.0.0.1:50052 herald.segmentation.v1.SegmentationService/ParseRule > "$work/parsed.json"
grep -q '"relativeTime"' "$work/parsed.json" || { echo "ParseRule gave no tree:"; cat "$work/parsed.json"; exit 1; }
grpcurl -plaintext -H "authorization: Bearer $HERALD_KEY" -d "{\"segment\": {\"name\": \"Needs an integration\", \"rule_text\": \"$rule\"}}" \
  127.0.0.1:50052 herald.segmentation.v1.SegmentationService/CreateSegment > "$work/segment.json"
segment=$(json 'd["segment"]["id"]' < "$work/segment.json")
echo "segment $segment created"
for _ in $(seq 50); do
  grpcurl -plaintext -H "authorization: Bearer $HERALD_KEY" -d "{\"segment_id\": \"$segment\"}" \
    127.0.0.1:50052 herald.segmentation.v1.SegmentationService/ListSegmentMembers > "$work/members.json"
  grep -q '"userId": "alice"' "$work/members.json" && break
  sleep 0.1
done
grep -q '"userId": "alice"' "$work/members.json" || { echo "alice is not a member:"; cat "$work/members.json"; exit 1; }
grpcurl -plaintext -H "authorization: Bearer $HERALD_KEY" -d '{"user_id": "alice"}' \
  127.0.0.1:50052 herald.segmentation.v1.SegmentationService/GetUserSegments > "$work/user.json"
grep -q "$segment" "$work/user.json" || { echo "GetUserSegments does not show the segment:"; cat "$work/user.json"; exit 1; }
echo "alice is in segment $segment"
grpcurl -plaintext -H "authorization: Bearer $HERALD_KEY" -d '{
  "event": {"message_id": "walkthrough-integration-1", "user_id": "alice", "name": "integration_connected"}
}' 127.0.0.1:50051 herald.ingest.v1.IngestService/Track > /dev/null
for _ in $(seq 50); do
  grpcurl -plaintext -H "authorization: Bearer $HERALD_KEY" -d '{"user_id": "alice"}' \
    127.0.0.1:50052 herald.segmentation.v1.SegmentationService/GetUserSegments > "$work/user.json"
  grep -q "$segment" "$work/user.json" || break
  sleep 0.1
done
! grep -q "$segment" "$work/user.json" || { echo "alice is still in the segment after integration_connected:"; cat "$work/user.json"; exit 1; }
echo "alice left segment $segment on integration_connected"

# 7. A campaign for users who enter a segment, at most once each; carol is a fresh user,
# so the workspace's minimum interval between in-app messages (30 s) does not hold it.
grpcurl -plaintext -H "authorization: Bearer $HERALD_KEY" -d '{"segment": {"name": "On a trial", "rule_text": "plan == \"trial\""}}' \
  127.0.0.1:50052 herald.segmentation.v1.SegmentationService/CreateSegment > "$work/trial-segment.json"
trial_segment=$(json 'd["segment"]["id"]' < "$work/trial-segment.json")
grpcurl -plaintext -H "authorization: Bearer $HERALD_KEY" -d '{
  "campaign": {
    "name": "Trial tips",
    "status": "CAMPAIGN_STATUS_ACTIVE",
    "trigger": {"segment_entry": {"segment_id": "'"$trial_segment"'"}},
    "entry": {"policy": "ENTRY_POLICY_ONCE"},
    "variants": [{"id": "a", "name": "A", "weight": 1, "contents": [{"in_app": {
      "format": "IN_APP_FORMAT_BANNER",
      "title": "Tips for your trial, {{ user.first_name | default: \"there\" }}",
      "body": "Connect an integration to see your own data."
    }}]}]
  }
}' 127.0.0.1:50053 herald.trigger.v1.TriggerService/CreateCampaign > "$work/trial-campaign.json"
trial_campaign=$(json 'd["campaign"]["id"]' < "$work/trial-campaign.json")
echo "segment $trial_segment and campaign $trial_campaign created"
identify() {
  grpcurl -plaintext -H "authorization: Bearer $HERALD_KEY" -d "{
    \"identity\": {\"message_id\": \"$1\", \"user_id\": \"carol\", \"traits\": $2}
  }" 127.0.0.1:50051 herald.ingest.v1.IngestService/Identify > /dev/null
}
# Polls ExplainDecision until carol has $1 decisions (newest first in the answer).
explain() {
  for _ in $(seq 50); do
    grpcurl -plaintext -H "authorization: Bearer $HERALD_KEY" -d "{\"campaign_id\": \"$trial_campaign\", \"user_id\": \"carol\"}" \
      127.0.0.1:50053 herald.trigger.v1.TriggerService/ExplainDecision > "$work/explain.json"
    [ "$(json 'len(d.get("decisions", []))' < "$work/explain.json")" -ge "$1" ] && return
    sleep 0.1
  done
  echo "ExplainDecision never showed $1 decision(s) for carol:"; cat "$work/explain.json"; exit 1
}
identify walkthrough-identify-carol-1 '{"first_name": "Carol", "plan": "trial"}'
explain 1
check() {
  python3 -c "import json,sys; d=json.load(sys.stdin)['decisions']; sys.exit(0 if ($1) else 1)" < "$work/explain.json" \
    || { echo "ExplainDecision for carol: expected $2:"; cat "$work/explain.json"; exit 1; }
}
check 'd[0]["outcome"] == "DECISION_OUTCOME_SENT" and d[0]["cause"] == "DECISION_CAUSE_SEGMENT_TRANSITION"' "a SENT decision caused by the segment entry"
check 'all(r.get("passed") for r in d[0]["reasons"]) and {"code": "DECISION_REASON_CODE_ENTRY", "message": "entry: once per user, first entry", "passed": True} in d[0]["reasons"]' "every gate passed, ENTRY on the first entry"
check '[x["channel"] for x in d[0]["deliveries"]] == ["CHANNEL_IN_APP"]' "one in-app delivery"
echo "carol entered segment $trial_segment and campaign $trial_campaign sent her a banner"
identify walkthrough-identify-carol-2 '{"plan": "pro"}'
identify walkthrough-identify-carol-3 '{"plan": "trial"}'
explain 2
check 'd[0]["outcome"] == "DECISION_OUTCOME_SUPPRESSED" and d[1]["outcome"] == "DECISION_OUTCOME_SENT"' "SUPPRESSED, then the first SENT"
check 'd[0]["reasons"][-1]["code"] == "DECISION_REASON_CODE_ENTRY" and "passed" not in d[0]["reasons"][-1] and d[0]["reasons"][-1]["message"].startswith("entry: once per user, already entered")' "the ENTRY gate as the one that failed"
check 'not d[0].get("deliveries")' "no delivery on the suppressed decision"
echo "carol re-entered the segment and the campaign did not fire again: $(json 'd["decisions"][0]["reasons"][-1]["message"]' < "$work/explain.json")"
echo "walkthrough: ok"
