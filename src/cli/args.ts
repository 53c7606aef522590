import { type ParseArgsConfig, parseArgs } from 'node:util';

/** A mistake on the command line: printed with the command's usage, exit code 2. */
export class UsageError extends Error {}

/** Ends a command with this exit code after it has said what went wrong. */
export class ExitCode extends Error {
  constructor(readonly code: number) {
    super(`exit code ${code}`);
  }
}

export type Values = Record<string, string | boolean | string[] | undefined>;

/** One CLI command: its usage text and what it runs. */
export interface Command {
  name: string;
  /** One line for the main help. */
  summary: string;
  /** `medimg-classify <name> --help`. */
  usage: string;
  run: (argv: string[]) => Promise<void>;
}

/** Parses `argv` strictly (unknown flags are errors that show the command's usage). */
export function parse(
  command: Command,
  argv: string[],
  options: ParseArgsConfig['options'],
  positionals = false,
): { values: Values; positionals: string[] } {
  try {
    return parseArgs({
      args: argv,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: positionals,
      strict: true,
    });
  } catch (error) {
    throw new UsageError(`${(error as Error).message.replace(/\. To specify.*$/, '')}\n\n${command.usage}`);
  }
}

/** A numeric flag, checked: `--name must be an integer >= 1, got 'x'`. */
export function num(
  name: string,
  value: string | boolean | string[] | undefined,
  fallback: number,
  opts: { integer?: boolean; min?: number; max?: number; minExclusive?: boolean } = {},
): number {
  if (value === undefined) return fallback;
  const v = Number(value);
  if (
    typeof value !== 'string' ||
    value.trim() === '' ||
    !Number.isFinite(v) ||
    (opts.integer && !Number.isInteger(v)) ||
    (opts.min !== undefined && (opts.minExclusive ? v <= opts.min : v < opts.min)) ||
    (opts.max !== undefined && v > opts.max)
  ) {
    const bound = opts.min !== undefined ? ` ${opts.minExclusive ? '>' : '>='} ${opts.min}` : '';
    throw new UsageError(
      `--${name} must be ${opts.integer ? 'an integer' : 'a number'}${bound}${opts.max !== undefined ? ` and <= ${opts.max}` : ''}, got '${String(value)}'`,
    );
  }
  return v;
}

/** A flag with a fixed set of values. */
export function choice<T extends string>(
  name: string,
  value: string | boolean | string[] | undefined,
  allowed: readonly T[],
  fallback: T,
): T {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value))
    throw new UsageError(`--${name} must be one of ${allowed.join(', ')}, got '${String(value)}'`);
  return value as T;
}

/** A string flag (or undefined). */
export const str = (value: string | boolean | string[] | undefined): string | undefined =>
  typeof value === 'string' ? value : undefined;
