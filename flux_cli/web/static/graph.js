// The graph view: SVG nodes and edges, pan (drag) and zoom (wheel) through the viewport's transform.
// render() re-lays out only when the visible nodes or edges changed; otherwise it rewrites the class and
// text of the changed nodes in place, so nothing moves under the user's pointer.
import { layout, NODE_W, NODE_H } from './layout.js';

const SVG_NS = 'http://www.w3.org/2000/svg';   // a namespace name, never fetched

function svg(tag, attrs) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

const clip = (s, max) => (s.length > max ? s.slice(0, max - 1) + '…' : s);
const nodeClass = n => `node${n.groupOf ? ' group' : ''} state-${n.state || 'unknown'}${n.blocked ? ' blocked' : ''}`;
const stateWord = n => (n.blocked && n.state === 'ready' ? 'blocked' : n.state === 'ready' ? '' : n.state || 'unknown');

export class GraphView {
  constructor(svgEl, onOpen) {
    this.svg = svgEl;
    this.viewport = svgEl.querySelector('#viewport');
    this.edgesG = svgEl.querySelector('#edges');
    this.nodesG = svgEl.querySelector('#nodes');
    this.onOpen = onOpen;
    this.t = { x: 0, y: 0, k: 1 };
    this.sig = null;          // what the current layout was computed for
    this.pos = null;          // id -> {x, y, layer, order}
    this.els = new Map();     // id -> the node's <g>
    this.size = { width: 0, height: 0 };
    this.cache = new Map();   // sig -> layout: clearing a filter brings back the very same picture
    this.fitted = false;
    this.bindPointer();
  }

  // nodes: the visible nodes; edges: [{from, to, relation}] between them; changed: ids that changed, or
  // null for "any". Returns {relaid, ms}; window.fluxpyRender mirrors it for tests and benchmarks.
  render(nodes, edges, changed = null) {
    const t0 = performance.now();
    const sig = nodes.map(n => n.id).sort().join('\n') + '\0' +
      edges.map(e => `${e.from}>${e.to}>${e.relation}`).sort().join('\n');
    const relaid = sig !== this.sig;
    if (relaid) {
      const cached = this.cache.get(sig);
      const { pos, width, height } = cached || layout(nodes, edges, this.pos);
      this.cache.delete(sig);
      this.cache.set(sig, { pos, width, height });
      if (this.cache.size > 8) this.cache.delete(this.cache.keys().next().value);   // least recently used
      this.pos = pos;
      this.size = { width, height };
      this.sig = sig;
      this.draw(nodes, edges);
      if (!this.fitted) this.fit();
    } else {
      for (const n of nodes) if (!changed || changed.has(n.id)) this.update(this.els.get(n.id), n);
    }
    const ms = performance.now() - t0;
    const info = window.fluxpyRender = { relaid, ms, nodes: nodes.length, edges: edges.length, at: performance.now() };
    requestAnimationFrame(() => setTimeout(() => { info.painted = performance.now() - t0; }));
    return { relaid, ms };
  }

  draw(nodes, edges) {
    const edgeEls = [];
    for (const e of edges) {
      const a = this.pos.get(e.from), b = this.pos.get(e.to);
      const x1 = a.x + NODE_W, y1 = a.y + NODE_H / 2, x2 = b.x, y2 = b.y + NODE_H / 2;
      const c = Math.max(40, Math.abs(x2 - x1) / 2);      // a backward edge (cycle) still curves round
      // the arrowhead is a chevron in the same path: an SVG <marker> per edge makes painting 4x slower
      edgeEls.push(svg('path', {
        class: `edge rel-${e.relation}`, 'data-from': e.from, 'data-to': e.to,
        d: `M${x1},${y1} C${x1 + c},${y1} ${x2 - c},${y2} ${x2},${y2} m-6,-4 l6,4 l-6,4`,
      }));
    }
    this.els = new Map();
    const nodeEls = nodes.map(n => {
      const p = this.pos.get(n.id);
      const g = svg('g', { 'data-id': n.id, transform: `translate(${p.x},${p.y})`, tabindex: '0',
        role: n.groupOf ? 'button' : 'link' });
      // a group: a pile of cards behind its box, and "+ expand" under the state
      if (n.groupOf) g.append(svg('rect', { class: 'pile', x: 4, y: 4, width: NODE_W, height: NODE_H, rx: 5 }));
      g.append(svg('title', {}), svg('rect', { width: NODE_W, height: NODE_H, rx: 5 }),
        svg('text', { class: 'kind', x: 9, y: 14 }), svg('text', { class: 'state', x: NODE_W - 8, y: 14 }),
        svg('text', { class: 'name', x: 9, y: 30 }));
      if (n.groupOf) g.append(svg('text', { class: 'hint', x: NODE_W - 8, y: 30 }));
      this.update(g, n);
      this.els.set(n.id, g);
      return g;
    });
    this.edgesG.replaceChildren(...edgeEls);
    this.nodesG.replaceChildren(...nodeEls);
  }

  update(g, n) {
    if (!g) return;
    const cls = nodeClass(n);
    if (g.getAttribute('class') !== cls) g.setAttribute('class', cls);
    const [title, , kind, state, name, hint] = n.groupOf ? [...g.children].slice(1) : g.children;
    const word = stateWord(n);
    kind.textContent = clip(n.kind, n.groupOf ? 35 - word.length * 1.4 : 24);
    state.textContent = word;
    name.textContent = clip(n.name || n.id, 27);
    if (hint) hint.textContent = '+ expand';
    title.textContent = n.title || [n.id, [n.state, n.reason, n.message].filter(Boolean).join(': '),
      n.cause ? `root cause: ${n.cause.id}` : ''].filter(Boolean).join('\n');
    g.setAttribute('aria-label', n.label || `${n.kind} ${n.name}: ${word || 'ready'}`);
  }

  // --- pan and zoom ----------------------------------------------------------------------------------
  apply() {
    const { x, y, k } = this.t;
    this.viewport.setAttribute('transform', `translate(${x.toFixed(1)},${y.toFixed(1)}) scale(${k.toFixed(4)})`);
  }

  // all=true (the Fit button): the whole drawing, however small. The first view instead stays readable:
  // the whole drawing when that needs a scale of at least 1/2, else the top-left corner at the width's scale
  // (not below 1/2); the user zooms out with the wheel.
  fit(all = false) {
    const W = this.svg.clientWidth, H = this.svg.clientHeight, { width, height } = this.size;
    if (!W || !H || !width) return;                      // hidden: fit when shown (app.js calls fit())
    const whole = Math.min(1, W / width, H / height);
    const k = all || whole >= 0.5 ? Math.max(0.05, whole) : Math.max(0.5, Math.min(1, W / width));
    this.t = { k, x: Math.max(0, (W - width * k) / 2), y: Math.max(0, (H - height * k) / 2) };
    this.fitted = true;
    this.apply();
  }

  zoom(factor, px = this.svg.clientWidth / 2, py = this.svg.clientHeight / 2) {
    const k = Math.min(3, Math.max(0.05, this.t.k * factor)), r = k / this.t.k;
    this.t = { k, x: px - (px - this.t.x) * r, y: py - (py - this.t.y) * r };   // keep (px, py) still
    this.apply();
  }

  bindPointer() {
    const s = this.svg;
    let down = null;
    s.addEventListener('wheel', e => {
      e.preventDefault();
      const r = s.getBoundingClientRect();
      this.zoom(Math.exp(-e.deltaY * (e.deltaMode ? 0.05 : 0.002)), e.clientX - r.left, e.clientY - r.top);
    }, { passive: false });
    s.addEventListener('pointerdown', e => {
      if (e.button !== 0) return;
      down = { x: e.clientX, y: e.clientY, t: { ...this.t }, node: e.target.closest?.('.node'), moved: false };
      s.setPointerCapture(e.pointerId);
    });
    s.addEventListener('pointermove', e => {
      if (!down) return;
      const dx = e.clientX - down.x, dy = e.clientY - down.y;
      if (!down.moved && Math.hypot(dx, dy) < 4) return;    // a click, not yet a drag
      down.moved = true;
      s.classList.add('panning');
      this.t = { ...down.t, x: down.t.x + dx, y: down.t.y + dy };
      this.apply();
    });
    const end = e => {
      if (!down) return;
      const { node, moved } = down;
      down = null;
      s.classList.remove('panning');
      if (e.type === 'pointerup' && !moved && node) this.onOpen(node.dataset.id);
    };
    s.addEventListener('pointerup', end);
    // a click without a pointer (el.click(), assistive technology): detail is 0
    s.addEventListener('click', e => {
      const node = e.detail === 0 && e.target.closest?.('.node');
      if (node) this.onOpen(node.dataset.id);
    });
    s.addEventListener('pointercancel', end);
    s.addEventListener('keydown', e => {
      const node = e.target.closest?.('.node');
      if (node && (e.key === 'Enter' || e.key === ' ')) { e.preventDefault(); this.onOpen(node.dataset.id); }
    });
  }
}
