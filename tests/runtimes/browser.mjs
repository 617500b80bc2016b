// Chromium (Debian's, headless, driven by playwright-core): opens the page
// the proxy serves, waits for `window.dockResult` (deadline: argv[3] ms) and
// prints `DOCK_RESULT <json>`. argv[2]: the page URL with its parameters.
import { chromium } from "playwright-core";

const [url, deadlineMs = "120000"] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_BIN ?? "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
let out;
try {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  await page.goto(url);
  try {
    await page.waitForFunction(() => window.dockResult !== undefined, null, { timeout: Number(deadlineMs) });
    out = await page.evaluate(() => window.dockResult);
  } catch (e) {
    out = { ok: false, error: `no result within ${deadlineMs} ms: ${e.message}; page errors: ${errors.join(" | ")}` };
  }
} finally {
  await browser.close();
}
console.log(`DOCK_RESULT ${JSON.stringify(out)}`);
process.exit(out.ok ? 0 : 1);
