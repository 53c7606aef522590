#!/usr/bin/env node
// The `medimg-classify` executable: runs the CLI and sets the exit code.
import { main } from './main.js';

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
