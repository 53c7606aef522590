import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { MedimgError } from '../util/errors.js';
import type { WeightsDescriptor } from './pretrained.js';

/** md5 of a buffer, hex. */
export function md5(bytes: Uint8Array): string {
  return createHash('md5').update(bytes).digest('hex');
}

export interface FetchWeightsOptions {
  /** Cache folder. Default `$MEDIMG_CACHE` or `~/.cache/medimg-classify`. */
  cacheDir?: string;
  /** The fetch to use (default the global one); injectable for tests and proxies. */
  fetch?: (url: string) => Promise<FetchResponse>;
  /** Called with a line of progress text. */
  onProgress?: (message: string) => void;
}

/** The part of a fetch `Response` that {@link fetchWeights} uses (a body stream gives progress). */
export interface FetchResponse {
  ok: boolean;
  status: number;
  arrayBuffer(): Promise<ArrayBuffer>;
  headers?: { get(name: string): string | null };
  body?: { getReader(): { read(): Promise<{ done: boolean; value?: Uint8Array }> } } | null;
}

/** Reads a response, reporting every 10% when its size is known and it streams. */
async function readWithProgress(
  response: FetchResponse,
  say: (m: string) => void,
  name: string,
): Promise<Uint8Array> {
  const total = Number(response.headers?.get('content-length') ?? Number.NaN);
  const reader = response.body?.getReader?.();
  if (!reader || !(total > 0)) return new Uint8Array(await response.arrayBuffer());
  const parts: Uint8Array[] = [];
  let received = 0;
  let reported = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (!value) continue;
    parts.push(value);
    received += value.length;
    const tenth = Math.floor((10 * received) / total);
    if (tenth > reported) {
      reported = tenth;
      say(`${name}: ${(received / 1e6).toFixed(1)} of ${(total / 1e6).toFixed(1)} MB`);
    }
  }
  const out = new Uint8Array(received);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** The default cache folder for downloaded weights. */
export function defaultCacheDir(): string {
  return process.env.MEDIMG_CACHE ?? join(homedir(), '.cache', 'medimg-classify');
}

/**
 * Returns the local path of a weights file, downloading it into the cache when it is absent
 * or fails its md5 check. The download is written to a temporary file, verified, then renamed,
 * so a cache never holds a partial or corrupt file under the real name.
 */
export async function fetchWeights(
  descriptor: WeightsDescriptor,
  options: FetchWeightsOptions = {},
): Promise<string> {
  const op = 'fetchWeights';
  const dir = options.cacheDir ?? defaultCacheDir();
  const path = join(dir, descriptor.fileName);
  const say = options.onProgress ?? (() => {});
  try {
    const cached = new Uint8Array(await readFile(path));
    if (descriptor.md5 === null || md5(cached) === descriptor.md5) return path;
    say(`${path}: md5 mismatch, downloading again`);
  } catch {
    // not cached yet
  }
  const fetcher = options.fetch ?? (globalThis.fetch as unknown as NonNullable<FetchWeightsOptions['fetch']>);
  if (!fetcher) throw new MedimgError(op, 'no fetch available: pass options.fetch');
  say(`downloading ${descriptor.url}`);
  let bytes: Uint8Array;
  try {
    const response = await fetcher(descriptor.url);
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    bytes = await readWithProgress(response, say, descriptor.fileName);
  } catch (error) {
    throw new MedimgError(
      op,
      `could not download ${descriptor.url}: ${(error as Error).message}. Download it by hand into ${path}` +
        ` (or set MEDIMG_CACHE to the folder that holds ${descriptor.fileName})`,
    );
  }
  const sum = md5(bytes);
  if (descriptor.md5 === null) say(`${descriptor.fileName}: the publisher gives no checksum; md5 ${sum}`);
  else if (sum !== descriptor.md5) {
    throw new MedimgError(
      op,
      `${descriptor.url} has md5 ${sum}, expected ${descriptor.md5}: refusing a corrupt or different file`,
    );
  }
  await mkdir(dir, { recursive: true });
  const tmp = `${path}.part-${process.pid}`;
  try {
    await writeFile(tmp, bytes);
    await rename(tmp, path);
  } finally {
    await rm(tmp, { force: true });
  }
  say(`saved ${path} (${(bytes.length / 1e6).toFixed(1)} MB)`);
  return path;
}
