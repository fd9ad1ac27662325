#!/usr/bin/env python3
"""The delivery hop from a non-Rust client: Deliver (the internal RPC trigger calls) → the
message on the user's open Subscribe stream, one probe at a time, timed here with grpcio.

`herald-bench` runs this beside its own Rust probe; it prints one JSON line,
{"samples", "p50_ms", "p99_ms", "deliver_p50_ms"}, over the probes after the warm-up.

usage: delivery_hop.py --address HOST:PORT --key INTERNAL_KEY --workspace ID --campaign ID
                       --variant ID --user ID --token USER_TOKEN [--rate 100]
                       [--warmup-secs 2] [--duration-secs 10]
"""

import argparse
import importlib
import json
import queue
import sys
import threading
import time

import herald_protos

# How long one probe's message is waited for before the run fails.
PROBE_TIMEOUT_S = 5.0


def quantile(sorted_ms: list, q: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--campaign", required=True)
    parser.add_argument("--variant", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--warmup-secs", type=float, default=2)
    parser.add_argument("--duration-secs", type=float, default=10)
    args = parser.parse_args()

    herald_protos.generate()
    import grpc

    common = importlib.import_module("herald.common.v1.common_pb2")
    content = importlib.import_module("herald.common.v1.content_pb2")
    delivery = importlib.import_module("herald.delivery.v1.delivery_pb2")
    delivery_grpc = importlib.import_module("herald.delivery.v1.delivery_pb2_grpc")

    internal = [("authorization", f"Bearer {args.key}")]
    user = [("authorization", f"Bearer {args.token}")]
    # Separate connections, as an app session and a backend would have.
    deliver = delivery_grpc.DeliveryInternalServiceStub(grpc.insecure_channel(args.address))
    inbox = delivery_grpc.DeliveryServiceStub(grpc.insecure_channel(args.address))

    titles: "queue.Queue" = queue.Queue()
    total = args.warmup_secs + args.duration_secs
    subscription = inbox.Subscribe(delivery.SubscribeRequest(session_id="bench-hop-python"),
                                   metadata=user, timeout=total + 60)

    def read_stream() -> None:
        try:
            for item in subscription:
                if item.HasField("message"):
                    titles.put((time.perf_counter(), item.message.content.in_app.title))
        except grpc.RpcError:
            pass
        titles.put(None)

    threading.Thread(target=read_stream, daemon=True).start()

    hops, calls = [], []
    interval = 1.0 / args.rate
    start = time.perf_counter()
    measure_from = start + args.warmup_secs
    until = start + total
    seq = 0
    next_tick = start
    while True:
        now = time.perf_counter()
        if now < next_tick:
            time.sleep(next_tick - now)
        next_tick += interval
        sent = time.perf_counter()
        if sent >= until:
            break
        seq += 1
        deliver.Deliver(delivery.DeliverRequest(workspace_id=args.workspace, deliveries=[delivery.Delivery(
            idempotency_key=f"hop-{args.user}-{seq}", user_id=args.user, campaign_id=args.campaign,
            variant_id=args.variant, channel=common.CHANNEL_IN_APP,
            content=content.MessageContent(in_app=content.InAppContent(
                format=content.IN_APP_FORMAT_BANNER, title=str(seq))),
        )]), metadata=internal, timeout=5)
        called = time.perf_counter()
        while True:
            item = titles.get(timeout=PROBE_TIMEOUT_S)
            if item is None:
                print("the Subscribe stream ended", file=sys.stderr)
                return 1
            arrived, title = item
            if title == str(seq):
                break
        if sent >= measure_from:
            hops.append((arrived - sent) * 1000)
            calls.append((called - sent) * 1000)
    subscription.cancel()
    if not hops:
        print("no probe in the measured window", file=sys.stderr)
        return 1
    hops.sort()
    calls.sort()
    print(json.dumps({"samples": len(hops), "p50_ms": quantile(hops, 0.5), "p99_ms": quantile(hops, 0.99),
                      "deliver_p50_ms": quantile(calls, 0.5)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
