// Tiny DOM helpers shared by the views (no framework: createElement + replaceChildren).

// h('a', {href: '#/', class: 'x'}, 'text', child...) -> an HTML element. Attributes whose value is
// null/undefined/false are skipped; `on<event>` values become listeners; children may be nested arrays.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  el.append(...children.flat(Infinity).filter(c => c != null && c !== false)
    .map(c => (c instanceof Node ? c : String(c))));
  return el;
}

export const $ = (sel, root = document) => root.querySelector(sel);

// The link to an object's page; ids contain '/' and '.', so they always travel URL-encoded.
export const objectHref = id => '#/object?id=' + encodeURIComponent(id);

// "Kustomization" -> "kustomizations", "GitRepository" -> "gitrepositories" (the API's plural).
export function plural(kind) {
  const k = (kind || '').toLowerCase();
  if (/[^aeiou]y$/.test(k)) return k.slice(0, -1) + 'ies';
  return /(s|x|ch|sh)$/.test(k) ? k + 'es' : k + 's';
}
