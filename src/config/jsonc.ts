/**
 * A JSON parser that also accepts what users paste from the nydusd docs: `//` and `/* *\/`
 * comments, trailing commas, and a missing comma between members that sit on separate lines
 * (the upstream doc examples have all three). Everything else is strict JSON.
 *
 * Why not JSON.parse: its messages quote the surrounding text, which may hold a secret (an OSS
 * key, a registry token); ours only say line and column.
 */
import { ConfigError } from './errors.js';

export interface JsoncResult {
  value: unknown;
  /** Tolerated deviations worth telling the user about (a missing comma). */
  notes: string[];
}

const kMaxDepth = 64;

class Parser {
  private pos = 0;
  readonly notes: string[] = [];

  constructor(
    private readonly text: string,
    private readonly source: string,
  ) {}

  parse(): unknown {
    this.skip();
    const v = this.value(0);
    this.skip();
    if (this.pos < this.text.length) this.fail('unexpected text after the top-level value');
    return v;
  }

  private where(pos = this.pos): string {
    let line = 1;
    let col = 1;
    for (let i = 0; i < pos && i < this.text.length; i++) {
      if (this.text.charCodeAt(i) === 10) {
        line++;
        col = 1;
      } else {
        col++;
      }
    }
    return `line ${line} column ${col}`;
  }

  private fail(what: string, pos = this.pos): never {
    throw new ConfigError(`${this.source}: invalid JSON at ${this.where(pos)}: ${what}`);
  }

  /** Skips whitespace and comments; returns whether a newline was crossed. */
  private skip(): boolean {
    let newline = false;
    const t = this.text;
    while (this.pos < t.length) {
      const c = t.charCodeAt(this.pos);
      if (c === 10) {
        newline = true;
        this.pos++;
      } else if (c === 32 || c === 9 || c === 13 || c === 0xfeff) {
        this.pos++;
      } else if (c === 47 && t.charCodeAt(this.pos + 1) === 47) {
        const end = t.indexOf('\n', this.pos);
        this.pos = end < 0 ? t.length : end;
      } else if (c === 47 && t.charCodeAt(this.pos + 1) === 42) {
        const end = t.indexOf('*/', this.pos + 2);
        if (end < 0) this.fail('unterminated /* comment');
        if (t.slice(this.pos, end).includes('\n')) newline = true;
        this.pos = end + 2;
      } else {
        break;
      }
    }
    return newline;
  }

  private value(depth: number): unknown {
    if (depth > kMaxDepth) this.fail(`nesting deeper than ${kMaxDepth}`);
    const c = this.text[this.pos];
    if (c === '{') return this.object(depth);
    if (c === '[') return this.array(depth);
    if (c === '"') return this.string();
    if (c === 't') return this.word('true', true);
    if (c === 'f') return this.word('false', false);
    if (c === 'n') return this.word('null', null);
    if (c === undefined) return this.fail('unexpected end of input');
    if (c === '-' || (c >= '0' && c <= '9')) return this.number();
    return this.fail(`unexpected character ${JSON.stringify(c)}`);
  }

  private word(w: string, v: unknown): unknown {
    if (!this.text.startsWith(w, this.pos)) this.fail('unexpected word');
    this.pos += w.length;
    return v;
  }

  private number(): number {
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(this.text.slice(this.pos, this.pos + 400));
    if (!m) this.fail('malformed number');
    this.pos += m[0].length;
    return Number(m[0]);
  }

  private string(): string {
    const t = this.text;
    const start = this.pos;
    this.pos++;
    let out = '';
    for (;;) {
      const i = this.pos;
      if (i >= t.length) this.fail('unterminated string', start);
      const c = t.charCodeAt(i);
      if (c === 34) {
        this.pos++;
        return out;
      }
      if (c < 0x20) this.fail('control character in string');
      if (c !== 92) {
        out += t[i];
        this.pos++;
        continue;
      }
      const e = t[i + 1] ?? '';
      this.pos += 2;
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out += e;
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          const hex = t.slice(this.pos, this.pos + 4);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail('bad \\u escape');
          out += String.fromCharCode(parseInt(hex, 16));
          this.pos += 4;
          break;
        }
        default:
          this.fail('bad escape in string', i);
      }
    }
  }

  private object(depth: number): Record<string, unknown> {
    const obj: Record<string, unknown> = {};
    this.pos++;
    let first = true;
    for (;;) {
      const newline = this.skip();
      if (this.text[this.pos] === '}') {
        this.pos++;
        return obj;
      }
      if (!first) {
        if (this.text[this.pos] === ',') {
          this.pos++;
          this.skip();
          if (this.text[this.pos] === '}') {
            this.pos++;
            return obj;
          }
        } else if (newline && this.text[this.pos] === '"') {
          this.notes.push(`missing comma before ${this.where()} (accepted)`);
        } else {
          this.fail('expected "," or "}"');
        }
      }
      if (this.text[this.pos] !== '"') this.fail('expected a quoted member name');
      const key = this.string();
      this.skip();
      if (this.text[this.pos] !== ':') this.fail('expected ":" after a member name');
      this.pos++;
      this.skip();
      // defineProperty: a "__proto__" member must stay data, never reach the prototype.
      Object.defineProperty(obj, key, { value: this.value(depth + 1), enumerable: true, writable: true, configurable: true });
      first = false;
    }
  }

  private array(depth: number): unknown[] {
    const arr: unknown[] = [];
    this.pos++;
    let first = true;
    for (;;) {
      const newline = this.skip();
      if (this.text[this.pos] === ']') {
        this.pos++;
        return arr;
      }
      if (!first) {
        if (this.text[this.pos] === ',') {
          this.pos++;
          this.skip();
          if (this.text[this.pos] === ']') {
            this.pos++;
            return arr;
          }
        } else if (newline) {
          this.notes.push(`missing comma before ${this.where()} (accepted)`);
        } else {
          this.fail('expected "," or "]"');
        }
      }
      arr.push(this.value(depth + 1));
      first = false;
    }
  }
}

/** Parses JSON with comments. Throws ConfigError naming `source`, line and column. */
export function parseJsonc(text: string, source = 'config'): JsoncResult {
  const p = new Parser(text, source);
  const value = p.parse();
  return { value, notes: p.notes };
}

/** True when the text (after comments and whitespace) starts like a JSON document. */
export function looksLikeJson(text: string): boolean {
  const stripped = text.replace(/^(\s|\/\/[^\n]*\n?|\/\*[\s\S]*?\*\/)*/, '');
  return stripped.startsWith('{') || stripped.startsWith('[');
}
