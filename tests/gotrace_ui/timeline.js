// Loads go tool trace's timeline (the Catapult trace viewer it serves at /trace) in headless
// Chromium as a person would open it, waits for the trace to import, searches it with the
// viewer's own find box, and takes a screenshot.
//
//   node timeline.js URL SCREENSHOT.png QUERY...
//
// Prints one JSON object: the page's errors, the track labels it shows (innerText lines),
// and for each QUERY the viewer's match count ("N of M" -> M).
const { chromium } = require('playwright-core');

(async () => {
  const [url, png, ...queries] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    // This machine's network is closed: without these Chromium keeps trying to reach Google.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const result = { errors: [], imported: false, labels: [], matches: {} };
  try {
    const page = await browser.newPage({ viewport: { width: 1600, height: 900 } });
    page.on('pageerror', (e) => result.errors.push(String(e)));
    await page.goto(url, { waitUntil: 'load', timeout: 60000 });
    // The viewer shows an "Importing..." dialog while it fetches and parses the trace.
    const started = Date.now();
    while (Date.now() - started < 60000) {
      const busy = await page.locator('text=Importing').count();
      if (busy === 0 && Date.now() - started > 1500) {
        result.imported = true;
        break;
      }
      await page.waitForTimeout(250);
    }
    await page.waitForTimeout(500);
    const text = await page.evaluate(() => document.body.innerText);
    result.labels = text.split('\n').map((l) => l.replace(/^[▾▸▼▶]\s*/, '').trim())
      .filter((l) => l.length > 0);
    await page.screenshot({ path: png });
    const find = page.locator('tr-ui-find-control input').first();
    for (const q of queries) {
      await find.fill(q);
      await page.keyboard.press('Enter');
      await page.waitForTimeout(700);
      const body = await page.evaluate(() => document.body.innerText);
      const m = body.match(/(\d+) of (\d+)/);
      result.matches[q] = m ? Number(m[2]) : -1;
    }
  } catch (e) {
    result.errors.push(String(e));
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(result));
})();
