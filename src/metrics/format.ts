/** Formats like Python's `'{:.{d}f}'`: correctly rounded, exact ties to even. */
export function formatFixed(x: number, digits: number): string {
  if (!Number.isFinite(x)) return String(x);
  const exact = Math.abs(x).toFixed(Math.min(100, digits + 60));
  const dot = exact.indexOf('.');
  const rest = exact.slice(dot + 1 + digits);
  const tie = /^50*$/.test(rest);
  let s = x.toFixed(digits);
  if (tie) {
    // toFixed rounds exact ties away from zero; Python rounds them to even.
    const truncated = exact.slice(0, dot + 1 + digits).replace(/\.$/, '');
    const lastDigit = Number(truncated.replace('.', '').slice(-1));
    if (lastDigit % 2 === 0) s = (x < 0 ? '-' : '') + truncated;
  }
  return s;
}

export const padLeft = (s: string, width: number) => s.padStart(width, ' ');
