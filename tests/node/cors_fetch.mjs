// A real browser's CORS fetch: Chromium (Debian's, driven by playwright-core) opens PAGE and, from that origin,
// POSTs JSON with a custom header (so the browser sends a preflight first) to each TARGET URL. Prints one JSON line:
// per target, the status and body it read, or the error the browser raised (a CORS refusal is a TypeError).
//
//   node cors_fetch.mjs PAGE TARGET...
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [page_url, ...targets] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), "lambda-freeze-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
try {
  const page = await context.newPage();
  await page.goto(page_url);
  const results = [];
  for (const target of targets) {
    results.push(
      await page.evaluate(async (url) => {
        try {
          const response = await fetch(url, {
            method: "POST",
            headers: { "Content-Type": "application/json", "X-Token": "t" },
            body: JSON.stringify({ from: "browser" }),
          });
          return { url, status: response.status, body: await response.text() };
        } catch (error) {
          return { url, error: `${error.name}: ${error.message}` };
        }
      }, target),
    );
  }
  console.log(JSON.stringify({ origin: await page.evaluate(() => location.origin), results }));
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
