// Member-certificate verification time, offline (no RPC): (a) cold — the full check of a genuine
// certificate (the member key's dstack KMS chain, KMS root ∈ pinned roots, member-app CREATE2, the
// EIP-712 registration signature, the record's keys); (b) cached — what every later question costs
// (the sidecar's certifier answering from its cache: a map lookup, no RPC, no signature check);
// (c) fetched, then verified — what the certifier does per new member: the certificate source recovers
// the registration's signer to find its nonce, then the verification; the old way (that recovery made
// twice) and the new (the verification reuses it), alternating, each on a certificate not seen before;
// (d) with `--baseline DIR` (another checkout of this repository, e.g. main's, installed), the cold
// verification of that checkout's shared/src/certs/certificate.ts and of this one, alternating in one
// process, each on a certificate not seen before: medians and their ratio.
//
//   node devnet/bench/certificates.ts [--cold 100] [--cached 100000] [--baseline DIR]   (from the repository root)
import { randomBytes } from "node:crypto";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import {
  type MemberCertificate,
  registerMessageOf,
  registrationSigner,
  verifyMemberCertificate,
} from "@attestmesh/shared/certs/certificate.ts";
import { predictMemberAppId } from "@attestmesh/shared/certs/memberApp.ts";
import { memberDomain, memberTypes } from "@attestmesh/shared/contracts/typedData.ts";
import type { PinnedTrust } from "@attestmesh/shared/service/pinned.ts";
import { createMemberCertifier } from "@attestmesh/sidecar/certs/certifier.ts";
import type { Member } from "@attestmesh/sidecar/model/member.ts";
import { pino } from "pino";
import { bytesToHex, getAddress, recoverTypedDataAddress } from "viem";
import { simulatedCertificate } from "../../test/helpers/certs.ts";
import { createKmsRoot } from "../src/dstack-sim/simulator.ts";

const { values } = parseArgs({
  options: {
    cold: { type: "string", default: "100" },
    cached: { type: "string", default: "100000" },
    baseline: { type: "string" },
  },
});
const COLD = Number(values.cold);
const CACHED = Number(values.cached);

const kmsRoot = createKmsRoot(new Uint8Array(randomBytes(32)));
const pinned: PinnedTrust = {
  chainId: 8453,
  cluster: getAddress(bytesToHex(randomBytes(20))),
  memberAppImplementation: getAddress(bytesToHex(randomBytes(20))),
  kmsRoots: [kmsRoot.address],
  guestApi: "v0",
};
const salt = bytesToHex(randomBytes(32));
const appId = predictMemberAppId(pinned.memberAppImplementation, pinned.cluster, salt);
const { certificate, memberKey } = await simulatedCertificate({
  kmsRoot,
  appId,
  salt,
  chainId: pinned.chainId,
  cluster: pinned.cluster,
});
const record = {
  appId,
  memberKey,
  wireguardKey: certificate.wireguardKey,
  identityKey: certificate.identityKey,
};

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};
const micros = (start: bigint) => Number(process.hrtime.bigint() - start) / 1000;

// Certificates never verified before (one per nonce: each its own signature), as each new member's is:
// a recovered registration signer is kept by digest and signature (certificate.ts), so verifying one
// certificate over and over would time that reuse.
const fresh: MemberCertificate[] = [];
const BASELINE_RUNS = values.baseline === undefined ? 0 : 20 + 2 * COLD;
for (let i = 0; i < 20 + 3 * COLD + BASELINE_RUNS; i++) {
  fresh.push(
    (
      await simulatedCertificate({
        kmsRoot,
        appId,
        salt,
        chainId: pinned.chainId,
        cluster: pinned.cluster,
        nonce: BigInt(i + 1),
      })
    ).certificate,
  );
}
// Warm up the JIT and the recoveries, as a running sidecar has.
for (let i = 0; i < 20; i++) await verifyMemberCertificate(fresh.pop()!, pinned, record);
const cold: number[] = [];
const twice: number[] = [];
const reused: number[] = [];
for (let i = 0; i < COLD; i++) {
  let c = fresh.pop()!;
  let start = process.hrtime.bigint();
  await verifyMemberCertificate(c, pinned, record);
  cold.push(micros(start));
  // Before: the source's recovery, then the verification's own (the signer was not kept).
  c = fresh.pop()!;
  start = process.hrtime.bigint();
  await recoverTypedDataAddress({
    domain: memberDomain(pinned.chainId, pinned.cluster),
    types: memberTypes,
    primaryType: "Register",
    // biome-ignore lint/suspicious/noExplicitAny: the message is built from memberTypes.Register itself
    message: registerMessageOf(c) as any,
    signature: c.signature,
  });
  await verifyMemberCertificate(c, pinned, record);
  twice.push(micros(start));
  // Now: the source's recovery is kept, and the verification's is a lookup.
  c = fresh.pop()!;
  start = process.hrtime.bigint();
  registrationSigner(c, pinned.chainId, pinned.cluster);
  await verifyMemberCertificate(c, pinned, record);
  reused.push(micros(start));
}

type Verify = typeof verifyMemberCertificate;
const baseline: { this: number[]; base: number[] } = { this: [], base: [] };
if (values.baseline !== undefined) {
  const module = pathToFileURL(join(resolve(values.baseline), "shared/src/certs/certificate.ts")).href;
  const verifyBase = ((await import(module)) as { verifyMemberCertificate: Verify }).verifyMemberCertificate;
  for (let i = 0; i < 20; i++) await verifyBase(fresh.pop()!, pinned, record);
  // Alternating which goes first, so neither always runs right after the other's garbage.
  for (let i = 0; i < COLD; i++) {
    const order = i % 2 === 0 ? (["base", "this"] as const) : (["this", "base"] as const);
    for (const which of order) {
      const c = fresh.pop()!;
      const start = process.hrtime.bigint();
      await (which === "base" ? verifyBase : verifyMemberCertificate)(c, pinned, record);
      baseline[which].push(micros(start));
    }
  }
}

const member: Member = { memberId: 1n, ...record, meshIp: 0x0a4d0001, status: "active", registeredAt: 1 };
let fetches = 0;
const certifier = createMemberCertifier({
  pinned,
  source: async () => {
    fetches += 1;
    return certificate;
  },
  logger: pino({ level: "silent" }),
});
await certifier.certify(member);
const cached: number[] = [];
for (let i = 0; i < CACHED; i++) {
  const start = process.hrtime.bigint();
  await certifier.certify(member);
  cached.push(micros(start));
}

console.log("| check                          | runs    | median µs | p99 µs  | source (RPC) fetches |");
console.log("| ------------------------------ | ------: | --------: | ------: | -------------------: |");
const p99 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.99)]!;
console.log(
  `| cold: full offline verification | ${COLD} | ${median(cold).toFixed(0)} | ${p99(cold).toFixed(0)} | 0 |`,
);
console.log(
  `| fetched, then verified: signer recovered twice (before) | ${COLD} | ${median(twice).toFixed(0)} | ${p99(twice).toFixed(0)} | 0 |`,
);
console.log(
  `| fetched, then verified: signer recovered once (now)     | ${COLD} | ${median(reused).toFixed(0)} | ${p99(reused).toFixed(0)} | 0 |`,
);
console.log(
  `| cached: certifier.certify      | ${CACHED} | ${median(cached).toFixed(2)} | ${p99(cached).toFixed(2)} | ${fetches} (the first) |`,
);
if (values.baseline !== undefined) {
  const base = median(baseline.base);
  const now = median(baseline.this);
  console.log(
    `\ncold verification, alternating (${COLD} each): ${values.baseline} median ${base.toFixed(0)} µs (p99 ${p99(baseline.base).toFixed(0)}),`,
  );
  console.log(
    `this checkout median ${now.toFixed(0)} µs (p99 ${p99(baseline.this).toFixed(0)}); ratio ${(base / now).toFixed(2)}x`,
  );
}
