/**
 * Errors raised by medimg-classify name the operation (and the file, where there is one)
 * so that a user never has to read a stack trace from inside tfjs to find the problem.
 */
export class MedimgError extends Error {
  /** The operation or transform that refused its input, e.g. `letterbox`. */
  readonly op: string;
  constructor(op: string, message: string) {
    super(`Error in ${op}: ${message}`);
    this.name = 'MedimgError';
    this.op = op;
  }
}

/** Throws a {@link MedimgError} unless `condition` holds. */
export function check(condition: unknown, op: string, message: string | (() => string)): asserts condition {
  if (!condition) throw new MedimgError(op, typeof message === 'function' ? message() : message);
}

/** Checks that `value` is a finite number (optionally within bounds) and returns it. */
export function checkNumber(
  value: unknown,
  op: string,
  name: string,
  opts: {
    min?: number;
    max?: number;
    minExclusive?: boolean;
    maxExclusive?: boolean;
    integer?: boolean;
  } = {},
): number {
  check(
    typeof value === 'number' && Number.isFinite(value),
    op,
    () => `${name} must be a finite number, got ${String(value)}`,
  );
  if (opts.integer) check(Number.isInteger(value), op, `${name} must be an integer, got ${value}`);
  if (opts.min !== undefined) {
    const ok = opts.minExclusive ? value > opts.min : value >= opts.min;
    check(ok, op, `${name} must be ${opts.minExclusive ? '>' : '>='} ${opts.min}, got ${value}`);
  }
  if (opts.max !== undefined) {
    const ok = opts.maxExclusive ? value < opts.max : value <= opts.max;
    check(ok, op, `${name} must be ${opts.maxExclusive ? '<' : '<='} ${opts.max}, got ${value}`);
  }
  return value;
}
