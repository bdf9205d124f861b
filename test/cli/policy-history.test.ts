// `policy history` rebuilds the policy from events alone; after any sequence of owner changes it must
// equal `policy show`, which reads the chain's views. A seeded random walk over every policy command,
// run through the CLI, checks it after every few steps (the seed is printed to replay a failure).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { seededRng } from "@attestmesh/devnet/rng.ts";
import { POLICY_EVENT_NAMES } from "@attestmesh/scripts/owner/policyHistory.ts";
import { secp256k1 } from "@noble/curves/secp256k1";
import { type Address, bytesToHex, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { cliCluster } from "../helpers/cli.ts";
import { randomAppId } from "../helpers/cluster.ts";

describe("policy history equals policy show", async () => {
  const fx = await cliCluster();
  const seed = Number(process.env.ATTESTMESH_TEST_SEED ?? randomBytes(4).readUInt32LE());
  const rng = seededRng(seed);
  const random = () => rng.float();
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;

  // Small pools, so adds, removes, repeats and revocations of the same ids interleave.
  const hashes: Hex[] = Array.from({ length: 4 }, () => bytesToHex(randomBytes(32)));
  const devices: Hex[] = Array.from({ length: 3 }, () => bytesToHex(randomBytes(32)));
  const apps: Address[] = Array.from({ length: 4 }, () => randomAppId());
  const roots: string[] = Array.from({ length: 3 }, (_, i) => {
    const secret = secp256k1.utils.randomPrivateKey();
    // Give roots both ways the CLI accepts them.
    return i % 2 === 0
      ? privateKeyToAccount(bytesToHex(secret)).address
      : bytesToHex(secp256k1.getPublicKey(secret, true));
  });

  const steps: (() => string[])[] = [
    () => ["allow", "compose", pick(hashes)],
    () => ["deny", "compose", pick(hashes)],
    // The same hashes for the indexer role too, so roles of one hash interleave.
    () => ["allow", "compose", pick(hashes), "--role", "indexer"],
    () => ["deny", "compose", pick(hashes), "--role", "indexer"],
    () => ["allow", "app", pick(apps), "--role", "indexer"],
    () => ["allow", "device", pick(devices)],
    () => ["deny", "device", pick(devices)],
    () => ["revoke", "device", pick(devices), "--reason", `r${Math.floor(random() * 100)}`],
    () => ["allow", "app", pick(apps)],
    () => ["deny", "app", pick(apps)],
    () => ["revoke", "app", pick(apps), "--reason", `leak ${Math.floor(random() * 100)}`],
    () => ["allow", "kms-root", pick(roots)],
    () => ["deny", "kms-root", pick(roots)],
    () => ["allow-any-device", random() < 0.5 ? "on" : "off"],
    () => ["policy", "require-tcb-up-to-date", random() < 0.5 ? "on" : "off"],
  ];

  it(`after a random sequence of 40 changes (seed ${seed})`, async () => {
    let sent = 0;
    let refusedCount = 0;
    let emitted = 0;
    for (let i = 0; i < 40; i++) {
      const args = pick(steps)();
      const run = await fx.cli([...args, "--yes", "--json"]);
      if (run.code === 0) {
        sent++;
        // Policy events only: withdrawing what running members use also reopens the CSK epoch.
        emitted += run
          .json<{ events: { name: string }[] }>()
          .events.filter((e) => POLICY_EVENT_NAMES.has(e.name)).length;
      } else {
        // Allowed refusals only: re-allowing something revoked.
        const code = run.json<{ error: { code: string } }>().error.code;
        assert.ok(["AppIdRevoked", "DeviceIdRevoked"].includes(code), `${args.join(" ")}: ${run.stderr}`);
        refusedCount++;
      }
      if (i % 10 === 9) {
        const show = await fx.cli(["policy", "show", "--json"]);
        const history = await fx.cli(["policy", "history", "--json"]);
        assert.equal(show.code, 0, show.stderr);
        assert.equal(history.code, 0, history.stderr);
        assert.deepEqual(
          history.json<{ policy: unknown }>().policy,
          show.json<{ policy: unknown }>().policy,
          `after step ${i + 1}, seed ${seed}`,
        );
      }
    }
    assert.ok(sent > 20, `most steps were sent (${sent} sent, ${refusedCount} refused)`);
    const history = (await fx.cli(["policy", "history", "--json"])).json<{ events: { name: string }[] }>();
    // The deployment's KmsRootAdded, the test cluster's open policy (the simulated compose hash for the
    // node role: dstack's event and the role event; any device), then exactly the events the commands
    // reported.
    assert.deepEqual(
      history.events.slice(0, 4).map((e) => e.name),
      ["KmsRootAdded", "ComposeHashAdded", "ComposeHashAllowedFor", "AllowAnyDeviceSet"],
    );
    assert.equal(history.events.length, 4 + emitted);
    const text = await fx.cli(["policy", "history"]);
    assert.match(text.stdout, /rebuilt from these events alone/);
  });
});
