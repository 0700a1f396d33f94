/* eslint-env browser */
/**
 * `/admin`'s mail panels: "Customers" picks a segment of past buyers (bought a SKU, of a category,
 * since a date, matching a name or address), writes a mailing, sends it and shows its progress;
 * "Caught mail" lists what the demo's local mail catcher received (order mail and mailings).
 */
import { describeError, fill, h, icon, toast } from './ui.js'

export function mailPanels (lc) {
  return { customers: customersPanel(lc), caught: caughtPanel(lc) }
}

function field (label, input) {
  return h('label.field', h('span', label), input)
}

const FIELDSET = { border: '0', padding: '0', margin: '0 0 14px', display: 'grid', gap: '10px' }
const LEGEND = { fontWeight: '600', marginBottom: '8px', padding: '0' }

function customersPanel (lc) {
  const bought = h('input#segment-bought', { placeholder: 'SKU, SKU', autocomplete: 'off' })
  const category = h('input#segment-category', { placeholder: 'any', autocomplete: 'off' })
  const since = h('input#segment-since', { type: 'date' })
  const q = h('input#segment-q', { placeholder: 'name, e-mail or phone', autocomplete: 'off' })
  const subject = h('input#mailing-subject', { required: true, maxlength: 200, autocomplete: 'off' })
  const text = h('textarea#mailing-text', { required: true, rows: 5, maxlength: 50000 })
  const status = h('div#mailing-status', { role: 'status', 'aria-live': 'polite' })
  const bar = h('progress#mailing-progress', { max: 1, value: 0, hidden: true, style: { width: '100%', marginTop: '10px' } })
  const send = h('button.btn.primary#mailing-send', { type: 'submit' }, icon('bolt', 14), 'Send mailing')
  const segment = () => {
    const s = {}
    if (bought.value.trim()) s.bought = bought.value.split(',').map((x) => x.trim()).filter(Boolean)
    if (category.value.trim()) s.category = category.value.trim()
    if (since.value) s.since = since.value
    if (q.value.trim()) s.q = q.value.trim()
    return s
  }
  let timer = null
  const watch = async (id) => {
    clearTimeout(timer)
    try {
      const p = await lc.request('GET', `/api/mailings/${encodeURIComponent(id)}`)
      bar.hidden = false
      bar.max = p.total || 1
      bar.value = p.sent + p.failed
      fill(status, `${p.status === 'done' ? 'Done' : 'Sending'}: ${p.sent} of ${p.total} sent${p.failed ? `, ${p.failed} failed` : ''}.`)
      status.dataset.state = p.status
      if (p.status !== 'done') timer = setTimeout(() => watch(id), 1000)
      else send.disabled = false
    } catch (err) {
      toast(describeError(err), { kind: 'error', title: 'Mailing' })
      send.disabled = false
    }
  }
  const form = h('form.mailing-form', {
    onsubmit: async (e) => {
      e.preventDefault()
      send.disabled = true
      fill(status)
      try {
        const m = await lc.request('POST', '/api/mailings', { body: { subject: subject.value, text: text.value, segment: segment() } })
        fill(status, `Sending to ${m.recipients} customer${m.recipients === 1 ? '' : 's'}…`)
        watch(m.mailingId)
      } catch (err) {
        send.disabled = false
        fill(status, h('span.error', describeError(err)))
      }
    }
  },
  h('fieldset', { style: FIELDSET }, h('legend', { style: LEGEND }, 'Who: past buyers with marketing consent'),
    h('div', { style: { display: 'grid', gap: '10px', gridTemplateColumns: 'repeat(auto-fit, minmax(160px, 1fr))' } },
      field('Bought', bought), field('Category', category), field('Since', since), field('Search', q))),
  h('fieldset', { style: FIELDSET }, h('legend', { style: LEGEND }, 'What'), field('Subject', subject), field('Text', text)),
  send, bar, status)
  return h('section.card#customers-panel', h('div.card-head', h('h2', icon('user', 18), 'Customers: mailing')), form)
}

function caughtPanel (lc) {
  const list = h('ul.feed-list#caught-mail')
  const el = h('section.card#caught-panel', h('div.card-head', h('h2', icon('bolt', 18), 'Caught mail'), h('span.tag', 'demo catcher')), list)
  let seen = -1
  const refresh = async () => {
    try {
      const { catcher, mails } = await lc.request('GET', '/api/mail/caught')
      if (!catcher) {
        el.hidden = true
        return
      }
      if (mails.length !== seen) {
        seen = mails.length
        fill(list, mails.length
          ? mails.map((m) => h('li.caught',
            h('details',
              h('summary', h('strong', m.subject), h('small.muted', ` to ${m.to.join(', ')}`)),
              h('pre', { style: { whiteSpace: 'pre-wrap', fontSize: '12px' } }, m.text))))
          : h('li.muted', 'Mail the shop sends (order mail, mailings) shows up here.'))
      }
    } catch (err) {
      // a moment offline: the next round tries again
    }
    setTimeout(refresh, 2000)
  }
  refresh()
  return el
}
