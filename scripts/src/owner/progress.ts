// A spinner on a terminal while something waits on the chain; plain lines otherwise; nothing with --json
// (stdout stays parseable, and stderr quiet for tools).

import yoctoSpinner from "yocto-spinner";
import type { CliIo } from "./io.ts";

export interface Progress {
  update(text: string): void;
  succeed(text: string): void;
  fail(text: string): void;
}

export function startProgress(io: CliIo, json: boolean, text: string): Progress {
  if (json) return { update() {}, succeed() {}, fail() {} };
  if (io.stderr.isTTY && io.stderr === process.stderr) {
    const spinner = yoctoSpinner({ text, stream: process.stderr }).start();
    return {
      update: (t) => {
        spinner.text = t;
      },
      succeed: (t) => void spinner.success(t),
      fail: (t) => void spinner.error(t),
    };
  }
  io.stderr.write(`› ${text}\n`);
  return {
    update: (t) => void io.stderr.write(`› ${t}\n`),
    succeed: (t) => void io.stderr.write(`✔ ${t}\n`),
    fail: (t) => void io.stderr.write(`✖ ${t}\n`),
  };
}
