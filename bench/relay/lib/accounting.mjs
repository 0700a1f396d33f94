// What became of each edit a sender made in the measured window, as seen by one receiver.
//
// The server may merge a sender's queued updates into one when it is behind
// (server/sync/inbox.py; docs/DESIGN.md: intermediate states may never be relayed, the last one
// always is). A receiver then never observes the intermediate edits, only the later one that
// overwrote them. So every (edit, other client of the cart) pair is exactly one of:
//   delivered   the receiver observed this edit (its addedAt), with a latency;
//   superseded  never observed, but the receiver observed a later edit of the same sender to the
//               same line (qty and addedAt are set together): merged away, as the contract allows;
//   lost        neither observed nor superseded by the end of the drain: a real loss.
// One more loss is counted per pair whose final state lacks the sender's last edit while no
// window edit is pending (e.g. the last edit was overwritten by something else, or was sent
// before the window): the final state must hold every owner's last edit.

/** Index of the first element of sorted `xs` greater than `x`. */
export const upperBound = (xs, x) => {
  let lo = 0
  let hi = xs.length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (xs[mid] <= x) lo = mid + 1
    else hi = mid
  }
  return lo
}

/**
 * Edits of `sent` (the sender's addedAts in the window, ascending) not yet observed nor
 * superseded, given the latest addedAt the receiver observed from that sender (`maxSeen`).
 */
export const pending = (sent, maxSeen) => sent.length - upperBound(sent, maxSeen ?? -Infinity)

/**
 * One receiver × one sender. `observed`: [addedAt, arrivalMs] of every window edit of the sender
 * the receiver observed; `maxSeen`: the latest addedAt it observed from that sender at all.
 * Returns the three counts and, per superseded edit, the time until the receiver saw the
 * edit that overwrote it (its visibility delay: when its effect, or a later one, was visible).
 */
export const classify = (sent, observed, maxSeen) => {
  const seen = new Map(observed)
  // earliest arrival among observations with addedAt ≥ x: suffix minimum over addedAt order
  const byAt = [...observed].sort((a, b) => a[0] - b[0])
  const suffixMin = new Array(byAt.length + 1).fill(Infinity)
  for (let i = byAt.length - 1; i >= 0; i--) suffixMin[i] = Math.min(byAt[i][1], suffixMin[i + 1])
  const ats = byAt.map((o) => o[0])
  let delivered = 0
  let superseded = 0
  let lost = 0
  const supersededDelayMs = []
  for (const at of sent) {
    if (seen.has(at)) { delivered++; continue }
    if (maxSeen != null && maxSeen > at) {
      superseded++
      const arrival = suffixMin[upperBound(ats, at)]
      if (Number.isFinite(arrival)) supersededDelayMs.push(arrival - at)
    } else lost++
  }
  return { delivered, superseded, lost, supersededDelayMs }
}
