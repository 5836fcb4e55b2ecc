// Interop client: drives a running Waygate server with the official TypeScript MCP SDKs.
//
// usage: node client.mjs URL SDK
//   SDK v1  @modelcontextprotocol/sdk 1.x Client + StreamableHTTPClientTransport: session era
//           (initialize, Mcp-Session-Id), ended with transport.terminateSession() (DELETE)
//   SDK v2  @modelcontextprotocol/client 2.x with versionNegotiation { mode: 'auto' }: probes
//           server/discover and should settle on the stateless 2026-07-28 revision
//
// Exercises one tool of every example plugin, the notes resource and prompt, and an invalid call.
// If WAYGATE_KEY is set, every request carries `Authorization: Bearer $WAYGATE_KEY`, and a second
// connection without it must be refused with HTTP 401. The key is never printed.
// Prints one line per check ("ok ..." / "FAIL ...") and exits 0 only when every check passed.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';

const TIMEOUT_MS = 30_000;
const KEY = process.env.WAYGATE_KEY || undefined; // never printed
const EXPECTED_TOOLS = [
  'echo__echo', 'echo__test',
  'data-processor__process_data',
  'text-analyzer__analyze',
  'notes__add_note', 'notes__list_notes', 'notes__search_notes', 'notes__delete_note',
  'regex-tools__regex_test', 'regex-tools__regex_extract', 'regex-tools__regex_replace',
];
const failures = [];

/** Records and prints one check; `detail` says what was seen when it failed. */
function check(name, ok, detail = '') {
  if (ok) {
    console.log(`ok   ${name}`);
  } else {
    failures.push(name);
    console.log(`FAIL ${name}: got ${JSON.stringify(detail)}`.slice(0, 2000));
  }
  return ok;
}

const textOf = (result) => result.content?.[0]?.text ?? '';
const sameJson = (a, b) => JSON.stringify(sortKeys(a)) === JSON.stringify(sortKeys(b));
function sortKeys(value) {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sortKeys(value[k])]));
  }
  return value;
}

/** A tool's JSON answer: structuredContent, which must match the JSON text content. */
function payload(result) {
  const fromText = JSON.parse(textOf(result) || 'null');
  if (result.structuredContent === undefined) return fromText ?? {};
  check('  structuredContent matches text content', sameJson(fromText, result.structuredContent), textOf(result));
  return result.structuredContent ?? {};
}

async function callOk(client, name, args) {
  const result = await client.callTool({ name, arguments: args });
  check(`${name} succeeded`, result.isError !== true, textOf(result));
  return result;
}

/** Every page of resources/list (the server pages at 100; earlier runs may have added notes). */
async function allResources(client) {
  const resources = [];
  let cursor;
  do {
    const page = await client.listResources(cursor ? { cursor } : undefined);
    resources.push(...page.resources);
    cursor = page.nextCursor;
  } while (cursor);
  return resources;
}

/** The checks shared by both SDKs. */
async function exercise(client, run) {
  const tools = new Set((await client.listTools()).tools.map((t) => t.name));
  const missing = EXPECTED_TOOLS.filter((n) => !tools.has(n));
  check(`tools/list has all ${EXPECTED_TOOLS.length} example tools`, missing.length === 0, { missing });

  // echo
  const message = `hello from ${run}`;
  let result = await callOk(client, 'echo__echo', { message });
  check('echo__echo returns the message', textOf(result) === message, textOf(result));

  // data-processor: describe and convert a small CSV
  const report = payload(await callOk(client, 'data-processor__process_data',
    { input: 'name,age\nAda,36\nAlan,41\n', format: 'csv', output_format: 'json' }));
  check('process_data parses the CSV',
    report.valid === true && report.records === 2 && sameJson(report.fields, ['name', 'age']), report);
  const converted = JSON.parse(report.output ?? 'null');
  check('process_data converts it to JSON',
    Array.isArray(converted) && converted.length === 2 && converted[0]?.name === 'Ada', report.output);

  // text-analyzer
  const analysis = payload(await callOk(client, 'text-analyzer__analyze',
    { text: 'The quick brown fox jumps over the lazy dog. The dog sleeps.' }));
  check('analyze counts 12 words in 2 sentences', analysis.words === 12 && analysis.sentences === 2, analysis);

  // regex-tools (JavaScript plugin)
  const found = payload(await callOk(client, 'regex-tools__regex_test',
    { pattern: '(\\d+)-(\\d+)', text: 'call 555-1234 now' }));
  check('regex_test finds the match',
    found.matched === true && found.match?.match === '555-1234'
      && sameJson(found.match?.groups, ['555', '1234']) && found.match?.index === 5, found);

  // notes: add a note with a tag unique to this run, then find it
  const tag = `interop-${randomUUID().slice(0, 8)}`;
  const title = `Interop note ${run}`;
  const added = payload(await callOk(client, 'notes__add_note',
    { title, body: 'Written by client.mjs.', tags: [tag] }));
  const uri = added.uri;
  check('add_note returns an id and its notes:// URI',
    Number.isInteger(added.id) && uri === `notes://note/${added.id}`, added);
  const listed = payload(await callOk(client, 'notes__list_notes', { tag }));
  check('list_notes shows the new note',
    listed.total === 1 && sameJson((listed.notes ?? []).map((n) => [n.id, n.title]), [[added.id, title]]), listed);

  // resources: the note is listed and readable
  const resources = await allResources(client);
  check('resources/list has the note', resources.some((r) => r.uri === uri), resources.map((r) => r.uri));
  const read = await client.readResource({ uri });
  const contents = read.contents?.[0];
  check('resources/read returns the note as Markdown',
    contents?.uri === uri && contents?.mimeType === 'text/markdown' && (contents?.text ?? '').includes(`# ${title}`),
    read.contents);

  // prompts
  const prompts = (await client.listPrompts()).prompts.map((p) => p.name);
  check('prompts/list has notes__summarize_notes', prompts.includes('notes__summarize_notes'), prompts);
  const prompt = await client.getPrompt({ name: 'notes__summarize_notes', arguments: { tag } });
  const first = prompt.messages?.[0];
  check('prompts/get notes__summarize_notes quotes the note',
    first?.role === 'user' && (first?.content?.text ?? '').includes(title), prompt.messages);

  // invalid arguments are a tool error, not a protocol error
  result = await client.callTool({ name: 'echo__echo', arguments: { msg: 42 } });
  check('echo__echo without `message` is a tool error (isError)', result.isError === true,
    { isError: result.isError, text: textOf(result) });
}

/** A fetch that notes method, status, Mcp-Session-Id and MCP-Protocol-Version per exchange. */
function recordingFetch(seen) {
  return async (input, init) => {
    const response = await fetch(input, init);
    seen.push({
      method: init?.method ?? 'GET',
      status: response.status,
      session: response.headers.get('mcp-session-id'),
      version: new Headers(init?.headers).get('mcp-protocol-version'),
    });
    return response;
  };
}

/** A client and transport for `sdk`; with a key, every request (POST, GET, DELETE) carries it. */
async function makeClient(sdk, url, seen, key) {
  const auth = key ? { requestInit: { headers: { Authorization: `Bearer ${key}` } } } : {};
  const { Client, StreamableHTTPClientTransport } = sdk === 'v1'
    ? { ...await import('@modelcontextprotocol/sdk/client/index.js'),
      ...await import('@modelcontextprotocol/sdk/client/streamableHttp.js') }
    : await import('@modelcontextprotocol/client');
  const client = sdk === 'v1'
    ? new Client({ name: 'waygate-interop-v1', version: '0.1.0' })
    : new Client({ name: 'waygate-interop-v2', version: '0.1.0' }, { versionNegotiation: { mode: 'auto' } });
  const transport = new StreamableHTTPClientTransport(new URL(url), { fetch: recordingFetch(seen), ...auth });
  return { client, transport };
}

/** With WAYGATE_KEY set: the same connection without the key must be refused with 401. */
async function runWithoutKey(url, sdk) {
  const seen = [];
  const { client, transport } = await makeClient(sdk, url, seen, undefined);
  const name = 'without the key the server refuses the connection with 401';
  try {
    await client.connect(transport);
    check(name, false, { connected: true, seen });
  } catch (error) {
    // v1: StreamableHTTPError with code 401; v2: SdkHttpError with status 401
    const status = sdk === 'v1' ? error?.code : error?.status;
    check(name, status === 401, { error: `${error?.constructor?.name}: ${error?.message}`, seen });
  } finally {
    await client.close().catch(() => {});
  }
}

async function runV1(url) {
  const seen = [];
  const { client, transport } = await makeClient('v1', url, seen, KEY);
  await client.connect(transport);
  try {
    check('v1 connected with initialize and got a session id', typeof transport.sessionId === 'string'
      && transport.sessionId.length > 0, transport.sessionId);
    check('negotiated protocol version is 2025-11-25', transport.protocolVersion === '2025-11-25',
      transport.protocolVersion);
    await exercise(client, 'node-v1');
    await transport.terminateSession();
    const deletes = seen.filter((x) => x.method === 'DELETE');
    check('terminateSession sent DELETE, answered 2xx',
      transport.sessionId === undefined && deletes.length === 1 && deletes[0].status >= 200 && deletes[0].status < 300,
      seen.slice(-3));
  } finally {
    await client.close();
  }
}

async function runV2(url) {
  const seen = [];
  const { client, transport } = await makeClient('v2', url, seen, KEY);
  await client.connect(transport);
  try {
    check('v2 auto used server/discover (stateless era)',
      client.getProtocolEra() === 'modern' && client.getDiscoverResult() !== undefined,
      { era: client.getProtocolEra(), discover: client.getDiscoverResult() });
    check('negotiated protocol version is 2026-07-28', client.getNegotiatedProtocolVersion() === '2026-07-28',
      client.getNegotiatedProtocolVersion());
    await exercise(client, 'node-v2');
    check('no Mcp-Session-Id and MCP-Protocol-Version 2026-07-28 on every request',
      seen.every((x) => x.session === null && x.version === '2026-07-28'), seen);
  } finally {
    await client.close();
  }
}

function sdkVersion(pkg) {
  const file = new URL(`./node_modules/${pkg}/package.json`, import.meta.url);
  try { return JSON.parse(readFileSync(file, 'utf8')).version; } catch { return '?'; }
}

async function main() {
  const [url, sdk] = process.argv.slice(2);
  if (!url || !['v1', 'v2'].includes(sdk)) {
    console.error('usage: node client.mjs URL v1|v2');
    return 2;
  }
  const pkg = sdk === 'v1' ? '@modelcontextprotocol/sdk' : '@modelcontextprotocol/client';
  console.log(`node ${process.version} ${pkg} ${sdkVersion(pkg)} url=${url} key=${KEY ? 'set' : 'unset'}`);
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${TIMEOUT_MS / 1000} s`)), TIMEOUT_MS);
  });
  try {
    await Promise.race([(async () => {
      await (sdk === 'v1' ? runV1(url) : runV2(url));
      if (KEY) await runWithoutKey(url, sdk);
    })(), timeout]);
  } catch (error) {
    console.error(error);
    check('no exception', false, `${error?.constructor?.name}: ${error?.message} ${error?.code ?? ''}`.trim());
  } finally {
    clearTimeout(timer);
  }
  const passed = failures.length === 0;
  console.log(`${passed ? 'PASS' : 'FAIL'}: node ${sdk}${passed ? '' : ` (${failures.length} failed)`}`);
  return passed ? 0 : 1;
}

// Exit explicitly: a hung SDK request or open stream must not keep the process alive.
process.exit(await main());
