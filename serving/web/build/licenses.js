// Lists every npm package whose code is in the bundle (from esbuild's metafile), with its version, licence and the
// licence text the package ships (copyright notices must travel with the minified code).
const fs = require("fs");
const path = require("path");
const meta = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const pkgs = new Map();
for (const input of Object.keys(meta.inputs)) {
  const m = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//g);
  if (!m) continue;
  const dir = input.slice(0, input.lastIndexOf(m[m.length - 1]) + m[m.length - 1].length);
  const pj = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"));
  const file = fs.readdirSync(dir).find((f) => /^(licen[cs]e|copying)/i.test(f));
  pkgs.set(`${pj.name}@${pj.version}`, {
    license: pj.license || (pj.licenses || []).map((l) => l.type).join(" OR ") || "see the package",
    text: file ? fs.readFileSync(path.join(dir, file), "utf8").trim() : "(the package ships no licence file)",
  });
}
const rows = [...pkgs].sort(([a], [b]) => a.localeCompare(b));
console.log("Packages bundled into cornerstone.js (name@version: licence); their licence texts follow.\n");
for (const [k, v] of rows) console.log(`${k}: ${v.license}`);
for (const [k, v] of rows) console.log(`\n${"=".repeat(78)}\n${k}\n${"=".repeat(78)}\n${v.text}`);
