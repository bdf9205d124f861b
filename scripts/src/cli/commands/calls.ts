// Commands that are one cluster call of a fixed shape: a policy switch turned on or off, and a call
// without arguments. Each declares its plan once; parsing, confirmation and sending are runPlan's.

import type { Command } from "commander";
import { badArgument } from "../../owner/args.ts";
import type { CliIo } from "../../owner/io.ts";
import type { TxPlan } from "../../owner/transact.ts";
import { runPlan, type TxCommandOptions, txOptions } from "./options.ts";

/** `<name> on|off`: a command that turns one policy switch on or off. */
export function registerSwitchCommand(
  command: Command,
  io: CliIo,
  options: {
    /** The command as its error message names it. */
    readonly name: string;
    readonly description: string;
    /** The plan's action, its function and the line it shows. */
    readonly action: string;
    readonly functionName: string;
    readonly label: string;
  },
): void {
  txOptions(command)
    .description(options.description)
    .action(async (value: string, flags: TxCommandOptions) => {
      if (value !== "on" && value !== "off")
        throw badArgument(`${options.name} takes "on" or "off", got "${value}"`);
      const on = value === "on";
      await runPlan(io, flags, () => ({
        action: options.action,
        functionName: options.functionName,
        args: [on],
        changes: { [options.label]: value },
      }));
    });
}

/** A command without arguments that sends one fixed cluster call. */
export function registerFixedCallCommand(
  command: Command,
  io: CliIo,
  description: string,
  plan: TxPlan,
): void {
  txOptions(command)
    .description(description)
    .action(async (options: TxCommandOptions) => {
      await runPlan(io, options, () => plan);
    });
}
