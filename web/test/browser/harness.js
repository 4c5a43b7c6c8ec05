// The real thing for the browser tests: the silentrefresh binary serving a
// fresh SQLite database on a free port, and headless Chromium.
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const outputDir = resolve(process.env.SILENTREFRESH_TEST_OUTPUT || join(repoRoot, 'web/test-output'));
export const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

export const USER = 'alice';
export const PASSWORD = 'correct horse battery staple';

async function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

/** Polls fn until it returns a truthy value; fn's errors count as "not yet". */
export async function poll(fn, what, timeoutMs = 15_000, everyMs = 25) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * Builds (unless SILENTREFRESH_BIN names a binary) and starts the server
 * with a 2 s access token, a fresh database and one user; args are more
 * flags of serve (--require-dpop, ...).
 */
export async function startServer({ accessTTL = '2s', grace = '10s', args = [] } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'silentrefresh-web-'));
  let bin = process.env.SILENTREFRESH_BIN;
  if (!bin) {
    bin = join(dir, 'silentrefresh');
    execFileSync('go', ['build', '-o', bin, './cmd/silentrefresh'], {
      cwd: repoRoot,
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, CGO_ENABLED: '0' },
    });
  }
  const db = `sqlite:${join(dir, 'silentrefresh.db')}`;
  execFileSync(bin, ['user', 'add', '--db', db, '--username', USER, '--password-stdin'], {
    input: PASSWORD,
    stdio: ['pipe', 'ignore', 'inherit'],
    timeout: 60_000,
  });
  const port = await freePort();
  const logs = [];
  const proc = spawn(
    bin,
    ['serve', '--addr', `127.0.0.1:${port}`, '--db', db, '--access-ttl', accessTTL, '--grace', grace, '--log-level', 'warn', ...args],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const keep = (b) => {
    logs.push(b.toString());
    if (logs.length > 200) logs.shift();
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  let exited = null;
  proc.on('exit', (code, sig) => (exited = { code, sig }));
  const api = `http://127.0.0.1:${port}`;
  await poll(async () => {
    if (exited) throw new Error(`server exited (${JSON.stringify(exited)}): ${logs.join('')}`);
    const r = await fetch(`${api}/healthz`, { signal: AbortSignal.timeout(2000) });
    return r.ok;
  }, 'the server to answer /healthz');
  return {
    // The browser uses localhost: a secure context (Web Locks, Secure cookies).
    url: `http://localhost:${port}`,
    api,
    logs,
    async metrics() {
      const text = await (await fetch(`${api}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
      const out = {};
      for (const line of text.split('\n')) {
        const m = /^silentrefresh_refresh_total\{([^}]*)\}\s+(\S+)/.exec(line);
        if (!m) continue;
        const outcome = /outcome="([^"]*)"/.exec(m[1])?.[1];
        if (outcome) out[outcome] = (out[outcome] ?? 0) + Number(m[2]);
      }
      return out;
    },
    async stop() {
      if (!exited) {
        const done = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await done;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Launches headless Chromium with no background traffic. Playwright gives
 * every launch a fresh temporary profile (user-data-dir) and removes it on
 * close.
 */
export async function launchChromium() {
  if (!existsSync(chromiumPath)) {
    throw new Error(`Chromium not found at ${chromiumPath}: install it (apt-get install -y chromium) or set CHROMIUM_PATH`);
  }
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-proxy-server',
    ],
  });
}

export function ensureOutputDir() {
  mkdirSync(outputDir, { recursive: true });
  return outputDir;
}
