// The object page: state, root cause, conditions, revision, history, events, logs, what it applied,
// the diff (Kustomization / HelmRelease) and the actions (confirmed in the <dialog id="confirm">).
import { getJSON, postJSON } from './api.js';
import { h, $, objectHref } from './dom.js';

// data-action, label, POST body, when it is offered, and what the dialog says about it
const ACTIONS = [
  ['reconcile', 'Reconcile', { action: 'reconcile' }, n => n.actions.includes('reconcile'),
    'Ask the controller to reconcile it now.'],
  ['reconcile-with-source', 'Reconcile with source', { action: 'reconcile', withSource: true },
    n => n.actions.includes('reconcile') && n.actions.includes('withSource'),
    'Reconcile its source first, then the object.'],
  ['suspend', 'Suspend', { action: 'suspend' }, (n, s) => n.actions.includes('suspend') && !s,
    'The controller stops reconciling it until it is resumed.'],
  ['resume', 'Resume', { action: 'resume' }, (n, s) => n.actions.includes('resume') && s,
    'The controller reconciles it again.'],
  ['force', 'Force', { action: 'reconcile', force: true }, n => n.actions.includes('force'),
    'Force a one-off install or upgrade, even when nothing changed.'],
  ['reset', 'Reset', { action: 'reconcile', reset: true }, n => n.actions.includes('reset'),
    'Reset the failure counters, then reconcile.'],
];
const DIFF_KINDS = new Set(['Kustomization', 'HelmRelease']);

let root = null;
let current = null;       // {id, data, error}
let diff = null;          // {id, loading, result, error}
let action = null;        // {id, action, phase, message} — the last action seen for the page's object
let objectOpen = false;   // the "Object" <details> stays as the user left it across refreshes
let timer = 0, loading = false, again = false;

export function initObjectPage(el) { root = el; }

export function showObject(id) {
  if (current?.id !== id) {
    current = { id, data: null, error: null };
    if (diff?.id !== id) diff = null;
    if (action?.id !== id) action = null;
    render();
  }
  load();
}

export const shownId = () => current?.id;

// Leaving the page: stop refetching it (the diff and the action status are kept for a return visit).
export function hideObject() {
  clearTimeout(timer);
  current = null;
}

// A `change` (or a new `graph`) carried the page's node: refetch, at most every 300 ms.
export function objectChanged() {
  clearTimeout(timer);
  timer = setTimeout(load, 300);
}

// An SSE `action` event; `requested` -> `done` / `failed`.
export function actionEvent(ev) {
  if (!current || ev.id !== current.id) return;
  action = { ...action, ...ev };
  renderActionStatus();
  if (ev.phase === 'done' || ev.phase === 'failed') objectChanged();
}

async function load() {
  if (!current) return;
  if (loading) { again = true; return; }
  loading = true;
  const id = current.id;
  try {
    const data = await getJSON('/api/object?id=' + encodeURIComponent(id));
    if (current?.id === id) current = { id, data, error: null };
  } catch (e) {
    if (current?.id === id) current = { id, data: current.data, error: e };
  } finally {
    loading = false;
  }
  if (current?.id === id) render();
  if (again) { again = false; load(); }
}

// ---------------------------------------------------------------------------------------------------
function render() {
  const top = root.scrollTop;
  const { id, data, error } = current;
  const node = data?.node;
  const parts = [h('nav', { class: 'crumbs' }, h('a', { href: '#/', id: 'back' }, '← graph'))];
  const head = h('header', { class: 'object-head' }, h('h1', { id: 'object-id' }, id));
  if (node) {
    head.append(h('span', { id: 'object-state', class: `badge state-${node.state}` }, node.state));
    if (node.blocked) head.append(h('span', { class: 'badge blocked' }, 'blocked'));
  }
  parts.push(head);
  if (error) parts.push(h('p', { id: 'object-error', class: 'error', role: 'alert' }, error.text));
  if (!data) {
    if (!error) parts.push(h('p', { id: 'object-loading', class: 'muted' }, 'loading…'));
    root.replaceChildren(...parts);
    return;
  }
  const c = node.cause, broken = node.blocked || node.state !== 'ready';
  const line = data.why?.line || (c && broken ? `root cause: ${c.id}: ${[c.reason, c.message].filter(Boolean).join(': ')}` : '');
  parts.push(h('p', { id: 'root-cause', class: 'root-cause', hidden: !line, title: line }, line));
  if (node.reason || node.message) {
    parts.push(h('p', { id: 'object-message', class: 'message' },
      node.reason ? h('strong', {}, node.reason) : null, node.reason && node.message ? ': ' : '', node.message));
  }
  parts.push(actionsBar(node, data), h('p', { id: 'action-status', class: 'action-status', 'aria-live': 'polite' }));
  parts.push(section('Status', 'status', h('dl', { class: 'facts' },
    fact('Revision', 'revision', data.revision || node.revision),
    fact('Last handled reconcile at', 'last-handled', data.lastHandledReconcileAt),
    node.deps?.length ? fact('Inputs', 'inputs', node.deps.map(d =>
      h('span', { class: 'dep' }, link(d.id), ` (${d.relation})`))) : null)));
  if (data.conditions?.length) parts.push(section('Conditions', 'conditions-section', conditions(data.conditions)));
  if (data.why?.chain?.children?.length) parts.push(section('Why', 'why', h('ul', { id: 'why-chain', class: 'chain' }, chain(data.why.chain))));
  if (node.flux && DIFF_KINDS.has(node.kind)) parts.push(diffSection(id));
  if (data.history?.length) {
    parts.push(section('History', 'history-section', h('div', { class: 'table-wrap' }, table('history', data.history.slice(-10)))));
  }
  parts.push(section('Events', 'events-section', data.events?.length ? eventsTable(data.events) : muted('no events')));
  parts.push(section('Controller logs', 'logs-section', logs(data.logs || [], data.logsNote)));
  if (data.objects?.length) parts.push(section(`Applied objects (${data.objects.length})`, 'objects-section', applied(data.objects)));
  const details = h('details', { id: 'object-details', open: objectOpen },
    h('summary', {}, 'Object'), h('pre', { class: 'json' }, JSON.stringify(data.object ?? {}, null, 2)));
  details.addEventListener('toggle', () => { objectOpen = details.open; });
  parts.push(details);
  root.replaceChildren(...parts);
  renderActionStatus();
  root.scrollTop = top;
}

const muted = text => h('p', { class: 'muted' }, text);
const link = id => h('a', { href: objectHref(id) }, id);
const section = (title, id, ...body) => h('section', { id, class: 'panel' }, h('h2', {}, title), ...body);
const fact = (label, id, value) => [h('dt', {}, label), h('dd', { id }, value == null || value === '' ? '—' : value)];
const cell = v => (v == null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v));

function conditions(list) {
  return h('table', { id: 'conditions' },
    h('thead', {}, h('tr', {}, ['Type', 'Status', 'Reason', 'Message', 'Since'].map(t => h('th', {}, t)))),
    h('tbody', {}, list.map(c => h('tr', { class: `cond-${c.status}` },
      h('td', {}, c.type), h('td', {}, c.status), h('td', {}, c.reason), h('td', { class: 'msg' }, c.message),
      h('td', { class: 'time' }, c.lastTransitionTime)))));
}

function eventsTable(list) {
  return h('table', { id: 'events' },
    h('thead', {}, h('tr', {}, ['Type', 'Reason', 'Message', 'Time', 'Count'].map(t => h('th', {}, t)))),
    h('tbody', {}, list.map(e => h('tr', { class: `ev-${e.type}` },
      h('td', {}, e.type), h('td', {}, e.reason), h('td', { class: 'msg' }, e.message),
      h('td', { class: 'time' }, e.time), h('td', {}, cell(e.count))))));
}

// status.history differs per kind: one column per key the entries have
function table(id, rows) {
  const keys = [...new Set(rows.flatMap(r => Object.keys(r)))].slice(0, 8);
  return h('table', { id },
    h('thead', {}, h('tr', {}, keys.map(k => h('th', {}, k)))),
    h('tbody', {}, rows.map(r => h('tr', {}, keys.map(k => h('td', {}, cell(r[k])))))));
}

function chain(c) {
  return h('li', {}, link(c.id), c.relation ? h('span', { class: 'muted' }, ` ${c.relation}`) : null, ' ',
    h('span', { class: `badge state-${c.state}` }, c.state),
    c.reason || c.message ? h('span', { class: 'msg' }, ` ${[c.reason, c.message].filter(Boolean).join(': ')}`) : null,
    c.children?.length ? h('ul', {}, c.children.map(chain)) : null);
}

function logs(lines, note) {
  const shown = lines.slice(-300);
  return [note ? h('p', { id: 'logs-note', class: 'note' }, note) : null,
    shown.length ? h('div', { id: 'logs', class: 'logs' }, shown.map(l =>
      h('div', { class: `log level-${(l.level || '').toLowerCase()}` },
        h('span', { class: 'time' }, l.ts), ' ', h('span', { class: 'ctl' }, l.controller), ' ', l.message)))
      : note ? null : muted('no log lines')];
}

function applied(ids) {
  const max = 500;
  return h('ul', { id: 'objects', class: 'objects' }, ids.slice(0, max).map(id => h('li', {}, link(id))),
    ids.length > max ? h('li', { class: 'muted' }, `… and ${ids.length - max} more`) : null);
}

// --- diff ------------------------------------------------------------------------------------------
function diffSection(id) {
  const d = diff?.id === id ? diff : null;
  const body = [h('button', { id: 'diff-button', type: 'button', disabled: d?.loading, onclick: () => runDiff(id) },
    d?.result ? 'Diff again' : 'Diff')];
  if (d?.loading) body.push(h('p', { id: 'diff-status', class: 'muted' }, 'computing the diff…'));
  if (d?.error) body.push(h('p', { id: 'diff-status', class: 'error' }, d.error.text));
  const r = d?.result;
  if (r) {
    body.push(h('p', { id: 'diff-status' }, r.changed ? 'the next apply would change:' : 'no changes'));
    if (r.errors?.length) body.push(h('ul', { class: 'error' }, r.errors.map(e => h('li', {}, e))));
    if (r.drift?.length) body.push(h('p', {}, 'drifted: ', r.drift.map((x, i) => [i ? ', ' : '', link(x)])));
    if (r.diff) body.push(h('pre', { id: 'diff', class: 'diff' }, r.diff.split('\n').map(diffLine)));
  }
  return section('Diff', 'diff-section', ...body);
}

function diffLine(l) {
  const cls = /^(\+\+\+|---)( |$)/.test(l) ? 'diff-file' : l[0] === '+' ? 'diff-add' : l[0] === '-' ? 'diff-del'
    : l.startsWith('@@') ? 'diff-hunk' : null;
  return h('span', { class: cls }, l + '\n');
}

async function runDiff(id) {
  diff = { id, loading: true };
  render();
  try {
    diff = { id, result: await getJSON('/api/diff?id=' + encodeURIComponent(id)) };
  } catch (e) {
    diff = { id, error: e };
  }
  if (current?.id === id) render();
}

// --- actions ---------------------------------------------------------------------------------------
function actionsBar(node, data) {
  const suspended = node.state === 'suspended' || data.object?.spec?.suspend === true;
  const buttons = ACTIONS.filter(([, , , offered]) => offered(node, suspended)).map(([name, label, body, , help]) =>
    h('button', { type: 'button', 'data-action': name, onclick: () => confirmAction(node.id, label, body, help) }, label));
  return h('div', { id: 'actions', class: 'actions', hidden: !buttons.length }, buttons);
}

function confirmAction(id, label, body, help) {
  const dlg = $('#confirm'), ok = $('#confirm-ok'), err = $('#confirm-error');
  $('#confirm-title').textContent = label;
  $('#confirm-text').textContent = `${label} ${id}?`;
  $('#confirm-help').textContent = help;
  err.textContent = '';
  err.hidden = true;
  ok.disabled = false;
  ok.textContent = label;
  $('#confirm-cancel').onclick = () => dlg.close();
  ok.onclick = async () => {
    ok.disabled = true;
    // SSE `action` events can arrive before the POST's answer: they merge into `mine` (a new object),
    // and the answer then only fills in what no event said yet.
    const before = action, mine = { id, action: body.action, token: '', phase: 'requested', message: '' };
    action = mine;
    try {
      const res = await postJSON('/api/action', { id, withSource: false, force: false, reset: false, ...body });
      const terminal = res.phase === 'done' || res.phase === 'failed';   // suspend/resume answer at once
      if (action === mine || terminal) action = { ...action, ...res, id, action: body.action };
      dlg.close();
      renderActionStatus();
      if (terminal) objectChanged();
    } catch (e) {
      if (action === mine) action = before;
      err.textContent = e.text;       // e.g. "forbidden: …", "read-only: …", "suspended: …"
      err.hidden = false;
      ok.disabled = false;
    }
  };
  dlg.showModal();
}

function renderActionStatus() {
  const el = $('#action-status');
  if (!el) return;
  if (!action || action.id !== current?.id) { el.textContent = ''; el.removeAttribute('data-phase'); return; }
  const words = { requested: 'requested…', done: 'done', failed: 'failed' };
  el.dataset.phase = action.phase;
  el.className = `action-status phase-${action.phase}`;
  el.textContent = `${action.action}: ${words[action.phase] || action.phase}${action.message ? ' — ' + action.message : ''}`;
}
