// Every command and subcommand answers --help with its usage and exit code 0; an unknown command or
// option fails with exit code 1 and commander's message.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { COMMANDS, createProgram, namedCommand } from "@attestmesh/scripts/cli/main.ts";
import { runAttestmesh } from "../helpers/cli.ts";

type Command = Awaited<ReturnType<typeof createProgram>>;

function paths(command: Command, prefix: string[] = []): string[][] {
  return command.commands.flatMap((sub) => {
    const path = [...prefix, sub.name()];
    return [path, ...paths(sub, path)];
  });
}

const quiet = { write: () => true };
const io = { stdout: quiet, stderr: quiet, interactive: false, env: {} };
const program = await createProgram(io);
const all = paths(program);

describe("attestmesh --help", () => {
  it("covers the owner commands", () => {
    const names = all.map((p) => p.join(" "));
    for (const expected of [
      "deploy",
      "compose-hash",
      "allow compose",
      "allow app",
      "allow kms-root",
      "allow device",
      "allow-any-device",
      "deny compose",
      "deny kms-root",
      "revoke app",
      "revoke device",
      "member-app create",
      "member-app register",
      "members",
      "evict",
      "indexer set",
      "indexer show",
      "policy show",
      "policy history",
      "check",
      "devnet evict",
      "ownership transfer",
      "ownership accept",
    ]) {
      assert.ok(names.includes(expected), expected);
    }
  });

  // `--help` lists each command from COMMANDS without loading its module: the listing must say what
  // the loaded command says.
  it("lists every command as its module registers it", () => {
    // Everything is loaded here, so the terms are commander's own.
    const help = program.createHelp();
    assert.deepEqual(
      program.commands.map((command) => [help.subcommandTerm(command), help.subcommandDescription(command)]),
      COMMANDS.map((entry) => [entry.term, entry.summary]),
    );
  });

  it("loads only the named command's module, and lists the rest", async () => {
    for (const argv of [
      ["members", "--json"],
      ["--debug", "help", "evict"],
      ["evict", "1"],
    ]) {
      const name = namedCommand(argv);
      const target = COMMANDS.find((entry) => entry.name === name)!;
      const lazy = await createProgram(io, (entry) => entry.load === target.load);
      const loaded = lazy.commands.filter(
        (command) => command.options.length > 0 || command.commands.length > 0,
      );
      assert.deepEqual(
        loaded.map((command) => command.name()),
        ["members", "evict"],
      );
      assert.deepEqual(
        lazy.commands.map((command) => command.name()),
        COMMANDS.map((entry) => entry.name),
      );
    }
  });

  for (const path of all) {
    it(path.join(" "), async () => {
      const run = await runAttestmesh([...path, "--help"], {});
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, new RegExp(`^Usage: attestmesh ${path.join(" ")}`));
    });
  }

  it("an unknown command or option fails with a message", async () => {
    const unknown = await runAttestmesh(["frobnicate"], {});
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /unknown command 'frobnicate'/);
    const option = await runAttestmesh(["members", "--frob"], {});
    assert.equal(option.code, 1);
    assert.match(option.stderr, /unknown option '--frob'/);
  });
});
