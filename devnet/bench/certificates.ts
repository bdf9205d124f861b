// Member-certificate verification time, offline (no RPC): (a) cold — the full check of a genuine
// certificate (the member key's dstack KMS chain, KMS root ∈ pinned roots, member-app CREATE2, the
// EIP-712 registration signature, the record's keys); (b) cached — what every later question costs
// (the sidecar's certifier answering from its cache: a map lookup, no RPC, no signature check).
//
//   node devnet/bench/certificates.ts [--cold 300] [--cached 100000]     (from the repository root)
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { verifyMemberCertificate } from "@attestmesh/shared/certs/certificate.ts";
import { predictMemberAppId } from "@attestmesh/shared/certs/memberApp.ts";
import type { PinnedTrust } from "@attestmesh/shared/service/pinned.ts";
import { createMemberCertifier } from "@attestmesh/sidecar/certs/certifier.ts";
import type { Member } from "@attestmesh/sidecar/model/member.ts";
import { pino } from "pino";
import { bytesToHex, getAddress } from "viem";
import { simulatedCertificate } from "../../test/helpers/certs.ts";
import { createKmsRoot } from "../src/dstack-sim/simulator.ts";

const { values } = parseArgs({
  options: { cold: { type: "string", default: "300" }, cached: { type: "string", default: "100000" } },
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

// Warm up the JIT and noble's precomputed tables, as a running sidecar has.
for (let i = 0; i < 20; i++) await verifyMemberCertificate(certificate, pinned, record);
const cold: number[] = [];
for (let i = 0; i < COLD; i++) {
  const start = process.hrtime.bigint();
  await verifyMemberCertificate(certificate, pinned, record);
  cold.push(micros(start));
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
  `| cached: certifier.certify      | ${CACHED} | ${median(cached).toFixed(2)} | ${p99(cached).toFixed(2)} | ${fetches} (the first) |`,
);
