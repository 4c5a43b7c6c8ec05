// Run by TestBrowserClientExchange: the browser client (web/silentrefresh.js)
// in Node, against a real server: api.exchange(assertion) begins a session,
// requests carry its token, a refresh rotates it, a replayed assertion is
// refused. Prints one JSON line of what it saw.
import { createClient, LoginError } from '../../web/silentrefresh.js';

const [baseUrl, assertion] = process.argv.slice(2);
const api = createClient({ baseUrl, storage: 'memory', crossTab: false, locks: null, BroadcastChannel: null, document: null, window: null });
const out = {};
const t = await api.exchange(assertion, { scope: 'read' });
out.exchanged = typeof t.refreshToken === 'string' && t.refreshToken.length > 0;
const me = await api(`${baseUrl}/api/me`);
out.me = { status: me.status, ...(await me.json()) };
const before = api.tokens().refreshToken;
await api.refresh();
out.rotated = api.tokens().refreshToken !== before;
try {
  await createClient({ baseUrl, storage: 'memory', crossTab: false, locks: null, BroadcastChannel: null, document: null, window: null }).exchange(assertion);
  out.replay = 'accepted';
} catch (e) {
  out.replay = e instanceof LoginError ? `${e.code} ${e.status}` : String(e);
}
console.log(JSON.stringify(out));
api.close();
