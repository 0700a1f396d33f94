/* eslint-env browser */
/**
 * Product art without image files: a line icon per kind of product on a soft tile.
 * The demo catalog has no pictures; a shop's own catalog would give image URLs instead.
 */

const ICONS = {
  mug: 'M5 8h11v7a4 4 0 0 1-4 4H9a4 4 0 0 1-4-4z M16 10h1.5a2.5 2.5 0 0 1 0 5H16 M9 3.5c-.6.8-.6 1.7 0 2.5 M12 3.5c-.6.8-.6 1.7 0 2.5',
  tee: 'M8 4 4 6.5 5.8 10 8 9v11h8V9l2.2 1L20 6.5 16 4c-.6 1.4-2.1 2.3-4 2.3S8.6 5.4 8 4z',
  hoodie: 'M8 4c0 2.2 1.8 4 4 4s4-1.8 4-4 M8 4 4.5 7v7.5l2.5.5V21h10v-6l2.5-.5V7L16 4 M10 13h4 M11 8v3 M13 8v3',
  cap: 'M5 15a7 7 0 0 1 14 0z M11 15h10.3c.5 0 .6.9.1 1.1-2.4.9-6 1.4-9.4 1.4 M12 8V6.5',
  scarf: 'M7 3h10v4H7z M8 7v9l-1.5 5h4L11 16V7 M9 21v-2 M13 7l2.5 6',
  tote: 'M5 8h14l-1 12H6z M9 8V6a3 3 0 0 1 6 0v2',
  notebook: 'M6 3h11a1 1 0 0 1 1 1v16a1 1 0 0 1-1 1H6z M9 3v18 M4 7h3 M4 11h3 M4 15h3 M12 8h3',
  pen: 'M15.5 4.5l4 4L9 19l-5 1 1-5z M13.5 6.5l4 4 M7 17l2-2',
  candle: 'M8 11h8v9a1 1 0 0 1-1 1H9a1 1 0 0 1-1-1z M12 11V8 M12 3c1.3 1.5 1.8 2.6 1.8 3.3a1.8 1.8 0 0 1-3.6 0c0-.7.5-1.8 1.8-3.3z',
  candlestick: 'M10 9h4v8h-4z M12 9V7.5 M12 3c1 1.2 1.4 2 1.4 2.6a1.4 1.4 0 0 1-2.8 0c0-.6.4-1.4 1.4-2.6z M9 17h6l1.5 4h-9z',
  pot: 'M6 13h12l-1.5 8h-9z M5 11h14v2H5z M12 11V6.5 M12 8c-2.5 0-4-1.5-4-4 2.5 0 4 1.5 4 4z M12 7c0-2.2 1.3-3.5 3.5-3.5 0 2.2-1.3 3.5-3.5 3.5z',
  vase: 'M9 3h6 M10 3v3c-3 1.5-4 4-4 7 0 4 2.5 8 6 8s6-4 6-8c0-3-1-5.5-4-7V3 M7 13h10',
  throw: 'M4 6h16v9H4z M4 15c0 2 1.5 3 3 3h13v-3 M8 6v9 M12 6v9 M16 6v9',
  cushion: 'M5 6c2 .8 12 .8 14 0-.8 2-.8 10 0 12-2-.8-12-.8-14 0 .8-2 .8-10 0-12z M9.5 12h5',
  lamp: 'M8 3h8l3 8H5z M12 11v8 M8 21h8 M12 19v2',
  print: 'M4 4h16v16H4z M7 7h10v10H7z M7 15l3-3 2 2 2-3 3 4',
  easel: 'M12 3v2 M5 5h14v10H5z M8 21l4-6 4 6 M8 12l2.5-2.5 2 2 1.5-1.5L17 12',
  beans: 'M9 4c3 0 5.5 3.5 5.5 7.5S12 19 9 19s-5.5-3.5-5.5-7.5S6 4 9 4z M9 4c-1.2 3.2-1.2 11.8 0 15 M16 8c2.5.6 4.5 3.3 4.5 6.5 0 3-1.7 5.5-4 5.5',
  tea: 'M4 10h12v3a6 6 0 0 1-12 0z M16 11h1.5a2 2 0 0 1 0 4H15 M9 7c0-2 1.5-3.5 3.5-3.5 0 2-1.5 3.5-3.5 3.5z',
  chocolate: 'M6 3h12v18H6z M6 9h12 M6 15h12 M12 3v18',
  soap: 'M4 13a4 4 0 0 1 4-4h8a4 4 0 0 1 4 4v2a4 4 0 0 1-4 4H8a4 4 0 0 1-4-4z M16 4.5a1.5 1.5 0 1 1-3 0 1.5 1.5 0 0 1 3 0z M19.5 6.5a1 1 0 1 1-2 0 1 1 0 0 1 2 0z',
  socks: 'M9 3h6v9l3 3.5a2.8 2.8 0 0 1-4 4L9 15z M9 7h6',
  umbrella: 'M3 12a9 9 0 0 1 18 0z M12 12v6.5a2 2 0 0 1-4 0 M12 3V2',
  watch: 'M9 3h6l.8 4H8.2z M9 21h6l.8-4H8.2z M12 7a5 5 0 1 1 0 10 5 5 0 0 1 0-10z M12 10v2l1.5 1',
  book: 'M4 5a2 2 0 0 1 2-2h6v16H6a2 2 0 0 0-2 2z M20 5a2 2 0 0 0-2-2h-6v16h6a2 2 0 0 1 2 2z',
  dice: 'M4 4h16v16H4z M8.5 8.5h.01 M15.5 8.5h.01 M12 12h.01 M8.5 15.5h.01 M15.5 15.5h.01',
  gift: 'M4 9h16v4H4z M5 13h14v8H5z M12 9v12 M12 9c-1.5-3.5-5-4-5-2s3 2 5 2z M12 9c1.5-3.5 5-4 5-2s-3 2-5 2z',
  envelope: 'M3 7h18v12H3z M3 7l9 7 9-7 M12 17.2c-1.7-1.1-2.6-2-2.6-2.8a1.2 1.2 0 0 1 2.6-.6 1.2 1.2 0 0 1 2.6.6c0 .8-.9 1.7-2.6 2.8z',
  bag: 'M6 7h12l1 14H5z M9 7a3 3 0 0 1 6 0'
}

/** SKU prefix → [icon, tile colour, ink colour] */
const KINDS = [
  ['MUG-LAST', 'mug', '#efe1d3', '#7a4b2f'],
  ['MUG', 'mug', '#e8e1d6', '#5a4a3a'],
  ['TEE', 'tee', '#e2e9e4', '#2f5443'],
  ['HOODIE', 'hoodie', '#e4e4e8', '#43465a'],
  ['CAP', 'cap', '#dde5ee', '#2b4766'],
  ['SCARF', 'scarf', '#f0e2dc', '#8a3f2c'],
  ['TOTE', 'tote', '#efe8d6', '#6a5a2e'],
  ['NOTEBOOK', 'notebook', '#e5e9ee', '#34495e'],
  ['PEN', 'pen', '#f0e7d2', '#7a5a12'],
  ['CANDLE-VINTAGE', 'candlestick', '#f1e6d0', '#7a5a1c'],
  ['CANDLE', 'candle', '#f3e4dc', '#8b4a36'],
  ['PLANT', 'pot', '#f0e0d4', '#9a4f2f'],
  ['VASE', 'vase', '#dfeaeb', '#2e6266'],
  ['THROW', 'throw', '#ece2dc', '#6b4a3d'],
  ['CUSHION', 'cushion', '#e9e6dc', '#5d5640'],
  ['LAMP', 'lamp', '#f2ead4', '#7b6322'],
  ['PRINT-ORIGINAL', 'easel', '#e2e7ef', '#3b4f74'],
  ['PRINT', 'print', '#dde8ee', '#2e5a70'],
  ['COFFEE', 'beans', '#ebe0d6', '#5b3b28'],
  ['TEA', 'tea', '#e3ebdc', '#44633a'],
  ['CHOC', 'chocolate', '#eadbd3', '#5e3426'],
  ['SOAP', 'soap', '#e6ecdf', '#4e6340'],
  ['SOCKS', 'socks', '#ece3ea', '#6a4263'],
  ['UMBRELLA', 'umbrella', '#e0e6ee', '#334a66'],
  ['WATCH', 'watch', '#ece6da', '#5c4a2b'],
  ['BOOK', 'book', '#efe5d8', '#7b4e2a'],
  ['BOARDGAME', 'dice', '#e6e2ef', '#4c3f78'],
  ['GIFT', 'gift', '#f1e0e0', '#8d3a3a'],
  ['INVITE', 'envelope', '#f2e6e6', '#8c4656']
]

/** [icon, tile, ink] for a SKU. */
export function kindOf (sku) {
  const k = KINDS.find(([prefix]) => sku === prefix || sku.startsWith(prefix))
  return k ? k.slice(1) : ['bag', '#e9e5de', '#4a4a44']
}

/**
 * An inline SVG icon.
 * @param {string} name
 * @param {{size?: number, stroke?: number}} [options]
 * @returns {SVGSVGElement}
 */
export function svgIcon (name, { size = 24, stroke = 1.6 } = {}) {
  const ns = 'http://www.w3.org/2000/svg'
  const svg = document.createElementNS(ns, 'svg')
  svg.setAttribute('viewBox', '0 0 24 24')
  svg.setAttribute('width', size)
  svg.setAttribute('height', size)
  svg.setAttribute('fill', 'none')
  svg.setAttribute('stroke', 'currentColor')
  svg.setAttribute('stroke-width', name === 'dice' ? 2.6 : stroke)
  svg.setAttribute('stroke-linecap', 'round')
  svg.setAttribute('stroke-linejoin', 'round')
  svg.setAttribute('aria-hidden', 'true')
  const path = document.createElementNS(ns, 'path')
  path.setAttribute('d', ICONS[name] || UI_ICONS[name] || ICONS.bag)
  svg.append(path)
  return svg
}

/** Interface icons. */
const UI_ICONS = {
  cart: 'M3 4h2l2.2 10.5a1.5 1.5 0 0 0 1.5 1.2h8.6a1.5 1.5 0 0 0 1.5-1.1L21 8H6.2 M9 20.5h.01 M17 20.5h.01',
  eye: 'M2 12s3.6-7 10-7 10 7 10 7-3.6 7-10 7S2 12 2 12z M12 9a3 3 0 1 1 0 6 3 3 0 0 1 0-6z',
  clock: 'M12 3a9 9 0 1 1 0 18 9 9 0 0 1 0-18z M12 7v5l3 2',
  x: 'M6 6l12 12 M18 6 6 18',
  minus: 'M5 12h14',
  plus: 'M12 5v14 M5 12h14',
  check: 'M5 12.5l4.5 4.5L19 7',
  alert: 'M12 3 2 20h20z M12 10v4 M12 17h.01',
  user: 'M12 12a4 4 0 1 0 0-8 4 4 0 0 0 0 8z M4 21a8 8 0 0 1 16 0',
  search: 'M11 4a7 7 0 1 1 0 14 7 7 0 0 1 0-14z M20 20l-3.5-3.5',
  store: 'M4 10v10h16V10 M3 10l2-6h14l2 6z M9 20v-5h6v5',
  phone: 'M5 4h4l2 5-2.5 1.5a11 11 0 0 0 5 5L15 13l5 2v4a2 2 0 0 1-2 2A16 16 0 0 1 3 6a2 2 0 0 1 2-2z',
  monitor: 'M3 4h18v12H3z M8 20h8 M12 16v4',
  globe: 'M12 3a9 9 0 1 1 0 18 9 9 0 0 1 0-18z M3 12h18 M12 3c2.5 2.5 3.8 5.5 3.8 9s-1.3 6.5-3.8 9c-2.5-2.5-3.8-5.5-3.8-9S9.5 5.5 12 3z',
  tag: 'M3 12V4h8l10 10-8 8z M7.5 7.5h.01',
  arrow: 'M5 12h14 M13 6l6 6-6 6',
  back: 'M19 12H5 M11 6l-6 6 6 6',
  lock: 'M6 11h12v10H6z M8 11V8a4 4 0 0 1 8 0v3',
  chat: 'M4 5h16v11H9l-5 4z M8 9h8 M8 12h5',
  bolt: 'M13 2 4 14h7l-1 8 9-12h-7z',
  box: 'M3 7l9-4 9 4v10l-9 4-9-4z M3 7l9 4 9-4 M12 11v10',
  heart: 'M12 20s-7.5-4.6-7.5-10.2A4.3 4.3 0 0 1 12 7.2a4.3 4.3 0 0 1 7.5 2.6C19.5 15.4 12 20 12 20z',
  pencil: 'M15.5 4.5l4 4L9 19l-5 1 1-5z',
  logout: 'M15 4h4v16h-4 M10 8l-4 4 4 4 M6 12h10',
  refresh: 'M20 12a8 8 0 1 1-2.3-5.6 M20 4v4h-4',
  qr: 'M4 4h6v6H4z M14 4h6v6h-6z M4 14h6v6H4z M14 14h2v2h-2z M18 18h2v2h-2z M14 18h2 M18 14h2'
}

/**
 * The art tile of a product.
 * @param {string} sku
 * @param {{size?: 'sm' | 'md' | 'lg'}} [options]
 * @returns {HTMLElement}
 */
export function productArt (sku, { size = 'md' } = {}) {
  const [icon, tile, ink] = kindOf(sku)
  const el = document.createElement('div')
  el.className = `art art-${size}`
  el.style.setProperty('--tile', tile)
  el.style.setProperty('--ink', ink)
  el.append(svgIcon(icon, { size: size === 'lg' ? 72 : size === 'md' ? 56 : 26, stroke: size === 'sm' ? 1.7 : 1.2 }))
  return el
}
