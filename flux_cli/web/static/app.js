// Entry point: the state, the SSE stream (/api/events), hash routing, the filter bar, banner and counter.
//   #/                    the graph
//   #/object?id=<id>      one object's page (the id URL-encoded)
import { getJSON } from './api.js';
import { h, $, objectHref, plural } from './dom.js';
import { GraphView } from './graph.js';
import { initObjectPage, showObject, hideObject, shownId, objectChanged, actionEvent } from './object.js';

const state = {
  nodes: new Map(),        // id -> Node (the contract's shape)
  forbidden: [],           // [{kind, namespace, message}]
  namespaces: [], kinds: [], identity: '',
  seq: -1,
  loaded: false,           // a `graph` arrived at least once
  connection: 'connecting',// connecting | open | lost
  connError: null,         // why the stream is down, when a probe could tell (an ApiError)
  errors: [],              // other errors shown in the banner until dismissed
};
const body = document.body;
const graph = new GraphView($('#graph'), id => {
  if (id.startsWith('group:')) { expanded.add(id.slice(6)); redraw(null); } else location.hash = objectHref(id);
});
initObjectPage($('#object-view'));

// --- filters (local; the server's ?namespace=&kind=&state=&q= are not needed for a few thousand nodes) --
const FAILING = new Set(['failed', 'stalled', 'missing']);
const filterEls = ['namespace', 'kind', 'state', 'text'].map(k => $('#filter-' + k));

function matcher() {
  const [ns, kind, st, text] = filterEls.map(el => el.value.trim());
  const q = text.toLowerCase();
  return n => (!ns || n.namespace === ns) && (!kind || n.kind === kind) &&
    (!st || (st === 'failing' ? FAILING.has(n.state) : st === 'blocked' ? n.blocked : n.state === st)) &&
    (!q || n.id.toLowerCase().includes(q));
}
const filtered = () => filterEls.some(el => el.value.trim());

function setOptions(select, values, allLabel) {
  const want = ['', ...values];
  if (select.value && !want.includes(select.value)) want.push(select.value);   // keep the user's choice
  const have = [...select.options].map(o => o.value);
  if (have.join('\n') === want.join('\n')) return;
  const chosen = select.value;
  select.replaceChildren(...want.map(v => h('option', { value: v }, v || allLabel)));
  select.value = chosen;
}

function refreshFilterOptions() {
  const ns = new Set(state.namespaces), kinds = new Set(state.kinds);
  for (const n of state.nodes.values()) { if (n.namespace) ns.add(n.namespace); kinds.add(n.kind); }
  setOptions(filterEls[0], [...ns].sort(), 'all namespaces');
  setOptions(filterEls[1], [...kinds].sort(), 'all kinds');
}

for (const el of filterEls) el.addEventListener('input', () => redraw(null));
$('#filters').addEventListener('submit', e => e.preventDefault());

// --- drawing -------------------------------------------------------------------------------------------
// More than GROUP applied objects (flux: false) of one manager are drawn as one node `group:<manager id>`
// until clicked; `expanded` (manager ids) outlives live updates. A search never groups.
const GROUP = 8, expanded = new Set();
const WORSE = ['ready', 'suspended', 'reconciling', 'unknown', 'missing', 'failed', 'stalled'];

function groups(nodes) {
  const by = new Map(), alias = new Map(), made = [], open = [];
  if (filterEls[3].value.trim()) return { alias, made, open };
  for (const n of nodes) {
    const m = !n.flux && n.deps?.find(d => d.relation === 'applies')?.id;
    if (m) by.has(m) ? by.get(m).push(n) : by.set(m, [n]);
  }
  for (const [m, list] of by) {
    if (list.length <= GROUP) continue;
    if (expanded.has(m)) { open.push([m, list.length]); continue; }
    const id = 'group:' + m, kinds = new Map();
    let st = 'ready', blocked = false;
    for (const c of list) {
      alias.set(c.id, id);
      kinds.set(c.kind, (kinds.get(c.kind) || 0) + 1);
      if (WORSE.indexOf(c.state) > WORSE.indexOf(st)) st = c.state;
      blocked ||= c.blocked;
    }
    const parts = [...kinds].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([k, c]) => `${k} ×${c}`);
    let kind = parts[0];
    for (const p of parts.slice(1)) { if (kind.length + p.length > 28) { kind += ', …'; break; } kind += ', ' + p; }
    const label = `${list.length} objects applied by ${m}, click to expand`;
    made.push({ id, groupOf: m, kind, name: `${list.length} objects`, state: st, blocked, label,
      title: [label, ...parts].join('\n') });
  }
  return { alias, made, open };
}

let openKey = '';
function renderOpen(open) {
  const key = open.map(o => o.join()).join('\n');
  if (key === openKey) return;
  openKey = key;
  const el = $('#groups');
  el.replaceChildren(...open.map(([m, count]) => h('button', { type: 'button', 'data-collapse': m },
    `− collapse ${state.nodes.get(m)?.name || m} (${count})`)));
  el.hidden = !open.length;
}
$('#groups').addEventListener('click', e => {
  const b = e.target.closest('[data-collapse]');
  if (b) { expanded.delete(b.dataset.collapse); redraw(null); }
});

function redraw(changed) {
  const ok = matcher();
  const nodes = [...state.nodes.values()].filter(ok);
  const { alias, made, open } = groups(nodes);
  const drawn = alias.size ? nodes.filter(n => !alias.has(n.id)).concat(made) : nodes;
  const shown = new Set(drawn.map(n => n.id)), seen = new Set(), edges = [];
  for (const n of nodes) {
    const to = alias.get(n.id) || n.id;
    for (const d of n.deps || []) {
      const from = alias.get(d.id) || d.id, key = `${from}>${to}>${d.relation}`;
      if (from !== to && shown.has(from) && !seen.has(key)) { seen.add(key); edges.push({ from, to, relation: d.relation }); }
    }
  }
  if (changed) for (const g of made) changed.add(g.id);   // a group shows its members' state and count
  graph.render(drawn, edges, changed);
  renderOpen(open);

  const failing = nodes.filter(n => FAILING.has(n.state)).length, blocked = nodes.filter(n => n.blocked).length;
  $('#count-objects').textContent = nodes.length;
  $('#count-failing').textContent = failing;
  $('#count-blocked').textContent = blocked ? `, ${blocked} blocked` : '';
  $('#count-total').textContent = filtered() ? ` (filtered from ${state.nodes.size})` : '';

  const status = $('#graph-status');
  status.textContent = !state.loaded ? 'connecting…' : !state.nodes.size
    ? (state.forbidden.length ? 'No objects to show: see the forbidden list above.' : 'No Flux objects found.')
    : !nodes.length ? 'No object matches the filters.' : '';
  status.hidden = !status.textContent;
}

function renderBanner() {
  const items = [];
  if (state.connection === 'lost') {
    items.push(h('div', { class: 'banner-item disconnected' }, 'disconnected, retrying…',
      state.connError?.status ? ` (${state.connError.text})` : ''));   // e.g. 401: the session cookie is gone
  }
  // one line per namespace: the kinds refused there, and the apiserver's words for the first of them
  const byNamespace = new Map();
  for (const f of state.forbidden) {
    const ns = f.namespace || '';
    if (!byNamespace.has(ns)) byNamespace.set(ns, []);
    byNamespace.get(ns).push(f);
  }
  for (const [ns, refused] of byNamespace) {
    const where = ns ? `in namespace ${ns}` : 'in all namespaces';
    const kinds = refused.map(f => plural(f.kind)).join(', ');
    items.push(h('div', { class: 'banner-item forbidden', 'data-kind': refused.map(f => f.kind).join(' '),
      'data-namespace': ns, title: refused.map(f => f.message).join('\n') },
      h('strong', {}, 'forbidden'), `: you cannot list ${kinds} ${where} — the apiserver says: ${refused[0].message}`));
  }
  if (state.failing?.length) {  // watches that fail for another reason than RBAC: the data may be stale
    const f = state.failing;
    items.push(h('div', { class: 'banner-item failing' }, h('strong', {}, 'not live'),
      `: cannot watch ${f.map(x => plural(x.kind)).join(', ')} — ${f[0].message} (retrying; what is shown may be out of date)`));
  }
  state.errors.forEach((text, i) => items.push(h('div', { class: 'banner-item error' }, text, ' ',
    h('button', { type: 'button', class: 'dismiss', 'aria-label': 'dismiss', onclick: () => {
      state.errors.splice(i, 1);
      renderBanner();
    } }, '×'))));
  const banner = $('#banner');
  banner.replaceChildren(...items);
  banner.hidden = !items.length;
  body.dataset.connection = state.connection;
}

function showError(text) {
  if (!state.errors.includes(text)) state.errors.push(text);
  renderBanner();
}
window.addEventListener('error', e => showError(`internal error: ${e.message}`));
window.addEventListener('unhandledrejection', e => showError(`internal error: ${e.reason?.text || e.reason?.message || e.reason}`));

// --- the model -----------------------------------------------------------------------------------------
function applyGraph(g) {
  state.nodes = new Map((g.nodes || []).map(n => [n.id, n]));
  state.forbidden = g.forbidden || [];
  state.failing = g.errors || [];
  state.namespaces = g.namespaces || [];
  state.kinds = g.kinds || [];
  state.identity = g.identity || '';
  state.seq = g.seq ?? state.seq;
  state.loaded = true;
  $('#identity').textContent = state.identity ? `as ${state.identity}` : '';
  refreshFilterOptions();
  redraw(null);
  renderBanner();
  if (shownId()) objectChanged();
  body.dataset.seq = state.seq;
}

function applyChange(c) {
  if (typeof c.seq === 'number' && c.seq <= state.seq) return;     // already seen (a replay)
  const changed = new Set();
  for (const n of c.nodes || []) { state.nodes.set(n.id, n); changed.add(n.id); }
  for (const id of c.removed || []) { state.nodes.delete(id); changed.add(id); }
  if (Array.isArray(c.forbidden)) state.forbidden = c.forbidden;  // the current list, when present
  if (Array.isArray(c.errors)) state.failing = c.errors;
  state.seq = c.seq ?? state.seq;
  refreshFilterOptions();
  redraw(changed);
  renderBanner();
  if (changed.has(shownId())) objectChanged();
  body.dataset.seq = state.seq;
}

// --- the stream ----------------------------------------------------------------------------------------
// One stream for all tabs, held by a SharedWorker (stream.js), where there is one; else our own EventSource.
// EventSource retries by itself after a dropped connection, but gives up for good when the server answers
// with an error status (401, 403, 503): then it is reconnected with a growing delay. While down, one
// GET /api/graph tells why (its {error, message}) and still shows the graph if it works.
let backoff = 1000, lastProbe = 0;
const handlers = {
  graph: applyGraph, change: applyChange, action: actionEvent,
  forbidden: d => { state.forbidden = Array.isArray(d) ? d : d.forbidden || []; renderBanner(); redraw(null); },
  reset: () => getJSON('/api/graph').then(applyGraph, e => showError(e.text)),
  open: () => { state.connection = 'open'; state.connError = null; backoff = 1000; renderBanner(); },
  lost: () => { state.connection = 'lost'; renderBanner(); probe(); },
};

function connect() {
  if (window.SharedWorker) {
    const worker = new SharedWorker('/static/stream.js');
    worker.port.onmessage = e => handlers[e.data.type]?.(e.data.data);
    window.addEventListener('pagehide', () => worker.port.postMessage('close'));
    worker.port.start();
    return;
  }
  const source = new EventSource('/api/events');
  for (const type of ['graph', 'change', 'action', 'forbidden', 'reset']) {
    source.addEventListener(type, e => {
      let data;
      try { data = JSON.parse(e.data); } catch { showError(`bad ${type} event from the server`); return; }
      handlers[type](data);
    });
  }
  source.onopen = handlers.open;
  source.onerror = () => {
    handlers.lost();
    if (source.readyState === EventSource.CLOSED) {
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 15000);
    }
  };
}

async function probe() {
  if (Date.now() - lastProbe < 5000) return;
  lastProbe = Date.now();
  try {
    const g = await getJSON('/api/graph');
    if (!state.loaded) applyGraph(g);
    state.connError = null;
  } catch (e) {
    state.connError = e;
  }
  if (state.connection === 'lost') renderBanner();
}

// --- routing -------------------------------------------------------------------------------------------
function route() {
  const m = /^#\/object\?(.*)$/.exec(location.hash);
  const id = m && new URLSearchParams(m[1]).get('id');
  body.dataset.view = id ? 'object' : 'graph';
  $('#graph-view').hidden = !!id;
  $('#object-view').hidden = !id;
  if (id) {
    document.title = `${id} — fluxpy`;
    showObject(id);
  } else {
    document.title = 'fluxpy';
    hideObject();
    if (!graph.fitted) graph.fit();
  }
}

$('#zoom-in').addEventListener('click', () => graph.zoom(1.25));
$('#zoom-out').addEventListener('click', () => graph.zoom(0.8));
$('#zoom-fit').addEventListener('click', () => graph.fit(true));
window.addEventListener('hashchange', route);
window.fluxpy = { state, graph };   // for tests and the console
renderBanner();
redraw(null);
route();
connect();
