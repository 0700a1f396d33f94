// bench/relay's accounting: delivered / superseded / lost per (edit, receiver) pair.
// Run: node --test bench/relay/test/  (also run by tests/test_bench_relay.py)
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { classify, pending } from '../lib/accounting.mjs'

const sent = [100, 200, 300, 400, 500] // one sender's addedAts in the window

test('every edit observed: all delivered', () => {
  const observed = sent.map((at) => [at, at + 2])
  assert.deepEqual(classify(sent, observed, 500), { delivered: 5, superseded: 0, lost: 0, supersededDelayMs: [] })
  assert.equal(pending(sent, 500), 0)
})

test('edits merged away before a later one was relayed are superseded, not lost', () => {
  // the server was behind: 200..400 travelled in one merged update whose state is 400's
  const observed = [[100, 103], [400, 410], [500, 502]]
  const c = classify(sent, observed, 500)
  assert.equal(c.delivered, 3)
  assert.equal(c.superseded, 2)
  assert.equal(c.lost, 0)
  // each superseded edit became invisible (overwritten) when 400 arrived
  assert.deepEqual(c.supersededDelayMs, [410 - 200, 410 - 300])
  assert.equal(pending(sent, 500), 0)
})

test('edits after the last one observed are lost (nothing later overwrote them)', () => {
  const observed = [[100, 101], [300, 305]]
  const c = classify(sent, observed, 300)
  assert.equal(c.delivered, 2)
  assert.equal(c.superseded, 1) // 200, overwritten by 300
  assert.equal(c.lost, 2) // 400 and 500: the receiver never got the sender's last edit
  assert.equal(pending(sent, 300), 2)
})

test('nothing observed from a sender: every edit lost', () => {
  const c = classify(sent, [], null)
  assert.deepEqual([c.delivered, c.superseded, c.lost], [0, 0, 5])
  assert.equal(pending(sent, undefined), 5)
})

test('a later edit observed after the window still supersedes', () => {
  // maxSeen from an edit outside the window's log (e.g. the drain), observed only as the max
  const c = classify(sent, [[100, 101]], 600)
  assert.deepEqual([c.delivered, c.superseded, c.lost], [1, 4, 0])
  assert.deepEqual(c.supersededDelayMs, []) // no window observation tells when
})

test('counts always add up to the edits sent', () => {
  for (let trial = 0; trial < 200; trial++) {
    const log = Array.from({ length: 20 }, (_, i) => 1000 + i * 10)
    const observed = log.filter(() => Math.random() < 0.5).map((at) => [at, at + 5])
    const maxSeen = observed.length ? observed[observed.length - 1][0] : null
    const c = classify(log, observed, maxSeen)
    assert.equal(c.delivered + c.superseded + c.lost, log.length)
    assert.equal(c.lost, pending(log, maxSeen))
  }
})
