// Optional: sample livecart with py-spy during a measured window (--py-spy).
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { children } from './servers.mjs'

/** Starts `py-spy record` on `pid` for `seconds`; resolves to the collapsed-stacks file or null. */
export const startPySpy = (pySpy, pid, seconds, outFile) => {
  const child = spawn(pySpy, ['record', '--pid', String(pid), '--duration', String(Math.ceil(seconds)),
    '--rate', '200', '--nonblocking', '--format', 'raw', '--output', outFile],
  { stdio: ['ignore', 'ignore', 'pipe'] })
  children.add(child)
  let err = ''
  child.stderr.on('data', (d) => { err += d })
  return new Promise((resolve) => {
    child.on('exit', (code) => {
      children.delete(child)
      if (code === 0 && fs.existsSync(outFile)) resolve(outFile)
      else {
        process.stderr.write(`py-spy failed (${code}): ${err.trim().split('\n').slice(-2).join(' ')}\n`)
        resolve(null)
      }
    })
  })
}

const fnName = (frame) => frame.replace(/:\d+\)$/, ')') // drop the line number

// Frames every sample of the event loop shares (start-up, the loop itself): not informative.
const BORING = /runpy|\(click\/|server\/cli\.py|run_app|_run_app|run_until_complete|run_forever|_run_once|Handle\._run|Thread\.(run|_bootstrap)|_worker \(concurrent|\(threading\.py|\(asyncio\/runners\.py/

const fileOf = (frame) => {
  const m = frame.match(/\(([^()]*)\)$/)
  return m ? m[1] : '?'
}

/** Top functions by self time, by inclusive time, and self time by source file, in % of samples. */
export const summarizeProfile = (file, top = 12) => {
  const self = new Map()
  const incl = new Map()
  const byFile = new Map()
  let total = 0
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const i = line.lastIndexOf(' ')
    if (i <= 0) continue
    const n = Number(line.slice(i + 1))
    if (!Number.isFinite(n)) continue
    const frames = line.slice(0, i).split(';').map((f) => shorten(fnName(f)))
    total += n
    const leaf = frames[frames.length - 1]
    self.set(leaf, (self.get(leaf) || 0) + n)
    const src = fileOf(leaf)
    byFile.set(src, (byFile.get(src) || 0) + n)
    for (const f of new Set(frames)) if (!BORING.test(f)) incl.set(f, (incl.get(f) || 0) + n)
  }
  const rank = (m) => [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, top)
    .map(([fn, n]) => ({ fn, pct: +(n / total * 100).toFixed(1) }))
  return { samples: total, file: path.basename(file), self: rank(self), inclusive: rank(incl), selfByFile: rank(byFile) }
}

const shorten = (fn) => fn
  .replace(/\(\/.*?\/site-packages\//, '(')
  .replace(/\(\/.*?\/livecart-src\/livecart\//, '(livecart/')
  .replace(/\(\/work\/main\//, '(')
  .replace(/\(\/root\/\.pyenv\/versions\/[^/]+\/lib\/python[^/]+\//, '(stdlib/')
