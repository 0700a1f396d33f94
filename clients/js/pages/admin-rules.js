/* eslint-env browser */
/**
 * `/admin`'s nudge rules panel: the rules (`GET /api/rules`), a form to add one (when a cart is idle,
 * a checkout is left, or the shopper is away for N minutes → tell the shop floor or offer a discount),
 * a delete button each, and the rules that fired (`rule.fired` from `/ws/admin`).
 */
import { describeError, fill, h, icon, money, toast } from './ui.js'

const EVENTS = { cart_idle: 'Cart idle', checkout_idle: 'Checkout left idle', away: 'Shopper away (another tab)' }

function describe (rule) {
  const when = `${EVENTS[rule.when.event] || rule.when.event} for ${rule.when.minutes} min`
  const t = rule.then
  const then = t.action === 'offer'
    ? `offer ${t.code}: ${t.percentOff ? `${t.percentOff}% off` : `${money(t.amountOff)} off`}`
    : 'tell the shop floor'
  return `${when} → ${then}`
}

export function rulesPanel (lc) {
  const list = h('ul.feed-list#rules-list')
  const fired = h('ul.feed-list#rules-fired')
  const id = h('input#rule-id', { required: true, maxlength: 64, placeholder: 'come-back', autocomplete: 'off' })
  const event = h('select#rule-event', Object.entries(EVENTS).map(([v, label]) => h('option', { value: v }, label)))
  const minutes = h('input#rule-minutes', { type: 'number', min: '0.001', step: 'any', value: '10', required: true })
  const action = h('select#rule-action', h('option', { value: 'notify' }, 'Tell the shop floor'), h('option', { value: 'offer' }, 'Offer a discount'))
  const code = h('input#rule-code', { maxlength: 64, placeholder: 'code (the rule id if empty)', autocomplete: 'off' })
  const percent = h('input#rule-percent', { type: 'number', min: '1', max: '100', value: '10' })
  const offerFields = h('div.rule-offer', { hidden: true, style: { display: 'grid', gap: '10px', gridTemplateColumns: '1fr 1fr' } },
    h('label.field', h('span', 'Code'), code), h('label.field', h('span', '% off'), percent))
  action.onchange = () => { offerFields.hidden = action.value !== 'offer' }
  const error = h('p.form-error', { hidden: true })
  const load = async () => {
    try {
      const { rules } = await lc.request('GET', '/api/rules')
      fill(list, rules.length
        ? rules.map((r) => h('li.rule', { 'data-rule': r.id }, icon('bolt', 16), h('span', h('strong', r.id), ' · ', describe(r)),
          h('button.btn.ghost.sm', { onclick: () => remove(r.id), 'aria-label': `Delete rule ${r.id}` }, 'Delete')))
        : h('li.muted', 'No rules yet: add one below.'))
    } catch (err) {
      fill(list, h('li.muted', describeError(err)))
    }
  }
  const remove = async (ruleId) => {
    try {
      await lc.request('DELETE', `/api/rules/${encodeURIComponent(ruleId)}`)
      load()
    } catch (err) {
      toast(describeError(err), { kind: 'error', title: 'Rules' })
    }
  }
  const form = h('form.rule-form', {
    onsubmit: async (e) => {
      e.preventDefault()
      error.hidden = true
      const then = action.value === 'offer'
        ? { action: 'offer', code: code.value.trim() || id.value.trim(), percentOff: Number(percent.value) }
        : { action: 'notify' }
      try {
        await lc.request('PUT', `/api/rules/${encodeURIComponent(id.value.trim())}`, { body: { when: { event: event.value, minutes: Number(minutes.value) }, then } })
        id.value = ''
        load()
      } catch (err) {
        error.hidden = false
        error.textContent = describeError(err)
      }
    }
  },
  h('div', { style: { display: 'grid', gap: '10px', gridTemplateColumns: 'repeat(auto-fit, minmax(140px, 1fr))' } },
    h('label.field', h('span', 'Rule'), id), h('label.field', h('span', 'When'), event),
    h('label.field', h('span', 'Minutes'), minutes), h('label.field', h('span', 'Then'), action)),
  offerFields, error,
  h('button.btn.primary.sm#rule-save', { type: 'submit' }, 'Save rule'))
  const el = h('section.card#rules-panel',
    h('div.card-head', h('h2', icon('bolt', 18), 'Nudge rules'), h('span.tag', 'once per cart')),
    list, form, h('h3', { style: { margin: '14px 0 6px', fontSize: '14px' } }, 'Fired'), fired)
  fill(fired, h('li.muted', 'Rules that fire show here.'))
  load()
  /** A `rule.fired` event from the shop floor feed. */
  const onFired = (e) => {
    fired.querySelector('li.muted')?.remove()
    fired.prepend(h('li', { 'data-rule': e.rule }, icon(e.action === 'offer' ? 'check' : 'alert', 16),
      h('span', `${e.rule} · cart ${e.cartId}${e.action === 'offer' ? ` · offered ${e.code}` : ''}`),
      h('time', new Date().toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' }))))
    while (fired.children.length > 20) fired.lastChild.remove()
  }
  return { el, onFired }
}
