// One event stream for every tab of this server (a SharedWorker): browsers open about 6 HTTP/1.1
// connections per host, and a stream per tab would hold them all from the 7th tab on. The worker keeps the
// current graph (the last `graph`, with each `change` merged in) for tabs that join later, and forwards every
// event as {type, data}; {type: 'open' | 'lost'} reports the connection. A plain script, not a module.
const ports = new Set();
let graph = null, source = null, backoff = 1000;
const send = (msg, to = ports) => { for (const p of to) p.postMessage(msg); };

function merge(c) {
  if (!graph || (typeof c.seq === 'number' && c.seq <= graph.seq)) return;
  const nodes = new Map(graph.nodes.map(n => [n.id, n]));
  for (const n of c.nodes || []) nodes.set(n.id, n);
  for (const id of c.removed || []) nodes.delete(id);
  graph = { ...graph, nodes: [...nodes.values()], seq: c.seq ?? graph.seq,
            forbidden: c.forbidden ?? graph.forbidden, errors: c.errors ?? graph.errors };
}

function connect() {
  source = new EventSource('/api/events');
  source.onopen = () => { backoff = 1000; send({ type: 'open' }); };
  for (const type of ['graph', 'change', 'action', 'forbidden', 'reset']) {
    source.addEventListener(type, e => {
      let data;
      try { data = JSON.parse(e.data); } catch { return; }
      if (type === 'graph') graph = data;
      if (type === 'change') merge(data);
      send({ type, data });
    });
  }
  source.onerror = () => {
    send({ type: 'lost' });
    if (source.readyState === EventSource.CLOSED) {  // an error status: retry ourselves, more slowly each time
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 15000);
    }
  };
}

onconnect = e => {
  const port = e.ports[0];
  ports.add(port);
  port.onmessage = m => { if (m.data === 'close') ports.delete(port); };
  if (source?.readyState === EventSource.OPEN) send({ type: 'open' }, [port]);
  if (graph) send({ type: 'graph', data: graph }, [port]);
  if (!source) connect();
};
