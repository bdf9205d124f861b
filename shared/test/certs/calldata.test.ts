// A certificate rebuilt from registration calldata, at zero gas: found in a direct `register` call and
// inside an ERC-4337 handleOps → member account execute → register, and verified offline. Anything
// else in the input (or a forged one) yields no call or a certificate that fails verification.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, test } from "node:test";
import { certificateFromCall, findRegisterCalls } from "@attestmesh/shared/certs/calldata.ts";
import { verifyMemberCertificate } from "@attestmesh/shared/certs/certificate.ts";
import { clusterAbi, memberAccountAbi } from "@attestmesh/shared/contracts/abi.ts";
import {
  type Address,
  bytesToHex,
  concatHex,
  encodeFunctionData,
  getAddress,
  type Hex,
  pad,
  toHex,
} from "viem";
import { entryPoint07Abi } from "viem/account-abstraction";
import { offlineCertificate } from "../../../test/helpers/certs.ts";

const randomAddress = (): Address => getAddress(bytesToHex(randomBytes(20)));

describe("certificate from registration calldata", async () => {
  const { pinned, salt, appId, certificate, memberKey } = await offlineCertificate({
    chainId: 84532,
    nonce: 2n,
  });
  const register = encodeFunctionData({
    abi: clusterAbi,
    functionName: "register",
    args: [
      {
        appId,
        memberPubkey: certificate.memberPubkey,
        appPubkey: certificate.appPubkey,
        appSignature: certificate.appSignature,
        kmsSignature: certificate.kmsSignature,
        guestApiVersion: 0,
      },
      certificate.wireguardKey,
      certificate.identityKey,
      { composeHash: certificate.claims.composeHash!, deviceId: certificate.claims.deviceId! },
      certificate.signature,
    ],
  });
  const record = {
    appId,
    memberKey,
    wireguardKey: certificate.wireguardKey,
    identityKey: certificate.identityKey,
  };

  async function rebuilt(input: Hex) {
    const calls = findRegisterCalls(input);
    assert.equal(calls.length, 1);
    return verifyMemberCertificate(certificateFromCall(calls[0]!, salt, 2n), pinned, record);
  }

  test("a direct register call", async () => {
    const verified = await rebuilt(register);
    assert.equal(verified.memberKey, memberKey);
    assert.deepEqual(verified.certificate, certificate);
  });

  test("a sponsored registration: handleOps → member account execute → register", async () => {
    const execute = encodeFunctionData({
      abi: memberAccountAbi,
      functionName: "execute",
      args: [pinned.cluster, 0n, register],
    });
    const handleOps = encodeFunctionData({
      abi: entryPoint07Abi,
      functionName: "handleOps",
      args: [
        [
          {
            sender: randomAddress(),
            nonce: 7n,
            initCode: "0x",
            callData: execute,
            accountGasLimits: concatHex([
              pad(toHex(300_000n), { size: 16 }),
              pad(toHex(250_000n), { size: 16 }),
            ]),
            preVerificationGas: 60_000n,
            gasFees: concatHex([pad(toHex(1n), { size: 16 }), pad(toHex(2n), { size: 16 })]),
            paymasterAndData: bytesToHex(randomBytes(52)),
            signature: bytesToHex(randomBytes(65)),
          },
        ],
        randomAddress(),
      ],
    });
    const verified = await rebuilt(handleOps);
    assert.deepEqual(verified.certificate, certificate);
  });

  test("an input with no register call yields nothing; the wrong salt or nonce fails verification", async () => {
    assert.deepEqual(findRegisterCalls("0x"), []);
    assert.deepEqual(findRegisterCalls(bytesToHex(randomBytes(300))), []);
    const [call] = findRegisterCalls(register);
    await assert.rejects(
      verifyMemberCertificate(certificateFromCall(call!, bytesToHex(randomBytes(32)), 2n), pinned, record),
      { code: "AppIdNotMemberApp" },
    );
    await assert.rejects(verifyMemberCertificate(certificateFromCall(call!, salt, 1n), pinned, record), {
      code: "RegistrationSignatureMismatch",
    });
  });
});
