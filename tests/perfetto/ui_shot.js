// Drives a headless Chromium over the DevTools protocol: opens URL, waits until the Perfetto UI
// has loaded the trace (the omnibox no longer says it is opening/loading, and TEXT appears on the
// page), expands the track groups, and saves a PNG screenshot. The class names it clicks are the
// v52 UI's (pf-track__collapse-button); a newer UI may need them updated.
//
//   node --experimental-websocket ui_shot.js DEVTOOLS_WS_URL URL OUT.png TEXT [TIMEOUT_S]
//
// Prints the page's error dialog text and exits 1 if the UI reports an error.
'use strict';
const fs = require('fs');

const [wsUrl, url, out, text, timeoutS = '90'] = process.argv.slice(2);
if (!out) { console.error('usage: ui_shot.js WS URL OUT.png TEXT [TIMEOUT_S]'); process.exit(2); }

const ws = new WebSocket(wsUrl);
let nextId = 1;
const pending = new Map();
function send(method, params = {}, sessionId) {
  const id = nextId++;
  ws.send(JSON.stringify({ id, method, params, sessionId }));
  return new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
}
ws.onmessage = (m) => {
  const msg = JSON.parse(m.data);
  const p = msg.id && pending.get(msg.id);
  if (!p) return;
  pending.delete(msg.id);
  if (msg.error) p.reject(new Error(JSON.stringify(msg.error))); else p.resolve(msg.result);
};
const sleep = (ms) => new Promise(r => setTimeout(r, ms));

async function main() {
  await new Promise((r, j) => { ws.onopen = r; ws.onerror = j; });
  const { targetId } = await send('Target.createTarget', { url: 'about:blank' });
  const { sessionId } = await send('Target.attachToTarget', { targetId, flatten: true });
  const eval_ = async (expr) => (await send('Runtime.evaluate', { expression: expr, returnByValue: true }, sessionId)).result.value;
  await send('Page.enable', {}, sessionId);
  await send('Page.navigate', { url }, sessionId);
  const deadline = Date.now() + Number(timeoutS) * 1000;
  let state = '';
  let readyBefore = false;
  for (;;) {
    state = await eval_(`(() => {
      const t = document.body ? document.body.innerText : '';
      if (/error|failed/i.test(t) && document.querySelector('.pf-modal-dialog, .modal-dialog')) return 'error:' + t.slice(0, 2000);
      if (/Opening trace|Loading trace|Running plugin|Parsing|Processing/i.test(t)) return 'loading';
      if (!document.querySelector('.pf-track__shell')) return 'waiting';
      return t.includes(${JSON.stringify(text)}) ? 'ready' : 'waiting';
    })()`).catch(() => 'waiting');
    if (state.startsWith('error:')) break;
    // Ready twice in a row: the UI has settled.
    if (state === 'ready' && readyBefore) break;
    readyBefore = state === 'ready';
    if (Date.now() > deadline) break;
    await sleep(500);
  }
  if (state.startsWith('error:')) { console.error(state); process.exitCode = 1; }
  if (state !== 'ready' && !state.startsWith('error:')) console.error(`ui_shot: page not ready after ${timeoutS}s (${state})`);
  // Expand each track group once (groups nest, so a few rounds), except the "System" group.
  await eval_('window.__expanded = new Set()');
  for (let i = 0; i < 4; i++) {
    const clicked = await eval_(`(() => {
      let n = 0;
      for (const b of document.querySelectorAll('.pf-track__collapse-button')) {
        const shell = b.closest('.pf-track__shell');
        const title = shell && shell.querySelector('.pf-track__title');
        const name = title ? title.textContent.trim() : '';
        if (!name || name === 'System' || window.__expanded.has(name)) continue;
        window.__expanded.add(name);
        b.click();
        n++;
      }
      return n;
    })()`).catch(() => 0);
    if (!clicked) break;
    await sleep(1000);
  }
  const shot = await send('Page.captureScreenshot', { format: 'png' }, sessionId);
  fs.writeFileSync(out, Buffer.from(shot.data, 'base64'));
  ws.close();
  process.exit(process.exitCode || 0);
}
main().catch(e => { console.error(`ui_shot: ${e.stack || e}`); process.exit(1); });
