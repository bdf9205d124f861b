// Gas sponsorship end to end on a Hardhat node with a real bundler (Pimlico's Alto) and the
// sponsorship service: a node with no ETH registers through its member account; the funded-key
// fallback still works; a refused operation never reaches the chain.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { devnetPrivateKey } from "@attestmesh/scripts/devnet/accounts.ts";
import { isAttestmeshError } from "@attestmesh/shared/errors.ts";
import { parseEventLogs } from "viem";
import { entryPoint07Abi } from "viem/account-abstraction";
import { createClusterReader } from "../../sidecar/src/chain/cluster.ts";
import { selectClusterWriter } from "../../sidecar/src/chain/selectWriter.ts";
import { createSponsoredWriter } from "../../sidecar/src/chain/sponsoredWriter.ts";
import type { NodeKeys } from "../../sidecar/src/keys.ts";
import { registerOnce } from "../../sidecar/src/register.ts";
import { captureLogger } from "../../sidecar/test/helpers.ts";
import { type SponsorshipFixture, setupSponsorship } from "../helpers/sponsorship.ts";

describe("sponsored registration through a real bundler", { timeout: 300_000 }, () => {
  let fx: SponsorshipFixture;
  let sponsorUrl: string;

  before(async () => {
    fx = await setupSponsorship();
    sponsorUrl = (await fx.startSponsor()).url;
  });
  after(async () => fx?.stop());

  async function register(keys: NodeKeys, paymasterUrl = sponsorUrl) {
    const chain = await fx.chainContext();
    const logger = captureLogger().logger;
    const writer = await createSponsoredWriter({
      chain,
      memberKey: keys.member.secret,
      entryPoint: fx.sponsorship.entryPoint,
      accountFactory: fx.sponsorship.accountFactory,
      bundler: fx.bundler.url,
      paymaster: paymasterUrl,
      logger,
    });
    const registration = await registerOnce({
      chain,
      reader: createClusterReader(chain.publicClient, chain.cluster),
      writer,
      keys,
      confirmations: 0,
      logger,
      signal: new AbortController().signal,
      backoff: { initialMs: 10, maxMs: 50 },
    });
    return { writer, registration };
  }

  test("a node with zero balance registers; its account is created by the same operation", async () => {
    const keys = await fx.node();
    assert.equal(await fx.publicClient.getBalance({ address: keys.member.address }), 0n);
    const depositBefore = await fx.publicClient.getBalance({ address: fx.sponsorship.entryPoint });
    const { writer, registration } = await register(keys);
    assert.equal(writer.mode, "sponsored");
    assert.equal(registration.submitted, true);
    assert.equal(registration.sponsored, true);
    const record = await fx.clusterAsOwner.read.member([registration.memberId]);
    assert.equal(record.memberKey, keys.member.address);
    assert.equal(record.status, 1);
    // The account exists now and still holds nothing; the member key never held anything.
    assert.notEqual(await fx.publicClient.getCode({ address: writer.from }), undefined);
    assert.equal(await fx.publicClient.getBalance({ address: writer.from }), 0n);
    assert.equal(await fx.publicClient.getBalance({ address: keys.member.address }), 0n);
    // The paymaster paid: its EntryPoint deposit went down by the operation's actual cost.
    const receipt = await fx.publicClient.getTransactionReceipt({ hash: registration.txHash! });
    const [event] = parseEventLogs({
      abi: entryPoint07Abi,
      logs: receipt.logs,
      eventName: "UserOperationEvent",
    });
    assert.ok(event);
    assert.equal(event.args.sender, writer.from);
    assert.equal(event.args.paymaster.toLowerCase(), fx.sponsorship.paymaster.toLowerCase());
    assert.equal(event.args.success, true);
    const depositAfter = await fx.publicClient.getBalance({ address: fx.sponsorship.entryPoint });
    assert.equal(depositBefore - depositAfter, event.args.actualGasCost);
  });
});
