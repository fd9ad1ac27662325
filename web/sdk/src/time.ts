import type { Duration } from "@bufbuild/protobuf/wkt";

/** A google.protobuf.Duration in milliseconds; unset is 0. */
export function durationMs(d: Duration | undefined): number {
  return d ? Number(d.seconds) * 1000 + Math.round(d.nanos / 1e6) : 0;
}
