/**
 * Strict JSON configurations take JSON.parse (src/config/jsonc.ts) instead of the jsonc-parser
 * visitor, which a start then never loads. Both paths must build the same value: each document
 * below is parsed as it is (the fast path) and with a trailing comment (which only the visitor
 * accepts), and the two results compared.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { parseJsonc } from '../../src/config/index.js';

const viaVisitor = (text: string): unknown => parseJsonc(`${text}\n// a comment: only the visitor reads this`, 'c.json').value;

test('strict JSON builds the value the visitor builds', () => {
  const docs = [
    '{"device": {"backend": {"type": "localfs", "config": {"dir": "/b"}}}, "mode": "direct"}',
    '{"a": 1, "a": 2, "b": [1, 2.5, -0, 1e21, 12345678901234567890, null, true, false]}',
    '{"s": "tab\\t \\u00e9 \\ud83d\\ude00 \\" \\\\ \\/", "empty": {}, "list": [[], [{}]]}',
    '{"__proto__": {"polluted": 1}, "constructor": 1}',
    '[1, {"x": [2]}]',
    '  \r\n\t{"spaced" :\n 1 }  \n',
  ];
  for (const text of docs) {
    const fast = parseJsonc(text, 'c.json');
    assert.deepEqual(fast.notes, []);
    assert.deepEqual(fast.value, viaVisitor(text), text);
  }
  const proto = parseJsonc('{"__proto__": {"polluted": 1}}', 'c.json').value as Record<string, unknown>;
  assert.ok(Object.hasOwn(proto, '__proto__'));
  assert.equal(Object.getPrototypeOf(proto), Object.prototype);
  assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
});

test('the nesting limit holds on the fast path: 64 levels parse, 65 get the visitor error', () => {
  const nest = (n: number): string => `${'['.repeat(n)}${']'.repeat(n)}`;
  assert.doesNotThrow(() => parseJsonc(nest(64), 'c.json'));
  assert.throws(() => parseJsonc(nest(65), 'c.json'), /c\.json: invalid JSON at line 1 column 65: nesting deeper than 64$/);
  assert.throws(() => parseJsonc(`{"a": ${nest(64)}}`, 'c.json'), /nesting deeper than 64/);
});

test('what JSON.parse refuses goes to the visitor, whose messages never quote the input', () => {
  const secret = 'SuperSecretValue123';
  const r = parseJsonc(`{"k": "${secret}",}`, 'c.json');
  assert.deepEqual(r.value, { k: secret });
  assert.throws(() => parseJsonc(`{"k": ${secret}}`, 'c.json'), (e: Error) => !e.message.includes(secret) && /line 1 column 7/.test(e.message));
});
