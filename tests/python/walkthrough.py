#!/usr/bin/env python3
"""The README walkthrough driven by a Python client generated from proto/ with grpcio-tools.

This is how we know the contracts serve polyglot backends: nothing here is Rust, and the
generated code is made fresh from proto/ on every run (never checked in).

usage: walkthrough.py --key SERVER_KEY --token USER_TOKEN --user USER_ID [--host 127.0.0.1]
"""

import argparse
import importlib
import queue
import sys
import threading
import time
import uuid

import herald_protos


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--key", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()

    herald_protos.generate()
    import grpc
    from google.protobuf import struct_pb2

    content = importlib.import_module("herald.common.v1.content_pb2")
    event_pb = importlib.import_module("herald.common.v1.event_pb2")
    common = importlib.import_module("herald.common.v1.common_pb2")
    campaign_pb = importlib.import_module("herald.trigger.v1.campaign_pb2")
    trigger = importlib.import_module("herald.trigger.v1.trigger_pb2")
    trigger_grpc = importlib.import_module("herald.trigger.v1.trigger_pb2_grpc")
    ingest = importlib.import_module("herald.ingest.v1.ingest_pb2")
    ingest_grpc = importlib.import_module("herald.ingest.v1.ingest_pb2_grpc")
    delivery = importlib.import_module("herald.delivery.v1.delivery_pb2")
    delivery_grpc = importlib.import_module("herald.delivery.v1.delivery_pb2_grpc")
    analytics = importlib.import_module("herald.analytics.v1.analytics_pb2")
    analytics_grpc = importlib.import_module("herald.analytics.v1.analytics_pb2_grpc")
    segmentation = importlib.import_module("herald.segmentation.v1.segmentation_pb2")
    segmentation_grpc = importlib.import_module("herald.segmentation.v1.segmentation_pb2_grpc")

    server = [("authorization", f"Bearer {args.key}")]
    user = [("authorization", f"Bearer {args.token}")]
    host = args.host
    run = uuid.uuid4().hex[:8]
    event_name = f"py_signed_up_{run}"

    campaigns = trigger_grpc.TriggerServiceStub(grpc.insecure_channel(f"{host}:50053"))
    created = campaigns.CreateCampaign(
        trigger.CreateCampaignRequest(campaign=campaign_pb.Campaign(
            name="Python welcome",
            status=campaign_pb.CAMPAIGN_STATUS_ACTIVE,
            trigger=campaign_pb.Trigger(event=campaign_pb.EventTrigger(event_name=event_name)),
            variants=[campaign_pb.Variant(id="a", name="A", weight=1, contents=[content.MessageContent(
                in_app=content.InAppContent(
                    format=content.IN_APP_FORMAT_BANNER,
                    title="Hello {{ user.id }}",
                    body="You did {{ event.name }}",
                ))])],
        )),
        metadata=server, timeout=5,
    ).campaign
    print(f"created campaign {created.id}")

    stream_channel = grpc.insecure_channel(f"{host}:50054")
    inbox = delivery_grpc.DeliveryServiceStub(stream_channel)
    arrived: "queue.Queue" = queue.Queue()
    subscription = inbox.Subscribe(delivery.SubscribeRequest(session_id="python"), metadata=user, timeout=30)

    def read_stream() -> None:
        try:
            for item in subscription:
                if item.HasField("message") and item.message.campaign_id == created.id:
                    arrived.put(item.message)
        except grpc.RpcError:
            pass

    threading.Thread(target=read_stream, daemon=True).start()
    time.sleep(0.3)

    events = ingest_grpc.IngestServiceStub(grpc.insecure_channel(f"{host}:50051"))
    sent = time.monotonic()
    properties = struct_pb2.Struct()
    properties.update({"source": "python"})
    events.Track(ingest.TrackRequest(event=event_pb.Event(
        message_id=str(uuid.uuid4()), user_id=args.user, name=event_name, properties=properties)),
        metadata=server, timeout=5)
    message = arrived.get(timeout=10)
    print(f"message {message.id} arrived on the stream after {(time.monotonic() - sent) * 1000:.0f} ms: "
          f"{message.content.in_app.title!r}")
    assert message.content.in_app.title == f"Hello {args.user}", message.content.in_app.title
    subscription.cancel()

    inbox.UpdateMessageState(delivery.UpdateMessageStateRequest(
        message_id=message.id, state=common.MESSAGE_STATE_DISPLAYED), metadata=user, timeout=5)
    inbox.UpdateMessageState(delivery.UpdateMessageStateRequest(
        message_id=message.id, state=common.MESSAGE_STATE_CLICKED), metadata=user, timeout=5)

    stats_stub = analytics_grpc.AnalyticsServiceStub(grpc.insecure_channel(f"{host}:50055"))
    deadline = time.monotonic() + 10
    while True:
        stats = stats_stub.GetCampaignStats(
            analytics.GetCampaignStatsRequest(campaign_id=created.id), metadata=server, timeout=5).stats
        if stats.total.clicks == 1 and stats.total.impressions == 1:
            break
        if time.monotonic() > deadline:
            print(f"stats never counted the click: {stats}", file=sys.stderr)
            return 1
        time.sleep(0.2)
    print(f"stats: sent={stats.total.sent} impressions={stats.total.impressions} clicks={stats.total.clicks} "
          f"click_rate={stats.total.click_rate:.2f}")

    # A segment over an event of this run: the user is in it after the event, and the
    # event forwarded to trigger carried the membership.
    segments = segmentation_grpc.SegmentationServiceStub(grpc.insecure_channel(f"{host}:50052"))
    segment = segments.CreateSegment(segmentation.CreateSegmentRequest(segment=segmentation.Segment(
        name="Python signed up", rule_text=f'performed("{event_name}", within: 1d)')),
        metadata=server, timeout=5).segment
    deadline = time.monotonic() + 10
    while segment.id not in segments.GetUserSegments(
            segmentation.GetUserSegmentsRequest(user_id=args.user), metadata=server, timeout=5).segment_ids:
        if time.monotonic() > deadline:
            print(f"{args.user} never entered segment {segment.id}", file=sys.stderr)
            return 1
        time.sleep(0.2)
    print(f"{args.user} is in segment {segment.id} ({segment.rule_text})")

    # A segment-entry campaign that a user enters once, and ExplainDecision saying why it
    # fired and then did not. A fresh user, since the message above holds the workspace's
    # minimum interval between in-app messages for args.user; a plan of this run, so the
    # README's "On a trial" campaign (scripts/walkthrough.sh) does not fire for it too.
    trial_user, trial_plan = f"py-trial-{run}", f"trial-{run}"
    trial = segments.CreateSegment(segmentation.CreateSegmentRequest(segment=segmentation.Segment(
        name="Python on a trial", rule_text=f'plan == "{trial_plan}"')), metadata=server, timeout=5).segment
    tips = campaigns.CreateCampaign(
        trigger.CreateCampaignRequest(campaign=campaign_pb.Campaign(
            name="Python trial tips",
            status=campaign_pb.CAMPAIGN_STATUS_ACTIVE,
            trigger=campaign_pb.Trigger(segment_entry=campaign_pb.SegmentEntryTrigger(segment_id=trial.id)),
            entry=campaign_pb.Entry(policy=campaign_pb.ENTRY_POLICY_ONCE),
            variants=[campaign_pb.Variant(id="a", name="A", weight=1, contents=[content.MessageContent(
                in_app=content.InAppContent(
                    format=content.IN_APP_FORMAT_BANNER,
                    title='Tips for your trial, {{ user.first_name | default: "there" }}',
                ))])],
        )),
        metadata=server, timeout=5,
    ).campaign

    def identify(n: int, traits: dict) -> None:
        struct = struct_pb2.Struct()
        struct.update(traits)
        events.Identify(ingest.IdentifyRequest(identity=event_pb.Identity(
            message_id=f"py-identify-{run}-{n}", user_id=trial_user, traits=struct)),
            metadata=server, timeout=5)

    def decisions(count: int) -> list:
        deadline = time.monotonic() + 10
        while True:
            found = list(campaigns.ExplainDecision(trigger.ExplainDecisionRequest(
                campaign_id=tips.id, user_id=trial_user), metadata=server, timeout=5).decisions)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"ExplainDecision never showed {count} decision(s) for {trial_user}: {found}")
            time.sleep(0.2)

    identify(1, {"first_name": "Py", "plan": trial_plan})
    sent = decisions(1)[0]
    assert sent.outcome == trigger.DECISION_OUTCOME_SENT, sent
    assert sent.cause == trigger.DECISION_CAUSE_SEGMENT_TRANSITION, sent
    assert all(r.passed for r in sent.reasons), sent
    assert trigger.DECISION_REASON_CODE_ENTRY in [r.code for r in sent.reasons], sent
    assert [d.channel for d in sent.deliveries] == [common.CHANNEL_IN_APP], sent
    print(f"{trial_user} entered segment {trial.id}: campaign {tips.id} {trigger.DecisionOutcome.Name(sent.outcome)}")

    identify(2, {"plan": "pro"})
    identify(3, {"plan": trial_plan})
    again = decisions(2)
    assert [d.outcome for d in again] == [trigger.DECISION_OUTCOME_SUPPRESSED, trigger.DECISION_OUTCOME_SENT], again
    failed = again[0].reasons[-1]
    assert failed.code == trigger.DECISION_REASON_CODE_ENTRY and not failed.passed, again[0]
    assert not again[0].deliveries, again[0]
    print(f"{trial_user} re-entered: {trigger.DecisionOutcome.Name(again[0].outcome)} ({failed.message})")
    print("python client: 1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
