// The Hyperspace dashboard: one page, a hash router, one function per view.
// Every view reads the REST API (paged where lists grow) and, once its data
// is on screen, sets <body data-ready="VIEW"> (tests and benchmarks wait on it).
import { api, APIError, TOKEN_KEY } from './api.js';
import { h, table, fmt, bytes, short, when, link, progressBar } from './dom.js';
import { lineChart } from './chart.js';
import { renderMarkdown } from './markdown.js';
import './style.css';

const PAGE = 25; // rows per page of a list
let config = { workflowURL: '', publicReads: false };
let feed = null; // the open EventSource of the feed view

function temporalLink(wfID, url) {
  const href = url || (config.workflowURL && wfID ? config.workflowURL + encodeURIComponent(wfID) : '');
  return href ? h('a', { href, target: '_blank', rel: 'noopener', class: 'temporal' }, 'Temporal UI ↗') : '';
}

function expLink(id, text) { return link('#/experiments/' + encodeURIComponent(id), text || short(id)); }
function campLink(id) { return link('#/campaigns/' + encodeURIComponent(id), id); }
function paperLink(id, text) { return link('#/papers/' + encodeURIComponent(id), text || short(id)); }

function receiptOf(e) { return (e && e.record && e.record.receipt) || {}; }

// pager appends pages of a cursor-paged list to a table: it never loads
// more than one page at a time.
function pager(t, fetchPage) {
  let cursor = '';
  const btn = h('button', { class: 'more', type: 'button' }, 'Load more');
  const more = async () => {
    btn.disabled = true;
    const { rows, next } = await fetchPage(cursor);
    t.add(rows);
    cursor = next;
    btn.disabled = false;
    btn.hidden = !next;
    return rows;
  };
  btn.addEventListener('click', () => more().catch(showError));
  return { btn, more };
}

function section(title, ...body) { return h('section', null, h('h2', null, title), ...body); }

// ---------- campaigns ----------

async function campaignsView(root) {
  const [list, doms] = await Promise.all([api('campaigns?limit=' + PAGE), api('domains')]);
  const progressCell = (c) => {
    const span = h('span', { class: 'muted' }, c.status === 'running' || c.status === 'pending' ? '…' : '');
    if (c.status === 'running' || c.status === 'pending') {
      api('campaigns/' + encodeURIComponent(c.id)).then((v) => {
        if (v.progress) span.replaceWith(progressBar(v.progress.done, v.progress.total));
      }).catch(() => {});
    }
    return span;
  };
  const t = table([
    { label: 'Campaign', cell: (c) => campLink(c.id) },
    { label: 'Domain', cell: (c) => link('#/leaderboard/' + c.domain, c.domain) },
    { label: 'Status', cell: (c) => h('span', { class: 'status ' + c.status }, c.status) },
    { label: 'Agents × experiments', cell: (c) => c.agents + ' × ' + c.experiments },
    { label: 'Progress', cell: progressCell },
    { label: 'Created', cell: (c) => when(c.createdAt) },
    { label: 'Workflow', cell: (c) => temporalLink(c.workflowId, c.links && c.links.temporalUI) },
    { label: '', cell: (c) => stopButton(c) },
  ], list.campaigns, { name: 'campaigns', empty: 'No campaigns yet: start one below.' });
  let cursor = list.nextCursor;
  const more = h('button', { class: 'more', type: 'button', hidden: !cursor }, 'Load more');
  more.addEventListener('click', async () => {
    const p = await api('campaigns?limit=' + PAGE + '&cursor=' + encodeURIComponent(cursor));
    t.add(p.campaigns); cursor = p.nextCursor; more.hidden = !cursor;
  });
  root.append(section('Campaigns', t, more), section('Start a campaign', campaignForm(doms.domains)));
  return 'campaigns';
}

function stopButton(c) {
  if (c.status !== 'running' && c.status !== 'pending') return '';
  const b = h('button', { type: 'button', class: 'stop', dataset: { stop: c.id } }, 'Stop');
  b.addEventListener('click', async () => {
    if (!needToken()) return;
    b.disabled = true;
    try {
      await api('campaigns/' + encodeURIComponent(c.id) + '/stop', { method: 'POST' });
      b.textContent = 'Stopping…';
    } catch (e) { b.disabled = false; showError(e); }
  });
  return b;
}

// needToken makes sure a token for state-changing requests is at hand.
function needToken() {
  if (sessionStorage.getItem(TOKEN_KEY)) return true;
  const tok = window.prompt('Paste a token with scope run to change state (kept in this tab only):');
  if (!tok) return false;
  sessionStorage.setItem(TOKEN_KEY, tok.trim());
  return true;
}

function campaignForm(domains) {
  const field = (name, label, input, help) => h('label', { class: 'field', dataset: { field: name } },
    h('span', null, label), input, help ? h('small', null, help) : '', h('span', { class: 'error', dataset: { errorFor: name } }));
  const num = (name, ph) => h('input', { name, type: 'number', placeholder: ph, step: 'any' });
  const sel = h('select', { name: 'domain' }, domains.map((d) => h('option', { value: d.name }, d.name)));
  const form = h('form', { id: 'start-campaign', novalidate: true },
    field('id', 'ID', h('input', { name: 'id', placeholder: 'generated' }), 'lowercase letters, digits, dashes'),
    field('domain', 'Domain', sel),
    field('agents', 'Agents', num('agents', '2')),
    field('experiments', 'Experiments per agent', num('experiments', '5')),
    field('budget', 'Budget (s per experiment)', num('budget', '120')),
    field('baselineSeeds', 'Baseline seeds', num('baselineSeeds', '3')),
    field('seed', 'Seed', num('seed', 'random')),
    field('paperEvery', 'Paper every', num('paperEvery', 'server default')),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Start'), h('span', { class: 'form-status' })));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    for (const e of form.querySelectorAll('.error')) e.textContent = '';
    form.querySelector('.form-status').textContent = '';
    const body = {};
    for (const el of form.elements) {
      if (!el.name || el.value === '') continue;
      body[el.name] = el.type === 'number' ? Number(el.value) : el.value;
    }
    if (!needToken()) return;
    try {
      const c = await api('campaigns', { method: 'POST', body });
      form.querySelector('.form-status').textContent = 'Started ' + c.id;
      location.hash = '#/campaigns/' + encodeURIComponent(c.id);
    } catch (e) {
      if (!(e instanceof APIError)) throw e;
      if (e.status === 401) sessionStorage.removeItem(TOKEN_KEY);
      const slot = e.detail.field && form.querySelector('[data-error-for="' + CSS.escape(e.detail.field) + '"]');
      (slot || form.querySelector('.form-status')).textContent = e.message;
      form.querySelector('.form-status').dataset.status = String(e.status);
    }
  });
  return form;
}

async function campaignView(root, id) {
  const c = await api('campaigns/' + encodeURIComponent(id));
  const p = c.progress;
  const head = h('div', { class: 'cards' },
    card('Status', h('span', { class: 'status ' + c.status }, c.status)),
    card('Domain', link('#/leaderboard/' + c.domain, c.domain)),
    card('Progress', p ? progressBar(p.done, p.total) : '–'),
    card('Phase', p ? p.phase : '–'),
    card('Noise floor', p && p.baseline && p.baseline.floor ? fmt(p.baseline.floor.mean) + ' ± ' + fmt(p.baseline.floor.sd) : '–'),
    card('Workflow', temporalLink(c.workflowId, c.links.temporalUI)),
    card('', stopButton(c)));
  root.append(h('h1', null, 'Campaign ' + c.id), head);
  if (c.error) root.append(h('p', { class: 'error' }, c.error));
  if (p && p.agents) {
    const agents = Object.values(p.agents).sort((a, b) => a.agent.localeCompare(b.agent));
    root.append(section('Agents', table([
      { label: 'Agent', cell: (a) => a.agent },
      { label: 'Status', cell: (a) => a.status },
      { label: 'Progress', cell: (a) => progressBar(a.done, a.total) },
      { label: 'New bests', num: true, cell: (a) => a.newBests },
      { label: 'Best', num: true, cell: (a) => a.best ? fmt(a.best.metric !== undefined ? a.best.metric : a.best.value) : '–' },
      { label: 'Papers', num: true, cell: (a) => a.papers || 0 },
      { label: 'Workflow', cell: (a) => temporalLink(c.id + '/' + a.agent) },
    ], agents)));
  }
  const chartEl = h('div', { class: 'chart', dataset: { chart: 'campaign-metric' } });
  const t = table(experimentCols(false), [], { name: 'experiments' });
  const all = [];
  const pg = pager(t, async (cursor) => {
    const r = await api('experiments?limit=' + PAGE + '&campaign=' + encodeURIComponent(c.id) + (cursor ? '&cursor=' + encodeURIComponent(cursor) : ''));
    all.push(...r.experiments);
    return { rows: r.experiments, next: r.nextCursor };
  });
  await pg.more();
  root.append(section('Metric by experiment (loaded rows)', chartEl), section('Experiments', t, pg.btn));
  if (all.length) {
    lineChart(chartEl, { xLabel: 'experiment', yLabel: 'validation metric', xs: all.map((_, i) => i + 1),
      series: [{ label: 'validation', values: all.map((e) => e.metric) }, { label: 'test', values: all.map((e) => e.testMetric ?? null) }] });
  } else chartEl.append(h('p', { class: 'muted' }, 'No experiments yet.'));
  return 'campaign';
}

function card(label, value) { return h('div', { class: 'card' }, h('div', { class: 'card-label' }, label), h('div', { class: 'card-value' }, value)); }

function experimentCols(withCampaign) {
  return [
    { label: 'Experiment', cell: (e) => expLink(e.id) },
    withCampaign && { label: 'Campaign', cell: (e) => campLink(e.campaignId) },
    { label: 'Agent', cell: (e) => e.agent },
    { label: 'Run', num: true, cell: (e) => e.runNumber },
    { label: 'Validation', num: true, cell: (e) => fmt(e.metric) },
    { label: 'Test (held out)', num: true, cell: (e) => fmt(e.testMetric) },
    { label: 'Hypothesis', cell: (e) => receiptOf(e).hypothesis || (e.baseline ? 'baseline' : '') },
    { label: '', cell: (e) => (e.isNewBest ? h('span', { class: 'badge' }, 'new best') : e.baseline ? h('span', { class: 'badge muted' }, 'baseline') : '') },
  ].filter(Boolean);
}

// ---------- leaderboards ----------

async function leaderboardsView(root) {
  const d = await api('domains');
  root.append(h('h1', null, 'Leaderboards'), h('ul', { class: 'domains' }, d.domains.map((x) =>
    h('li', null, link('#/leaderboard/' + x.name, x.name), ' — ', x.metric.name + ' (' + x.metric.direction + '). ', h('span', { class: 'muted' }, x.description)))));
  return 'leaderboards';
}

async function leaderboardView(root, domain) {
  const [lb, doms] = await Promise.all([api('domains/' + encodeURIComponent(domain) + '/leaderboard?limit=50'), api('domains')]);
  const nav = h('div', { class: 'tabs' }, doms.domains.map((x) => link('#/leaderboard/' + x.name, x.name, { class: x.name === domain ? 'active' : null })));
  const floors = new Map();
  for (const e of lb.entries) if (e.noiseFloor && !floors.has(e.campaignId)) floors.set(e.campaignId, e.noiseFloor);
  root.append(h('h1', null, 'Leaderboard: ' + domain), nav,
    h('p', null, 'Metric ', h('b', null, lb.metric.name), ' (' + lb.metric.direction + '). Ranked by the validation split; the held-out test split is shown beside it and never used for ranking.'),
    section('Noise floor', floors.size ? table([
      { label: 'Campaign', cell: ([c]) => campLink(c) },
      { label: 'Baseline mean', num: true, cell: ([, f]) => fmt(f.mean) },
      { label: 'SD', num: true, cell: ([, f]) => fmt(f.sd) },
      { label: 'Seeds', num: true, cell: ([, f]) => f.n },
      { label: 'Threshold (2σ)', num: true, cell: ([, f]) => fmt(f.threshold) },
    ], [...floors.entries()], { name: 'noise-floor' }) : h('p', { class: 'muted' }, 'No noise floor measured yet.')),
    section('Ranking', table([
      { label: '#', num: true, cell: (e) => e.rank },
      { label: 'Validation', num: true, cell: (e) => fmt(e.metric) },
      { label: 'Test (held out)', num: true, cell: (e) => fmt(e.testMetric) },
      { label: 'Beyond floor', cell: (e) => beyondFloor(e, lb.metric.direction) },
      { label: 'Experiment', cell: (e) => expLink(e.experimentId) },
      { label: 'Campaign', cell: (e) => campLink(e.campaignId) },
      { label: 'Agent', cell: (e) => e.agent },
      { label: 'Hypothesis', cell: (e) => e.hypothesis || (e.baseline ? 'baseline' : '') },
    ], lb.entries, { name: 'leaderboard', empty: 'No experiments in this domain yet.' })));
  return 'leaderboard';
}

function beyondFloor(e, direction) {
  const f = e.noiseFloor;
  if (!f || e.baseline) return '–';
  const gain = direction === 'minimize' ? f.mean - e.metric : e.metric - f.mean;
  return h('span', { class: gain > f.threshold ? 'good' : 'muted' }, (gain > f.threshold ? 'yes ' : 'no ') + '(' + fmt(gain) + ')');
}

// ---------- experiments ----------

async function experimentsView(root, _id, query) {
  const q = new URLSearchParams(query);
  const filt = ['campaign', 'domain', 'agent'].filter((k) => q.get(k)).map((k) => '&' + k + '=' + encodeURIComponent(q.get(k))).join('');
  const t = table(experimentCols(true), [], { name: 'experiments' });
  const pg = pager(t, async (cursor) => {
    const r = await api('experiments?limit=' + PAGE + filt + (cursor ? '&cursor=' + encodeURIComponent(cursor) : ''));
    return { rows: r.experiments, next: r.nextCursor };
  });
  await pg.more();
  root.append(h('h1', null, 'Experiments'), h('p', { class: 'muted' }, 'Oldest first, ' + PAGE + ' a page.'), t, pg.btn);
  return 'experiments';
}

async function experimentView(root, id) {
  const e = await api('experiments/' + encodeURIComponent(id));
  const r = receiptOf(e);
  const res = r.result || {};
  root.append(h('h1', null, 'Experiment ' + short(e.id, 16)),
    h('div', { class: 'cards' },
      card('Validation', fmt(e.metric)), card('Test (held out)', fmt(e.testMetric)),
      card('Campaign', campLink(e.campaignId)), card('Agent', e.agent + ' #' + e.runNumber),
      card('Domain', link('#/leaderboard/' + e.domain, e.domain)), card('Proposer', r.proposer || '–'),
      card('Noise floor', r.noiseFloor ? fmt(r.noiseFloor.mean) + ' ± ' + fmt(r.noiseFloor.sd) : '–'),
      card('Workflow', temporalLink(e.campaignId + '/' + e.agent))),
    h('p', { class: 'hypothesis' }, r.hypothesis || ''));
  const chartEl = h('div', { class: 'chart', dataset: { chart: 'loss' } });
  root.append(section('Loss curve', chartEl));
  const curve = res.lossCurve || [];
  if (curve.length) {
    lineChart(chartEl, { xLabel: 'step', yLabel: 'loss', xs: curve.map((p) => p[0]), series: [{ label: 'loss', values: curve.map((p) => p[1]) }] });
  } else chartEl.append(h('p', { class: 'muted' }, 'This domain reports no loss curve; the run\'s values are below.'));
  const vals = Object.entries(res.values || {});
  if (vals.length) root.append(section('Values', table([{ label: 'Name', cell: (v) => v[0] }, { label: 'Value', num: true, cell: (v) => fmt(v[1]) }], vals, { name: 'values' })));
  const parents = r.parents || [];
  const loaded = await Promise.all(parents.map((p) => api('experiments/' + encodeURIComponent(p)).catch(() => null)));
  const diff = h('div', { dataset: { diff: '' } });
  if (!parents.length) diff.append(h('p', { class: 'muted' }, 'No parents: this run starts from the baseline config.'), configTable(r.config || {}));
  for (const [i, p] of loaded.entries()) {
    diff.append(h('h3', null, 'Against parent ', p ? expLink(p.id) : short(parents[i])));
    diff.append(p ? diffTable(receiptOf(p).config || {}, r.config || {}) : h('p', { class: 'muted' }, 'parent not in this site\'s database'));
  }
  root.append(section('Config diff', diff), section('Hypothesis lineage', await lineage(e)));
  if (e.artifacts && Object.keys(e.artifacts).length) {
    root.append(section('Artifacts', h('ul', null, Object.keys(e.artifacts).map((n) => h('li', null, link('/api/v1/experiments/' + encodeURIComponent(e.id) + '/artifacts/' + encodeURIComponent(n), n))))));
  }
  return 'experiment';
}

const show = (v) => (v === undefined ? '—' : typeof v === 'object' ? JSON.stringify(v) : String(v));

function configTable(cfg) {
  return table([{ label: 'Key', cell: (k) => k }, { label: 'Value', cell: (k) => show(cfg[k]) }], Object.keys(cfg).sort(), { name: 'config' });
}

function diffTable(a, b) {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort().filter((k) => show(a[k]) !== show(b[k]));
  if (!keys.length) return h('p', { class: 'muted' }, 'Same config as this parent (a re-run with another seed).');
  return table([
    { label: 'Key', cell: (k) => k },
    { label: 'Parent', cell: (k) => h('span', { class: 'del' }, show(a[k])) },
    { label: 'This run', cell: (k) => h('span', { class: 'add' }, show(b[k])) },
  ], keys, { name: 'diff' });
}

// lineage follows the main parent (inspiredBy, else the first parent) back
// to the root, at most 20 steps.
async function lineage(e) {
  const chain = [e];
  let cur = e;
  for (let i = 0; i < 20; i++) {
    const r = receiptOf(cur);
    const next = r.inspiredBy || (r.parents && r.parents[0]);
    if (!next) break;
    try { cur = await api('experiments/' + encodeURIComponent(next)); } catch { break; }
    chain.push(cur);
  }
  return h('ol', { class: 'lineage', dataset: { lineage: chain.length } }, chain.map((x) => h('li', null,
    expLink(x.id), ' ', h('span', { class: 'muted' }, x.agent + ' #' + x.runNumber + ' · ' + fmt(x.metric)), ' — ', receiptOf(x).hypothesis || (x.baseline ? 'baseline' : ''))));
}

// ---------- papers and breakthroughs ----------

function paperCols() {
  return [
    { label: 'Title', cell: (p) => paperLink(p.id, p.title || p.id) },
    { label: 'Domain', cell: (p) => p.domain },
    { label: 'Campaign', cell: (p) => campLink(p.campaignId) },
    { label: 'Agent', cell: (p) => p.agent + ' #' + p.number },
    { label: 'Status', cell: (p) => h('span', { class: 'status ' + p.status }, p.status) },
    { label: 'Score', num: true, cell: (p) => fmt(p.score, 1) },
    { label: '', cell: (p) => (p.breakthrough ? h('span', { class: 'badge' }, 'breakthrough') : '') },
  ];
}

async function papersView(root, _id, _q, breakthroughs) {
  const r = await api((breakthroughs ? 'breakthroughs' : 'papers') + '?limit=50');
  const rows = r.breakthroughs || r.papers || [];
  root.append(h('h1', null, breakthroughs ? 'Breakthroughs' : 'Papers'),
    breakthroughs ? h('p', { class: 'muted' }, 'Papers whose peer reviews passed and whose claim beat the noise floor.') : '',
    table(paperCols(), rows, { name: breakthroughs ? 'breakthroughs' : 'papers', empty: breakthroughs ? 'No breakthroughs yet.' : 'No papers yet.' }));
  return breakthroughs ? 'breakthroughs' : 'papers';
}

async function paperView(root, id) {
  const r = await api('papers/' + encodeURIComponent(id));
  const p = r.paper;
  root.append(h('h1', null, p.title || 'Paper'),
    h('div', { class: 'cards' }, card('Status', h('span', { class: 'status ' + p.status }, p.status)), card('Score', fmt(p.score, 1)),
      card('Breakthrough', p.breakthrough ? 'yes' : 'no'), card('Campaign', campLink(p.campaignId)), card('Agent', p.agent + ' #' + p.number), card('Review workflow', temporalLink('review-' + p.id))),
    section('Paper', renderMarkdown(h('article', { class: 'markdown' }), r.markdown)),
    section('Reviews', r.reviews.length ? h('div', { class: 'reviews' }, r.reviews.map((sr) => reviewCard(sr.review))) : h('p', { class: 'muted' }, 'No reviews yet.')));
  return 'paper';
}

function reviewCard(v) {
  const rp = v.reproduction || {};
  return h('div', { class: 'review' },
    h('h3', null, 'Score ' + v.score + '/10 ', h('span', { class: 'muted' }, 'by ' + short(v.reviewer) + ' on ' + short(v.node))),
    table([{ label: 'Criterion', cell: (c) => c.name }, { label: 'Points', num: true, cell: (c) => c.points + '/' + c.max }, { label: 'Note', cell: (c) => c.note }], v.rubric || []),
    h('p', null, 'Reproduction: ', rp.ran ? 'claimed ' + fmt(rp.claimed) + ', observed ' + fmt(rp.observed) + ' (tolerance ' + fmt(rp.tolerance) + ')' : 'not run' + (rp.error ? ': ' + rp.error : '')),
    (v.reasons || []).length ? h('ul', null, v.reasons.map((x) => h('li', null, x))) : '');
}

// ---------- training ----------

async function trainingsView(root) {
  const r = await api('training-runs');
  root.append(h('h1', null, 'Training runs (DiLoCo)'), table([
    { label: 'Run', cell: (x) => link('#/training/' + encodeURIComponent(x.id), x.id) },
    { label: 'Status', cell: (x) => h('span', { class: 'status ' + x.status }, x.status) },
    { label: 'Round', cell: (x) => (x.live || progressOf(x)) ? progressBar((x.live || progressOf(x)).round, (x.live || progressOf(x)).rounds) : '–' },
    { label: 'Val loss', num: true, cell: (x) => fmt((x.live || progressOf(x) || {}).valLoss) },
    { label: 'Created', cell: (x) => when(x.createdAt) },
    { label: 'Workflow', cell: (x) => temporalLink(x.workflowId, x.links && x.links.temporalUI) },
  ], r.trainingRuns, { name: 'training', empty: 'No training runs yet (POST /api/v1/training-runs or `hyperspace train`).' }));
  return 'training';
}

function progressOf(x) { return x.progress && typeof x.progress === 'object' ? x.progress : null; }

async function trainingView(root, id) {
  const r = await api('training-runs/' + encodeURIComponent(id) + '?rounds=true');
  const p = r.live || progressOf(r) || {};
  const rounds = r.rounds || [];
  const hist = p.history || [];
  root.append(h('h1', null, 'Training run ' + r.id), h('div', { class: 'cards' },
    card('Status', h('span', { class: 'status ' + r.status }, r.status)), card('Rounds', progressBar(p.round || 0, p.rounds || 0)),
    card('Val loss', fmt(p.valLoss)), card('Test loss', fmt(p.testLoss)),
    card('Bytes up / down', bytes(p.bytesUp) + ' / ' + bytes(p.bytesDown)), card('Remote deltas', p.remote ?? 0),
    card('Result', r.resultId ? expLink(r.resultId) : '–'), card('Workflow', temporalLink(r.workflowId, r.links.temporalUI))));
  const lossEl = h('div', { class: 'chart', dataset: { chart: 'rounds' } });
  root.append(section('Validation loss by round', lossEl));
  if (rounds.length) lineChart(lossEl, { xLabel: 'round', yLabel: 'val loss', xs: rounds.map((x) => x.round), series: [{ label: 'val loss', values: rounds.map((x) => x.valLoss) }] });
  else lossEl.append(h('p', { class: 'muted' }, 'No round closed yet.'));
  if (hist.length) {
    root.append(section('Rounds', table([
      { label: 'Round', num: true, cell: (x) => x.round }, { label: 'Val loss', num: true, cell: (x) => fmt(x.valLoss) },
      { label: 'Accepted', num: true, cell: (x) => x.accepted }, { label: 'Dropped', num: true, cell: (x) => x.dropped },
      { label: 'Bytes up', num: true, cell: (x) => bytes(x.bytesUp) }, { label: 'Bytes down', num: true, cell: (x) => bytes(x.bytesDown) },
      { label: 'Contributors', cell: (x) => (x.contributors || []).map((c) => short(c)).join(', ') },
    ], hist, { name: 'rounds' })));
  }
  const contrib = Object.entries(p.contributors || {});
  root.append(section('Contributors', table([{ label: 'Worker or node', cell: (c) => c[0] }, { label: 'Accepted deltas', num: true, cell: (c) => c[1] }], contrib, { name: 'contributors', empty: 'none yet' })));
  return 'training-run';
}

// ---------- points and pulse ----------

async function pointsView(root) {
  const [pts, rounds, ch] = await Promise.all([api('points?limit=50'), api('pulse/rounds?limit=' + PAGE), api('challenges?limit=' + PAGE)]);
  const balances = pts.balances || pts.points || [];
  root.append(h('h1', null, 'Points and pulse'),
    section('Balances', table([
      { label: 'Peer', cell: (b) => h('code', null, short(b.peerId, 20)) }, { label: 'Points', num: true, cell: (b) => fmt(b.points, 2) },
      { label: 'Bonded', num: true, cell: (b) => fmt(b.bonded, 2) }, { label: 'Entries', num: true, cell: (b) => b.entries }, { label: 'Last round', num: true, cell: (b) => b.lastRound ?? '–' },
    ], balances, { name: 'balances', empty: 'No points credited yet.' })),
    section('Pulse rounds', table([
      { label: 'Round', num: true, cell: (r) => r.round }, { label: 'Status', cell: (r) => r.status },
      { label: 'Presences', num: true, cell: (r) => r.presences }, { label: 'Validators', num: true, cell: (r) => r.validators },
      { label: 'Credited', num: true, cell: (r) => r.credited }, { label: 'Points', num: true, cell: (r) => fmt(r.points, 2) },
      { label: 'Bytes', num: true, cell: (r) => bytes(r.bytes) }, { label: 'Wall', num: true, cell: (r) => r.wallMs + ' ms' },
      { label: 'Workflow', cell: (r) => temporalLink(r.workflowId) },
    ], rounds.rounds || [], { name: 'pulse', empty: 'No pulse rounds yet.' })),
    section('Challenges (fraud proofs)', table([
      { label: 'Challenge', cell: (c) => short(c.id) }, { label: 'Receipt', cell: (c) => expLink(c.receiptId) }, { label: 'Status', cell: (c) => c.status },
      { label: 'Winner', cell: (c) => short(c.winner) }, { label: 'Rounds', num: true, cell: (c) => c.rounds }, { label: 'Bytes', num: true, cell: (c) => bytes(c.bytes) },
      { label: 'Workflow', cell: (c) => temporalLink(c.workflowId || 'challenge-' + c.id) },
    ], ch.challenges || [], { name: 'challenges', empty: 'No challenges.' })));
  return 'points';
}

// ---------- peers and mesh health ----------

async function peersView(root) {
  const [nodes, peers, status] = await Promise.all([api('nodes'), api('peers').catch((e) => ({ error: e })), api('status').catch(() => null)]);
  root.append(h('h1', null, 'Peers and mesh health'));
  root.append(section('This site\'s nodes', table([
    { label: 'Peer', cell: (n) => h('code', null, short(n.peerId, 24)) }, { label: 'Queue', cell: (n) => n.queue || n.taskQueue || '' },
    { label: 'Addresses', cell: (n) => (n.addrs || []).join(' ') }, { label: 'Seen', cell: (n) => when(n.lastSeen || n.seenAt || n.updatedAt) },
  ], nodes.nodes, { name: 'nodes', empty: 'No live nodes.' })));
  if (peers.error) {
    root.append(section('Connected peers', h('p', { class: 'muted' }, peers.error.message)));
  } else {
    const st = peers.stats || {};
    root.append(section('This node', h('div', { class: 'cards' },
      card('Peer id', h('code', null, short(peers.self.id, 24))), card('Connected peers', st.Peers ?? peers.peers.length),
      card('Published', st.Published ?? 0), card('Delivered', st.Delivered ?? 0), card('Duplicates', st.Duplicates ?? 0),
      card('Mesh (by topic)', Object.entries(st.Mesh || {}).map(([k, v]) => k + ': ' + v).join(', ') || '–'),
      card('Sync rounds / failures', (st.SyncRounds ?? 0) + ' / ' + (st.SyncFailures ?? 0)),
      card('Sync bytes out / in', bytes(st.SyncBytesSent) + ' / ' + bytes(st.SyncBytesReceived)),
      card('Rejected', Object.entries(st.Rejected || {}).map(([k, v]) => k + ': ' + v).join(', ') || '0'))),
    section('Connected peers', table([
      { label: 'Peer', cell: (p) => h('code', null, short(p.id, 24)) }, { label: 'Score', num: true, cell: (p) => fmt(p.score, 2) },
      { label: 'Latency', num: true, cell: (p) => (p.latencyMs ? fmt(p.latencyMs, 2) + ' ms' : '–') },
      { label: 'Mesh topics', cell: (p) => p.mesh.join(', ') }, { label: 'Addresses', cell: (p) => (p.addrs || []).join(' ') },
    ], peers.peers, { name: 'peers', empty: 'No peers connected.' })));
  }
  if (status) root.append(section('Site status', h('pre', { class: 'json' }, JSON.stringify(status, null, 2))));
  return 'peers';
}

// ---------- live feed ----------

async function feedView(root) {
  const t = table([
    { label: 'Received', cell: (f) => when(f.receivedAt) }, { label: 'From', cell: (f) => (f.local ? 'this node' : short(f.from, 16)) },
    { label: 'Domain', cell: (f) => f.domain }, { label: 'Campaign', cell: (f) => f.campaign }, { label: 'Agent', cell: (f) => f.agent },
    { label: 'Metric', num: true, cell: (f) => fmt(f.metric) }, { label: 'Hypothesis', cell: (f) => f.hypothesis },
    { label: '', cell: (f) => (f.isNewBest ? h('span', { class: 'badge' }, 'new best') : '') },
  ], [], { name: 'feed' });
  const tbody = t.querySelector('tbody');
  const state = h('p', { class: 'muted', id: 'feed-state' }, 'connecting…');
  root.append(h('h1', null, 'Live findings'), state, t);
  let recent;
  try { recent = await api('gossip?limit=50'); } catch (e) { state.textContent = e.message; return 'feed'; }
  t.add(recent.findings);
  const seen = new Set(recent.findings.map((f) => f.id));
  feed = new EventSource('/api/v1/gossip/stream');
  feed.addEventListener('open', () => { state.textContent = 'live: new findings appear at the top as they are gossiped'; state.dataset.live = '1'; });
  feed.addEventListener('error', () => { state.textContent = 'disconnected; retrying…'; delete state.dataset.live; });
  feed.addEventListener('finding', (ev) => {
    const f = JSON.parse(ev.data);
    if (seen.has(f.id)) return;
    seen.add(f.id);
    const before = tbody.firstChild;
    t.add([f]);
    const row = tbody.lastChild;
    row.dataset.finding = f.id;
    row.classList.add('fresh');
    tbody.insertBefore(row, before);
    while (tbody.children.length > 200) tbody.lastChild.remove();
  });
  return 'feed';
}

// ---------- router ----------

const routes = [
  [/^$/, campaignsView], [/^campaigns$/, campaignsView], [/^campaigns\/(.+)$/, campaignView],
  [/^leaderboards$/, leaderboardsView], [/^leaderboard\/(.+)$/, leaderboardView],
  [/^experiments$/, experimentsView], [/^experiments\/(.+)$/, experimentView],
  [/^papers$/, papersView], [/^papers\/(.+)$/, paperView],
  [/^breakthroughs$/, (root) => papersView(root, null, null, true)],
  [/^training$/, trainingsView], [/^training\/(.+)$/, trainingView],
  [/^points$/, pointsView], [/^peers$/, peersView], [/^feed$/, feedView],
];

function showError(e) {
  const main = document.getElementById('main');
  if (e instanceof APIError && e.status === 401 && !config.publicReads) { location.href = '/login?next=' + encodeURIComponent(location.hash); return; }
  main.append(h('p', { class: 'error', role: 'alert' }, e.message || String(e)));
  console.error(e);
}

let generation = 0;
async function route() {
  const gen = ++generation;
  delete document.body.dataset.ready;
  if (feed) { feed.close(); feed = null; }
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, query] = raw.split('?');
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.getAttribute('href') === '#/' + path.split('/')[0]);
  const main = document.getElementById('main');
  main.replaceChildren();
  for (const [re, view] of routes) {
    const m = re.exec(path);
    if (!m) continue;
    const root = h('div', null);
    try {
      const name = await view(root, m[1] && decodeURIComponent(m[1]), query || '');
      if (gen !== generation) return;
      main.replaceChildren(root);
      // Milliseconds since the page's navigation started: its load time
      // when this view was the first (the benchmark loads each view afresh).
      document.body.dataset.readyMs = performance.now().toFixed(1);
      document.body.dataset.ready = name;
    } catch (e) {
      if (gen !== generation) return;
      main.replaceChildren(root);
      showError(e);
      document.body.dataset.ready = 'error';
    }
    return;
  }
  main.append(h('p', { class: 'error' }, 'No page ' + path));
  document.body.dataset.ready = 'error';
}

async function start() {
  try { config = await api('dashboard'); } catch (e) { showError(e); }
  const who = document.getElementById('who');
  if (config.token) who.textContent = config.token.name + ' (' + config.token.scopes.join(',') + ')';
  else if (config.publicReads) who.textContent = 'public reads';
  document.getElementById('logout').addEventListener('click', async () => {
    sessionStorage.removeItem(TOKEN_KEY);
    await api('/api/v1/session', { method: 'DELETE' }).catch(() => {});
    location.href = '/login';
  });
  window.addEventListener('hashchange', route);
  await route();
}

start();
