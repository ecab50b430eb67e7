/**
 * URLs as they may appear in logs and errors: never with userinfo (proxy and mirror URLs may
 * carry credentials) and never with a query string (registry redirects point at presigned
 * object-store URLs whose signature is in the query).
 */
import { ConfigError } from '../../config/index.js';

export function displayUrl(u: URL | string): string {
  let url: URL;
  try {
    url = typeof u === 'string' ? new URL(u) : u;
  } catch {
    return '<invalid URL>';
  }
  return `${url.protocol}//${url.host}${url.pathname}${url.search === '' ? '' : '?…'}`;
}

/** Parses a configured http(s) URL, naming the config key in the error. */
export function parseHttpUrl(value: string, key: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`${key}: not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError(`${key}: must be an http:// or https:// URL`);
  return url;
}

/** Joins URL path parts with single slashes (config paths may or may not end in "/"). */
export function joinPath(...parts: string[]): string {
  const out = parts
    .filter((p) => p !== '')
    .map((p, i) => (i === 0 ? p.replace(/\/+$/, '') : p.replace(/^\/+|\/+$/g, '')))
    .join('/');
  return out.startsWith('/') ? out : `/${out}`;
}
