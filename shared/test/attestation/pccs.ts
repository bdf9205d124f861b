// A PCCS for tests: serves one set of real Intel collateral over HTTP on 127.0.0.1 with the paths and
// headers of Intel's PCS v4 API (what `@phala/dcap-qvl`'s `getCollateral` asks), and counts requests.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { Collateral } from "../../src/attestation/collateral.ts";

export interface TestPccs {
  readonly url: string;
  readonly requests: () => number;
  close(): Promise<void>;
}

const bytes = (value: number[] | string): Buffer =>
  typeof value === "string" ? Buffer.from(value.replace(/^0x/, ""), "hex") : Buffer.from(value);

export async function startTestPccs(collateral: Collateral): Promise<TestPccs> {
  let requests = 0;
  const server = createServer((req, res) => {
    requests += 1;
    const path = new URL(req.url ?? "/", "http://pccs").pathname;
    const chain = (name: string, value: string) => res.setHeader(name, encodeURIComponent(value));
    if (path === "/sgx/certification/v4/pckcrl") {
      chain("SGX-PCK-CRL-Issuer-Chain", collateral.pck_crl_issuer_chain);
      res.end(bytes(collateral.pck_crl));
    } else if (path === "/tdx/certification/v4/tcb") {
      chain("TCB-Info-Issuer-Chain", collateral.tcb_info_issuer_chain);
      res.end(
        `{"tcbInfo":${collateral.tcb_info},"signature":"${bytes(collateral.tcb_info_signature).toString("hex")}"}`,
      );
    } else if (path === "/tdx/certification/v4/qe/identity") {
      chain("SGX-Enclave-Identity-Issuer-Chain", collateral.qe_identity_issuer_chain);
      res.end(
        `{"enclaveIdentity":${collateral.qe_identity},"signature":"${bytes(collateral.qe_identity_signature).toString("hex")}"}`,
      );
    } else if (path === "/sgx/certification/v4/rootcacrl") {
      res.end(bytes(collateral.root_ca_crl).toString("hex"));
    } else {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
