// Where a tooltip goes, in viewport coordinates. A requested side is honoured; AUTO picks
// the side with the most room left once the tooltip is placed there (ties: bottom, top,
// right, left). The tooltip is kept inside the viewport along its side, and the arrow
// points at the target's centre.

export type Side = "top" | "bottom" | "left" | "right";

export interface Rect {
  top: number;
  left: number;
  width: number;
  height: number;
}

export interface Placement {
  side: Side;
  top: number;
  left: number;
  /** The arrow's offset from the tooltip's top (left/right sides) or left edge (top/bottom). */
  arrow: number;
}

const GAP = 10;
const MARGIN = 8;

function clamp(v: number, lo: number, hi: number): number {
  return Math.max(lo, Math.min(v, Math.max(lo, hi)));
}

export function room(side: Side, target: Rect, size: { width: number; height: number }, view: { width: number; height: number }): number {
  switch (side) {
    case "top":
      return target.top - GAP - size.height;
    case "bottom":
      return view.height - (target.top + target.height) - GAP - size.height;
    case "left":
      return target.left - GAP - size.width;
    case "right":
      return view.width - (target.left + target.width) - GAP - size.width;
  }
}

export function place(
  target: Rect,
  size: { width: number; height: number },
  view: { width: number; height: number },
  wanted: Side | "auto",
): Placement {
  let side: Side = "bottom";
  if (wanted !== "auto") side = wanted;
  else {
    let best = -Infinity;
    for (const s of ["bottom", "top", "right", "left"] as const) {
      const r = room(s, target, size, view);
      if (r > best) [best, side] = [r, s];
    }
  }
  const cx = target.left + target.width / 2;
  const cy = target.top + target.height / 2;
  if (side === "top" || side === "bottom") {
    const left = clamp(cx - size.width / 2, MARGIN, view.width - size.width - MARGIN);
    const top = side === "top" ? target.top - GAP - size.height : target.top + target.height + GAP;
    return { side, top, left, arrow: clamp(cx - left, 12, size.width - 12) };
  }
  const top = clamp(cy - size.height / 2, MARGIN, view.height - size.height - MARGIN);
  const left = side === "left" ? target.left - GAP - size.width : target.left + target.width + GAP;
  return { side, top, left, arrow: clamp(cy - top, 12, size.height - 12) };
}
