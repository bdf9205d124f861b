// Gas sponsorship end to end on a Hardhat node with a real bundler (Pimlico's Alto) and the
// sponsorship service: a node with no ETH registers through its member account; the funded-key
// fallback still works; a refused operation never reaches the chain.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { devnetPrivateKey } from "@attestmesh/scripts/devnet/accounts.ts";
import { clusterAbi, memberAccountAbi, sponsorPaymasterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { memberDomain, memberTypes } from "@attestmesh/shared/contracts/typedData.ts";
import { isAttestmeshError } from "@attestmesh/shared/errors.ts";
import { approvalDigest, decodePaymasterData, signApproval } from "@attestmesh/sponsor/approval.ts";
import {
  type Address,
  type BaseError,
  ContractFunctionRevertedError,
  encodeFunctionData,
  type Hex,
  http,
  keccak256,
  parseEventLogs,
  toHex,
} from "viem";
import {
  createBundlerClient,
  createPaymasterClient,
  entryPoint07Abi,
  toPackedUserOperation,
  type UserOperation,
} from "viem/account-abstraction";
import { generatePrivateKey, privateKeyToAccount, signTypedData } from "viem/accounts";
import { createClusterReader } from "../../sidecar/src/chain/cluster.ts";
import { toMemberAccount } from "../../sidecar/src/chain/memberAccount.ts";
import { selectClusterWriter } from "../../sidecar/src/chain/selectWriter.ts";
import { createSponsoredWriter } from "../../sidecar/src/chain/sponsoredWriter.ts";
import type { ClusterWriter } from "../../sidecar/src/chain/writer.ts";
import type { NodeKeys } from "../../sidecar/src/keys.ts";
import { registerOnce } from "../../sidecar/src/register.ts";
import { captureLogger } from "../../sidecar/test/helpers.ts";
import { type SponsorshipFixture, setupSponsorship } from "../helpers/sponsorship.ts";

describe("sponsored registration through a real bundler", { timeout: 300_000 }, () => {
  let fx: SponsorshipFixture;
  let sponsorUrl: string;
  let keys: NodeKeys;
  let writer: ClusterWriter;
  let memberId: bigint;

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
    keys = await fx.node();
    assert.equal(await fx.publicClient.getBalance({ address: keys.member.address }), 0n);
    const depositBefore = await fx.publicClient.getBalance({ address: fx.sponsorship.entryPoint });
    const registered = await register(keys);
    writer = registered.writer;
    memberId = registered.registration.memberId;
    const registration = registered.registration;
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

  test("the member commits the CSK, sends a message and leaves, all sponsored; it still holds nothing", async () => {
    const sign = (primaryType: "CommitCsk" | "Send" | "Leave", message: Record<string, unknown>) =>
      signTypedData({
        privateKey: keys.member.secret.reveal(),
        domain: memberDomain(fx.chainId, fx.cluster.diamond),
        types: memberTypes,
        primaryType,
        message,
      } as never);
    const [epoch] = await fx.clusterAsOwner.read.currentCsk();
    const commitment = keccak256(toHex(randomBytes(32)));
    const committed = await writer.submit({
      functionName: "commitCsk",
      args: [memberId, epoch, commitment, await sign("CommitCsk", { memberId, epoch, commitment })],
    });
    assert.equal(committed.sponsored, true);
    assert.equal((await fx.clusterAsOwner.read.currentCsk())[1], commitment);

    const envelopeId = keccak256(toHex("envelope 1"));
    const ciphertext = toHex(randomBytes(96));
    const sendArgs = [
      memberId,
      memberId,
      envelopeId,
      ciphertext,
      await sign("Send", {
        senderId: memberId,
        recipientId: memberId,
        envelopeId,
        ciphertextHash: keccak256(ciphertext),
      }),
    ] as const;
    const sent = await writer.submit({ functionName: "send", args: sendArgs });
    assert.equal(sent.status, "success");
    assert.equal(await fx.clusterAsOwner.read.isDelivered([memberId, memberId, envelopeId]), true);
    // A resend of the same envelope would revert on chain; nobody pays for it and nothing is sent.
    const blockBefore = await fx.publicClient.getBlockNumber();
    await assert.rejects(writer.submit({ functionName: "send", args: sendArgs }), (error: unknown) => {
      assert.match(String(error), /EnvelopeAlreadyDelivered/);
      return true;
    });
    assert.equal(await fx.publicClient.getBlockNumber(), blockBefore);

    const left = await writer.submit({
      functionName: "leaveCluster",
      args: [memberId, await sign("Leave", { memberId })],
    });
    assert.equal(left.sponsored, true);
    assert.equal((await fx.clusterAsOwner.read.member([memberId])).status, 2);
    assert.equal(await fx.publicClient.getBalance({ address: writer.from }), 0n);
    assert.equal(await fx.publicClient.getBalance({ address: keys.member.address }), 0n);
  });
});

describe("sponsorship refusals and tampering", { timeout: 300_000 }, () => {
  let fx: SponsorshipFixture;
  let sponsor: Awaited<ReturnType<SponsorshipFixture["startSponsor"]>>;

  before(async () => {
    fx = await setupSponsorship();
    sponsor = await fx.startSponsor({ caps: { maxOps: 3, maxWei: 10n ** 18n } });
  });
  after(async () => fx?.stop());

  async function accountOf(keys: NodeKeys) {
    return toMemberAccount({
      client: (await fx.chainContext()).publicClient,
      owner: privateKeyToAccount(keys.member.secret.reveal()),
      entryPoint: fx.sponsorship.entryPoint,
      factory: fx.sponsorship.accountFactory,
    });
  }

  async function registerCall(keys: NodeKeys, overrides: { wireguardKey?: Hex } = {}): Promise<Hex> {
    const nonce = await fx.clusterAsOwner.read.registrationNonce([keys.appId]);
    const wireguardKey = overrides.wireguardKey ?? keys.wireguard.publicKey;
    const signature = await signTypedData({
      privateKey: keys.member.secret.reveal(),
      domain: memberDomain(fx.chainId, fx.cluster.diamond),
      types: memberTypes,
      primaryType: "Register",
      message: { appId: keys.appId, wireguardKey, identityKey: keys.identity.publicKey, nonce },
    });
    return encodeFunctionData({
      abi: clusterAbi,
      functionName: "register",
      args: [keys.member.proof, wireguardKey, keys.identity.publicKey, signature],
    });
  }

  async function operation(
    keys: NodeKeys,
    clusterCall: Hex,
    options: { target?: Address; value?: bigint } = {},
  ): Promise<UserOperation<"0.7">> {
    const account = await accountOf(keys);
    const deployed = await account.isDeployed();
    return {
      sender: account.address,
      nonce: await account.getNonce(),
      ...(deployed ? {} : await account.getFactoryArgs()),
      callData: encodeFunctionData({
        abi: memberAccountAbi,
        functionName: "execute",
        args: [options.target ?? fx.cluster.diamond, options.value ?? 0n, clusterCall],
      }),
      callGasLimit: 600_000n,
      verificationGasLimit: 400_000n,
      preVerificationGas: 100_000n,
      maxFeePerGas: 3_000_000_000n,
      maxPriorityFeePerGas: 1_000_000_000n,
      signature: "0x",
    } as UserOperation<"0.7">;
  }

  async function askSponsor(op: UserOperation<"0.7">, chainId = fx.chainId) {
    const client = createPaymasterClient({ transport: http(sponsor.url, { retryCount: 0 }) });
    return client.getPaymasterData({ ...op, chainId, entryPointAddress: fx.sponsorship.entryPoint });
  }

  async function assertRefused(promise: Promise<unknown>, reason: string) {
    await assert.rejects(promise, (error: unknown) => {
      assert.match(String((error as Error).message), new RegExp(`${reason}:`));
      return true;
    });
    const line = sponsor.logs.lines().findLast((l) => l.decision === "refused");
    assert.equal(line?.reason, reason, "the refusal is logged with its reason");
  }

  async function registeredMember(): Promise<{ keys: NodeKeys; memberId: bigint }> {
    const keys = await fx.node();
    const chain = await fx.chainContext();
    const logger = captureLogger().logger;
    const writer = await createSponsoredWriter({
      chain,
      memberKey: keys.member.secret,
      entryPoint: fx.sponsorship.entryPoint,
      accountFactory: fx.sponsorship.accountFactory,
      bundler: fx.bundler.url,
      paymaster: (await fx.startSponsor()).url,
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
    return { keys, memberId: registration.memberId };
  }

  test("the service's approval digest is the paymaster's, field for field", async () => {
    const keys = await fx.node();
    const op = {
      ...(await operation(keys, await registerCall(keys))),
      paymasterVerificationGasLimit: 60_000n,
      paymasterPostOpGasLimit: 0n,
    };
    const window = { validUntil: 2_000_000_000, validAfter: 12 };
    const packed = toPackedUserOperation({ ...op, paymaster: fx.sponsorship.paymaster, paymasterData: "0x" });
    const onChain = await fx.publicClient.readContract({
      address: fx.sponsorship.paymaster,
      abi: sponsorPaymasterAbi,
      functionName: "approvalDigest",
      args: [packed, window.validUntil, window.validAfter],
    });
    assert.equal(approvalDigest(op, fx.chainId, fx.sponsorship.paymaster, window), onChain);
  });

  test("wrong chain: refused", async () => {
    const keys = await fx.node();
    await assertRefused(askSponsor(await operation(keys, await registerCall(keys)), 1), "wrong-chain");
  });

  test("an app id the owner has not allowed is not registrable: refused", async () => {
    const keys = await fx.node({ allow: false });
    await assertRefused(askSponsor(await operation(keys, await registerCall(keys))), "not-registrable");
  });

  test("a member action for a member the account's key is not: refused as not-member", async () => {
    const { memberId } = await registeredMember();
    const stranger = await fx.node();
    const leave = encodeFunctionData({
      abi: clusterAbi,
      functionName: "leaveCluster",
      args: [memberId, `0x${"11".repeat(65)}`],
    });
    await assertRefused(askSponsor(await operation(stranger, leave)), "not-member");
  });

  test("a registration for another node's member key: refused", async () => {
    const keys = await fx.node();
    const other = await fx.node();
    await assertRefused(askSponsor(await operation(other, await registerCall(keys))), "not-own-registration");
  });

  test("a cluster function that is not a member action (owner-only evict): refused", async () => {
    const keys = await fx.node();
    const evict = encodeFunctionData({ abi: clusterAbi, functionName: "evict", args: [1n, 0] });
    await assertRefused(askSponsor(await operation(keys, evict)), "disallowed-function");
  });

  test("non-zero value: refused", async () => {
    const keys = await fx.node();
    await assertRefused(
      askSponsor(await operation(keys, await registerCall(keys), { value: 1n })),
      "non-zero-value",
    );
  });

  test("a call to another contract than the cluster: refused", async () => {
    const keys = await fx.node();
    const op = await operation(keys, await registerCall(keys), { target: fx.sponsorship.paymaster });
    await assertRefused(askSponsor(op), "disallowed-target");
  });

  test("a sender that is not a member account of this cluster: refused", async () => {
    const keys = await fx.node();
    const op = await operation(keys, await registerCall(keys));
    const { factory: _f, factoryData: _d, ...withoutInit } = op;
    await assertRefused(
      askSponsor({ ...withoutInit, sender: fx.owner.account.address }),
      "not-member-account",
    );
  });

  test("a refused operation never reaches the chain (sponsor for another chain; writer path)", async () => {
    const keys = await fx.node();
    const wrongChain = await fx.startSponsor({ chainId: 1 });
    const chain = await fx.chainContext();
    const writer = await createSponsoredWriter({
      chain,
      memberKey: keys.member.secret,
      entryPoint: fx.sponsorship.entryPoint,
      accountFactory: fx.sponsorship.accountFactory,
      bundler: fx.bundler.url,
      paymaster: wrongChain.url,
      logger: captureLogger().logger,
    });
    const blockBefore = await fx.publicClient.getBlockNumber();
    await assert.rejects(
      registerOnce({
        chain,
        reader: createClusterReader(chain.publicClient, chain.cluster),
        writer,
        keys,
        confirmations: 0,
        logger: captureLogger().logger,
        signal: new AbortController().signal,
        backoff: { initialMs: 10, maxMs: 50 },
      }),
      (error: unknown) => {
        assert.ok(isAttestmeshError(error, "SponsorRefused"));
        assert.equal(error.details.reason, "wrong-chain");
        assert.match(error.message, /refused to pay for register \(wrong-chain: /);
        return true;
      },
    );
    await sleep(1_000);
    assert.equal(await fx.publicClient.getBlockNumber(), blockBefore, "no transaction was mined");
    assert.equal((await fx.clusterAsOwner.read.memberOfApp([keys.appId]))[1], false);
    assert.equal(await fx.publicClient.getCode({ address: writer.from }), undefined);
  });

  test("per-member daily cap: the operation over the cap is refused and never reaches the chain", async () => {
    const keys = await fx.node();
    const capped = await fx.startSponsor({ caps: { maxOps: 1, maxWei: 10n ** 18n } });
    const chain = await fx.chainContext();
    const logger = captureLogger().logger;
    const writer = await createSponsoredWriter({
      chain,
      memberKey: keys.member.secret,
      entryPoint: fx.sponsorship.entryPoint,
      accountFactory: fx.sponsorship.accountFactory,
      bundler: fx.bundler.url,
      paymaster: capped.url,
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
    const signature = await signTypedData({
      privateKey: keys.member.secret.reveal(),
      domain: memberDomain(fx.chainId, fx.cluster.diamond),
      types: memberTypes,
      primaryType: "Leave",
      message: { memberId: registration.memberId },
    });
    const blockBefore = await fx.publicClient.getBlockNumber();
    await assert.rejects(
      writer.submit({ functionName: "leaveCluster", args: [registration.memberId, signature] }),
      (error: unknown) => {
        assert.ok(isAttestmeshError(error, "SponsorRefused"));
        assert.equal(error.details.reason, "cap-exceeded");
        assert.match(error.message, /refused to pay for leaveCluster/);
        return true;
      },
    );
    assert.equal(await fx.publicClient.getBlockNumber(), blockBefore, "no transaction was mined");
    assert.equal((await fx.clusterAsOwner.read.member([registration.memberId])).status, 1, "still a member");
    const metrics = await capped.metrics.registry.metrics();
    assert.match(
      metrics,
      /attestmesh_sponsor_decisions_total\{[^}]*decision="refused",reason="cap-exceeded"/,
    );
  });

  async function signedSponsoredOperation(keys: NodeKeys) {
    const account = await accountOf(keys);
    const bundler = createBundlerClient({
      client: (await fx.chainContext()).publicClient,
      account,
      transport: http(fx.bundler.url, { retryCount: 0 }),
      paymaster: createPaymasterClient({ transport: http(sponsor.url, { retryCount: 0 }) }),
    });
    const prepared = await bundler.prepareUserOperation({
      calls: [{ to: fx.cluster.diamond, data: await registerCall(keys) }],
    });
    const op = { ...prepared, signature: await account.signUserOperation(prepared) } as UserOperation<"0.7">;
    return { account, op };
  }

  async function handleOps(op: UserOperation<"0.7">) {
    return fx.publicClient.simulateContract({
      address: fx.sponsorship.entryPoint,
      abi: entryPoint07Abi,
      functionName: "handleOps",
      args: [[toPackedUserOperation(op)], fx.relayer.account.address],
      account: fx.relayer.account,
    });
  }

  function failedOpReason(error: unknown): string | undefined {
    const reverted = (error as BaseError).walk?.((e) => e instanceof ContractFunctionRevertedError);
    if (!(reverted instanceof ContractFunctionRevertedError)) return undefined;
    assert.equal(reverted.data?.errorName, "FailedOp");
    return String(reverted.data?.args?.[1]);
  }

  test("the approved, member-signed operation is valid on chain as is (control)", async () => {
    const keys = await fx.node();
    const { op } = await signedSponsoredOperation(keys);
    await handleOps(op);
  });

  test("a malicious sponsor tampers with the calldata after approval and re-signs it: rejected on chain (AA24)", async () => {
    const keys = await fx.node();
    const { op } = await signedSponsoredOperation(keys);
    const attacker = privateKeyToAccount(generatePrivateKey());
    const tamperedCall = await registerCall(keys, {
      wireguardKey: keccak256(toHex("attacker's WireGuard key")),
    });
    const tampered = {
      ...op,
      callData: encodeFunctionData({
        abi: memberAccountAbi,
        functionName: "execute",
        args: [fx.cluster.diamond, 0n, tamperedCall],
      }),
    };
    // The sponsor holds the paymaster key, so it can approve its own tampering; the member key it cannot.
    const window = decodePaymasterData(op.paymasterData!);
    tampered.paymasterData = await signApproval(
      fx.signer,
      tampered,
      fx.chainId,
      fx.sponsorship.paymaster,
      window,
    );
    await assert.rejects(handleOps(tampered), (error: unknown) => {
      assert.equal(failedOpReason(error), "AA24 signature error");
      return true;
    });
    // Even a signature of the attacker's own does not help: the account obeys the member key only.
    const attackerSigned = {
      ...tampered,
      signature: await attacker.signMessage({ message: { raw: keccak256("0x01") } }),
    };
    await assert.rejects(handleOps(attackerSigned), (error: unknown) => {
      assert.equal(failedOpReason(error), "AA24 signature error");
      return true;
    });
    // Through the bundler the same operation is refused before it is bundled.
    const bundler = createBundlerClient({
      transport: http(fx.bundler.url, { retryCount: 0 }),
      client: fx.publicClient,
    });
    await assert.rejects(
      bundler.sendUserOperation({ ...tampered, entryPointAddress: fx.sponsorship.entryPoint } as never),
    );
    assert.equal((await fx.clusterAsOwner.read.memberOfApp([keys.appId]))[1], false);
  });

  test("an approval for one operation does not sponsor another the member signed (AA34)", async () => {
    const keys = await fx.node();
    const { account, op } = await signedSponsoredOperation(keys);
    const other = { ...op, callGasLimit: op.callGasLimit + 1n };
    other.signature = await account.signUserOperation(other);
    await assert.rejects(handleOps(other), (error: unknown) => {
      assert.equal(failedOpReason(error), "AA34 signature error");
      return true;
    });
  });

  test("an expired approval is refused on chain (AA32)", async () => {
    const keys = await fx.node();
    const { account, op } = await signedSponsoredOperation(keys);
    const expired = { ...op };
    expired.paymasterData = await signApproval(fx.signer, expired, fx.chainId, fx.sponsorship.paymaster, {
      validAfter: 0,
      validUntil: 1,
    });
    expired.signature = await account.signUserOperation(expired);
    await assert.rejects(handleOps(expired), (error: unknown) => {
      assert.match(failedOpReason(error) ?? "", /AA32/);
      return true;
    });
  });
});

describe("funded-key fallback", { timeout: 300_000 }, () => {
  let fx: SponsorshipFixture;
  before(async () => {
    fx = await setupSponsorship();
  });
  after(async () => fx?.stop());

  test("without a bundler the gas key pays, as before", async () => {
    const keys = await fx.node();
    const chain = await fx.chainContext(devnetPrivateKey(5));
    const logger = captureLogger().logger;
    const writer = await selectClusterWriter({
      config: {
        bundlerUrl: undefined,
        paymasterUrl: undefined,
        entryPoint: fx.sponsorship.entryPoint,
        accountFactory: undefined,
      },
      chain,
      keys,
      logger,
    });
    assert.equal(writer?.mode, "direct");
    assert.equal(writer?.from.toLowerCase(), chain.wallet?.account.address.toLowerCase());
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
    assert.equal(registration.sponsored, false);
    const tx = await fx.publicClient.getTransaction({ hash: registration.txHash! });
    assert.equal(tx.from.toLowerCase(), chain.wallet?.account.address.toLowerCase());
    assert.equal(tx.to?.toLowerCase(), fx.cluster.diamond.toLowerCase());
  });
});
