// Waits for an Atrium child process to print "listening on http://HOST:PORT" and resolves with
// that URL; rejects when it exits first or stays silent for `timeoutMs`. Shared by the node test
// suites (tests/relay, tests/embed, tests/browser). `onData` sees every stdout chunk (logging).
export function waitForListening(child, { what = "atrium", timeoutMs = 20000, onData } = {}) {
  let out = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not print its URL in ${timeoutMs / 1000} s:\n${out}`)), timeoutMs);
    timer.unref();
    child.stdout.on("data", (d) => {
      out += d.toString();
      if (onData) onData(d);
      const m = /listening on (http:\/\/[0-9A-Za-z.:\[\]-]+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code} before listening`));
    });
  });
}
