/**
 * The start-up fast path of the nydusd command line (nydusd-fast-args.ts) against yargs
 * (nydusd-args.ts): whatever the fast path accepts must be exactly what yargs returns, and
 * everything it is not sure about must be left to yargs (undefined). Plain launcher lines must
 * take the fast path, or the start pays for loading yargs again.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import fc from 'fast-check';

import { nydusdParser } from '../../src/cli/nydusd-args.js';
import { parseNydusdArgsFast } from '../../src/cli/nydusd-fast-args.js';
import { kNydusdFlags, kSubcommands } from '../../src/cli/nydusd-flags.js';

async function viaYargs(argv: string[]): Promise<Record<string, unknown>> {
  return { ...(await nydusdParser(argv).parseAsync()) };
}

async function assertSame(argv: string[]): Promise<void> {
  const fast = parseNydusdArgsFast(argv);
  assert.ok(fast !== undefined, `fast path refused ${JSON.stringify(argv)}`);
  assert.deepEqual({ ...fast }, await viaYargs(argv), JSON.stringify(argv));
}

test('launcher command lines take the fast path and equal what yargs returns', async () => {
  const lines = [
    ['virtiofs', '--config', '/c.json', '--bootstrap', '/i.boot', '--sock', '/run/v.sock'],
    ['--sock', '/run/v.sock', '--bootstrap', '/i.boot', '--localfs-dir', '/blobs', '--log-level', 'debug'],
    ['--socket-path=/run/v.sock', '-B', '/i.boot', '-D', '/blobs', '--log-format=json'],
    ['fuse', '-M', '/mnt', '-B', '/i.boot', '-C', '/c.toml', '--thread-num', '8', '-l', 'warn', '-L', '/var/log/nydusd'],
    ['--mountpoint', '/mnt', '--bootstrap', '/i.boot', '--config', '/c.json', '--rlimit-nofile', '0', '--log-rotation-size', '16'],
    ['virtiofs', '--fd', '3', '--bootstrap', '/i.boot', '-D', '/b', '--failover-policy', 'none', '-m', '/'],
    ['--apisock', '/api.sock', '--mountpoint', '/mnt', '--bootstrap', 'x=y', '--config', '123'],
    ['singleton', '--fscache', '/var/cache'],
    [],
  ];
  for (const argv of lines) await assertSame(argv);
});

test('spellings only yargs should judge are left to it', () => {
  const lines = [
    ['--help'], ['-h'], ['-V'], ['--version'], ['--print-capabilities'], ['--writable'],
    ['--config', '/a', '--config', '/b'], ['--sock', '/a', '--socket-path', '/b'],
    ['--fd', '0x10'], ['--fd', '007'], ['--fd', '-1'], ['--fuse-threads', '1e3'], ['--fd', '3.5'],
    ['-l', 'loud'], ['--log-format', 'yaml'], ['--config'], ['--config', '--bootstrap', '/b'], ['--config='],
    ['--config', "'/q'"], ['--config', '"/q"'], ['--id', 'x'], ['--supervisor', '/s'], ['--prefetch-files', '/p'], ['-D', '/d', '-C', '/c'],
    ['--bootstrap', '/b', '--shared-dir', '/s'], ['--bogus'], ['--logLevel', 'info'], ['--no-writable'],
    ['-CB', '/x'], ['-C=/x'], ['--C', '/x'], ['--', 'x'], ['-'], ['frob'], ['5'], ['fuse', 'virtiofs'],
  ];
  for (const argv of lines) assert.equal(parseNydusdArgsFast(argv), undefined, JSON.stringify(argv));
});

const kValueFlags = Object.entries(kNydusdFlags).filter(([, s]) => s.type !== 'boolean');

/** A value yargs takes as it is: no leading '-' or quote, not empty. */
const plainString = fc.stringMatching(/^[a-zA-Z0-9_./][a-zA-Z0-9_./=: -]{0,12}$/);

/** Well-formed lines: each value flag at most once, valid values, no conflict or implication. */
const wellFormed = fc
  .uniqueArray(fc.constantFrom(...kValueFlags.filter(([n]) => !['id', 'supervisor', 'shared-dir', 'localfs-dir', 'prefetch-files'].includes(n))), {
    maxLength: 8,
    selector: ([n]) => n,
  })
  .chain((flags) =>
    fc.tuple(
      fc.tuple(
        ...flags.map(([name, spec]) => {
          const value = spec.type === 'number' ? fc.nat(1 << 20).map(String) : spec.choices ? fc.constantFrom(...spec.choices) : plainString;
          const names = [`--${name}`, ...(spec.alias === undefined ? [] : [spec.alias.length === 1 ? `-${spec.alias}` : `--${spec.alias}`])];
          return fc.tuple(fc.constantFrom(...names), value, fc.boolean()).map(([n, v, eq]) => (eq && n.startsWith('--') ? [`${n}=${v}`] : [n, v]));
        }),
      ),
      fc.option(fc.constantFrom(...kSubcommands)),
      fc.nat(),
    ),
  )
  .map(([pieces, sub, at]) => {
    const list = [...pieces];
    if (sub !== null) list.splice(at % (list.length + 1), 0, [sub]);
    return list.flat();
  });

test('generated well-formed lines: fast path taken, result equal to yargs', async () => {
  await fc.assert(fc.asyncProperty(wellFormed, (argv) => assertSame(argv)), { numRuns: 300 });
});

const kOdd = ['--help', '-h', '--bogus', '--logLevel', '--no-writable', '--', '-', '-CB', '--C', '-V', '--version'];
const kValues = [
  '/a/b', 'x=y', 'c d', '', '0', '4', '1024', '007', '0x10', '1e3', '-1', '3.5', '99999999999999999999', 'info',
  'loud', 'json', 'text', 'none', 'flush', "'q'", '"q"', 'true', 'false', 'virtiofs', 'fuse', 'frob',
];
const spellings = Object.entries(kNydusdFlags).flatMap(([n, s]) => [`--${n}`, ...(s.alias === undefined ? [] : [s.alias.length === 1 ? `-${s.alias}` : `--${s.alias}`])]);
const anyToken = fc.constantFrom(...spellings, ...kOdd);
const anyValue = fc.constantFrom(...kValues);
const anyPiece = fc.oneof(
  fc.tuple(anyToken, anyValue).map(([a, b]) => [a, b]),
  fc.tuple(anyToken, anyValue).map(([a, b]) => [`${a}=${b}`]),
  anyToken.map((a) => [a]),
  anyValue.map((v) => [v]),
);

test('generated arbitrary lines: whatever the fast path accepts, yargs accepts the same way', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(anyPiece, { maxLength: 6 }), async (pieces) => {
      const argv = pieces.flat();
      const fast = parseNydusdArgsFast(argv);
      if (fast !== undefined) assert.deepEqual({ ...fast }, await viaYargs(argv), JSON.stringify(argv));
    }),
    { numRuns: 1000 },
  );
});
