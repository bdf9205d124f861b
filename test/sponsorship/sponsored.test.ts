// Gas sponsorship end to end on a Hardhat node with a real bundler (Pimlico's Alto) and the
// sponsorship service: a node with no ETH registers through its member account; the funded-key
// fallback still works; a refused operation never reaches the chain.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { devnetPrivateKey } from "@attestmesh/devnet/orchestration/accounts.ts";
import { clusterAbi, memberAccountAbi, sponsorPaymasterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { sponsorRequestDigest } from "@attestmesh/shared/contracts/sponsorRequest.ts";
import { memberDomain, memberTypes } from "@attestmesh/shared/contracts/typedData.ts";
import { isAttestmeshError } from "@attestmesh/shared/errors.ts";
import type { ChainContext } from "@attestmesh/sidecar/chain/client.ts";
import { toMemberAccount } from "@attestmesh/sidecar/chain/memberAccount.ts";
import { selectClusterWriter } from "@attestmesh/sidecar/chain/selectWriter.ts";
import { createSponsoredWriter } from "@attestmesh/sidecar/chain/sponsoredWriter.ts";
import type { ClusterWriter } from "@attestmesh/sidecar/chain/writer.ts";
import type { NodeKeys } from "@attestmesh/sidecar/keys.ts";
import { registerOnce } from "@attestmesh/sidecar/register.ts";
import { captureLogger, testRegisterOptions } from "@attestmesh/sidecar/testing/helpers.ts";
import { approvalDigest, decodePaymasterData, signApproval } from "@attestmesh/sponsor/approval.ts";
import {
  type Address,
  type BaseError,
  ContractFunctionRevertedError,
  decodeFunctionData,
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
import { SIMULATED_CLAIMS } from "../helpers/cluster.ts";
import { type SponsorshipFixture, setupSponsorship } from "../helpers/sponsorship.ts";

/** A writer that submits as `keys`'s member account through the bundler and the sponsor at `paymasterUrl`. */
async function sponsoredWriter(fx: SponsorshipFixture, keys: NodeKeys, paymasterUrl: string) {
  const chain = await fx.chainContext();
  const writer = await createSponsoredWriter({
    chain,
    memberKey: keys.member.secret,
    entryPoint: fx.sponsorship.entryPoint,
    accountFactory: fx.sponsorship.accountFactory,
    bundler: fx.bundler.url,
    paymaster: paymasterUrl,
    logger: captureLogger().logger,
  });
  return { chain, writer };
}

/** One registration attempt of `keys` through `writer`, not waiting for confirmations. */
function registerThrough(chain: ChainContext, writer: ClusterWriter, keys: NodeKeys) {
  return registerOnce(testRegisterOptions({ chain, writer, keys, claims: SIMULATED_CLAIMS }));
}

/** Registers `keys` through its member account, the bundler and the paymaster service at `paymasterUrl`. */
async function registerSponsored(fx: SponsorshipFixture, keys: NodeKeys, paymasterUrl: string) {
  const { chain, writer } = await sponsoredWriter(fx, keys, paymasterUrl);
  return { writer, registration: await registerThrough(chain, writer, keys) };
}

describe("sponsored registration through a real bundler", { timeout: 300_000 }, () => {
  let fx: SponsorshipFixture;
  let sponsor: Awaited<ReturnType<SponsorshipFixture["startSponsor"]>>;
  let sponsorUrl: string;
  let keys: NodeKeys;
  let writer: ClusterWriter;
  let memberId: bigint;

  before(async () => {
    fx = await setupSponsorship();
    sponsor = await fx.startSponsor();
    sponsorUrl = sponsor.url;
  });
  after(async () => fx?.stop());

  test("a node with zero balance registers; its account is created by the same operation", async () => {
    keys = await fx.node();
    assert.equal(await fx.publicClient.getBalance({ address: keys.member.address }), 0n);
    const depositBefore = await fx.publicClient.getBalance({ address: fx.sponsorship.entryPoint });
    const registered = await registerSponsored(fx, keys, sponsorUrl);
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
    // The member's caps are charged exactly what the EntryPoint charged, not the approval's maximum.
    await sponsor.watcher.sync();
    const spend = sponsor.ledger.spend(event.args.userOpHash);
    assert.equal(spend?.actualGasCost, event.args.actualGasCost);
    assert.equal(spend?.owner, keys.member.address.toLowerCase());
    assert.equal(spend?.success, true);
    assert.deepEqual(sponsor.ledger.usage(keys.member.address), { ops: 1, wei: event.args.actualGasCost });
  });

  test("the member commits the CSK, a second confirms it, it sends a message and leaves, all sponsored; it still holds nothing", async () => {
    const sign = (
      primaryType: "CommitCsk" | "ConfirmCsk" | "Send" | "Leave",
      message: Record<string, unknown>,
      by: NodeKeys = keys,
    ) =>
      signTypedData({
        privateKey: by.member.secret.reveal(),
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
    // A second member that pulled the key confirms the epoch on chain, sponsored as well (the sidecar
    // sends this once per epoch; refused, every puller retried it and the epoch stayed re-openable).
    const second = await fx.node();
    const { writer: secondWriter, registration } = await registerSponsored(fx, second, sponsorUrl);
    const confirmer = registration.memberId;
    const confirmedOp = await secondWriter.submit({
      functionName: "confirmCsk",
      args: [
        confirmer,
        epoch,
        commitment,
        await sign("ConfirmCsk", { memberId: confirmer, epoch, commitment }, second),
      ],
    });
    assert.equal(confirmedOp.sponsored, true);
    assert.equal((await fx.clusterAsOwner.read.cskRecovery())[1], confirmer);
    assert.equal(await fx.publicClient.getBalance({ address: secondWriter.from }), 0n);

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
    // Two operations built at the same moment: the account's EntryPoint nonce moves only on inclusion,
    // so the writer sends them one after the other; both land and neither is dropped.
    const racing = await Promise.all(
      [1, 2].map(async (i) => {
        const id = keccak256(toHex(`racing envelope ${i}`));
        const body = toHex(randomBytes(64));
        const signature = await sign("Send", {
          senderId: memberId,
          recipientId: memberId,
          envelopeId: id,
          ciphertextHash: keccak256(body),
        });
        const receipt = await writer.submit({
          functionName: "send",
          args: [memberId, memberId, id, body, signature],
        });
        return { id, receipt };
      }),
    );
    for (const { id, receipt } of racing) {
      assert.equal(receipt.status, "success");
      assert.equal(await fx.clusterAsOwner.read.isDelivered([memberId, memberId, id]), true);
    }
    assert.notEqual(racing[0]!.receipt.userOpHash, racing[1]!.receipt.userOpHash);
    // A resend of the same envelope would revert on chain; nobody pays for it and nothing is sent. Other
    // parties (the bundler, the sponsor) may mine blocks meanwhile: what must not land is an operation
    // of this account, so its EntryPoint nonce and the deposit stay put and no UserOperationEvent of it
    // appears, even a moment later.
    const blockBefore = await fx.publicClient.getBlockNumber();
    const entryPoint = { address: fx.sponsorship.entryPoint, abi: entryPoint07Abi } as const;
    const nonceBefore = await fx.publicClient.readContract({
      ...entryPoint,
      functionName: "getNonce",
      args: [writer.from, 0n],
    });
    const depositBefore = await fx.publicClient.getBalance({ address: fx.sponsorship.entryPoint });
    await assert.rejects(writer.submit({ functionName: "send", args: sendArgs }), (error: unknown) => {
      assert.match(String(error), /EnvelopeAlreadyDelivered/);
      return true;
    });
    await sleep(1_000);
    const ops = await fx.publicClient.getContractEvents({
      ...entryPoint,
      eventName: "UserOperationEvent",
      args: { sender: writer.from },
      fromBlock: blockBefore + 1n,
    });
    assert.deepEqual(ops, []);
    assert.equal(
      await fx.publicClient.readContract({
        ...entryPoint,
        functionName: "getNonce",
        args: [writer.from, 0n],
      }),
      nonceBefore,
    );
    assert.equal(await fx.publicClient.getBalance({ address: fx.sponsorship.entryPoint }), depositBefore);

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

  /** Which node's member key owns each account the tests built an operation for. */
  const ownerOf = new Map<Address, NodeKeys>();

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
    const signature = await fx.signRegister(keys, nonce, wireguardKey);
    return encodeFunctionData({
      abi: clusterAbi,
      functionName: "register",
      args: [keys.member.proof, wireguardKey, keys.identity.publicKey, SIMULATED_CLAIMS, signature],
    });
  }

  async function operation(
    keys: NodeKeys,
    clusterCall: Hex,
    options: { target?: Address; value?: bigint; nonce?: bigint } = {},
  ): Promise<UserOperation<"0.7">> {
    const account = await accountOf(keys);
    ownerOf.set(account.address, keys);
    const deployed = await account.isDeployed();
    return {
      sender: account.address,
      nonce: options.nonce ?? (await account.getNonce()),
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

  /** The ERC-7677 context a node sends: its member key's signature over the request. */
  async function memberContext(signerKey: Hex, op: UserOperation<"0.7">, chainId = fx.chainId) {
    const digest = sponsorRequestDigest({
      chainId,
      entryPoint: fx.sponsorship.entryPoint,
      sender: op.sender,
      nonce: op.nonce,
      factory: op.factory,
      factoryData: op.factoryData,
      callData: op.callData,
    });
    return {
      memberSignature: await privateKeyToAccount(signerKey).signMessage({ message: { raw: digest } }),
    };
  }

  /** Asks the sponsor for a final approval, the request signed by `signedBy` (the op's member, by default). */
  async function askSponsor(
    op: UserOperation<"0.7">,
    options: { chainId?: number; signedBy?: NodeKeys | Hex | null; url?: string } = {},
  ) {
    const chainId = options.chainId ?? fx.chainId;
    const client = createPaymasterClient({ transport: http(options.url ?? sponsor.url, { retryCount: 0 }) });
    const signedBy = options.signedBy === undefined ? ownerOf.get(op.sender) : options.signedBy;
    const key =
      signedBy === null || signedBy === undefined
        ? undefined
        : typeof signedBy === "string"
          ? signedBy
          : signedBy.member.secret.reveal();
    return client.getPaymasterData({
      ...op,
      chainId,
      entryPointAddress: fx.sponsorship.entryPoint,
      ...(key === undefined ? {} : { context: await memberContext(key, op, chainId) }),
    });
  }

  async function assertRefused(promise: Promise<unknown>, reason: string) {
    await assert.rejects(promise, (error: unknown) => {
      assert.match(String((error as Error).message), new RegExp(`${reason}:`));
      return true;
    });
    const line = sponsor.logs.lines().findLast((l) => l.decision === "refused");
    assert.equal(line?.reason, reason, "the refusal is logged with its reason");
  }

  async function registeredMember(
    paymasterUrl?: string,
  ): Promise<{ keys: NodeKeys; memberId: bigint; txHash: Hex }> {
    const keys = await fx.node();
    const { registration } = await registerSponsored(fx, keys, paymasterUrl ?? (await fx.startSponsor()).url);
    assert.ok(registration.txHash);
    return { keys, memberId: registration.memberId, txHash: registration.txHash };
  }

  /** A nonce on its own ERC-4337 nonce key: a distinct operation of the same account. */
  const nonceKey = (key: number) => BigInt(key) << 64n;

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
    await assertRefused(
      askSponsor(await operation(keys, await registerCall(keys)), { chainId: 1 }),
      "wrong-chain",
    );
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
    const { chain, writer } = await sponsoredWriter(fx, keys, wrongChain.url);
    const blockBefore = await fx.publicClient.getBlockNumber();
    await assert.rejects(registerThrough(chain, writer, keys), (error: unknown) => {
      assert.ok(isAttestmeshError(error, "SponsorRefused"));
      assert.equal(error.details.reason, "wrong-chain");
      assert.match(error.message, /refused to pay for register \(wrong-chain: /);
      return true;
    });
    await sleep(1_000);
    assert.equal(await fx.publicClient.getBlockNumber(), blockBefore, "no transaction was mined");
    assert.equal((await fx.clusterAsOwner.read.memberOfApp([keys.appId]))[1], false);
    assert.equal(await fx.publicClient.getCode({ address: writer.from }), undefined);
  });

  test("per-member daily cap: the operation over the cap is refused and never reaches the chain", async () => {
    const keys = await fx.node();
    const capped = await fx.startSponsor({ caps: { maxOps: 1, maxWei: 10n ** 18n } });
    const { writer, registration } = await registerSponsored(fx, keys, capped.url);
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
    const calls = [{ to: fx.cluster.diamond, data: await registerCall(keys) }] as const;
    const nonce = await account.getNonce();
    const context = await memberContext(keys.member.secret.reveal(), {
      sender: account.address,
      nonce,
      ...(await account.getFactoryArgs()),
      callData: await account.encodeCalls(calls),
    } as UserOperation<"0.7">);
    const prepared = await bundler.prepareUserOperation({ calls, nonce, paymasterContext: context });
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
  test("a stranger replaying a member's public registration calldata gets no approval and burns nothing", async () => {
    const { keys, txHash } = await registeredMember();
    // Everything the stranger needs is public: the member's registration, as the bundler put it on chain.
    const tx = await fx.publicClient.getTransaction({ hash: txHash });
    const { args } = decodeFunctionData({ abi: entryPoint07Abi, data: tx.input });
    const [published] = args[0] as readonly { sender: Address; callData: Hex }[];
    assert.ok(published);
    const strangerKey = generatePrivateKey();
    await sponsor.watcher.sync();
    const usageBefore = sponsor.ledger.usage(keys.member.address);
    const replay = async (nonce: bigint): Promise<UserOperation<"0.7">> => ({
      ...(await operation(keys, "0x", { nonce })),
      callData: published.callData,
    });
    // No proof at all, or a proof by the stranger's own key: refused, for every nonce it tries.
    await assertRefused(askSponsor(await replay(nonceKey(1)), { signedBy: null }), "no-member-proof");
    for (let key = 2; key < 12; key++) {
      const op = await replay(nonceKey(key));
      assert.equal(op.sender, published.sender);
      await assertRefused(askSponsor(op, { signedBy: strangerKey }), "no-member-proof");
    }
    assert.deepEqual(
      sponsor.ledger.usage(keys.member.address),
      usageBefore,
      "nothing reserved against the member",
    );
    // Even with the member's own proof (a member replaying itself), a registration the chain already
    // holds is a no-op: nothing to sponsor, nothing reserved.
    await assertRefused(askSponsor(await replay(nonceKey(12)), { signedBy: keys }), "already-member");
    assert.deepEqual(sponsor.ledger.usage(keys.member.address), usageBefore);
  });

  test("the member's own operations are still sponsored after a stranger's replay storm", async () => {
    const { keys, memberId } = await registeredMember();
    const op = await operation(keys, "0x");
    for (let key = 1; key <= 5; key++) {
      await assertRefused(
        askSponsor(
          { ...op, nonce: nonceKey(key), callData: op.callData },
          { signedBy: generatePrivateKey() },
        ),
        "no-member-proof",
      );
    }
    const leave = await operation(keys, await fx.leaveCall(keys, memberId));
    const approval = await askSponsor(leave);
    assert.ok(approval.paymasterData);
    await sponsor.watcher.sync();
    assert.equal(sponsor.ledger.usage(keys.member.address).ops, 2, "its registration and this approval");
  });

  test("gas limits and maximum cost over the per-operation bounds: refused before anything is reserved", async () => {
    const keys = await fx.node();
    const call = await registerCall(keys);
    await assertRefused(
      askSponsor({ ...(await operation(keys, call)), callGasLimit: 2_000_001n }),
      "over-limit",
    );
    await assertRefused(
      askSponsor({ ...(await operation(keys, call)), verificationGasLimit: 1_000_001n }),
      "over-limit",
    );
    await assertRefused(
      askSponsor({ ...(await operation(keys, call)), preVerificationGas: 5_000_001n }),
      "over-limit",
    );
    await assertRefused(
      askSponsor({ ...(await operation(keys, call)), maxFeePerGas: 10n ** 11n, maxPriorityFeePerGas: 1n }),
      "over-limit",
    );
    assert.deepEqual(sponsor.ledger.usage(keys.member.address), { ops: 0, wei: 0n });
  });

  test("concurrent approvals at a cap: exactly the cap is approved, never more", async () => {
    const keys = await fx.node();
    const capped = await fx.startSponsor({ caps: { maxOps: 3, maxWei: 10n ** 18n } });
    const call = await registerCall(keys);
    const ops = await Promise.all(
      Array.from({ length: 8 }, (_, i) => operation(keys, call, { nonce: nonceKey(i + 1) })),
    );
    const results = await Promise.allSettled(ops.map((op) => askSponsor(op, { url: capped.url })));
    const approved = results.filter((r) => r.status === "fulfilled");
    const refused = results.filter((r) => r.status === "rejected");
    assert.equal(approved.length, 3);
    for (const r of refused) assert.match(String((r as PromiseRejectedResult).reason), /cap-exceeded:/);
    assert.equal(capped.ledger.usage(keys.member.address).ops, 3);
  });

  test("a paid operation is charged its actual cost only once it is SPONSOR_CONFIRMATIONS blocks deep", async () => {
    const deep = await fx.startSponsor({ confirmations: 2 });
    const { keys, txHash } = await registeredMember(deep.url);
    const receipt = await fx.publicClient.getTransactionReceipt({ hash: txHash });
    const [event] = parseEventLogs({
      abi: entryPoint07Abi,
      logs: receipt.logs,
      eventName: "UserOperationEvent",
    });
    assert.ok(event);
    await deep.watcher.sync();
    assert.equal(deep.ledger.spend(event.args.userOpHash), undefined, "not yet confirmed");
    const reserved = deep.ledger.usage(keys.member.address);
    assert.equal(reserved.ops, 1);
    assert.ok(reserved.wei > event.args.actualGasCost, "until then the approval's maximum stays reserved");
    await fx.publicClient.request({ method: "hardhat_mine", params: ["0x2"] } as never);
    await deep.watcher.sync();
    assert.equal(deep.ledger.spend(event.args.userOpHash)?.actualGasCost, event.args.actualGasCost);
    assert.deepEqual(deep.ledger.usage(keys.member.address), { ops: 1, wei: event.args.actualGasCost });
    await deep.stop();
  });

  test("caps after a service restart are what they were", async () => {
    const caps = { maxOps: 2, maxWei: 10n ** 18n };
    const first = await fx.startSponsor({ caps });
    const { keys, memberId } = await registeredMember(first.url);
    await first.watcher.sync();
    // One paid registration and one outstanding approval.
    await askSponsor(await operation(keys, await fx.leaveCall(keys, memberId)), { url: first.url });
    const usage = first.ledger.usage(keys.member.address);
    assert.equal(usage.ops, 2);
    await first.stop();
    const second = await fx.startSponsor({ caps, stateDb: first.stateDb });
    assert.deepEqual(second.ledger.usage(keys.member.address), usage);
    sponsor = second;
    await assertRefused(
      askSponsor(await operation(keys, await fx.leaveCall(keys, memberId), { nonce: nonceKey(9) }), {
        url: second.url,
      }),
      "cap-exceeded",
    );
  });

  test("an approval never followed by a paid operation stops counting once its window has passed on chain", async () => {
    const keys = await fx.node();
    const capped = await fx.startSponsor({ caps: { maxOps: 1, maxWei: 10n ** 18n }, validitySeconds: 120 });
    sponsor = capped;
    const call = await registerCall(keys);
    const approval = await askSponsor(await operation(keys, call, { nonce: nonceKey(1) }), {
      url: capped.url,
    });
    const { validUntil } = decodePaymasterData(approval.paymasterData!);
    await assertRefused(
      askSponsor(await operation(keys, call, { nonce: nonceKey(2) }), { url: capped.url }),
      "cap-exceeded",
    );
    // The chain moves past validUntil without the operation: the EntryPoint can no longer include it.
    const chainNow = Number((await fx.publicClient.getBlock()).timestamp);
    assert.ok(chainNow <= validUntil, "the approval is still valid on chain before the time moves");
    await fx.publicClient.request({
      method: "evm_increaseTime",
      params: [validUntil - chainNow + 5],
    } as never);
    await fx.publicClient.request({ method: "evm_mine", params: [] } as never);
    await capped.watcher.sync();
    assert.deepEqual(capped.ledger.usage(keys.member.address), { ops: 0, wei: 0n });
    const again = await askSponsor(await operation(keys, call, { nonce: nonceKey(3) }), {
      url: capped.url,
    });
    assert.ok(again.paymasterData);
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
    assert.ok(writer);
    const registration = await registerThrough(chain, writer, keys);
    assert.equal(registration.sponsored, false);
    const tx = await fx.publicClient.getTransaction({ hash: registration.txHash! });
    assert.equal(tx.from.toLowerCase(), chain.wallet?.account.address.toLowerCase());
    assert.equal(tx.to?.toLowerCase(), fx.cluster.diamond.toLowerCase());
  });
});
