// Plain JS values to google.protobuf.Struct. protobuf-es represents a Struct field as a
// JsonObject; this makes one from any object the way JSON.stringify would: toJSON() is
// called (so Dates become ISO strings), undefined, functions and symbols are left out,
// NaN and ±Infinity become null, and cycles or BigInts throw a TypeError.

import type { JsonObject } from "@bufbuild/protobuf";

export function toJsonObject(value: object): JsonObject {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new TypeError("Herald: properties and traits must be a plain object");
  }
  const parsed: unknown = JSON.parse(JSON.stringify(value));
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new TypeError("Herald: properties and traits must serialise to a JSON object");
  }
  return parsed as JsonObject;
}
