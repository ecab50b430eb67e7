/**
 * The node-id space of a daemon that serves several filesystems in one FUSE session (the pseudo
 * root plus its mounts). Each filesystem owns one slot of 2^44 ids: the pseudo tree slot 0, the
 * mounts slots 1..255 (upstream nydusd keeps 255 mounts too, with `fs_idx << 56 | ino`; ids here
 * must stay below 2^53 to travel as JS numbers, hence 44 bits). A filesystem answers with its own
 * ("inner") ids, root 1; the router adds `slot * 2^44`. File handles use the same layout, so the
 * native extent tables keyed by handle never mix two mounts. The native side knows the layout
 * too: its reply cache is invalidated and its operation counters are kept per slot.
 */
export const kSlotBits = 44;
export const kSlotSpan = 2 ** kSlotBits;
/** Slots 1..kMaxMounts hold mounts; 0 is the pseudo tree. */
export const kMaxMounts = 255;
/** The FUSE root node. */
export const kRootId = 1;

export function slotOf(id: number): number {
  return Math.floor(id / kSlotSpan);
}

export function innerOf(id: number): number {
  return id % kSlotSpan;
}

/** The global id of inner id `inner` of slot `slot`; undefined when it does not fit the slot. */
export function globalId(slot: number, inner: number): number | undefined {
  if (!Number.isSafeInteger(inner) || inner < 0 || inner >= kSlotSpan) return undefined;
  return slot * kSlotSpan + inner;
}

/** [lo, hi) of a slot's ids. */
export function slotRange(slot: number): [number, number] {
  return [slot * kSlotSpan, (slot + 1) * kSlotSpan];
}
