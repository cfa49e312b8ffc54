// h builds DOM nodes; text is always set as text (no HTML injection).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function table(cols, rows, opts = {}) {
  const tbody = h('tbody', null);
  const t = h('table', { class: 'grid', dataset: opts.name ? { table: opts.name } : {} },
    h('thead', null, h('tr', null, cols.map((c) => h('th', { class: c.num ? 'num' : null }, c.label)))), tbody);
  t.add = (rs) => {
    for (const r of rs) tbody.append(h('tr', null, cols.map((c) => h('td', { class: c.num ? 'num' : null }, c.cell(r)))));
  };
  t.add(rows);
  if (!rows.length && opts.empty) tbody.append(h('tr', { class: 'empty' }, h('td', { colspan: cols.length }, opts.empty)));
  return t;
}

export function fmt(x, digits = 4) {
  if (x === undefined || x === null || Number.isNaN(x)) return '–';
  if (typeof x !== 'number') return String(x);
  if (Number.isInteger(x)) return x.toLocaleString('en-US');
  return Math.abs(x) >= 1e4 || (Math.abs(x) < 1e-3 && x !== 0) ? x.toExponential(3) : x.toFixed(digits);
}

export function bytes(n) {
  if (!n) return '0 B';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return n.toFixed(i ? 1 : 0) + ' ' + u[i];
}

export function short(id, n = 12) {
  return id && id.length > n ? id.slice(0, n) + '…' : id || '';
}

export function when(t) {
  if (!t) return '–';
  const d = typeof t === 'number' ? new Date(t) : new Date(t);
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function link(href, text, attrs = {}) {
  return h('a', { href, ...attrs }, text);
}

export function progressBar(done, total) {
  const pct = total ? Math.min(100, Math.round((100 * done) / total)) : 0;
  return h('span', { class: 'progress', title: done + ' / ' + total },
    h('span', { class: 'bar', style: 'width:' + pct + '%' }), h('span', { class: 'label' }, done + ' / ' + total));
}
