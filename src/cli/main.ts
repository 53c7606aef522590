import { MedimgError, VERSION } from '../node.js';
import { type Command, ExitCode, UsageError } from './args.js';
import { demo } from './commands/demo.js';
import { evaluateCmd } from './commands/evaluate.js';
import { inspectDataCmd } from './commands/inspect-data.js';
import { predictCmd } from './commands/predict.js';
import { trainCmd } from './commands/train.js';
import { err, out } from './io.js';

/** Every command, in the order the help lists them. */
export const COMMANDS: readonly Command[] = [demo, trainCmd, evaluateCmd, predictCmd, inspectDataCmd];

const mainHelp =
  () => `medimg-classify ${VERSION}: train and evaluate medical image classifiers on TensorFlow.js

Usage: medimg-classify <command> [options]

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(14)} ${c.summary}`).join('\n')}

Run 'medimg-classify help <command>' (or '<command> --help') for a command's options.`;

/** Runs the CLI with `argv` (without node and script); returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h') {
    out(mainHelp());
    return name ? 0 : 1;
  }
  if (name === 'help') {
    const topic = rest[0];
    if (!topic) {
      out(mainHelp());
      return 0;
    }
    const c = COMMANDS.find((x) => x.name === topic);
    if (!c) {
      err(`medimg-classify help: unknown command '${topic}'\n\n${mainHelp()}`);
      return 2;
    }
    out(c.usage);
    return 0;
  }
  if (name === '--version') {
    out(VERSION);
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    err(`medimg-classify: unknown command '${name}'\n\n${mainHelp()}`);
    return 2;
  }
  try {
    await command.run(rest);
    return 0;
  } catch (error) {
    if (error instanceof ExitCode) return error.code;
    if (error instanceof UsageError) {
      err(`medimg-classify ${name}: ${error.message}`);
      return 2;
    }
    if (error instanceof MedimgError) {
      err(`medimg-classify ${name}: ${error.message}`);
      return 1;
    }
    err(`medimg-classify ${name}: unexpected error: ${(error as Error).stack ?? String(error)}`);
    return 1;
  }
}
