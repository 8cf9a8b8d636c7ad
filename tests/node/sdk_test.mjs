// The official OpenAI Node SDK (v4, retries off) against `specdec serve`:
// list models, complete, stream, chat (plain and streamed), and a request on
// the same keep-alive connection right after a stream (one socket for all:
// an http.Agent with keepAlive and maxSockets 1 that counts its connections).
import http from 'node:http';
import OpenAI from 'openai';

const port = process.env.PORT;
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
let sockets = 0;
const create = agent.createConnection.bind(agent);
agent.createConnection = (...a) => { sockets++; return create(...a); };
const client = new OpenAI({
  baseURL: `http://127.0.0.1:${port}/v1`, apiKey: process.env.API_KEY || 'none',
  maxRetries: 0, timeout: 300000, httpAgent: agent,
});
let failed = 0;
const check = (ok, what) => { console.log(`${ok ? "ok  " : "FAIL"} ${what} [sockets ${sockets}]`); if (!ok) failed++; };

try {
  const models = await client.models.list();
  check(models.data.length === 1 && typeof models.data[0].id === 'string', 'models.list');
  const model = models.data[0].id;
  const prompt = 'static int btrfs_';
  const c = await client.completions.create({ model, prompt, max_tokens: 12, temperature: 0 });
  const text = c.choices[0].text;
  check(typeof text === 'string' && text.length > 0 && c.usage.completion_tokens > 0, `completions.create: ${JSON.stringify(text)}`);
  const s = await client.completions.create({ model, prompt, max_tokens: 12, temperature: 0, stream: true });
  let st = '';
  let last = null;
  for await (const ev of s) { st += ev.choices[0]?.text ?? ''; last = ev; }
  check(st === text && last.choices[0].finish_reason === 'length', 'completions stream: same text');
  // right after the stream, on the same connection
  const after = await client.completions.create({ model, prompt, max_tokens: 4, temperature: 0, spec: 'lookup' });
  check(after.choices[0].text === text.slice(0, after.choices[0].text.length) && after.usage.spec === 'lookup',
        'a request on the keep-alive connection right after the stream');
  const chat = await client.chat.completions.create({
    model, max_tokens: 8, temperature: 0, messages: [{ role: 'user', content: 'static int' }] });
  check(chat.choices[0].message.role === 'assistant' && typeof chat.choices[0].message.content === 'string',
        'chat.completions.create');
  const cs = await client.chat.completions.create({
    model, max_tokens: 8, temperature: 0, stream: true, messages: [{ role: 'user', content: 'static int' }] });
  let ct = '';
  for await (const ev of cs) ct += ev.choices[0]?.delta?.content ?? '';
  check(ct === chat.choices[0].message.content, 'chat stream: same text');
  const again = await client.models.list();
  check(again.data.length === 1, 'models.list after the chat stream');
  check(sockets === 1, `one TCP connection for every request (keep-alive kept): ${sockets}`);
  let bad = null;
  try { await client.completions.create({ model, prompt, max_tokens: -1 }); } catch (e) { bad = e; }
  check(bad instanceof OpenAI.BadRequestError, 'max_tokens -1 -> BadRequestError (400)');
} catch (e) {
  console.log('FAIL exception', e);
  failed++;
}
agent.destroy();
process.exit(failed ? 1 : 0);
