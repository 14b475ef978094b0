// Adds lock entries for rollup's platform packages that this environment's registry mirror does
// not serve (npm drops them from the lock, and `npm ci` then refuses the lock as out of sync).
const fs = require("fs");
const file = process.argv[2];
const lock = JSON.parse(fs.readFileSync(file, "utf8"));
const rollup = lock.packages["node_modules/rollup"];
const os = { android: "android", darwin: "darwin", freebsd: "freebsd", linux: "linux", openbsd: "openbsd", openharmony: "openharmony", win32: "win32" };
let added = 0;
for (const [name, version] of Object.entries(rollup.optionalDependencies || {})) {
  const key = "node_modules/" + name;
  if (lock.packages[key]) continue;
  const m = /^@rollup\/rollup-([a-z0-9]+)-([a-z0-9]+)(?:-([a-z]+))?$/.exec(name);
  if (!m) { console.error("unknown", name); continue; }
  const entry = { version, cpu: [m[2]], dev: true, license: "MIT", optional: true, os: [os[m[1]]] };
  if (m[1] === "linux" && m[3]) entry.libc = [m[3].startsWith("musl") ? "musl" : "glibc"];
  lock.packages[key] = Object.fromEntries(Object.entries(entry).sort(([a], [b]) => (a < b ? -1 : 1)));
  added++;
}
lock.packages = Object.fromEntries(Object.entries(lock.packages).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a < b ? -1 : a > b ? 1 : 0)));
fs.writeFileSync(file, JSON.stringify(lock, null, 2) + "\n");
console.log("added", added);
