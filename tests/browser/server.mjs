// Starts a real `atrium serve` for the browser tests: temp data dir, port 0, the built web UI as
// web.root, the test password-hash cost, and a tiny embedding model. Resolves with the base URL
// parsed from the "listening on http://..." line.
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { waitForListening } from "../listening.mjs";
import { writeTinyBert } from "./tinybert.mjs";

export async function startAtrium({ binary, webRoot, tmp, port = 0, extraArgs = [] }) {
  const modelDir = path.join(tmp, "tiny-bert");
  writeTinyBert(modelDir);
  const args = [
    "serve", "--port", String(port), "--host", "127.0.0.1", "--data-dir", path.join(tmp, "data"),
    "--set", "auth.password_hash_cost=test",
    "--set", `embed.models=tiny=${modelDir}`,
    "--set", `web.root=${webRoot}`,
    // The suite signs up and logs in more often than the production limits allow.
    "--set", "auth.rate_limits=auth=1000/1m,login=1000/1m,api=100000/1m",
    ...extraArgs,
  ];
  const child = spawn(binary, args, { stdio: ["ignore", "pipe", "pipe"] });
  const log = fs.createWriteStream(path.join(tmp, "atrium.log"), { flags: "a" });
  child.stderr.pipe(log);
  const url = await waitForListening(child, {
    what: "atrium serve", timeoutMs: 30000, onData: (d) => log.write(d),
  }).catch((e) => {
    throw new Error(`${e.message}; see ${path.join(tmp, "atrium.log")}`);
  });
  return {
    url,
    child,
    async stop() {
      if (child.exitCode !== null) return;
      const done = new Promise((r) => child.on("exit", r));
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 5000);
      await done;
      clearTimeout(t);
    },
  };
}
