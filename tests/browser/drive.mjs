// Drives a real headless Chromium (Debian's, through playwright-core) for tests/browser.rs: pages
// served from an allowed and from a refused origin use Raccoon the way a web site does, and what
// the browser saw is printed on stdout as one JSON object. The Rust test asserts on it and reads
// the events back from Kafka; this script judges nothing.
//
// Environment: CHROMIUM (the executable), SERVER (host:port of Raccoon's HTTP port, as a page
// names it), ALLOWED_PAGE and REFUSED_PAGE (a blank page on each origin), README_PAGE (README's
// "From a browser" page), PREFIX (of every req_guid). Every wait is bounded.
import { chromium } from 'playwright-core';

const { CHROMIUM, SERVER, ALLOWED_PAGE, REFUSED_PAGE, README_PAGE, PREFIX } = process.env;
const STEP_MS = 15000;

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  // The machine's network is closed: no background requests to Google's hosts.
  args: [
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
const out = {};
try {
  const page = await browser.newPage();
  const console_lines = [];
  page.on('console', (m) => console_lines.push(m.text()));

  // README's page, as a reader would copy it: it logs the server's answers.
  await page.goto(README_PAGE);
  await page.waitForFunction(() => document.getElementById('log').textContent.split('\n').filter(Boolean).length >= 2, null, { timeout: STEP_MS });
  out.readme = (await page.textContent('#log')).split('\n').filter(Boolean);

  await page.goto(ALLOWED_PAGE);
  out.allowed = await page.evaluate(scenarios, { server: SERVER, prefix: PREFIX, stepMs: STEP_MS });

  await page.goto(REFUSED_PAGE);
  out.refused = await page.evaluate(refusedOrigin, { server: SERVER, stepMs: STEP_MS });
  out.console = console_lines;
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));

// Runs in the page on the allowed origin.
async function scenarios({ server, prefix, stepMs }) {
  const within = (promise, what) =>
    Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: no answer in ${stepMs} ms`)), stepMs))]);
  const b64 = (text) => btoa(text);
  const bytes = (buffer) => Array.from(new Uint8Array(buffer));
  // A SendEventRequest in protobuf, written by hand: req_guid (1) and events (3), each with
  // event_bytes (1) and type (2). Lengths stay under 128, so each is one byte.
  const proto = (guid, type, payload) => {
    const enc = new TextEncoder();
    const field = (tag, data) => [tag, data.length, ...data];
    const event = [...field(0x0a, enc.encode(payload)), ...field(0x12, enc.encode(type))];
    return new Uint8Array([...field(0x0a, enc.encode(guid)), ...field(0x1a, event)]);
  };
  const result = {};

  // REST with CORS: JSON (a preflight, for the id header), protobuf, and a body that does not decode.
  const post = async (contentType, body) => {
    const r = await within(
      fetch(`http://${server}/api/v1/events`, { method: 'POST', headers: { 'Content-Type': contentType, 'X-User-ID': 'rest-user' }, body }),
      'REST',
    );
    return { status: r.status, contentType: r.headers.get('content-type'), detail: r.headers.get('x-raccoon-error-detail'), body: bytes(await r.arrayBuffer()) };
  };
  result.restJson = await post('application/json', JSON.stringify({ req_guid: `${prefix}-rest-json`, events: [{ type: 'rest', event_bytes: b64('rest json') }] }));
  result.restProto = await post('application/proto', proto(`${prefix}-rest-proto`, 'rest', 'rest proto'));
  result.restBad = await post('application/json', '{"events": "not a list"}');

  // One WebSocket that names itself by subprotocol: a JSON text frame and a binary frame.
  const open = (protocols) =>
    within(
      new Promise((resolve, reject) => {
        const ws = new WebSocket(`ws://${server}/api/v1/events`, protocols);
        ws.binaryType = 'arraybuffer';
        ws.onopen = () => resolve(ws);
        ws.onerror = () => reject(new Error('WebSocket failed to open'));
      }),
      'WebSocket open',
    );
  const next = (ws) =>
    within(
      new Promise((resolve) => {
        ws.onmessage = (m) => resolve(typeof m.data === 'string' ? { text: m.data } : { binary: bytes(m.data) });
      }),
      'WebSocket reply',
    );
  const named = await open(['raccoon', 'raccoon.id.' + encodeURIComponent('page user@1'), 'raccoon.group.web']);
  result.protocol = named.protocol;
  named.send(JSON.stringify({ req_guid: `${prefix}-ws-json`, sent_time: { seconds: Math.floor(Date.now() / 1000), nanos: 0 }, events: [{ type: 'ws', event_bytes: b64('ws json') }] }));
  result.wsJson = await next(named);
  named.send(proto(`${prefix}-ws-binary`, 'ws', 'ws binary'));
  result.wsBinary = await next(named);

  // Two more sockets at once, naming no id: each is its own anonymous identity.
  const tabs = await Promise.all([open([]), open([])]);
  const replies = tabs.map((ws) => next(ws));
  tabs.forEach((ws, i) => ws.send(JSON.stringify({ req_guid: `${prefix}-tab-${i}`, events: [{ type: 'tab', event_bytes: b64(`tab ${i}`) }] })));
  result.tabs = await Promise.all(replies);
  result.stillOpen = [named, ...tabs].map((ws) => ws.readyState === WebSocket.OPEN);
  for (const ws of [named, ...tabs]) ws.close(1000);
  return result;
}

// Runs in the page on the refused origin: the upgrade gets 403, so the socket never opens.
async function refusedOrigin({ server, stepMs }) {
  return await new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ opened: false, closeCode: null, timedOut: true }), stepMs);
    let opened = false;
    const ws = new WebSocket(`ws://${server}/api/v1/events`);
    ws.onopen = () => { opened = true; };
    ws.onclose = (e) => { clearTimeout(timer); resolve({ opened, closeCode: e.code, timedOut: false }); };
  });
}
