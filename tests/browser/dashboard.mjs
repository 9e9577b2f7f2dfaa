// The dashboard in a real browser: node dashboard.mjs URL SCREENSHOT
// Loads the page, checks the topology picture, places an order through the form, waits until
// the live list shows it VALIDATED, and saves a screenshot. Exits non-zero with the reason.
import { chromium } from "playwright-core";

const [url, screenshot] = process.argv.slice(2);
if (!url || !screenshot) {
  console.error("usage: node dashboard.mjs URL SCREENSHOT");
  process.exit(2);
}
const executablePath = process.env.RILL_CHROMIUM || "/usr/bin/chromium";
const browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const problems = [];
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  await page.goto(url);
  // Five services of the order system drawn, with the topics between them.
  await page.waitForFunction(() => document.querySelectorAll("#topology svg g.service").length === 5);
  await page.waitForFunction(() => document.querySelectorAll("#topology svg g.topic").length >= 5);
  await page.waitForFunction(() => document.getElementById("status").textContent === "live");
  const id = "browser-" + Date.now();
  await page.fill("#order-id", id);
  await page.selectOption("select[name=product]", "JUMPERS");
  await page.click("button[type=submit]");
  await page.waitForSelector(`#orders tr[data-order-id="${id}"][data-state="VALIDATED"]`, { timeout: 60000 });
  const validated = await page.textContent("#count-VALIDATED");
  if (Number(validated) < 1) throw new Error(`VALIDATED count shows ${validated}`);
  // The topics table has been filled from /v1/topics.
  await page.waitForFunction(() => document.querySelectorAll("#topics tr").length >= 5);
  // And the stores table from /v1/stores.
  await page.waitForFunction(() => document.querySelectorAll("#stores tr").length >= 5);
  await page.screenshot({ path: screenshot, fullPage: true });
  if (problems.length) throw new Error(problems.join("; "));
  console.log(`order ${id} VALIDATED in the live list; screenshot ${screenshot}`);
} finally {
  await browser.close();
}
